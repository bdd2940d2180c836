"""Apply the Debian-family component document to the base image: the drill's "AMI".

1. Render the document with the pipeline's own renderer
   (``crashcart.components.render.render_component("debian-12", "crash-dump")``).
2. Parse it with the drill runner (:mod:`crashcart.drill.component`), which refuses anything
   it does not implement before anything runs.
3. Make a disk from the base root file system, place every step in the guest
   (``/usr/local/lib/crashcart-drill/steps/``) and queue the build phase, then the validate
   phase (as Image Builder runs them on its build instance).
4. Boot under QEMU until the queue is done: a ``Reboot`` step or exit 194 ends the QEMU
   process (``-no-reboot``) and the drill boots the disk again, with the command line
   recomputed from the boot configuration the component wrote.

The result is cached under ``prepared-<key>/`` (key: base key + rendered document); every
drill run boots a fresh copy of its disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crashcart.drill import diskfs
from crashcart.drill.bootcfg import read_boot_config
from crashcart.drill.component import ComponentDocument, Step, parse_document
from crashcart.drill.image import (
    GUEST_LIB,
    GUEST_STATE,
    build_base,
    copy_disk,
    guest_files,
    make_disk,
)
from crashcart.drill.paths import cache_dir, prune_prepared
from crashcart.drill.qemu import Event, GuestError, Vm

FAMILY = "debian-12"
#: Most boots a preparation may take (the document has one Reboot; 194 loops are bounded).
MAX_BOOTS = 6


class StepFailedError(RuntimeError):
    """A component step failed in the guest (``stage``: build / validate / test)."""

    def __init__(self, message: str, *, step: str, status: str, output: list[str]) -> None:
        super().__init__(message)
        self.step = step
        self.status = status
        self.output = output


def render_document() -> str:
    """The Debian 12 crash-dump document exactly as the pipeline ships it."""
    from crashcart.components.render import render_component

    return render_component(FAMILY, "crash-dump")


#: The guest's Python (Debian 12): the wheels of the local wheelhouse are for it.
GUEST_PYTHON = "3.11"
WHEELHOUSE = f"{GUEST_STATE}/wheels"
_PIP_REQUIREMENT_RE = re.compile(r"pip install [^\n]*?'?([A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*)'?")


def pip_requirements(text: str) -> list[str]:
    """The pinned ``pip install`` requirements the document's steps run (e.g. awscli)."""
    return sorted(set(_PIP_REQUIREMENT_RE.findall(text)))


def wheelhouse(requirements: list[str], *, progress: Callable[[str], None] = print) -> list[Path]:
    """Wheels for ``requirements`` (and their dependencies) for the guest's Python, downloaded
    from the package index on the host once and cached: the guest's pip installs from them
    offline (its /etc/pip.conf says ``no-index`` + ``find-links``), as the guest's apt installs
    from the local repository."""
    if not requirements:
        return []
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]
    folder = cache_dir() / f"wheels-{digest}"
    done = folder / "done"
    if not done.exists():
        progress(f"  downloading wheels for the guest: {' '.join(requirements)}")
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--disable-pip-version-check",
                "--only-binary=:all:",
                "--python-version",
                GUEST_PYTHON,
                "--platform",
                "manylinux2014_x86_64",
                "--implementation",
                "cp",
                "--abi",
                f"cp{GUEST_PYTHON.replace('.', '')}",
                "-d",
                str(folder),
                *requirements,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise GuestError(f"pip download {requirements} failed: {result.stderr[-600:]}")
        done.write_text("\n".join(requirements) + "\n")
    return sorted(folder.glob("*.whl"))


def install_steps(editor: diskfs.DiskEditor, document: ComponentDocument, text: str) -> None:
    """The drill's runner and unit, and every step of the document, into the guest."""
    for path, (content, mode) in guest_files().items():
        editor.write(path, content, mode=mode)
    wheels = wheelhouse(pip_requirements(text))
    if wheels:
        editor.mkdir(WHEELHOUSE)
        for wheel in wheels:
            editor.write(f"{WHEELHOUSE}/{wheel.name}", wheel.read_bytes())
        editor.write(
            "/etc/pip.conf",
            "# crashcart drill guest: offline; pip installs from the local wheelhouse.\n"
            f"[global]\nno-index = true\nfind-links = {WHEELHOUSE}\n",
        )
    editor.symlink(
        "/etc/systemd/system/multi-user.target.wants/crashcart-drill.service",
        "/etc/systemd/system/crashcart-drill.service",
    )
    # DHCP before network-online.target (the agent orders itself after it).
    editor.mkdir("/etc/systemd/system/network-online.target.wants")
    editor.symlink(
        "/etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service",
        "/lib/systemd/system/systemd-networkd-wait-online.service",
    )
    # While the image is prepared there is no metadata service and no moto: keep the
    # crashcart agent (if the document installs it) from running; each drill run replaces
    # this drop-in with its settings (crashcart.drill.agent.configure).
    editor.mkdir("/etc/systemd/system/crashcart-agent.service.d")
    editor.write(
        "/etc/systemd/system/crashcart-agent.service.d/zz-crashcart-drill.conf",
        "# crashcart drill: not during image preparation (no metadata service, no moto)\n"
        "[Unit]\nConditionPathExists=/etc/crashcart-drill-agent-enabled\n",
    )
    editor.mkdir(f"{GUEST_LIB}/steps")
    editor.write("/etc/crashcart-drill-component.yaml", text)
    for name, (step_text, step_mode) in step_files(document).items():
        editor.write(f"{GUEST_LIB}/steps/{name}", step_text, mode=step_mode)


