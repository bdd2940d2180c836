"""Apply the Debian-family component document to the base image: the drill's "AMI".

1. Render the document with the pipeline's own renderer
   (``crashcart.components.render.render_component("debian-12", "crash-dump")``).
2. Parse it with the drill runner (:mod:`crashcart.drill.component`), which refuses anything
   it does not implement before anything runs.
3. Split its build phase (:mod:`crashcart.drill.hostphase`): the steps before the first
   ``Reboot`` that need no running kernel run on the host, chrooted into the image's root file
   system in a sandbox, natively; everything else is queued for the guest.
4. Place the drill's files (the step runner and its unit, every step, the wheelhouse, the
   hung-CPU test module) and make the disk (``mkfs.ext4 -d``, no loop mounts).
5. Boot it under QEMU: the first boot stands for the document's Reboot; the guest runs what is
   queued (the validate phase at least; a ``Reboot`` step or exit 194 ends the QEMU process,
   ``-no-reboot``, and the drill boots the disk again with the command line recomputed from
   the boot configuration the component wrote).
6. When validation passed, the runner waits for a command (action ``await``); the drill pauses
   the guest and saves it, RAM and devices and a copy of its disk, to ``snapshot-<vm key>/``:
   scenarios restore a booted, validated guest from it instead of booting (see
   :mod:`crashcart.drill.run`). Then QEMU stops and the disk is kept as the image that
   scenarios boot cold.

The result is cached under ``prepared-<key>/``; the key (:func:`drill_inputs`) covers exactly
what ends up in the guest. Every drill run boots, or restores, a fresh copy of a disk.
"""

from __future__ import annotations

import dataclasses
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
from typing import Any, Protocol

from crashcart.drill import diskfs
from crashcart.drill.agent import AGENT_ENABLED
from crashcart.drill.bootcfg import read_boot_config
from crashcart.drill.component import ComponentDocument, Step, parse_document
from crashcart.drill.hostphase import (
    SANDBOX,
    HostStepError,
    Overlay,
    check_host,
    run_host_steps,
    split_build,
)
from crashcart.drill.hostphase import make_disk as make_overlay_disk
from crashcart.drill.image import (
    DISK_SIZE,
    GUEST_LIB,
    GUEST_STATE,
    BaseImage,
    build_base,
    copy_disk,
    guest_files,
)
from crashcart.drill.module import build_hang_module, hang_module_sources
from crashcart.drill.paths import (
    PREPARE_FREE_BYTES,
    cache_dir,
    cache_lock,
    prune_prepared,
    require_free_space,
)
from crashcart.drill.qemu import GUEST_CPUS, GUEST_MEMORY_MIB, Event, GuestError, Vm, qemu_version

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


#: The drill guest's memory floor for the running-instance path: the guest has
#: ``GUEST_MEMORY_MIB`` (1024 MiB), below the document's default floor (1536 MiB), which
#: would refuse it (as it should a 1 GiB instance unless its owner lowers the floor knowingly).
RUNNING_INSTANCE_MIN_MEMORY_MIB = 768


def render_running_instance_document() -> str:
    """The running-instance arming script (:mod:`crashcart.components.arming`) as the drill's
    component document: arm (reboot pending), reboot, arm again (armed), then the pipeline's
    own validate step. Applied to the base image, which has no crashcart configuration: it
    stands for an instance the pipeline did not build."""
    from crashcart.components.arming import render_arming_drill_document

    return render_arming_drill_document(min_memory_mib=RUNNING_INSTANCE_MIN_MEMORY_MIB)


#: The drill's images, by name: the document each is prepared from (applied to the base).
#: ``pipeline``: an instance launched from the pipeline's AMI; ``running-instance``: an
#: instance the pipeline never touched, armed in place by the SSM document's script.
IMAGES: dict[str, Callable[[], str]] = {
    "pipeline": render_document,
    "running-instance": render_running_instance_document,
}


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


