"""The kdump capture initrd, built on the host side of preparation rather than under emulation.

At an image's first boot, kdump-tools (``kdump-config load``) finds no
``/var/lib/kdump/initrd.img-<release>`` and runs its own kernel hook to build one:
``mkinitramfs`` with the image's initramfs-tools settings and ``MODULES=dep``. Under TCG that
took about 150 of the pipeline image's 250 seconds of preparation, and it needs no running
kernel, only two answers about the running system. So, when the guest's first boot is the
document's ``Reboot`` (every build step before it ran on the host), the host runs the same
hook in the image, for the same kernel, chrooted and sandboxed like the host steps
(``host/kdump-initrd.sh``), and records ``/etc/kdump/sysctl.conf`` as ``kdump-config`` does;
the guest's kdump-tools then finds the initrd and only loads it.

The two answers, which the chroot cannot read from a running system, are given for this one
build (and nothing of them stays in the image): the modules ``MODULES=dep`` selects in the
drill's guest (:data:`GUEST_DEP_MODULES`: its root disk and buses, its keyboard) and the root
file system's type for the fsck hook (:data:`GUEST_ROOT_FSTYPE`); ``lsmod`` reports no module
loaded (the guest has no SCSI device handler). The file list of an initrd built this way
equals that of one the guest built (docs/drill.md).

When the document runs in the guest and reboots there (the running-instance image: its
arming script installs kdump-tools in the guest, then the operator reboots), the guest's disk
is offline between that boot and the next (QEMU exits at the reboot, ``-no-reboot``): the host
then builds the initrd the same way for the disk as the guest left it
(:func:`build_between_boots`: the disk's files copied out with ``debugfs rdump``, the build
chrooted onto them, what it added written back with ``debugfs -w``), and the next boot finds
it. The cache key says so for the documents whose guest reboots (:func:`key_inputs`).

Nothing is weakened in the guest: it still runs ``kdump-config load`` at boot and the
document's validate phase; an absent initrd is built there as before (and recorded:
:func:`guest_rebuilt`), and one that does not work fails every positive scenario, whose
capture kernel boots from it to save the dump.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from crashcart.drill import diskfs
from crashcart.drill.component import ComponentDocument
from crashcart.drill.hostphase import STEPS_DIR, HostStepError, Overlay, run_chrooted, split_build
from crashcart.drill.paths import PACKAGE_DIR

KDUMP_INITRD_SCRIPT = PACKAGE_DIR / "host" / "kdump-initrd.sh"
#: What initramfs-tools' ``MODULES=dep`` selects in the drill's guest (QEMU, a virtio disk
#: holding the root file system, the i8042 keyboard), beyond what its hooks add: read from
#: the capture initrd kdump-tools built in the guest (``lsinitramfs``; their dependencies,
#: virtio, virtio_ring and virtio_pci_{legacy,modern}_dev, follow from modprobe).
GUEST_DEP_MODULES: tuple[str, ...] = (
    "virtio_pci",
    "virtio_mmio",
    "virtio_blk",
    "evdev",
    "serio_raw",
)
#: The VM those modules were read from (``qemu.Vm.command``): its machine and its root disk's
#: interface. A VM with another bus needs other modules: read them again from an initrd the
#: guest built (tests/unit/test_drill_vm_shape.py fails until this shape and the VM agree).
GUEST_VM_SHAPE = {"machine": "q35", "disk interface": "virtio"}
#: The guest's root file system (image.make_disk: ``mkfs.ext4``).
GUEST_ROOT_FSTYPE = "ext4"
#: What kdump-tools prints when it builds the initrd (in the guest's console log).
GENERATING = "kdump-tools: Generating /var/lib/kdump/initrd.img-"
#: Seconds the host build may take.
TIMEOUT = 600.0
#: kdump-tools' kernel hook (the build runs only where the image has it) and its folder.
KDUMP_HOOK = "/etc/kernel/postinst.d/kdump-tools"
KDUMP_DIR = "/var/lib/kdump"
#: The key input of documents whose guest reboots during preparation (see the module).
#: Change its text when what the between-boots build writes into the disk changes
#: (:func:`write_back`, ``diskfs.copy_out``): the images built the old way then go.
BETWEEN_BOOTS = b"built on the host while the guest is off, after each reboot in preparation"


def guest_reboots(document: ComponentDocument) -> bool:
    """Whether the guest itself reboots during preparation: a build step that runs in the
    guest is a ``Reboot`` (the first boot standing for the document's first Reboot does not
    count: the host builds before it)."""
    return any(step.action == "Reboot" for step in split_build(document).guest)


def key_inputs(document: ComponentDocument) -> dict[str, bytes]:
    """What the host-built initrd depends on beyond the image: the script and its answers,
    and, for a document whose guest reboots, that it is built between those boots."""
    answers = f"{GUEST_ROOT_FSTYPE} {' '.join(GUEST_DEP_MODULES)}"
    inputs = {
        "host/kdump-initrd.sh": KDUMP_INITRD_SCRIPT.read_bytes(),
        "host/kdump-initrd answers": answers.encode(),
    }
    if guest_reboots(document):
        inputs["host/kdump-initrd between boots"] = BETWEEN_BOOTS
    return inputs


def build_on_host(
    overlay: Overlay, kernel_release: str, *, progress: Callable[[str], None] = print
) -> list[str]:
    """Build the kdump initrd in the image's overlay (nothing when the guest would build none).
    Returns the script's output; raises :class:`HostStepError` when the build fails."""
    script = f"{STEPS_DIR}/.kdump-initrd.sh"
    overlay.write(script, KDUMP_INITRD_SCRIPT.read_bytes(), mode=0o755)
    try:
        status, output = run_chrooted(
            overlay,
            "/bin/bash",
            script,
            kernel_release,
            GUEST_ROOT_FSTYPE,
            *GUEST_DEP_MODULES,
            timeout=TIMEOUT,
        )
    finally:
        overlay.remove_placed(script)
    if status != 0:
        tail = "\n".join(output[-20:])
        raise HostStepError(
            f"building the kdump initrd on the host failed (exit {status}):\n{tail}"
        )
    progress(f"    host: {output[-1] if output else 'kdump initrd: no output'}")
    return output


