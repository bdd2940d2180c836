"""A stand-in instance for running the arming script for real.

A fake root directory (``/etc``, ``/boot``, ``/proc``, ``/sys``, ``/lib/modules``, ``/var``)
holds the state an instance would have; the host's ``/usr`` is bind-mounted read-only for
bash and coreutils; ``/stubs`` comes first on ``PATH`` with stand-ins for the commands that
would change a real machine (apt-get, dpkg-query, dnf, rpm, grubby, update-grub, systemctl,
sysctl, uname, curl for the instance metadata, python3 for the agent's venv). The script
runs under ``chroot`` inside a private mount namespace (``unshare -m``; ``-r`` as well when
not root), started by ``/bin/sh`` as Run Command may start it. :meth:`Sandbox.reboot` plays
the boot: the grub configuration's ``crashkernel=`` lands in ``/proc/cmdline``, the sysctl
files are applied, and an enabled kdump service loads the capture kernel.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.tools import on_ci

RELEASE = "6.1.0-28-cloud-amd64"

#: The stand-in commands, one bash file each.
STUBS_DIR = Path(__file__).resolve().parent / "arming_stubs"

_OS_RELEASE = {
    "debian-12": 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
    "amazon-linux-2023": 'ID="amzn"\nVERSION_ID="2023"\nPRETTY_NAME="Amazon Linux 2023"\n',
    "centos-9": 'ID="centos"\nVERSION_ID="9"\n',
}

_SETUP = """set -e
root=$1
mount --bind /usr "$root/usr"
if [ "$2" = 1 ]; then mount -o remount,bind,ro "$root/usr"; fi
mount --bind "$root/usr-local" "$root/usr/local"
mount --bind /dev/null "$root/dev/null"
exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \\
  PATH=/stubs:/usr/local/bin:/usr/bin:/usr/sbin /bin/sh /arm.sh
