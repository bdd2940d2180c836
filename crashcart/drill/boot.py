"""Boot a drill disk until its component runner is ready, and follow what it reports.

The runner (``guest/runner.sh``) works through its queue of component steps and reports on the
drill channel (:class:`BootLog`); a ``Reboot`` step or exit 194 ends the QEMU process
(``-no-reboot``) and :func:`boot_until_ready` boots the disk again, with the command line
recomputed from the boot configuration the guest wrote.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from crashcart.drill import diskfs
from crashcart.drill.bootcfg import read_boot_config
from crashcart.drill.qemu import Event, GuestError, Vm

#: Most boots a preparation may take (the document has one Reboot; 194 loops are bounded).
MAX_BOOTS = 6


class StepFailedError(RuntimeError):
    """A component step failed in the guest (``stage``: build / validate / test)."""

    def __init__(self, message: str, *, step: str, status: str, output: list[str]) -> None:
        super().__init__(message)
        self.step = step
        self.status = status
        self.output = output


@dataclass
class StepResult:
    key: str
    status: str
    output: list[str]


@dataclass
class BootLog:
    """What the runner reported during one or more boots."""

    steps: dict[str, StepResult]
    reboots: list[str]
    ready: bool
    failed: StepResult | None

    @classmethod
    def empty(cls) -> BootLog:
        return cls(steps={}, reboots=[], ready=False, failed=None)

    def feed(self, event: Event) -> None:
        if event.name == "step-start":
            key = event.words[0]
            self.steps[key] = StepResult(key, "running", [])
            self._current = key
        elif event.name == "|":
            current = getattr(self, "_current", None)
            if current:
                self.steps[current].output.append(event.line[2:])
        elif event.name == "step-end":
            key, status = event.words[0], event.words[1]
            self.steps.setdefault(key, StepResult(key, status, [])).status = status
        elif event.name == "reboot":
            self.reboots.append(" ".join(event.words))
        elif event.name == "failed":
            key = event.words[0]
            status = event.words[1] if len(event.words) > 1 else "?"
            self.failed = self.steps.get(key, StepResult(key, status, []))
        elif event.name == "ready":
            self.ready = True


class KernelSource(Protocol):
    """Where a guest's kernel comes from: a boot configuration read from its disk, or a
    saved guest (:class:`crashcart.drill.snapshot.Snapshot`)."""

    @property
    def kernel(self) -> Path: ...

    @property
    def initrd(self) -> Path: ...

    @property
    def cmdline(self) -> str: ...


def start_guest(
    source: KernelSource,
    *,
    disk: Path,
    workdir: Path,
    label: str,
    vm_options: dict[str, Any] | None = None,
    incoming: Path | None = None,
) -> Vm:
    """Start QEMU on ``disk`` with the kernel, initrd and command line of ``source``
    (``incoming``: a saved state to restore instead of booting)."""
    return Vm(
        disk=disk,
        kernel=source.kernel,
        initrd=source.initrd,
        cmdline=source.cmdline,
        workdir=workdir,
        label=label,
        incoming=incoming,
        **(vm_options or {}),
    ).start()


def step_failed(log: BootLog) -> StepFailedError:
    """The error for the step the runner reported failed (``log.failed``)."""
    failed = log.failed
    assert failed is not None
    return StepFailedError(
        f"component step {failed.key} failed (exit {failed.status})",
        step=failed.key,
        status=failed.status,
        output=failed.output,
    )


def boot_until_ready(
    disk: Path,
    workdir: Path,
    *,
    label: str,
    timeout: float,
    log: BootLog,
    vm_options: dict[str, Any] | None = None,
    max_boots: int = MAX_BOOTS,
    progress: Callable[[str], None] = print,
    between_boots: Callable[[Path], None] | None = None,
) -> Vm:
    """Boot ``disk`` (again after each requested reboot) until the runner says ``ready``.
    ``between_boots(disk)`` runs after each requested reboot, while QEMU is stopped, before
    the next boot (e.g. work the host does on the offline disk).

    Returns the running VM. Raises :class:`StepFailedError` when a step fails and
    :class:`GuestError` when the guest stops without saying why.
    """
    for boot in range(1, max_boots + 1):
        diskfs.recover(disk)
        boot_config = read_boot_config(disk, workdir / "boot")
        vm = start_guest(
            boot_config,
            disk=disk,
            workdir=workdir,
            label=f"{label}-{boot}",
            vm_options=vm_options,
        )
        progress(f"  boot {boot}: {boot_config.cmdline}")
        reboots_before = len(log.reboots)

        def show(event: Event) -> None:
            log.feed(event)
            if event.name in ("step-start", "step-end", "reboot", "failed", "ready"):
                progress(f"    guest: {event.line}")

        try:
            event = vm.wait_for(
                lambda e: e.name in ("ready", "failed"),
                timeout=timeout,
                what=f"the component runner to finish ({label} boot {boot})",
                on_event=show,
            )
        except BaseException:
            vm.stop()
            raise
        if event is not None and event.name == "ready":
            return vm
        if event is not None and event.name == "failed":
            vm.stop()
            raise step_failed(log)
        # QEMU exited: a requested reboot, or something went wrong.
        if len(log.reboots) > reboots_before:
            if between_boots is not None:
                between_boots(disk)
            continue
        raise GuestError(
            f"the guest stopped (QEMU exit {vm.exit_code}) during {label} boot {boot} without "
            f"the runner asking for a reboot; console: {vm.console_log}"
        )
    raise GuestError(f"{label}: more than {max_boots} boots; a step keeps asking for reboots")


#: Default seconds per preparation boot, by image (see :func:`default_boot_timeout`).
BOOT_TIMEOUTS = {"pipeline": 900.0, "running-instance": 3000.0}


def default_boot_timeout(image: str = "pipeline") -> float:
    """Seconds one preparation boot may take to work through its steps:
    ``$CRASHCART_DRILL_BOOT_TIMEOUT``, else :data:`BOOT_TIMEOUTS`. Measured on the shared
    2-core machine (2026-12-05): the pipeline image's first boot, which builds kdump's capture
    initrd under TCG, was ready after 157 s at load 10-15 (empty cache, env -i as CI runs);
    900 s leaves more than 5x that. The running-instance image's first boot runs the whole
    arming script in the guest (package installs, initramfs, the agent's AWS CLI) under TCG:
    about 630 s at load 6-7; 3000 s leaves over 4x that. A guest that is stuck rather than
    slow fails sooner: after :func:`crashcart.drill.qemu.silence_limit` seconds without a
    line."""
    configured = os.environ.get("CRASHCART_DRILL_BOOT_TIMEOUT")
    return float(configured) if configured else BOOT_TIMEOUTS[image]
