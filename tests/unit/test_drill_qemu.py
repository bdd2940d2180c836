"""The QEMU runner's command line and its reading of the drill channel (no QEMU started)."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from crashcart.drill.qemu import Forward, GuestError, Vm


def _vm(tmp_path: Path, **options: object) -> Vm:
    return Vm(
        disk=tmp_path / "disk.img",
        kernel=tmp_path / "vmlinuz",
        initrd=tmp_path / "initrd.img",
        cmdline="root=/dev/vda rw crashkernel=192M",
        workdir=tmp_path,
        **options,  # type: ignore[arg-type]
    )


def test_command_line(tmp_path: Path) -> None:
    vm = _vm(tmp_path, forwards=(Forward("10.0.2.100", 80, 40123),))
    command = vm.command()
    joined = " ".join(command)
    assert command[command.index("-machine") + 1] == "q35,accel=tcg"
    assert "-no-reboot" in command  # every guest reboot ends QEMU
    assert command[command.index("-append") + 1] == "root=/dev/vda rw crashkernel=192M"
    netdev = command[command.index("-netdev") + 1]
    assert netdev.startswith("user,id=net0,restrict=on,")  # the guest reaches nothing else
    assert "guestfwd=tcp:10.0.2.100:80-cmd:" in netdev and "nc 127.0.0.1 40123" in netdev
    assert f"file:{vm.console_log}" in joined and f"file:{vm.channel_log}" in joined
    assert f"unix:{vm.qmp_socket},server=on,wait=off" in joined


def test_without_forwards_the_guest_reaches_nothing(tmp_path: Path) -> None:
    command = _vm(tmp_path).command()
    assert command[command.index("-netdev") + 1] == "user,id=net0,restrict=on"


def test_channel_events_are_never_lost(tmp_path: Path) -> None:
    vm = _vm(tmp_path)
    vm.channel_log.write_text(
        "noise from elsewhere\n"
        "CRASHCART-DRILL step-start validate-01-Check\n"
        "CRASHCART-DRILL | crashcart-validate: ok: x\n"
        "CRASHCART-DRILL ready\n"
        "CRASHCART-DRILL action hang\n"
        "CRASHCART-DRILL heartb"  # an incomplete line waits for its end
    )
    ready = vm.wait_for(lambda e: e.name == "ready", timeout=1, what="ready")
    assert ready is not None and ready.name == "ready"
    # "action" arrived in the same read as "ready": the next wait still sees it
    action = vm.wait_for(lambda e: e.name == "action", timeout=1, what="action")
    assert action is not None and action.words == ("hang",)
    with vm.channel_log.open("a") as channel:
        channel.write("eat 7\n")
    beats = vm.poll_events()
    assert [(e.name, e.words) for e in beats] == [("heartbeat", ("7",))]
    assert [e.name for e in vm.events] == ["step-start", "|", "ready", "action", "heartbeat"]


def test_wait_for_returns_none_when_qemu_is_gone(tmp_path: Path) -> None:
    vm = _vm(tmp_path)
    vm.channel_log.write_text("CRASHCART-DRILL boot 6.1\n")
    assert vm.wait_for(lambda e: e.name == "ready", timeout=1, what="ready") is None


# --- save and restore ------------------------------------------------------------------------


def test_every_vm_has_the_command_port_so_any_can_be_saved_and_restored(tmp_path: Path) -> None:
    cold = _vm(tmp_path).command()
    restored = _vm(tmp_path, incoming=tmp_path / "my state", label="restored").command()
    port = f"socket,id=drillcmd,path={tmp_path / 'boot.cmd.sock'},server=on,wait=off"
    assert cold[cold.index("-chardev") + 1] == port
    assert cold.count("-serial") == 3 and cold[-1] != "-incoming" and "-incoming" not in cold
    # the same devices; only the sockets' names and the state to load differ
    assert restored[restored.index("-incoming") + 1] == f"exec:cat '{tmp_path / 'my state'}'"
    strip = {"-incoming", f"exec:cat '{tmp_path / 'my state'}'"}
    assert [w.replace("restored.", "boot.") for w in restored if w not in strip] == cold


class FakeQemu:
    """A QMP server and a command port, as QEMU offers them while it loads a saved guest."""

    def __init__(self, vm: Vm, statuses: list[str]) -> None:
        self.statuses = statuses
        self.commands: list[str] = []
        self.received = b""
        self.servers = []
        for path, handler in ((vm.qmp_socket, self._qmp), (vm.command_socket, self._port)):
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(str(path))
            server.listen(4)
            self.servers.append(server)
            threading.Thread(target=self._accept, args=(server, handler), daemon=True).start()

    def _accept(self, server: socket.socket, handler: Any) -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                handler(connection)

    def _qmp(self, connection: socket.socket) -> None:
        connection.sendall(b'{"QMP": {"version": {}}}\n')
        for line in connection.makefile("rb"):
            command = json.loads(line)["execute"]
            self.commands.append(command)
            if command == "query-status":
                reply: Any = {"status": self.statuses[0]}
            elif command == "query-migrate":
                reply = {"status": "completed"}
            elif command == "cont":
                self.statuses = ["running"]
                reply = {}
            else:
                reply = {}
            connection.sendall(json.dumps({"return": reply}).encode() + b"\n")

    def _port(self, connection: socket.socket) -> None:
        while chunk := connection.recv(4096):
            self.received += chunk

    def close(self) -> None:
        for server in self.servers:
            server.close()


class _Running:
    def poll(self) -> None:
        return None


def test_a_guest_saved_paused_is_continued_then_handed_its_command(tmp_path: Path) -> None:
    vm = _vm(tmp_path, incoming=tmp_path / "state")
    vm.process = _Running()  # type: ignore[assignment]
    fake = FakeQemu(vm, ["inmigrate", "paused"])
    try:
        fake.statuses = ["paused"]
        vm.wait_running(timeout=10)
        assert "cont" in fake.commands  # saved while paused: QEMU waits to be told to go on
        vm.send_command("go 1767225600 idle -")
        deadline = time.monotonic() + 5
        while b"\n" not in fake.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fake.received == b"go 1767225600 idle -\n"
        with pytest.raises(ValueError, match="one line"):
            vm.send_command("go\nrm -rf /")
    finally:
        vm.process = None
        vm.stop()
        fake.close()


# --- a guest gone silent fails fast ----------------------------------------------------------


def test_a_silent_guest_fails_fast_with_qemu_status_and_the_console_tail(tmp_path: Path) -> None:
    vm = _vm(tmp_path)
    vm.process = _Running()  # type: ignore[assignment]
    vm.started_at = vm._last_output = time.monotonic()
    vm.console_log.write_text(
        "".join(f"[  {n}.0] early line {n}\r\n" for n in range(40))
        + "         Starting \x1b[0;1;39mkdump-tools.service\x1b[0m - Kernel crash dump...\r\n"
    )
    vm.channel_log.write_text("CRASHCART-DRILL boot 6.1.0-50-cloud-amd64\n")
    fake = FakeQemu(vm, ["io-error"])  # QEMU paused the guest: a write failed (ENOSPC)
    started = time.monotonic()
    try:
        with pytest.raises(GuestError) as raised:
            vm.wait_for(lambda e: e.name == "ready", timeout=600, what="ready", silence=1.0)
    finally:
        vm.process = None
        fake.close()
    assert time.monotonic() - started < 10  # not the 600 s boot timeout
    message = str(raised.value)
    assert "nothing to its console or the drill channel for" in message
    assert "QEMU status: io-error" in message and "host's disk full" in message
    assert "kdump-tools.service - Kernel crash dump..." in message  # the tail, escapes dropped
    assert "early line 39" in message and "early line 20" not in message


def test_a_guest_that_keeps_writing_is_not_cut_short(tmp_path: Path) -> None:
    vm = _vm(tmp_path)
    vm.process = _Running()  # type: ignore[assignment]
    vm.started_at = vm._last_output = time.monotonic()
    vm.console_log.write_text("")

    def slow_boot() -> None:
        for n in range(8):  # 2.4 s in all, never more than 0.3 s apart
            time.sleep(0.3)
            with vm.console_log.open("a") as console:
                console.write(f"[  {n}.0] still working\n")
        vm.channel_log.write_text("CRASHCART-DRILL ready\n")

    writer = threading.Thread(target=slow_boot)
    writer.start()
    try:
        found = vm.wait_for(lambda e: e.name == "ready", timeout=30, what="ready", silence=1.0)
    finally:
        writer.join()
        vm.process = None
    assert found is not None and found.name == "ready"
