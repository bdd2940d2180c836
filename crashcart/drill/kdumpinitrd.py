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

Nothing is weakened in the guest: it still runs ``kdump-config load`` at boot and the
document's validate phase; an absent initrd is built there as before (and recorded:
:func:`guest_rebuilt`), and one that does not work fails every positive scenario, whose
capture kernel boots from it to save the dump.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from crashcart.drill.hostphase import STEPS_DIR, HostStepError, Overlay, run_chrooted
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


def key_inputs() -> dict[str, bytes]:
    """What the host-built initrd depends on beyond the image: the script and its answers."""
    answers = f"{GUEST_ROOT_FSTYPE} {' '.join(GUEST_DEP_MODULES)}"
    return {
        "host/kdump-initrd.sh": KDUMP_INITRD_SCRIPT.read_bytes(),
        "host/kdump-initrd answers": answers.encode(),
    }


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
