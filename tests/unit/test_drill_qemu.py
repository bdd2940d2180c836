"""The QEMU runner's command line and its reading of the drill channel (no QEMU started)."""

from __future__ import annotations

from pathlib import Path

from crashcart.drill.qemu import Forward, Vm


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