"""


@dataclass(frozen=True)
class Result:
    """One run of the script."""

    status: int
    output: str
    calls: list[str]

    def called(self, prefix: str) -> bool:
        return any(call.startswith(prefix) for call in self.calls)


def _namespace_command() -> list[str]:
    unshare = shutil.which("unshare")
    chroot = shutil.which("chroot")
    if unshare is None or chroot is None:
        return []
    return [unshare, "-m"] if os.geteuid() == 0 else [unshare, "-r", "-m"]


def require_sandbox() -> list[str]:
    """The ``unshare`` command line, or a skip (a failure under CI) with the reason."""
    command = _namespace_command()
    probe = (
        subprocess.run([*command, "true"], capture_output=True, check=False) if command else None
    )
    if probe is not None and probe.returncode == 0:
        return command
    reason = (
        "the arming sandbox needs a private mount namespace (unshare -m, as root or with "
        "user namespaces) and chroot"
    )
    if on_ci():
        pytest.fail(f"{reason}; CI runs as root, where it works")
    pytest.skip(reason)


class Sandbox:
    """A fake instance of ``family`` under ``path``."""

    def __init__(self, path: Path, script: str, namespace: list[str], *, family: str) -> None:
        self.root = path
        self.script = script
        self.namespace = namespace
        self.family = family
        for folder in (
            "usr",
            "usr-local",
            "dev",
            "etc/default/grub.d",
            "etc/sysctl.d",
            "boot/grub",
            "proc/sys/kernel/random",
            "sys/kernel",
            f"lib/modules/{RELEASE}",
            "var/lib",
            "tmp",
            "root",
            "run",
            "opt",
            "stubs",
            "stub-state/dpkg",
            "stub-state/rpm",
            "stub-state/tags",
            "stub-state/systemd/enabled",
            "stub-state/systemd/active",
            "stub-state/systemd/masked",
        ):
            (path / folder).mkdir(parents=True, exist_ok=True)
        (path / "tmp").chmod(0o1777)
        (path / "dev/null").touch()
        for link, target in (
            ("bin", "usr/bin"),
            ("sbin", "usr/sbin"),
            ("lib64", "usr/lib64"),
            ("lib/x86_64-linux-gnu", "../usr/lib/x86_64-linux-gnu"),
        ):
            (path / link).symlink_to(target)
        # Debian's /usr/bin/awk and friends are links through /etc/alternatives.
        alternatives = Path("/etc/alternatives")
        if alternatives.is_dir():
            (path / "etc/alternatives").mkdir(parents=True, exist_ok=True)
            for entry in alternatives.iterdir():
                if entry.is_symlink():
                    (path / "etc/alternatives" / entry.name).symlink_to(os.readlink(entry))
        for source in sorted(STUBS_DIR.iterdir()):
            stub = path / "stubs" / source.name
            stub.write_bytes(source.read_bytes())
            stub.chmod(0o755)
        self.write("etc/os-release", _OS_RELEASE[family])
        self.write("etc/default/grub", 'GRUB_CMDLINE_LINUX_DEFAULT="console=ttyS0"\n')
        self.write("stub-state/release", RELEASE + "\n")
        self.write("stub-state/machine", "x86_64\n")
        self.write("stub-state/grubby-args", "root=UUID=abc ro console=ttyS0 crashkernel=auto\n")
        self.set_memory_mib(4096)
        self.write("proc/cmdline", f"BOOT_IMAGE=/boot/vmlinuz-{RELEASE} root=/dev/xvda1 ro\n")
        self.write("proc/sys/kernel/random/boot_id", str(uuid.uuid4()) + "\n")
        self.write("sys/kernel/kexec_crash_loaded", "0\n")
        self.write("sys/kernel/kexec_crash_size", "0\n")
        for name, value in (
            ("kexec_load_disabled", 0),
            ("unknown_nmi_panic", 0),
            ("panic", 0),
            ("panic_on_oops", 0),
            ("softlockup_panic", 0),
            ("hung_task_panic", 0),
        ):
            self.write(f"proc/sys/kernel/{name}", f"{value}\n")
        if family == "amazon-linux-2023":
            (path / "stub-state/rpm/python3").touch()

    def write(self, relative: str, text: str) -> None:
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")

    def read(self, relative: str) -> str:
        return (self.root / relative).read_text(encoding="utf-8")

    def set_memory_mib(self, mib: int) -> None:
        self.write("proc/meminfo", f"MemTotal:       {mib * 1024} kB\nMemFree: 1000 kB\n")

    def run(self, *, reboot_if_pending: str = "no") -> Result:
        self.write("arm.sh", self.script.replace("{{ RebootIfPending }}", reboot_if_pending))
        log = self.root / "stub-state/calls.log"
        log.write_text("", encoding="utf-8")
        result = subprocess.run(
            [
                *self.namespace,
                "/bin/sh",
                "-c",
                _SETUP,
                "sh",
                str(self.root),
                "1" if os.geteuid() == 0 else "0",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        calls = log.read_text(encoding="utf-8").splitlines()
        return Result(result.returncode, result.stdout + result.stderr, calls)

    def reboot(self) -> None:
        """Boot the configuration the script left: cmdline, sysctls, enabled services."""
        if self.family == "amazon-linux-2023":
            args = self.read("stub-state/grubby-args")
        else:
            grub = self.root / "boot/grub/grub.cfg"
            args = grub.read_text(encoding="utf-8") if grub.exists() else ""
        words = [w for w in args.split() if w.startswith("crashkernel=")]
        crashkernel = f" {words[-1]}" if words else ""
        self.write(
            "proc/cmdline",
            f"BOOT_IMAGE=/boot/vmlinuz-{RELEASE} root=/dev/xvda1 ro{crashkernel}\n",
        )
        self.write("proc/sys/kernel/random/boot_id", str(uuid.uuid4()) + "\n")
        sysctl = self.root / "etc/sysctl.d/zz-crashcart-kdump.conf"
        if sysctl.exists():
            for line in sysctl.read_text(encoding="utf-8").splitlines():
                match = re.match(r"^kernel\.(\w+) = (\S+)$", line)
                if match:
                    self.write(f"proc/sys/kernel/{match.group(1)}", match.group(2) + "\n")
        active = self.root / "stub-state/systemd/active"
        for unit in active.iterdir():
            unit.unlink()
        loaded = "0"
        for unit in (self.root / "stub-state/systemd/enabled").iterdir():
            if unit.name in ("kdump.service", "kdump-tools.service"):
                if not crashkernel:
                    continue
                loaded = "1"
            (active / unit.name).touch()
        self.write("sys/kernel/kexec_crash_loaded", loaded + "\n")
        self.write("sys/kernel/kexec_crash_size", ("201326592" if loaded == "1" else "0") + "\n")

    def snapshot(self) -> dict[str, str]:
        """Every file's content and mode (not the call log, the script, the stubs)."""
        skip = {"usr", "dev", "stubs", "tmp", "arm.sh", "stub-state/calls.log"}
        state: dict[str, str] = {}
        for path in sorted(self.root.rglob("*")):
            relative = path.relative_to(self.root).as_posix()
            if relative.split("/")[0] in skip or relative in skip:
                continue
            if path.is_symlink():
                state[relative] = f"-> {os.readlink(path)}"
            elif path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                state[relative] = f"{oct(path.stat().st_mode & 0o7777)} {digest}"
            elif path.is_dir():
                state[relative] = f"dir {oct(path.stat().st_mode & 0o7777)}"
        return state
