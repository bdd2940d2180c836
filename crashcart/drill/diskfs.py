"""Read and change files in a guest's ext4 disk image with ``debugfs`` (no loop mounts, no root
privileges on the image beyond file access, nothing mounted on the host)."""

from __future__ import annotations

import shlex
import subprocess
import tempfile
from pathlib import Path


class DiskError(RuntimeError):
    """debugfs could not do what was asked."""


def _debugfs(image: Path, commands: list[str], *, write: bool) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".debugfs", delete=False) as script:
        script.write("\n".join(commands) + "\n")
        script_path = script.name
    try:
        args = ["debugfs", *(["-w"] if write else []), "-f", script_path, str(image)]
        result = subprocess.run(args, capture_output=True, text=True, check=False)
    finally:
        Path(script_path).unlink(missing_ok=True)
    if result.returncode != 0:
        raise DiskError(f"debugfs failed on {image}: {result.stderr.strip()}")
    return result.stdout + result.stderr


def _q(path: str) -> str:
    if any(ch in path for ch in "\n\"'"):
        raise DiskError(f"unsupported character in guest path {path!r}")
    return f'"{path}"' if " " in path else path


def read_file(image: Path, guest_path: str) -> bytes | None:
    """The content of ``guest_path`` (None when it does not exist)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        _debugfs(image, [f"dump -p {_q(guest_path)} {out}"], write=False)
        return out.read_bytes() if out.exists() else None


def list_dir(image: Path, guest_path: str) -> list[str]:
    """Names in a guest directory (without ``.`` and ``..``); [] when it does not exist."""
    output = _debugfs(image, [f"ls -p {_q(guest_path)}"], write=False)
    names: list[str] = []
    for line in output.splitlines():
        # ls -p: /inode/mode/uid/gid/name/size/
        parts = line.strip().split("/")
        if len(parts) >= 7 and parts[5] not in ("", ".", ".."):
            names.append(parts[5])
    return names


def copy_out(image: Path, guest_dir: str, destination: Path) -> Path | None:
    """Copy a guest directory tree to ``destination/<basename>``; None if it does not exist."""
    destination.mkdir(parents=True, exist_ok=True)
    output = _debugfs(image, [f"rdump {_q(guest_dir)} {destination}"], write=False)
    # debugfs exits 0 when rdump fails part way (a full disk, a name taken): a copy with
    # files missing or cut short must not pass for the guest's files
    failures = [line for line in output.splitlines() if line.startswith("rdump:")]
    if failures:
        raise DiskError(f"copying {guest_dir} out of {image} failed: {'; '.join(failures[:5])}")
    target = destination / Path(guest_dir).name
    return target if target.exists() else None


def recover(image: Path) -> None:
    """Make the file system consistent after QEMU stopped (journal replayed, bitmaps fixed).

    A guest stopped without unmounting (QMP quit, kdump's ``reboot -f``) leaves a journal to
    replay: debugfs neither replays it nor opens an image with stale bitmaps, and the guest's
    kernel would replay it over anything debugfs wrote. ``e2fsck -fy`` first, always.
    """
    result = subprocess.run(
        ["e2fsck", "-f", "-y", str(image)], capture_output=True, text=True, check=False
    )
    if result.returncode >= 4:
        raise DiskError(f"e2fsck {image} failed ({result.returncode}): {result.stdout[-500:]}")


class DiskEditor:
    """Batch edits of a guest image; ``apply()`` runs them in one debugfs session.

    Files written get mode ``mode`` and owner root; parent directories must exist or be made
    with :meth:`mkdir` first (in order).
    """

    def __init__(self, image: Path) -> None:
        self.image = image
        self._commands: list[str] = []
        self._tmp = tempfile.TemporaryDirectory()
        self._count = 0
        self._expect: list[str] = []

    def mkdir(self, guest_dir: str, mode: int = 0o755) -> DiskEditor:
        self._commands.append(f"mkdir {_q(guest_dir)}")
        self._expect.append(guest_dir)
        self._commands.append(f"sif {_q(guest_dir)} mode 0{0o040000 | mode:o}")
        return self

    def write(self, guest_path: str, content: bytes | str, mode: int = 0o644) -> DiskEditor:
        data = content.encode() if isinstance(content, str) else content
        self._count += 1
        local = Path(self._tmp.name) / f"f{self._count}"
        local.write_bytes(data)
        self._commands.append(f"rm {_q(guest_path)}")
        self._commands.append(f"write {local} {_q(guest_path)}")
        self._expect.append(guest_path)
        self._commands.append(f"sif {_q(guest_path)} mode 0{0o100000 | mode:o}")
        self._commands.append(f"sif {_q(guest_path)} uid 0")
        self._commands.append(f"sif {_q(guest_path)} gid 0")
        return self

    def symlink(self, guest_path: str, target: str) -> DiskEditor:
        self._commands.append(f"rm {_q(guest_path)}")
        self._commands.append(f"symlink {_q(guest_path)} {_q(target)}")
        self._expect.append(guest_path)
        return self

    def remove(self, guest_path: str) -> DiskEditor:
        """Remove a file or symlink (frees its inode)."""
        self._commands.append(f"rm {_q(guest_path)}")
        return self

    def link(self, existing: str, new: str) -> DiskEditor:
        """A second directory entry for ``existing`` (used with :meth:`unlink` as a rename)."""
        self._commands.append(f"ln {_q(existing)} {_q(new)}")
        return self

    def unlink(self, guest_path: str) -> DiskEditor:
        """Remove a directory entry without touching its inode (the other half of a rename)."""
        self._commands.append(f"unlink {_q(guest_path)}")
        return self

    def apply(self) -> str:
        """Run the edits, then check that every file / directory / link written exists
        (debugfs reports a failed command on stderr but still exits 0)."""
        try:
            if not self._commands:
                return ""
            output = _debugfs(self.image, self._commands, write=True)
            expected = list(dict.fromkeys(self._expect))
            if expected:
                check = _debugfs(self.image, [f"stat {_q(path)}" for path in expected], write=False)
                missing = [
                    path
                    for path, block in zip(
                        expected, check.split("debugfs: stat ")[1:], strict=False
                    )
                    if "Inode:" not in block
                ]
                found = check.count("Inode:")
                if found < len(expected) or missing:
                    raise DiskError(
                        f"debugfs edit of {self.image} failed: {len(expected) - found} of "
                        f"{len(expected)} paths missing afterwards {missing}: {output[-500:]}"
                    )
            return output
        finally:
            self._tmp.cleanup()
            self._commands = []
            self._expect = []


def exists(image: Path, guest_path: str) -> bool:
    output = _debugfs(image, [f"stat {_q(guest_path)}"], write=False)
    return "File not found" not in output and "Inode:" in output


def describe(command: list[str]) -> str:
    return " ".join(shlex.quote(part) for part in command)
