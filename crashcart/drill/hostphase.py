"""The host side of image preparation: the build steps that need no running kernel.

Image Builder runs a component's build phase on a running instance, and so did the drill,
inside the emulated guest: under TCG that took minutes, most of it package installs and
byte-compiling Python, none of which needs the guest's kernel. So the drill splits the
*same* rendered document (nothing is rewritten or recognised by name):

- **On the host**: the build-phase ``ExecuteBash`` steps before the phase's first ``Reboot``
  step, in order, each one that is *host-safe* (:func:`kernel_needs` finds nothing). They run
  chrooted into the image's root file system (an overlay on the cached base), sandboxed by
  ``host/sandbox.sh``: their own mount, PID, network, UTS and IPC namespaces (no network, no
  host process), a private ``/proc`` with ``/proc/sys`` read-only, no ``/sys``, a minimal
  ``/dev``, no capability to load a kernel or a module, reboot, set the clock or administer
  the system, and ``policy-rc.d`` refusing to start services (as in any Debian chroot). The
  packages come from the image's own local repository and wheelhouse, as in the guest.
- **That Reboot** is the image's first boot under QEMU.
- **In the guest**: everything else, in document order: a build step that is not host-safe
  and every step after it, a step that exits 194 (reboot, then the same step again: the first
  boot is that reboot) and every step after it, the build steps after the first Reboot, and
  the whole validate phase (it must see the running kernel). kdump-tools' capture initrd,
  which it would build at that first boot, is built on the host beforehand by its own hook
  (:mod:`crashcart.drill.kdumpinitrd`); the first boot loads it.

What differs from running those steps on a booted instance: ``uname`` and ``/proc`` describe
the host's kernel (a step that asks is not host-safe, so it runs in the guest); no service is
started (the next boot starts what was enabled, as the Reboot would have); and the main
initramfs and kdump's capture initrd are generated on the host, with the image's own
initramfs-tools settings (for the capture initrd, what ``MODULES=dep`` finds in the guest is
given: see :mod:`crashcart.drill.kdumpinitrd`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from crashcart.drill.component import REBOOT_AND_RESUME_EXIT, ComponentDocument, Step
from crashcart.drill.paths import PACKAGE_DIR

SANDBOX = PACKAGE_DIR / "host" / "sandbox.sh"
#: Where a step's script sits in the image (the guest runner's own folder).
STEPS_DIR = "/usr/local/lib/crashcart-drill/steps"
#: Commands that need (or would act on) a running kernel: a build step that runs one is not
#: host-safe. Matched at a command position, outside comments and here-documents.
KERNEL_COMMANDS = (
    "uname",
    "arch",
    "sysctl",
    "modprobe",
    "insmod",
    "rmmod",
    "depmod",
    "lsmod",
    "kexec",
    "kdump-config",
    "kdumpctl",
    "mount",
    "umount",
    "swapon",
    "swapoff",
    "hostname",
    "hostnamectl",
    "timedatectl",
    "hwclock",
    "reboot",
    "shutdown",
    "poweroff",
    "halt",
    "dmesg",
    "ip",
    "udevadm",
    "grub-install",
)
#: ``systemctl`` verbs that only read or write unit files (what a chroot can do).
OFFLINE_SYSTEMCTL_VERBS = frozenset(
    {
        "enable",
        "disable",
        "reenable",
        "preset",
        "preset-all",
        "mask",
        "unmask",
        "is-enabled",
        "cat",
        "list-unit-files",
        "daemon-reload",
        "set-default",
        "get-default",
        "add-wants",
        "add-requires",
        "revert",
        "link",
    }
)
_COMMAND_POSITION = r"(?:^|[;&|(`!{]|\$\(|\b(?:then|do|else|elif|if|while|until|time)\b)\s*"
_PREFIXES = r"(?:(?:sudo|command|exec|env|nice|timeout\s+\S+|[A-Za-z_][A-Za-z0-9_]*=\S*)\s+)*"
_KERNEL_RE = re.compile(
    _COMMAND_POSITION
    + _PREFIXES
    + r"(?:/usr)?(?:/s?bin/)?("
    + "|".join(re.escape(name) for name in KERNEL_COMMANDS)
    + r")(?![\w./=-])"
)
_SYSTEMCTL_RE = re.compile(
    _COMMAND_POSITION
    + _PREFIXES
    + r"(?:/usr)?(?:/bin/)?systemctl((?:\s+-{1,2}[\w=-]+)*)\s+([\w-]+)"
)
_KERNEL_PATH_RE = re.compile(r"(?<![\w.-])/(?:proc|sys)(?:/|\b)")
_HEREDOC_RE = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")


class HostStepError(RuntimeError):
    """The host side of preparation could not run (the message says what and why)."""


def code_lines(script: str) -> list[str]:
    """The script's lines without comments and without here-document bodies (text a command
    reads, not commands)."""
    lines: list[str] = []
    terminator: str | None = None
    for raw in script.splitlines():
        if terminator is not None:
            if raw.strip() == terminator:
                terminator = None
            continue
        line = raw.split("#", 1)[0] if raw.lstrip().startswith("#") else _strip_comment(raw)
        lines.append(line)
        match = _HEREDOC_RE.search(line)
        if match:
            terminator = match.group(2)
    return lines


def _strip_comment(line: str) -> str:
    """Drop a trailing `` # comment`` (a ``#`` after whitespace, outside quotes)."""
    quote: str | None = None
    for position, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (position == 0 or line[position - 1].isspace()):
            return line[:position]
    return line


