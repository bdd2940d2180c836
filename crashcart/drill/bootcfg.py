"""The guest's kernel, initrd and command line, read from its disk.

The drill boots the kernel directly (``-kernel``/``-initrd``), so it must compute the command
line the guest's boot loader would use. It does so the way ``grub-mkconfig`` does: source
``/etc/default/grub`` then every ``/etc/default/grub.d/*.cfg`` in order with ``/bin/sh`` and
take ``GRUB_CMDLINE_LINUX`` + ``GRUB_CMDLINE_LINUX_DEFAULT``. The crashkernel reservation
therefore comes from what the component wrote (``zz-crashcart-kdump.cfg``), never from the
drill. The drill adds only the platform words a boot loader adds (``root=``, ``rw``) and its
own markers, listed in :data:`DRILL_WORDS`.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from crashcart.drill import diskfs

#: Words the drill adds: the root device (a boot loader's job) and, as a backstop, a panic
#: timeout for the time before sysctls apply (the component's kernel.panic takes over).
ROOT_WORDS = ("root=/dev/vda", "rw")
DRILL_WORDS = ("panic=10",)

_SOURCE_SCRIPT = r"""
set -e
GRUB_CMDLINE_LINUX=""
GRUB_CMDLINE_LINUX_DEFAULT=""
if [ -f ./grub ]; then . ./grub; fi
for x in ./grub.d/*.cfg; do
  if [ -e "$x" ]; then . "$x"; fi
done
printf '%s\n%s\n' "$GRUB_CMDLINE_LINUX" "$GRUB_CMDLINE_LINUX_DEFAULT"
"""


class BootConfigError(RuntimeError):
    """The guest's boot configuration cannot be turned into a kernel command line."""


@dataclass(frozen=True)
class BootConfig:
    kernel: Path
    initrd: Path
    kernel_release: str
    #: GRUB_CMDLINE_LINUX + GRUB_CMDLINE_LINUX_DEFAULT as the guest's files define them.
    configured: str
    #: The full command line QEMU passes: root words + configured + drill words.
    cmdline: str
    #: The boot-configuration files read (guest path -> content), for the report.
    files: dict[str, str]

    @property
    def crashkernel(self) -> str | None:
        for word in self.configured.split():
            if word.startswith("crashkernel="):
                return word.removeprefix("crashkernel=")
        return None


def read_boot_config(
    image: Path, out_dir: Path, *, extra_words: tuple[str, ...] = ()
) -> BootConfig:
    """Extract kernel + initrd into ``out_dir`` and compute the command line."""
    out_dir.mkdir(parents=True, exist_ok=True)
    boot = diskfs.list_dir(image, "/boot")
    kernels = sorted(name for name in boot if name.startswith("vmlinuz-"))
    if not kernels:
        raise BootConfigError(f"no /boot/vmlinuz-* in {image}")
    release = kernels[-1].removeprefix("vmlinuz-")
    if f"initrd.img-{release}" not in boot:
        raise BootConfigError(f"no /boot/initrd.img-{release} in {image}")
    kernel = out_dir / f"vmlinuz-{release}"
    initrd = out_dir / f"initrd.img-{release}"
    for name, target in ((f"vmlinuz-{release}", kernel), (f"initrd.img-{release}", initrd)):
        data = diskfs.read_file(image, f"/boot/{name}")
        if not data:
            raise BootConfigError(f"cannot read /boot/{name} from {image}")
        target.write_bytes(data)
    files: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "grub.d").mkdir()
        grub = diskfs.read_file(image, "/etc/default/grub")
        if grub is not None:
            (root / "grub").write_bytes(grub)
            files["/etc/default/grub"] = grub.decode(errors="replace")
        for name in sorted(diskfs.list_dir(image, "/etc/default/grub.d")):
            if not name.endswith(".cfg"):
                continue
            data = diskfs.read_file(image, f"/etc/default/grub.d/{name}")
            if data is not None:
                (root / "grub.d" / name).write_bytes(data)
                files[f"/etc/default/grub.d/{name}"] = data.decode(errors="replace")
        result = subprocess.run(
            ["/bin/sh", "-c", _SOURCE_SCRIPT],
            cwd=root,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    if result.returncode != 0:
        raise BootConfigError(
            f"sourcing the guest's /etc/default/grub{{,.d/*.cfg}} failed: {result.stderr.strip()}"
        )
    linux, _, default = result.stdout.partition("\n")
    configured = " ".join(f"{linux} {default}".split())
    cmdline = " ".join((*ROOT_WORDS, configured, *DRILL_WORDS, *extra_words)).strip()
    return BootConfig(kernel, initrd, release, configured, cmdline, files)