#: The hung-CPU test module's place in the image (restored guests cannot be handed files).
HANG_MODULE = f"{GUEST_STATE}/crashcart_hang.ko"
POLICY_RC_D = "/usr/sbin/policy-rc.d"


class FileWriter(Protocol):
    """Where the drill's files go: the image's overlay before the disk is made."""

    def write(self, guest_path: str, content: bytes | str, mode: int = 0o644) -> object: ...

    def mkdir(self, guest_path: str, mode: int = 0o755) -> object: ...

    def symlink(self, guest_path: str, target: str) -> object: ...


def install_steps(
    editor: FileWriter,
    document: ComponentDocument,
    text: str,
    *,
    hang_module: Path | None = None,
) -> None:
    """The drill's runner and unit, every step of the document, the wheelhouse and the
    hung-CPU test module into the image."""
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
    # While the image is prepared there is no metadata service and no moto: the crashcart
    # agent (if the document installs it) runs only where a drill run created the flag file
    # and gave it its settings (crashcart.drill.agent); its log goes to the serial console
    # too (the drill reads no journal).
    editor.mkdir("/etc/systemd/system/crashcart-agent.service.d")
    editor.write(
        "/etc/systemd/system/crashcart-agent.service.d/zz-crashcart-drill.conf",
        "# crashcart drill: only in a drill run (no metadata service, no moto before)\n"
        f"[Unit]\nConditionPathExists={AGENT_ENABLED}\n\n"
        "[Service]\nStandardOutput=journal+console\nStandardError=journal+console\n",
    )
    editor.mkdir(f"{GUEST_LIB}/steps")
    editor.write("/etc/crashcart-drill-component.yaml", text)
    for name, (step_text, step_mode) in step_files(document).items():
        editor.write(f"{GUEST_LIB}/steps/{name}", step_text, mode=step_mode)
    if hang_module is not None:
        editor.write(HANG_MODULE, hang_module.read_bytes())


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
class Snapshot:
    """A booted, validated guest saved at the runner's ``await``: its state and its disk."""

    folder: Path
    disk: Path
    state: Path
    kernel: Path
    initrd: Path
    cmdline: str
    vm_key: str
    info: dict[str, Any]


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
    snapshot: Snapshot | None = None


#: Bump when the way the drill prepares the image changes what ends up in it (what the
#: inputs below do not show: e.g. a file the drill places, or where a step runs).
PREPARE_FORMAT = 2


def drill_inputs(text: str, *, base_key: str, kernel_release: str) -> dict[str, bytes]:
    """Everything that makes the prepared guest what it is, by name: the base image (its key
    covers the package lists, mirror, suite and platform settings) and its kernel, the
    rendered document (the crashcart agent and its pinned AWS CLI are in it), the wheels'
    Python, the drill's guest files (runner, unit), the host-side sandbox, the hung-CPU test
    module's sources and the preparation format. Nothing else: other edits never re-prepare.
    """
    inputs: dict[str, bytes] = {
        "base": base_key.encode(),
        "kernel": kernel_release.encode(),
        "document": text.encode(),
        "wheels": f"{pip_requirements(text)} for Python {GUEST_PYTHON}".encode(),
        "format": str(PREPARE_FORMAT).encode(),
        "host/sandbox.sh": SANDBOX.read_bytes(),
    }
    for path, (content, mode) in sorted(guest_files().items()):
        inputs[f"guest:{path}"] = content + f"\nmode {mode:o}".encode()
    for source in hang_module_sources():
        inputs[f"hang_module/{source.name}"] = source.read_bytes()
    return inputs


