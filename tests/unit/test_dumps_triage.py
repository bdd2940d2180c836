"""Triage on bad input (clean message, non-zero exit, never a traceback) and the report
assembled without a debug vmlinux. Triage of a REAL vmcore runs in the e2e layer (drill)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import crashcart.triage.core as core
from crashcart.triage import TriageError, render_markdown, to_json, triage
from tests.support.dumps import BUILD_ID, NMI_PANIC_DMESG, REPO, vmcore_bytes


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crashcart.triage", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


@pytest.fixture
def bad_inputs(tmp_path: Path) -> dict[str, Path]:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    text = tmp_path / "notes.txt"
    text.write_text("this is not a crash dump\n")
    truncated_kdump = tmp_path / "truncated.kdump"
    truncated_kdump.write_bytes(b"KDUMP   \x06\x00\x00\x00" + b"\x00" * 20)
    truncated_flat = tmp_path / "truncated.flat"
    truncated_flat.write_bytes(vmcore_bytes("flattened", 4096)[:3000])
    folder = tmp_path / "a-folder"
    folder.mkdir()
    return {
        "missing": tmp_path / "nope",
        "folder": folder,
        "empty": empty,
        "not a vmcore": text,
        "truncated kdump-compressed": truncated_kdump,
        "truncated flattened": truncated_flat,
    }


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no such file"),
        ("folder", "not a regular file"),
        ("empty", "file is empty"),
        ("not a vmcore", "not a crash dump"),
        ("truncated kdump-compressed", "cannot open it as a crash dump"),
        ("truncated flattened", "cannot open it as a crash dump"),
    ],
)
def test_bad_input_fails_cleanly(bad_inputs: dict[str, Path], case: str, message: str) -> None:
    result = run_cli(str(bad_inputs[case]))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("crashcart triage: error: ")
    assert message in result.stderr
    assert result.stdout == ""
    with pytest.raises(TriageError, match=message):
        triage(bad_inputs[case])


def test_missing_vmlinux_fails_cleanly(tmp_path: Path) -> None:
    dump = tmp_path / "dump"
    dump.write_bytes(vmcore_bytes("flattened"))
    result = run_cli(str(dump), "--vmlinux", str(tmp_path / "vmlinux-missing"))
    assert result.returncode == 2
    assert "no such vmlinux file" in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_vmlinux_fails_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import drgn

    dump = tmp_path / "dump"
    dump.write_bytes(vmcore_bytes("flattened"))
    not_elf = tmp_path / "vmlinux"
    not_elf.write_bytes(b"\x7fELF but not really" + b"\x00" * 64)
    monkeypatch.setattr(core, "_open", lambda _path: drgn.Program())
    with pytest.raises(TriageError, match="vmlinux"):
        triage(dump, not_elf)


@pytest.fixture
def dump_without_vmlinux(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A dump folder as shipped (vmcore + dmesg.txt); drgn's open is stubbed (fake bytes)."""
    dump = tmp_path / "vmcore"
    dump.write_bytes(
        vmcore_bytes("kdump-compressed").replace(
            b"PAGESIZE=4096\n", b"CRASHTIME=1795670340\nPAGESIZE=4096\n"
        )
    )
    (tmp_path / "dmesg.txt").write_text(NMI_PANIC_DMESG)
    monkeypatch.setattr(core, "_open", lambda _path: None)
    return dump


def test_report_without_vmlinux_says_what_it_has_and_what_is_missing(
    dump_without_vmlinux: Path,
) -> None:
    report = triage(dump_without_vmlinux)
    assert report.format == "kdump-compressed"
    assert report.kernel_release == "6.1.0-27-cloud-amd64"
    assert report.build_id == BUILD_ID
    assert report.crash_time == "2026-11-26T05:19:00Z"
    assert report.panic_message == "NMI: Not continuing"
    assert report.reason == "nmi"
    assert report.taint == "G O"
    assert report.uptime_seconds == pytest.approx(85.100114)
    assert report.crashing_cpu is not None and report.crashing_cpu.cpu == 1
    assert report.crashing_cpu.source == "log"
    assert report.crashing_cpu.frames[0] == "hang_spin (RIP)"
    assert report.dmesg_tail[-1].endswith(
        "(relocation range: 0xffffffff80000000-0xffffffffbfffffff)"
    )
    assert any("debug vmlinux not given" in item and BUILD_ID in item for item in report.missing)
    markdown = render_markdown(report)
    assert "| reason | **nmi** |" in markdown
    assert "hang_spin (RIP)" in markdown
    assert "## Not in this report" in markdown
    document = json.loads(to_json(report))
    assert document["schema"] == 1
    assert document["reason"] == "nmi"
    assert document["crashing_cpu"]["cpu"] == 1


def test_cli_writes_json(dump_without_vmlinux: Path, tmp_path: Path) -> None:
    from crashcart.triage import cli

    out = tmp_path / "report.json"
    code = cli.main([str(dump_without_vmlinux), "--json", "--output", str(out)])
    assert code == 0
    assert json.loads(out.read_text())["panic_message"] == "NMI: Not continuing"


def test_cli_registers_as_a_subcommand() -> None:
    import argparse

    from crashcart.triage import cli

    parser = argparse.ArgumentParser(prog="crashcart")
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["triage", "/x/vmcore", "--vmlinux", "/x/vmlinux", "--json"])
    assert args.handler is cli.run
    assert args.vmcore == Path("/x/vmcore") and args.json is True


def _note(*lines: bytes, filler: int = 0) -> bytes:
    """A dump's head with an ELF note named VMCOREINFO: the first key follows NUL padding."""
    header = b"KDUMP   \x06\0\0\0" + b"\0" * 100
    note = b"\x0b\0\0\0\x80\0\0\0\0\0\0\0VMCOREINFO\0\0" + b"".join(lines)
    return header + b"\x01" * filler + note + b"\0" * 64


def test_vmcoreinfo_keys_after_the_notes_padding_are_found(tmp_path: Path) -> None:
    dump = tmp_path / "vmcore"
    dump.write_bytes(
        _note(
            b"OSRELEASE=6.1.0-50-cloud-amd64\n",
            b"BUILD-ID=" + BUILD_ID.encode() + b"\n",
            b"PAGESIZE=4096\n",
            b"CRASHTIME=1795685239\n",
        )
    )
    assert core.read_vmcoreinfo(dump) == {
        "OSRELEASE": "6.1.0-50-cloud-amd64",
        "BUILD-ID": BUILD_ID,
        "PAGESIZE": "4096",
        "CRASHTIME": "1795685239",
    }


def test_a_longer_key_ending_in_a_wanted_name_is_not_taken_for_it(tmp_path: Path) -> None:
    dump = tmp_path / "vmcore"
    dump.write_bytes(_note(b"NOT_OSRELEASE=wrong\n", b"OSRELEASE=6.1.0-50-cloud-amd64\n"))
    assert core.read_vmcoreinfo(dump)["OSRELEASE"] == "6.1.0-50-cloud-amd64"


def test_a_key_across_two_read_blocks_is_found(tmp_path: Path) -> None:
    dump = tmp_path / "vmcore"
    # OSRELEASE=... straddles the end of the first 4 MiB block the reader takes
    dump.write_bytes(_note(b"OSRELEASE=6.1.0-50-cloud-amd64\n", filler=4 * 2**20 - 150))
    assert core.read_vmcoreinfo(dump)["OSRELEASE"] == "6.1.0-50-cloud-amd64"
