"""Run the drill guest under QEMU and follow it.

- TCG (``-machine q35,accel=tcg``): the paravirtual /dev/kvm of these machines does not boot a
  stock guest kernel. ``$CRASHCART_DRILL_ACCEL=kvm`` switches to KVM where it works.
- Direct kernel boot (``-kernel`` / ``-initrd`` extracted from the guest's /boot) with the
  command line computed from the guest's boot configuration (:mod:`crashcart.drill.bootcfg`).
- ``-no-reboot``: every guest reboot (a Reboot step, kdump-tools rebooting after it saved the
  dump, a panic with no capture kernel after ``kernel.panic`` seconds) ends the QEMU process;
  the drill decides what happened and boots the disk again when it should.
- Serial port 1 -> ``console.log`` (kernel and systemd console); serial port 2 ->
  ``channel.log``, the drill channel on which the guest runner reports
  (``CRASHCART-DRILL <event> ...`` lines, see ``guest/runner.sh``); serial port 3 <- a unix
  socket (``cmd.sock``) on which the drill sends a restored guest its command.
- QMP on a unix socket: ``inject-nmi``; ``stop`` + ``migrate`` to save a booted guest to a
  file (:meth:`Vm.save_state`), which ``-incoming`` restores in a new QEMU process
  (:attr:`Vm.incoming`): the device set is the same in every drill VM, so any of them can be
  saved and restored.
- Networking: user-mode (slirp) with ``restrict=on``: the guest reaches nothing, except
  the forwards given (``guestfwd``), each to a listener on the host's 127.0.0.1 (the local
  moto server).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from crashcart.drill.image import copy_disk
from crashcart.drill.qmp import QmpClient, QmpError

CHANNEL_PREFIX = "CRASHCART-DRILL "
#: The drill's guest: every drill VM has this RAM and these vCPUs (a saved guest restores only
#: into the same shape).
GUEST_MEMORY_MIB = 1024
GUEST_CPUS = 2
#: x86-64's baseline plus RDRAND (as on EC2), not ``max``: TCG's AVX2 is slow (docs/drill.md).
GUEST_CPU_MODEL = "qemu64,+rdrand"
#: How long saving a guest's state (about 1 GiB of RAM, mostly zero pages) may take.
SAVE_TIMEOUT = 300.0
#: Lines of the console shown when a guest goes silent.
CONSOLE_TAIL_LINES = 15
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def silence_limit() -> float:
    """Seconds a guest may write nothing at all (neither console nor drill channel) while the
    drill waits for it: ``$CRASHCART_DRILL_SILENCE_LIMIT``, default 300. A booting guest
    writes its console at every unit it starts and its runner's heartbeat every second once
    up. The longest silence of a healthy boot: 93 s, the kdump-tools unit building its
    capture initrd at the image's first boot, on the shared 2-core machine at load 10-15
    (2026-12-05); 300 s is over 3x that. A guest silent for longer is stuck (or paused by
    QEMU: a full host disk), and waiting out the whole boot timeout would only hide why."""
    return float(os.environ.get("CRASHCART_DRILL_SILENCE_LIMIT", "300"))


class GuestError(RuntimeError):
    """The guest did not do what the drill waited for (the message says what and why)."""


@dataclass(frozen=True)
class Forward:
    """Guest ``address:port`` (TCP) -> the host's ``127.0.0.1:host_port``."""

    guest_address: str
    guest_port: int
    host_port: int


@dataclass(frozen=True)
class Event:
    name: str
    words: tuple[str, ...]
    at: float  # time.monotonic() when the drill saw it
    line: str


