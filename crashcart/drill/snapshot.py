"""The prepared image's saved guest: booted, validated and waiting at the runner's ``await``.

Preparation saves the guest, RAM and devices and a copy of its disk, to
``snapshot-<vm key>/`` next to the prepared disk; positive scenarios restore it instead of
booting (:mod:`crashcart.drill.run`). The VM key (:func:`snapshot_key`) is QEMU's version and
the VM's shape: a saved guest restores only into the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crashcart.drill import diskfs
from crashcart.drill.boot import BootLog, boot_until_ready, default_boot_timeout
from crashcart.drill.image import GUEST_STATE, copy_disk
from crashcart.drill.install import queue_text
from crashcart.drill.qemu import GUEST_CPU_MODEL, GUEST_CPUS, GUEST_MEMORY_MIB, Vm, qemu_version

if TYPE_CHECKING:
    from crashcart.drill.prepare import PreparedImage


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


#: The guest every drill VM is (a saved guest restores only into the same devices and RAM).
VM_OPTIONS: dict[str, Any] = {"memory_mib": GUEST_MEMORY_MIB, "cpus": GUEST_CPUS}


def snapshot_key() -> str:
    """QEMU's version and the VM's shape: a saved guest restores into the same, nothing else."""
    accel = os.environ.get("CRASHCART_DRILL_ACCEL", "tcg")
    spec = json.dumps(
        {"qemu": qemu_version(), "accel": accel, "cpu_model": GUEST_CPU_MODEL, **VM_OPTIONS},
        sort_keys=True,
    )
    return hashlib.sha256(spec.encode()).hexdigest()[:12]


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


def boot_and_save(
    disk: Path,
    work: Path,
    folder: Path,
    *,
    label: str,
    log: BootLog,
    timeout: float,
    progress: Callable[[str], None],
    between_boots: Callable[[Path], None] | None = None,
) -> Snapshot:
    """Boot ``disk`` through its queue, save the validated guest, stop QEMU, make the disk
    consistent again (it is then the image scenarios boot cold). ``between_boots``: see
    :func:`crashcart.drill.boot.boot_until_ready`."""
    boot_started = time.monotonic()
    vm = boot_until_ready(
        disk,
        work,
        label=label,
        timeout=timeout,
        log=log,
        vm_options=VM_OPTIONS,
        progress=progress,
        between_boots=between_boots,
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
    snapshot = boot_and_save(
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