def kernel_needs(script: str) -> list[str]:
    """What in ``script`` needs a running kernel (empty: the step is host-safe)."""
    found: list[str] = []
    for line in code_lines(script):
        found.extend(match.group(1) for match in _KERNEL_RE.finditer(line))
        for match in _SYSTEMCTL_RE.finditer(line):
            if match.group(2) not in OFFLINE_SYSTEMCTL_VERBS:
                found.append(f"systemctl {match.group(2)}")
            elif re.search(r"\s--now\b", line[match.start() :]):
                found.append(f"systemctl {match.group(2)} --now")
        found.extend(f"reads {match.group(0)}" for match in _KERNEL_PATH_RE.finditer(line))
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class Split:
    """Where each build step of a document runs."""

    #: ExecuteBash steps for the host, in document order.
    host: tuple[Step, ...]
    #: The Reboot step that the image's first boot stands for (None: the guest runs them all).
    first_boot: Step | None
    #: Build steps left for the guest, in document order (the validate phase follows them).
    guest: tuple[Step, ...]
    #: Step key -> why it runs in the guest rather than on the host.
    reasons: dict[str, str] = field(default_factory=dict)


def split_build(document: ComponentDocument) -> Split:
    """The document's build phase, split between the host and the guest (see the module)."""
    build = document.steps("build")
    reboot_at = next((i for i, step in enumerate(build) if step.action == "Reboot"), None)
    if reboot_at is None:
        return Split(
            (),
            None,
            tuple(build),
            {build[0].key: "the build phase has no Reboot step"} if build else {},
        )
    host: list[Step] = []
    for position, step in enumerate(build[:reboot_at]):
        needs = kernel_needs(step.script)
        if needs:
            reason = f"needs a running kernel ({', '.join(needs)})"
            return Split(tuple(host), None, tuple(build[position:]), {step.key: reason})
        host.append(step)
    return Split(tuple(host), build[reboot_at], tuple(build[reboot_at + 1 :]), {})


