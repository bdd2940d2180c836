"""The drill's disk handling without QEMU: debugfs edits, the boot command line computed from
the guest's boot configuration, and the negative controls' edits."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from crashcart.drill import diskfs
from crashcart.drill.bootcfg import BootConfigError, read_boot_config
from crashcart.drill.image import PLATFORM_GRUB_DEFAULT
from crashcart.drill.scenarios import SCENARIOS

pytestmark = pytest.mark.skipif(
    shutil.which("mkfs.ext4") is None or shutil.which("debugfs") is None,
    reason="needs e2fsprogs (scripts/setup.sh installs it)",
)

_STRIP = "sed -E 's/(^|[[:space:]])crashkernel=[^[:space:]]*//g'"
#: What the component writes (crashcart/components/fragments/kdump-tools-enable.sh).
COMPONENT_CFG = (
    "# Written by crashcart: the capture kernel's memory reservation (replaces any other).\n"
    f'GRUB_CMDLINE_LINUX="$(printf \'%s\' "${{GRUB_CMDLINE_LINUX:-}}" | {_STRIP})"\n'
    f'GRUB_CMDLINE_LINUX_DEFAULT="$(printf \'%s\' "${{GRUB_CMDLINE_LINUX_DEFAULT:-}}" | {_STRIP})'
    ' crashkernel=768M-4G:192M,4G-64G:256M,64G-:512M"\n'
)
KDUMP_TOOLS_CFG = (
    'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT crashkernel=384M-:128M"\n'
)


@pytest.fixture
def guest(tmp_path: Path) -> Path:
    """A small ext4 image laid out like the prepared guest (boot files, grub config, units)."""
    root = tmp_path / "root"
    for folder in (
        "boot",
        "etc/default/grub.d",
        "etc/systemd/system/basic.target.wants",
        "etc/rc2.d",
        "etc/rc3.d",
        "etc/sysctl.d",
    ):
        (root / folder).mkdir(parents=True)
    (root / "boot/vmlinuz-6.1.0-50-cloud-amd64").write_bytes(b"kernel")
    (root / "boot/initrd.img-6.1.0-50-cloud-amd64").write_bytes(b"initrd")
    (root / "etc/default/grub").write_text(PLATFORM_GRUB_DEFAULT)
    (root / "etc/default/grub.d/kdump-tools.cfg").write_text(KDUMP_TOOLS_CFG)
    (root / "etc/default/grub.d/zz-crashcart-kdump.cfg").write_text(COMPONENT_CFG)
    (root / "etc/systemd/system/basic.target.wants/kdump-tools.service").symlink_to(
        "/lib/systemd/system/kdump-tools.service"
    )
    for level in ("2", "3"):
        (root / f"etc/rc{level}.d/S01kdump-tools").symlink_to("../init.d/kdump-tools")
    image = tmp_path / "disk.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(root), str(image), "16M"], check=True)
    return image


def test_cmdline_comes_from_the_guest_boot_configuration(guest: Path, tmp_path: Path) -> None:
    boot = read_boot_config(guest, tmp_path / "out")
    assert boot.kernel.read_bytes() == b"kernel" and boot.initrd.read_bytes() == b"initrd"
    assert boot.kernel_release == "6.1.0-50-cloud-amd64"
    # the component's file sorts last and replaces kdump-tools' reservation
    assert boot.configured.split() == [
        "console=ttyS0,115200",
        "crashkernel=768M-4G:192M,4G-64G:256M,64G-:512M",
    ]
    assert boot.crashkernel == "768M-4G:192M,4G-64G:256M,64G-:512M"
    assert boot.cmdline.startswith("root=/dev/vda rw console=ttyS0,115200 crashkernel=768M")
    assert boot.cmdline.count("crashkernel=") == 1
    assert set(boot.files) == {
        "/etc/default/grub",
        "/etc/default/grub.d/kdump-tools.cfg",
        "/etc/default/grub.d/zz-crashcart-kdump.cfg",
    }


def test_without_the_component_there_is_no_drill_crashkernel(guest: Path, tmp_path: Path) -> None:
    diskfs.DiskEditor(guest).remove("/etc/default/grub.d/zz-crashcart-kdump.cfg").remove(
        "/etc/default/grub.d/kdump-tools.cfg"
    ).apply()
    boot = read_boot_config(guest, tmp_path / "out")
    assert boot.crashkernel is None
    assert "crashkernel" not in boot.cmdline


def test_a_broken_boot_configuration_is_an_error(guest: Path, tmp_path: Path) -> None:
    diskfs.DiskEditor(guest).write("/etc/default/grub.d/zzz-broken.cfg", "exit 3\n").apply()
    with pytest.raises(BootConfigError, match="sourcing"):
        read_boot_config(guest, tmp_path / "out")


def test_negative_crashkernel_missing_removes_it_from_the_cmdline(
    guest: Path, tmp_path: Path
) -> None:
    editor = diskfs.DiskEditor(guest)
    changes = SCENARIOS["negative-crashkernel-missing"].modify(editor, guest)
    editor.apply()
    assert changes
    boot = read_boot_config(guest, tmp_path / "out")
    assert boot.crashkernel is None
    assert "console=ttyS0,115200" in boot.cmdline


def test_negative_kdump_disabled_does_what_systemctl_disable_does(guest: Path) -> None:
    editor = diskfs.DiskEditor(guest)
    changes = SCENARIOS["negative-kdump-disabled"].modify(editor, guest)
    editor.apply()
    assert any("basic.target.wants" in change for change in changes)
    assert not diskfs.exists(guest, "/etc/systemd/system/basic.target.wants/kdump-tools.service")
    for level in ("2", "3"):
        names = diskfs.list_dir(guest, f"/etc/rc{level}.d")
        assert names == ["K01kdump-tools"], names


def test_negative_kdump_disabled_refuses_an_image_without_kdump(guest: Path) -> None:
    editor = diskfs.DiskEditor(guest)
    SCENARIOS["negative-kdump-disabled"].modify(editor, guest)
    editor.apply()
    with pytest.raises(RuntimeError, match="not enabled"):
        SCENARIOS["negative-kdump-disabled"].modify(diskfs.DiskEditor(guest), guest)


def test_negative_nmi_panic_off_writes_a_later_sysctl_file(guest: Path) -> None:
    editor = diskfs.DiskEditor(guest)
    SCENARIOS["negative-nmi-panic-off"].modify(editor, guest)
    editor.apply()
    text = diskfs.read_file(guest, "/etc/sysctl.d/zzz-crashcart-drill-negative.conf")
    assert text is not None and b"kernel.unknown_nmi_panic = 0" in text
    # sorts after the component's zz-crashcart-kdump.conf, so it wins
    assert "zzz-crashcart-drill-negative.conf" > "zz-crashcart-kdump.conf"


def test_disk_editor_fails_loudly_when_an_edit_did_not_happen(guest: Path) -> None:
    with pytest.raises(diskfs.DiskError, match="missing afterwards"):
        diskfs.DiskEditor(guest).write("/no/such/dir/file", "x").apply()


def test_disk_editor_writes_modes_and_links(guest: Path) -> None:
    editor = diskfs.DiskEditor(guest)
    editor.mkdir("/opt").write("/opt/run.sh", "#!/bin/sh\n", mode=0o755)
    editor.symlink("/opt/link", "/opt/run.sh").apply()
    assert diskfs.read_file(guest, "/opt/run.sh") == b"#!/bin/sh\n"
    assert sorted(diskfs.list_dir(guest, "/opt")) == ["link", "run.sh"]
    out = subprocess.run(
        ["debugfs", "-R", "stat /opt/run.sh", str(guest)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Mode:  0755" in out and "User:     0" in out


def test_recover_keeps_a_clean_image_and_its_files(guest: Path) -> None:
    diskfs.DiskEditor(guest).write("/etc/kept", "yes\n").apply()
    diskfs.recover(guest)
    assert diskfs.read_file(guest, "/etc/kept") == b"yes\n"


def test_recover_fails_on_something_that_is_not_a_file_system(tmp_path: Path) -> None:
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\0" * 65536)
    with pytest.raises(diskfs.DiskError, match="e2fsck"):
        diskfs.recover(junk)