@dataclass
class Vm:
    """One QEMU process booting one disk."""

    disk: Path
    kernel: Path
    initrd: Path
    cmdline: str
    workdir: Path
    memory_mib: int = GUEST_MEMORY_MIB
    cpus: int = GUEST_CPUS
    forwards: tuple[Forward, ...] = ()
    label: str = "boot"
    #: A state file written by :meth:`save_state`: QEMU restores it instead of booting.
    incoming: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    _offset: int = 0
    _partial: str = ""
    events: list[Event] = field(default_factory=list)
    _pending: list[Event] = field(default_factory=list)
    _command_connection: socket.socket | None = None
    #: The logs' sizes at the last look, and when the guest last wrote to either of them.
    _output_sizes: tuple[int, int] = (-1, -1)
    _last_output: float = 0.0

    @property
    def console_log(self) -> Path:
        return self.workdir / f"{self.label}.console.log"

    @property
    def channel_log(self) -> Path:
        return self.workdir / f"{self.label}.channel.log"

    @property
    def qmp_socket(self) -> Path:
        return self.workdir / f"{self.label}.qmp"

    @property
    def command_socket(self) -> Path:
        return self.workdir / f"{self.label}.cmd.sock"

    def command(self) -> list[str]:
        accel = os.environ.get("CRASHCART_DRILL_ACCEL", "tcg")
        netdev = "user,id=net0,restrict=on"
        busybox = shutil.which("busybox") or "/bin/busybox"
        for forward in self.forwards:
            netdev += (
                f",guestfwd=tcp:{forward.guest_address}:{forward.guest_port}"
                f"-cmd:{busybox} nc 127.0.0.1 {forward.host_port}"
            )
        return [
            "qemu-system-x86_64",
            "-machine",
            f"q35,accel={accel}",
            "-cpu",
            GUEST_CPU_MODEL,
            "-smp",
            str(self.cpus),
            "-m",
            str(self.memory_mib),
            "-display",
            "none",
            "-nodefaults",
            "-no-reboot",
            "-kernel",
            str(self.kernel),
            "-initrd",
            str(self.initrd),
            "-append",
            self.cmdline,
            "-drive",
            f"file={self.disk},format=raw,if=virtio,cache=unsafe",
            "-serial",
            f"file:{self.console_log}",
            "-serial",
            f"file:{self.channel_log}",
            "-qmp",
            f"unix:{self.qmp_socket},server=on,wait=off",
            "-chardev",
            f"socket,id=drillcmd,path={self.command_socket},server=on,wait=off",
            "-serial",
            "chardev:drillcmd",
            "-netdev",
            netdev,
            "-device",
            "virtio-net-pci,netdev=net0",
            *self._incoming_words(),
        ]

    def _incoming_words(self) -> list[str]:
        if self.incoming is None:
            return []
        return ["-incoming", f"exec:cat {shlex.quote(str(self.incoming))}"]

    def start(self) -> Vm:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for path in (self.console_log, self.channel_log, self.qmp_socket, self.command_socket):
            path.unlink(missing_ok=True)
        self.channel_log.touch()
        command = self.command()
        (self.workdir / f"{self.label}.qemu-command").write_text(
            " ".join(f"'{part}'" if " " in part else part for part in command) + "\n"
        )
        stderr = (self.workdir / f"{self.label}.qemu.stderr").open("wb")
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr
        )
        self.started_at = time.monotonic()
        self._output_sizes = (-1, -1)
        self._last_output = self.started_at
        return self

    def silent_for(self) -> float:
        """Seconds since the guest last wrote to its console or the drill channel."""
        sizes = tuple(
            path.stat().st_size if path.exists() else 0
            for path in (self.console_log, self.channel_log)
        )
        now = time.monotonic()
        if sizes != self._output_sizes:
            self._output_sizes = (sizes[0], sizes[1])
            self._last_output = now
        return now - self._last_output

    def status(self) -> str:
        """QEMU's run state (``running``, ``paused``, ``io-error``, ...) or why it is unknown."""
        if not self.running:
            return f"exited (code {self.exit_code})"
        try:
            with QmpClient(self.qmp_socket, timeout=5) as qmp:
                info = qmp.execute("query-status") or {}
        except (OSError, QmpError) as error:
            return f"unknown (QMP: {error})"
        return str(info.get("status", "unknown"))

    def console_tail(self, lines: int = CONSOLE_TAIL_LINES) -> str:
        """The console's last lines, control characters and blank lines dropped."""
        text = _ANSI_RE.sub("", self.console_text()).replace("\r", "\n")
        kept = ["".join(c for c in line if c.isprintable()).strip() for line in text.splitlines()]
        return "\n".join([line for line in kept if line][-lines:])

    def _silence_error(self, what: str, silent: float) -> GuestError:
        status = self.status()
        hint = ""
        if status == "io-error":
            hint = (
                " QEMU paused the guest on a disk write error: is the host's disk full? "
                f"(the drill cache: {self.disk.parent})"
            )
        return GuestError(
            f"the guest wrote nothing to its console or the drill channel for {silent:.0f}s "
            f"while the drill waited for {what}; QEMU status: {status}.{hint} "
            f"Console ({self.console_log}), last lines:\n{self.console_tail()}"
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def poll_events(self) -> list[Event]:
        """Channel events not handed out yet: first those a :meth:`wait_for` left unread,
        then new complete lines (every event is also kept in :attr:`events`)."""
        new: list[Event] = self._pending
        self._pending = []
        try:
            with self.channel_log.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return new
        self._offset += len(chunk)
        text = self._partial + chunk.decode("utf-8", errors="replace").replace("\r", "")
        *lines, self._partial = text.split("\n")
        now = time.monotonic()
        for line in lines:
            if not line.startswith(CHANNEL_PREFIX):
                continue
            rest = line[len(CHANNEL_PREFIX) :]
            name, _, tail = rest.partition(" ")
            event = Event(name=name, words=tuple(tail.split()), at=now, line=rest)
            self.events.append(event)
            new.append(event)
        return new

    def wait_for(
        self,
        predicate: Callable[[Event], bool],
        *,
        timeout: float,
        what: str,
        on_event: Callable[[Event], None] | None = None,
        stop_on_exit: bool = True,
        silence: float | None = None,
    ) -> Event | None:
        """Wait for a channel event; None if QEMU exited first (when ``stop_on_exit``).

        :raises GuestError: after ``timeout`` seconds, naming ``what``; or as soon as the
            guest has written nothing for ``silence`` seconds (default :func:`silence_limit`),
            with QEMU's status and the console's last lines.
        """
        deadline = time.monotonic() + timeout
        quiet_limit = silence_limit() if silence is None else silence
        while True:
            running = self.running
            found = self._scan(self.poll_events(), predicate, on_event)
            if found is not None:
                return found
            if stop_on_exit and not running:
                return self._scan(self.poll_events(), predicate, on_event)
            if time.monotonic() > deadline:
                raise GuestError(
                    f"timed out after {timeout:.0f}s waiting for {what} "
                    f"(console: {self.console_log}); QEMU status: {self.status()}; "
                    f"console, last lines:\n{self.console_tail()}"
                )
            silent = self.silent_for()
            if running and silent > quiet_limit:
                raise self._silence_error(what, silent)
            time.sleep(0.2)

    def _scan(
        self,
        events: list[Event],
        predicate: Callable[[Event], bool],
        on_event: Callable[[Event], None] | None,
    ) -> Event | None:
        for position, event in enumerate(events):
            if on_event is not None:
                on_event(event)
            if predicate(event):
                self._pending = events[position + 1 :] + self._pending
                return event
        return None

    def wait_exit(self, timeout: float) -> int | None:
        """QEMU's exit code, or None if it is still running after ``timeout`` seconds."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def inject_nmi(self) -> None:
        with QmpClient(self.qmp_socket) as qmp:
            qmp.inject_nmi()

    def save_state(self, state: Path, *, disk_copy: Path, timeout: float = SAVE_TIMEOUT) -> None:
        """Pause the guest, copy its disk to ``disk_copy`` and write its state (RAM and
        devices) to ``state``; the guest stays paused (:meth:`stop` it afterwards).

        Paused first, so that the disk copy and the state are of the same instant (``stop``
        drains and flushes the disk) and the state is written in one pass.
        """
        state.unlink(missing_ok=True)
        with QmpClient(self.qmp_socket, timeout=30) as qmp:
            qmp.execute("stop")
            copy_disk(self.disk, disk_copy)
            qmp.execute("migrate-set-parameters", {"max-bandwidth": 8 << 30})
            qmp.execute("migrate", {"uri": f"exec:cat > {shlex.quote(str(state))}"})
            deadline = time.monotonic() + timeout
            while True:
                info = qmp.execute("query-migrate") or {}
                status = info.get("status")
                if status == "completed":
                    return
                if status in ("failed", "cancelled") or time.monotonic() > deadline:
                    raise GuestError(
                        f"saving the guest's state to {state} {status or 'timed out'}: "
                        f"{info.get('error-desc', '')}"
                    )
                time.sleep(0.2)

    def wait_running(self, timeout: float) -> None:
        """Wait until QEMU runs the guest (after an ``-incoming`` restore)."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise GuestError(
                    f"QEMU exited (code {self.exit_code}) while restoring {self.incoming}; "
                    f"see {self.workdir / (self.label + '.qemu.stderr')}"
                )
            try:
                with QmpClient(self.qmp_socket, timeout=10) as qmp:
                    status = (qmp.execute("query-status") or {}).get("status")
                    loaded = (qmp.execute("query-migrate") or {}).get("status") == "completed"
                    if status in ("paused", "postmigrate", "prelaunch") and loaded:
                        # saved while paused, restored paused: go on from the saved instant
                        qmp.execute("cont")
                        status = "running"
            except QmpError:
                status = None
            if status == "running":
                return
            if time.monotonic() > deadline:
                raise GuestError(f"the restored guest is not running after {timeout:.0f}s")
            time.sleep(0.2)

    def send_command(self, line: str, *, timeout: float = 30.0) -> None:
        """Write one line to the guest's command port (its third serial port)."""
        if "\n" in line:
            raise ValueError(f"a command is one line, got {line!r}")
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.command_socket))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if time.monotonic() > deadline:
                    raise GuestError(
                        f"command port {self.command_socket} did not come up"
                    ) from None
                time.sleep(0.1)
        sock.sendall(line.encode() + b"\n")
        # Keep the connection until QEMU stops: the guest reads the line at its own pace.
        self._command_connection = sock

    def stop(self) -> None:
        """Quit QEMU (QMP ``quit``, then terminate / kill)."""
        if self._command_connection is not None:
            self._command_connection.close()
            self._command_connection = None
        if not self.running:
            return
        try:
            with QmpClient(self.qmp_socket, timeout=3) as qmp:
                qmp.execute("quit")
        except Exception:  # noqa: S110 - fall back to signals
            pass
        assert self.process is not None
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def console_text(self) -> str:
        try:
            return self.console_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


#: The sparse disk copy (``cp --sparse=always``, a reflink where the file system has them) is
#: :func:`crashcart.drill.image.copy_disk`; this name stays for callers of the old copy.
copy_sparse = copy_disk


def qemu_version() -> str:
    """``qemu-system-x86_64 --version``'s first line ("" when QEMU is not installed)."""
    binary = shutil.which("qemu-system-x86_64")
    if binary is None:
        return ""
    result = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return result.stdout.splitlines()[0] if result.stdout else ""