@dataclass(frozen=True)
class Overlay:
    """The image's root file system during preparation: ``lower`` (the cached base, never
    written) under ``upper`` (this preparation's changes), seen at ``merged``."""

    lower: Path
    upper: Path
    work: Path
    merged: Path

    @classmethod
    def create(cls, lower: Path, folder: Path) -> Overlay:
        overlay = cls(lower, folder / "upper", folder / "overlay-work", folder / "merged")
        for path in (overlay.upper, overlay.work, overlay.merged):
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
        return overlay

    def command(self, mode: str, *command: str) -> list[str]:
        """The argv that runs ``command`` in a fresh sandbox (``mode``: chroot or view)."""
        return [
            "unshare",
            "--mount",
            "--pid",
            "--fork",
            "--net",
            "--uts",
            "--ipc",
            "--kill-child",
            "bash",
            str(SANDBOX),
            mode,
            str(self.lower),
            str(self.upper),
            str(self.work),
            str(self.merged),
            *command,
        ]

    # -- files placed before anything runs (written into the upper layer) ----------------

    def _parents(self, guest_path: str) -> Path:
        """The upper-layer path of ``guest_path``, its missing parents made with the owner
        and mode they have in the base (so the merged view keeps them)."""
        relative = Path(guest_path.lstrip("/"))
        current_upper, current_lower = self.upper, self.lower
        for part in relative.parts[:-1]:
            current_upper, current_lower = current_upper / part, current_lower / part
            if not current_upper.exists():
                current_upper.mkdir()
                if current_lower.is_dir():
                    info = current_lower.stat()
                    os.chown(current_upper, info.st_uid, info.st_gid)
                    current_upper.chmod(info.st_mode & 0o7777)
                else:
                    current_upper.chmod(0o755)
        return self.upper / relative

    def write(self, guest_path: str, content: bytes | str, mode: int = 0o644) -> Overlay:
        target = self._parents(guest_path)
        target.unlink(missing_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
        os.chown(target, 0, 0)
        target.chmod(mode)
        return self

    def mkdir(self, guest_path: str, mode: int = 0o755) -> Overlay:
        target = self._parents(guest_path + "/.")
        target.mkdir(exist_ok=True)
        target.chmod(mode)
        return self

    def symlink(self, guest_path: str, target: str) -> Overlay:
        path = self._parents(guest_path)
        path.unlink(missing_ok=True)
        path.symlink_to(target)
        return self

    def remove_placed(self, guest_path: str) -> None:
        """Remove a file this preparation placed in the upper layer (e.g. policy-rc.d)."""
        (self.upper / guest_path.lstrip("/")).unlink(missing_ok=True)


@dataclass(frozen=True)
class HostStepResult:
    key: str
    status: int
    output: list[str]
    seconds: float


def run_chrooted(overlay: Overlay, *command: str, timeout: float) -> tuple[int, list[str]]:
    """Run ``command`` chrooted into the image, sandboxed: its exit status (124: timed out)
    and its output lines (stdout and stderr)."""
    try:
        result = subprocess.run(
            overlay.command("chroot", *command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        return 124, (expired.stdout or b"").decode(errors="replace").splitlines()
    return result.returncode, result.stdout.decode(errors="replace").splitlines()


def run_step(overlay: Overlay, step: Step, *, timeout: float) -> HostStepResult:
    """Run one step's script (already placed in the image) chrooted, sandboxed."""
    started = time.monotonic()
    script = f"cd /tmp && exec bash {STEPS_DIR}/{step.key}.sh"
    status, output = run_chrooted(overlay, "/bin/bash", "-c", script, timeout=timeout)
    return HostStepResult(step.key, status, output, time.monotonic() - started)


def run_host_steps(
    overlay: Overlay,
    steps: tuple[Step, ...],
    *,
    default_timeout: float,
    progress: Callable[[str], None] = print,
) -> tuple[list[HostStepResult], tuple[Step, ...]]:
    """Run ``steps`` on the host in order. Returns the results and the steps handed to the
    guest because one asked for a reboot (exit 194: the guest's first boot is that reboot,
    and the same step runs again there). A failing step raises :class:`HostStepError`."""
    results: list[HostStepResult] = []
    for position, step in enumerate(steps):
        timeout = float(step.timeout_seconds) if step.timeout_seconds else default_timeout
        progress(f"    host: step-start {step.key}")
        result = run_step(overlay, step, timeout=timeout)
        results.append(result)
        progress(f"    host: step-end {step.key} {result.status} ({result.seconds:.1f}s)")
        if result.status == REBOOT_AND_RESUME_EXIT:
            return results, steps[position:]
        if result.status != 0:
            tail = "\n".join(result.output[-20:])
            raise HostStepError(
                f"component step {step.key} failed on the host (exit {result.status}"
                f"{', timed out' if result.status == 124 else ''}); last lines:\n{tail}"
            )
    return results, ()


def install_packages(overlay: Overlay, packages: tuple[str, ...], *, timeout: float) -> list[str]:
    """``apt-get install`` of ``packages`` into the image (chrooted, sandboxed, from the image's
    local repository): what the platform's image has before any document runs."""
    if not packages:
        return []
    status, output = run_chrooted(
        overlay,
        "/usr/bin/env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        *packages,
        timeout=timeout,
    )
    if status != 0:
        tail = "\n".join(output[-20:])
        raise HostStepError(f"installing the platform's {packages} failed (exit {status}):\n{tail}")
    return output


def make_disk(overlay: Overlay, image: Path, *, size: str, log: Path) -> None:
    """``mkfs.ext4 -d`` of the merged root file system (no loop mounts)."""
    image.unlink(missing_ok=True)
    command = overlay.command(
        "view", "mkfs.ext4", "-q", "-F", "-L", "crashcart-root", "-d", str(overlay.merged)
    )
    command += [str(image), size]
    with log.open("a") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:])
        raise HostStepError(f"mkfs.ext4 -d of the prepared root file system failed:\n{tail}")


def check_host() -> None:
    """Root and the tools the host side needs."""
    if os.geteuid() != 0:
        raise HostStepError("preparing the drill image needs root (overlay mount, chroot)")
    missing = [
        tool for tool in ("unshare", "setpriv", "chroot", "mkfs.ext4") if not shutil.which(tool)
    ]
    if missing:
        raise HostStepError(f"preparing the drill image needs {missing} (util-linux, e2fsprogs)")
