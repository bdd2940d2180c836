"""The drill's reading of the capture-memory figures saved with a dump (issue 18, part 2)."""

from __future__ import annotations

from pathlib import Path

from crashcart.drill import capture_memory

FIGURES = """\
# crashcart capture-kernel memory while the dump was saved (kB)
mem_total_kb=155545
mem_available_start_kb=120000
mem_free_start_kb=125000
mem_available_min_kb=111104
mem_free_min_kb=60000
makedumpfile_vmhwm_kb=2970
samples=14
final=1
"""
BOOT_LOG = "[    0.004] Reserving 192MB of memory at 752MB for crashkernel (System RAM: 1023MB)\n"
CMDLINE = "root=/dev/vda rw crashkernel=768M-4G:192M,4G-64G:256M,64G-:512M panic=10"


def test_reserved_from_the_boot_log_against_used(tmp_path: Path) -> None:
    (tmp_path / "capture-memory.txt").write_text(FIGURES)
    result = capture_memory.analyse(tmp_path, dmesg_text=BOOT_LOG, cmdline="", ram_mib=1024)
    assert result == {
        "file": True,
        "reserved_mib": 192.0,
        "reserved_from": "the crashed kernel's boot log",
        "mem_total_mib": 151.9,
        "used_mib": 43.4,  # MemTotal less the lowest MemAvailable
        "margin_mib": 148.6,
        "available_min_mib": 108.5,
        "makedumpfile_peak_mib": 2.9,
        "samples": 14,
        "final": True,
    }
    assert "margin 148.6 MiB" in capture_memory.summary(result)


def test_without_the_boot_log_line_the_reservation_comes_from_the_command_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "capture-memory.txt").write_text(FIGURES)
    result = capture_memory.analyse(tmp_path, dmesg_text="", cmdline=CMDLINE, ram_mib=8192)
    assert result["reserved_mib"] == 256.0
    assert result["reserved_from"].startswith("crashkernel= on the command line")


def test_no_file_is_reported_not_invented(tmp_path: Path) -> None:
    result = capture_memory.analyse(tmp_path, dmesg_text=BOOT_LOG, cmdline=CMDLINE, ram_mib=1024)
    assert result == {
        "file": False,
        "reserved_mib": 192.0,
        "reserved_from": "the crashed kernel's boot log",
    }
    assert capture_memory.summary(result).startswith("no capture-memory.txt")
    assert capture_memory.reserved_kb_from_cmdline("root=/dev/vda", 1024) is None
    assert capture_memory.reserved_kb_from_cmdline(CMDLINE, 512) is None  # below every range