def guest_rebuilt(logs: Path) -> bool:
    """Whether kdump-tools built its initrd in the guest during preparation after all."""
    return any(
        GENERATING in log.read_text(errors="replace") for log in sorted(logs.glob("*console.log"))
    )


def build_between_boots(
    disk: Path, kernel_release: str, work: Path, *, progress: Callable[[str], None] = print
) -> list[str]:
    """Build the kdump initrd for ``disk`` while its guest is off (after a reboot), as the
    guest's next boot would, and write it into the disk. Returns the guest paths written
    (none when the guest would build nothing, or has the initrd already)."""
    diskfs.recover(disk)
    initrd = f"{KDUMP_DIR}/initrd.img-{kernel_release}"
    if not diskfs.exists(disk, KDUMP_HOOK) or diskfs.exists(disk, initrd):
        return []
    folder = work / "kdump-initrd-offline"
    shutil.rmtree(folder, ignore_errors=True)
    try:
        root = folder / "root"
        diskfs.copy_out(disk, "/", root)  # rdump: the disk's files, owners, rwx modes
        overlay = Overlay.create(root, folder)
        output = build_on_host(overlay, kernel_release, progress=progress)
        if not (overlay.upper / initrd.lstrip("/")).is_file():
            return []  # the script said why (its last line, shown)
        written = write_back(disk, overlay)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    progress(f"    host, between boots: {len(written)} path(s) written ({output[-1]})")
    return written


def write_back(disk: Path, overlay: Overlay) -> list[str]:
    """Write what a build added in ``overlay``'s upper layer into ``disk`` (its lower layer is
    a copy of the disk's files): new directories, files and symbolic links, owned by root, with
    their modes. Anything else there is refused before the disk is touched: a removal's
    whiteout, a directory the build emptied and made again, a file not owned by root, and any
    file or link the disk already has (the build only adds; a path of another type on the
    disk would otherwise have its inode rewritten)."""
    editor = diskfs.DiskEditor(disk)
    written: list[str] = []
    for path in sorted(overlay.upper.rglob("*")):
        relative = path.relative_to(overlay.upper)
        guest = f"/{relative.as_posix()}"
        info = path.lstat()
        if info.st_uid or info.st_gid:
            raise HostStepError(f"{guest}: owned by {info.st_uid}:{info.st_gid}, not root")
        if stat.S_IFMT(info.st_mode) not in (stat.S_IFDIR, stat.S_IFLNK, stat.S_IFREG):
            raise HostStepError(f"{guest}: neither a file, a link nor a directory (a removal?)")
        on_disk = _lstat(overlay.lower / relative)
        if stat.S_ISDIR(info.st_mode) and on_disk is not None:
            if not stat.S_ISDIR(on_disk.st_mode):
                raise HostStepError(f"{guest}: a directory where the disk has another type")
            if _opaque(path):  # a new directory may be opaque too; only a remade one matters
                raise HostStepError(f"{guest}: a directory the build emptied and made again")
            continue  # the disk's own directory, its content changed: the entries follow
        if on_disk is not None:
            raise HostStepError(f"{guest}: the disk has it already; the build only adds files")
        if stat.S_ISDIR(info.st_mode):
            editor.mkdir(guest, mode=info.st_mode & 0o7777)
        elif stat.S_ISLNK(info.st_mode):
            editor.symlink(guest, os.readlink(path))
        else:
            editor.write(guest, path.read_bytes(), mode=info.st_mode & 0o7777)
        written.append(guest)
    editor.apply()
    return written


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except FileNotFoundError:
        return None


def _opaque(directory: Path) -> bool:
    try:
        return os.getxattr(directory, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False
