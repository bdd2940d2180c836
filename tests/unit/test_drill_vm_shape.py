"""The host-built kdump initrd is told which modules the guest's ``MODULES=dep`` selects
(``kdumpinitrd.GUEST_DEP_MODULES``), read from a guest of one VM shape. A VM with another
machine or disk bus would boot its capture kernel without the driver of its root disk: this
test ties the recorded shape to the VM the drill starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from crashcart.drill import kdumpinitrd
from crashcart.drill.qemu import Vm


def _option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def _command(tmp_path: Path) -> list[str]:
    return Vm(
        disk=tmp_path / "disk.img",
        kernel=tmp_path / "vmlinuz",
        initrd=tmp_path / "initrd.img",
        cmdline="root=/dev/vda",
        workdir=tmp_path,
    ).command()


def test_the_vm_is_the_one_the_dep_modules_were_read_from(tmp_path: Path) -> None:
    command = _command(tmp_path)
    machine = _option(command, "-machine").split(",")[0]
    drive = dict(
        part.split("=", 1) for part in _option(command, "-drive").split(",") if "=" in part
    )
    shape = {"machine": machine, "disk interface": drive.get("if")}
    assert shape == kdumpinitrd.GUEST_VM_SHAPE, (
        f"the drill's VM is now {shape}, GUEST_DEP_MODULES was read from "
        f"{kdumpinitrd.GUEST_VM_SHAPE}: read the modules again from an initrd the guest "
        "built (docs/drill.md), then update both"
    )
    assert "virtio_blk" in kdumpinitrd.GUEST_DEP_MODULES


def test_a_saved_guest_restores_only_into_the_cpu_model_it_was_saved_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crashcart.drill import qemu, snapshot

    monkeypatch.setattr(snapshot, "qemu_version", lambda: "7.2.22")
    command = _command(tmp_path)
    assert _option(command, "-cpu") == qemu.GUEST_CPU_MODEL
    before = snapshot.snapshot_key()
    monkeypatch.setattr(snapshot, "GUEST_CPU_MODEL", "max")
    assert snapshot.snapshot_key() != before