def prepared_key(inputs: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name, content in sorted(inputs.items()):
        digest.update(f"{name}\0{len(content)}\0".encode() + content)
    return digest.hexdigest()[:16]


#: The guest every drill VM is (a saved guest restores only into the same devices and RAM).
VM_OPTIONS: dict[str, Any] = {"memory_mib": GUEST_MEMORY_MIB, "cpus": GUEST_CPUS}


def snapshot_key() -> str:
    """QEMU's version and the VM's shape: a saved guest restores into the same, nothing else."""
    accel = os.environ.get("CRASHCART_DRILL_ACCEL", "tcg")
    spec = json.dumps({"qemu": qemu_version(), "accel": accel, **VM_OPTIONS}, sort_keys=True)
    return hashlib.sha256(spec.encode()).hexdigest()[:12]


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


#: Seconds a host-side step may take when the document gives no timeoutSeconds.
HOST_STEP_TIMEOUT = 1800.0


def _load(folder: Path) -> dict[str, Any] | None:
    done = folder / "prepared.json"
    if not done.exists():
        return None
    loaded: dict[str, Any] = json.loads(done.read_text())
    return loaded


def _snapshot_at(folder: Path, vm_key: str) -> Snapshot | None:
    snap = folder / f"snapshot-{vm_key}"
    info_path = snap / "snapshot.json"
    if not info_path.exists():
        return None
    info: dict[str, Any] = json.loads(info_path.read_text())
    return Snapshot(
        snap,
        snap / "disk.img",
        snap / "vmstate",
        snap / "boot" / info["kernel"],
        snap / "boot" / info["initrd"],
        info["cmdline"],
        vm_key,
        info,
    )


def save_snapshot(vm: Vm, folder: Path, vm_key: str, *, ready_seconds: float) -> Snapshot:
    """Save the guest ``vm`` (waiting at ``await``) into ``folder/snapshot-<vm_key>/``."""
    snap = folder / f"snapshot-{vm_key}"
    shutil.rmtree(snap, ignore_errors=True)
    (snap / "boot").mkdir(parents=True)
    started = time.monotonic()
    vm.save_state(snap / "vmstate.partial", disk_copy=snap / "disk.img")
    (snap / "vmstate.partial").rename(snap / "vmstate")
    for source in (vm.kernel, vm.initrd):
        shutil.copy(source, snap / "boot" / source.name)
    info = {
        "kernel": vm.kernel.name,
        "initrd": vm.initrd.name,
        "cmdline": vm.cmdline,
        "vm": VM_OPTIONS,
        "qemu": qemu_version(),
        "save_seconds": round(time.monotonic() - started, 1),
        "boot_to_ready_s": round(ready_seconds, 1),
        "state_mib": round((snap / "vmstate").stat().st_size / 2**20, 1),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (snap / "snapshot.json").write_text(json.dumps(info, indent=2))
    snapshot = _snapshot_at(folder, vm_key)
    assert snapshot is not None
    return snapshot


def _boot_and_save(
    disk: Path,
    work: Path,
    folder: Path,
    *,
    label: str,
    log: BootLog,
    timeout: float,
    progress: Callable[[str], None],
) -> Snapshot:
    """Boot ``disk`` through its queue, save the validated guest, stop QEMU, make the disk
    consistent again (it is then the image scenarios boot cold)."""
    boot_started = time.monotonic()
    vm = boot_until_ready(
        disk,
        work,
        label=label,
        timeout=timeout,
        log=log,
        vm_options=VM_OPTIONS,
        progress=progress,
    )
    try:
        ready_seconds = time.monotonic() - boot_started
        vm.wait_for(
            lambda e: e.name == "awaiting", timeout=120, what="the runner to wait for a command"
        )
        snapshot = save_snapshot(vm, folder, snapshot_key(), ready_seconds=ready_seconds)
    finally:
        vm.stop()
    diskfs.recover(disk)
    progress(
        f"  saved the validated guest ({snapshot.info['state_mib']} MiB of state, "
        f"{snapshot.info['save_seconds']}s)"
    )
    return snapshot


def ensure_snapshot(
    prepared: PreparedImage, *, progress: Callable[[str], None] = print
) -> Snapshot:
    """The prepared image's saved guest for this QEMU; made (one boot) when missing, e.g.
    after a QEMU upgrade."""
    vm_key = snapshot_key()
    found = _snapshot_at(prepared.folder, vm_key)
    if found is not None:
        return found
    progress(f"drill: saving a validated guest of {prepared.key} for this QEMU ({vm_key})")
    work = prepared.folder / "work-snapshot"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    disk = work / "disk.img"
    copy_disk(prepared.disk, disk)
    diskfs.recover(disk)
    editor = diskfs.DiskEditor(disk)
    editor.write(f"{GUEST_STATE}/queue", queue_text(prepared.document.steps("validate")))
    editor.write(f"{GUEST_STATE}/action", "await\n")
    editor.apply()
    snapshot = _boot_and_save(
        disk,
        work,
        prepared.folder,
        label="snapshot",
        log=BootLog.empty(),
        timeout=default_boot_timeout(),
        progress=progress,
    )
    shutil.rmtree(work, ignore_errors=True)
    return snapshot


def prepare(
    *,
    force: bool = False,
    progress: Callable[[str], None] = print,
    boot_timeout: float | None = None,
    snapshot: bool = True,
    image: str = "pipeline",
) -> PreparedImage:
    """The prepared image (cached), with its saved guest (``snapshot``); builds the base and
    applies the component when needed. ``image``: which document (:data:`IMAGES`); each is
    cached under its own key (the key covers the document's text)."""
    entered = time.monotonic()
    if image not in IMAGES:
        raise ValueError(f"drill image {image!r}: use one of {', '.join(IMAGES)}")
    text = IMAGES[image]()
    document = parse_document(text)  # refuses unsupported documents before anything runs
    progress("drill: base image (debootstrap Debian 12; cached once built)")
    base_started = time.monotonic()
    base = build_base()
    base_seconds = 0.0 if base.cached else time.monotonic() - base_started
    progress(
        f"  base {base.key}: kernel {base.kernel_release}, "
        f"{'cached' if base.cached else f'built in {base.build_seconds}s'}"
    )
    key = prepared_key(drill_inputs(text, base_key=base.key, kernel_release=base.kernel_release))
    with cache_lock(f"prepared-{key}"):
        return _prepare(
            text,
            document,
            base,
            key,
            force=force,
            progress=progress,
            boot_timeout=boot_timeout if boot_timeout is not None else default_boot_timeout(image),
            snapshot=snapshot,
            entered=entered,
            base_seconds=base_seconds,
        )


def _prepare(
    text: str,
    document: ComponentDocument,
    base: BaseImage,
    key: str,
    *,
    force: bool,
    progress: Callable[[str], None],
    boot_timeout: float | None,
    snapshot: bool,
    entered: float,
    base_seconds: float,
) -> PreparedImage:
    folder = cache_dir() / f"prepared-{key}"
    for removed in prune_prepared(key):
        progress(f"  removed the older prepared image {removed.name}")
    cached = None if force else _load(folder)
    if cached is not None:
        os.utime(folder)  # last use: the pruning keeps the images used most recently
        prepared = PreparedImage(
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
        if not snapshot:
            return prepared
        saved = ensure_snapshot(prepared, progress=progress)
        return dataclasses.replace(prepared, snapshot=saved)
    check_host()
    require_free_space(PREPARE_FREE_BYTES, "preparing the drill image")
    # a fresh machine: the triage's debug symbols download while the guest boots
    from crashcart.drill.triage_bridge import prefetch_debug_vmlinux

    prefetch_debug_vmlinux(base.kernel_release, progress=progress)
    started = time.monotonic()
    before = round(started - entered, 1)
    shutil.rmtree(folder, ignore_errors=True)
    work = folder / "work"
    work.mkdir(parents=True)
    progress(f"drill: applying the {FAMILY} component {document.name}")
    # -- the host side: the build steps that need no running kernel ----------------------
    host_started = time.monotonic()
    module = build_hang_module(base.kernel_release)
    overlay = Overlay.create(base.rootfs, work)
    install_steps(overlay, document, text, hang_module=module)
    overlay.write(
        POLICY_RC_D,
        "#!/bin/sh\n# crashcart drill: no service starts on the host\nexit 101\n",
        mode=0o755,
    )
    split = split_build(document)
    for step_key, why in split.reasons.items():
        progress(f"  {step_key} and what follows run in the guest: {why}")
    log = BootLog.empty()
    where: dict[str, str] = {}
    try:
        results, requeued = run_host_steps(
            overlay, split.host, default_timeout=HOST_STEP_TIMEOUT, progress=progress
        )
    except HostStepError as error:
        raise StepFailedError(str(error), step="host", status="failed", output=[]) from error
    for result in results:
        log.steps[result.key] = StepResult(result.key, str(result.status), result.output)
        where[result.key] = "host"
    if requeued:
        first_boot = f"{requeued[0].key} exit-194 (on the host): the image's first boot"
        guest_steps = [*requeued, *([split.first_boot] if split.first_boot else []), *split.guest]
    elif split.first_boot is not None:
        first_boot = f"{split.first_boot.key} Reboot action: the image's first boot under QEMU"
        guest_steps = list(split.guest)
    else:
        first_boot = ""
        guest_steps = list(split.guest)
    if first_boot:
        log.reboots.append(first_boot)
    overlay.remove_placed(POLICY_RC_D)
    validate = document.steps("validate")
    overlay.write(f"{GUEST_STATE}/queue", queue_text([*guest_steps, *validate]))
    overlay.write(f"{GUEST_STATE}/queue.restore", queue_text(validate))
    overlay.write(f"{GUEST_STATE}/action", "await\n")
    disk = work / "disk.img"
    make_overlay_disk(overlay, disk, size=DISK_SIZE, log=work / "mkfs.log")
    host_seconds = round(time.monotonic() - host_started, 1)
    progress(
        f"  host side done in {host_seconds}s; the guest runs {len(guest_steps)} build "
        "step(s), then validate"
    )
    # -- the guest side: the first boot, what needs the kernel, validate; then save it -----
    guest_started = time.monotonic()
    saved = _boot_and_save(
        disk,
        work,
        folder,
        label="prepare",
        log=log,
        timeout=boot_timeout if boot_timeout is not None else default_boot_timeout(),
        progress=progress,
    )
    guest_seconds = round(time.monotonic() - guest_started, 1)
    for step_key in log.steps:
        where.setdefault(step_key, "guest")
    final = folder / "disk.img"
    disk.rename(final)
    logs = folder / "logs"  # the first boot's console and channel, the mkfs log
    logs.mkdir()
    for log_file in work.glob("*.log"):
        log_file.rename(logs / log_file.name)
    shutil.rmtree(work, ignore_errors=True)
    # everything since the call (the base image's build excepted)
    seconds = round(time.monotonic() - entered - base_seconds, 1)
    info: dict[str, Any] = {
        "kernel_release": base.kernel_release,
        "prepare_seconds": seconds,
        "host_seconds": host_seconds,
        "guest_seconds": guest_seconds,
        "before_seconds": before,
        "document": document.name,
        "steps": {
            k: {"status": r.status, "where": where[k], "output": r.output}
            for k, r in log.steps.items()
        },
        "reboots": log.reboots,
        "guest_reasons": split.reasons,
        "snapshot": saved.info,
    }
    (folder / "component.yaml").write_text(text)
    (folder / "prepared.json").write_text(json.dumps(info, indent=2))
    progress(f"  prepared image {key} in {seconds}s (host {host_seconds}s, guest {guest_seconds}s)")
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
        saved,
    )


__all__ = ["GuestError", "PreparedImage", "Snapshot", "StepFailedError", "prepare"]
