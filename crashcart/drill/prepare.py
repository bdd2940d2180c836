"""Apply the Debian-family component document to the base image: the drill's "AMI".

1. Render the document with the pipeline's own renderer
   (``crashcart.components.render.render_component("debian-12", "crash-dump")``).
2. Parse it with the drill runner (:mod:`crashcart.drill.component`), which refuses anything
   it does not implement before anything runs.
3. Split its build phase (:mod:`crashcart.drill.hostphase`): the steps before the first
   ``Reboot`` that need no running kernel run on the host, chrooted into the image's root file
   system in a sandbox, natively; everything else is queued for the guest. Before them, the
   host installs what the image's platform has (:data:`PLATFORM_PACKAGES`: Python 3 for the
   running-instance image, as on a Debian AMI); after them, when the first boot is the
   document's ``Reboot``, the host builds kdump-tools' capture initrd as kdump-tools would at
   that boot (:mod:`crashcart.drill.kdumpinitrd`), so that the guest only loads it. When the
   guest itself reboots (the running-instance image), the host builds it on the guest's disk
   between those boots, while QEMU is stopped.
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

The pieces live beside this module, which keeps the preparation's order and its cache key:
the documents (:mod:`crashcart.drill.documents`), the drill's files in the image
(:mod:`crashcart.drill.install`), booting until the runner is ready
(:mod:`crashcart.drill.boot`) and the saved guest (:mod:`crashcart.drill.snapshot`). Their
names are also importable from here, as before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crashcart.drill import kdumpinitrd
from crashcart.drill.boot import (
    BOOT_TIMEOUTS,
    MAX_BOOTS,
    BootLog,
    StepFailedError,
    StepResult,
    boot_until_ready,
    default_boot_timeout,
)
from crashcart.drill.component import ComponentDocument, parse_document
from crashcart.drill.documents import (
    FAMILY,
    IMAGES,
    PLATFORM_PACKAGES,
    RUNNING_INSTANCE_MIN_MEMORY_MIB,
    render_document,
    render_running_instance_document,
)
from crashcart.drill.hostphase import (
    SANDBOX,
    HostStepError,
    Overlay,
    check_host,
    install_packages,
    run_host_steps,
    split_build,
)
from crashcart.drill.hostphase import make_disk as make_overlay_disk
from crashcart.drill.image import DISK_SIZE, GUEST_STATE, BaseImage, build_base, guest_files
from crashcart.drill.install import (
    GUEST_PYTHON,
    HANG_MODULE,
    POLICY_RC_D,
    WHEELHOUSE,
    FileWriter,
    install_steps,
    pip_requirements,
    queue_text,
    step_files,
    wheelhouse,
)
from crashcart.drill.module import build_hang_module, hang_module_sources
from crashcart.drill.paths import (
    PREPARE_FREE_BYTES,
    cache_dir,
    cache_lock,
    prune_prepared,
    require_free_space,
)
from crashcart.drill.qemu import GuestError
from crashcart.drill.snapshot import (
    VM_OPTIONS,
    Snapshot,
    boot_and_save,
    ensure_snapshot,
    save_snapshot,
    snapshot_key,
)


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
#: 3: the platform's packages and the kdump initrd on the host.
PREPARE_FORMAT = 3


def drill_inputs(
    text: str, *, base_key: str, kernel_release: str, platform: tuple[str, ...] = ()
) -> dict[str, bytes]:
    """Everything that makes the prepared guest what it is, by name: the base image (its key
    covers the package lists, mirror, suite and platform settings) and its kernel, the
    packages the image's platform adds (``platform``), the rendered document (the crashcart
    agent and its pinned AWS CLI are in it), the wheels' Python, the drill's guest files
    (runner, unit), the host-side sandbox, the host-side kdump initrd build (its script, what
    it is told of the guest, and whether it runs between the guest's boots), the hung-CPU
    test module's sources and the preparation format. Nothing else: other edits never re-prepare.
    """
    inputs: dict[str, bytes] = {
        "base": base_key.encode(),
        "kernel": kernel_release.encode(),
        "platform": " ".join(platform).encode(),
        "document": text.encode(),
        "wheels": f"{pip_requirements(text)} for Python {GUEST_PYTHON}".encode(),
        "format": str(PREPARE_FORMAT).encode(),
        "host/sandbox.sh": SANDBOX.read_bytes(),
        **kdumpinitrd.key_inputs(parse_document(text)),
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


#: Seconds a host-side step may take when the document gives no timeoutSeconds.
HOST_STEP_TIMEOUT = 1800.0


def _load(folder: Path) -> dict[str, Any] | None:
    done = folder / "prepared.json"
    if not done.exists():
        return None
    loaded: dict[str, Any] = json.loads(done.read_text())
    return loaded


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
    platform = PLATFORM_PACKAGES[image]
    key = prepared_key(
        drill_inputs(text, base_key=base.key, kernel_release=base.kernel_release, platform=platform)
    )
    with cache_lock(f"prepared-{key}"):
        return _prepare(
            text,
            document,
            base,
            key,
            platform=platform,
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
    platform: tuple[str, ...],
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
        if platform:
            progress(f"    host: the platform's {' '.join(platform)}")
            install_packages(overlay, platform, timeout=HOST_STEP_TIMEOUT)
        results, requeued = run_host_steps(
            overlay, split.host, default_timeout=HOST_STEP_TIMEOUT, progress=progress
        )
        if split.first_boot is not None and not requeued:
            kdumpinitrd.build_on_host(overlay, base.kernel_release, progress=progress)
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
    between: list[str] = []
    between_seconds = [0.0]  # on the host, while the guest is off (part of guest_seconds)

    def kdump_initrd_between_boots(offline: Path) -> None:
        started_between = time.monotonic()
        written = kdumpinitrd.build_between_boots(
            offline, base.kernel_release, work, progress=progress
        )
        between.extend(f"after boot {len(log.reboots)}: {path}" for path in written)
        between_seconds[0] += time.monotonic() - started_between

    saved = boot_and_save(
        disk,
        work,
        folder,
        label="prepare",
        log=log,
        timeout=boot_timeout if boot_timeout is not None else default_boot_timeout(),
        progress=progress,
        between_boots=kdump_initrd_between_boots if kdumpinitrd.guest_reboots(document) else None,
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
        "platform_packages": list(platform),
        "kdump_initrd_built_in_guest": kdumpinitrd.guest_rebuilt(logs),
        "kdump_initrd_between_boots": between,
        "between_boots_seconds": round(between_seconds[0], 1),
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


#: This module's names and, as before the split, those of the modules it was split into.
__all__ = [
    "BOOT_TIMEOUTS",
    "FAMILY",
    "GUEST_PYTHON",
    "HANG_MODULE",
    "HOST_STEP_TIMEOUT",
    "IMAGES",
    "MAX_BOOTS",
    "POLICY_RC_D",
    "PREPARE_FORMAT",
    "RUNNING_INSTANCE_MIN_MEMORY_MIB",
    "VM_OPTIONS",
    "WHEELHOUSE",
    "BootLog",
    "FileWriter",
    "GuestError",
    "PreparedImage",
    "Snapshot",
    "StepFailedError",
    "StepResult",
    "boot_until_ready",
    "default_boot_timeout",
    "drill_inputs",
    "ensure_snapshot",
    "install_steps",
    "pip_requirements",
    "prepare",
    "prepared_key",
    "queue_text",
    "render_document",
    "render_running_instance_document",
    "save_snapshot",
    "snapshot_key",
    "step_files",
    "wheelhouse",
]