def step_files(document: ComponentDocument) -> dict[str, tuple[str, int]]:
    """The runner's step files: ``<key>.sh`` (+ ``<key>.timeout``) or ``<key>.reboot``."""
    files: dict[str, tuple[str, int]] = {}
    for step in document.steps("build", "validate", "test"):
        if step.action == "Reboot":
            files[f"{step.key}.reboot"] = (f"{step.delay_seconds}\n", 0o644)
        else:
            files[f"{step.key}.sh"] = (step.script, 0o755)
            if step.timeout_seconds is not None:
                files[f"{step.key}.timeout"] = (f"{step.timeout_seconds}\n", 0o644)
    return files


def queue_text(steps: list[Step]) -> str:
    return "".join(f"{step.key}\n" for step in steps)


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
) -> Vm:
    """Boot ``disk`` (again after each requested reboot) until the runner says ``ready``.

    Returns the running VM. Raises :class:`StepFailedError` when a step fails and
    :class:`GuestError` when the guest stops without saying why.
    """
    for boot in range(1, max_boots + 1):
        diskfs.recover(disk)
        boot_config = read_boot_config(disk, workdir / "boot")
        vm = Vm(
            disk=disk,
            kernel=boot_config.kernel,
            initrd=boot_config.initrd,
            cmdline=boot_config.cmdline,
            workdir=workdir,
            label=f"{label}-{boot}",
            **(vm_options or {}),
        ).start()
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
            failed = log.failed
            assert failed is not None
            raise StepFailedError(
                f"component step {failed.key} failed (exit {failed.status})",
                step=failed.key,
                status=failed.status,
                output=failed.output,
            )
        # QEMU exited: a requested reboot, or something went wrong.
        if len(log.reboots) > reboots_before:
            continue
        raise GuestError(
            f"the guest stopped (QEMU exit {vm.exit_code}) during {label} boot {boot} without "
            f"the runner asking for a reboot; console: {vm.console_log}"
        )
    raise GuestError(f"{label}: more than {max_boots} boots; a step keeps asking for reboots")


@dataclass(frozen=True)
class PreparedImage:
    folder: Path
    disk: Path
    document: ComponentDocument
    document_text: str
    kernel_release: str
    key: str
    base_seconds: float
    prepare_seconds: float
    cached: bool
    build_log: dict[str, Any]


def prepared_key(base_key: str, text: str) -> str:
    """Base key + the rendered document + the drill's guest files."""
    digest = hashlib.sha256(f"{base_key}\n{text}\nwheels for {GUEST_PYTHON}".encode())
    for path, (content, mode) in sorted(guest_files().items()):
        digest.update(path.encode() + content + str(mode).encode())
    return digest.hexdigest()[:16]


def default_boot_timeout() -> float:
    """Seconds one boot may take to work through its steps: ``$CRASHCART_DRILL_BOOT_TIMEOUT``,
    default 2400 (a first boot installs packages and builds two initrds under TCG; on a
    loaded 2-core machine that took over 15 minutes)."""
    return float(os.environ.get("CRASHCART_DRILL_BOOT_TIMEOUT", "2400"))


def prepare(
    *,
    force: bool = False,
    progress: Callable[[str], None] = print,
    boot_timeout: float | None = None,
) -> PreparedImage:
    """The prepared image (cached); builds the base and applies the component when needed."""
    text = render_document()
    document = parse_document(text)  # refuses unsupported documents before anything runs
    progress("drill: base image (debootstrap Debian 12, cached)")
    base = build_base()
    progress(
        f"  base {base.key}: kernel {base.kernel_release}, "
        f"{'cached' if base.cached else f'built in {base.build_seconds}s'}"
    )
    key = prepared_key(base.key, text)
    folder = cache_dir() / f"prepared-{key}"
    done = folder / "prepared.json"
    for removed in prune_prepared(key):
        progress(f"  removed the older prepared image {removed.name}")
    if done.exists() and not force:
        cached: dict[str, Any] = json.loads(done.read_text())
        os.utime(folder)  # last use: the pruning keeps the images used most recently
        return PreparedImage(
            folder,
            folder / "disk.img",
            document,
            text,
            cached["kernel_release"],
            key,
            base.build_seconds,
            cached["prepare_seconds"],
            True,
            cached,
        )
    started = time.monotonic()
    shutil.rmtree(folder, ignore_errors=True)
    work = folder / "work"
    work.mkdir(parents=True)
    disk = work / "disk.img"
    progress(f"drill: applying the {FAMILY} component {document.name} (build + validate)")
    make_disk(base.rootfs, disk, log=work / "mkfs.log")
    editor = diskfs.DiskEditor(disk)
    install_steps(editor, document, text)
    editor.write(f"{GUEST_STATE}/queue", queue_text(document.steps("build", "validate")))
    editor.apply()
    log = BootLog.empty()
    vm = boot_until_ready(
        disk,
        work,
        label="prepare",
        timeout=boot_timeout if boot_timeout is not None else default_boot_timeout(),
        log=log,
        progress=progress,
    )
    vm.stop()
    diskfs.recover(disk)
    seconds = round(time.monotonic() - started, 1)
    info: dict[str, Any] = {
        "kernel_release": base.kernel_release,
        "prepare_seconds": seconds,
        "document": document.name,
        "steps": {key: {"status": r.status, "output": r.output} for key, r in log.steps.items()},
        "reboots": log.reboots,
    }
    final = folder / "disk.img"
    copy_disk(disk, final)
    disk.unlink()
    (folder / "component.yaml").write_text(text)
    done.write_text(json.dumps(info, indent=2))
    progress(f"  prepared image {key} in {seconds}s")
    return PreparedImage(
        folder,
        final,
        document,
        text,
        base.kernel_release,
        key,
        base.build_seconds,
        seconds,
        False,
        info,
    )


__all__ = ["GuestError", "PreparedImage", "StepFailedError", "prepare"]
