"""The parser's report is untrusted data (issue 22): checked, bounded and escaped by the
supervisor before any of it reaches S3, the incident or on-call."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from crashcart.runtime.dumps import parse_metadata_key
from crashcart.triage import job, report_check, sandbox
from crashcart.triage.report import render_markdown

KEY = "dumps/AROAEXAMPLEROLEID0001:i-0123456789abcdef0/202611260519/metadata.json"
INJECTION = "panic\r\nBcc: all@example.com\r\n\r\nReset your password: https://evil.example/x"


def _report(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "format": "flattened",
        "kernel_release": "6.1.0-27-cloud-amd64",
        "reason": "nmi",
        "panic_message": "NMI: Not continuing",
        "crashing_cpu": {"cpu": 1, "pid": 0, "comm": "swapper/1", "frames": ["hang_spin"]},
    }
    base.update(fields)
    return base


def _document(report: Any, **extra: Any) -> bytes:
    return json.dumps({"ok": True, "report": report, "vmlinux_used": True, **extra}).encode()


def _hostile() -> dict[str, Any]:
    return _report(
        panic_message=INJECTION + "A" * 100_000,
        kernel_release="<img src=http://evil.example/t.gif>",
        crashing_cpu={
            "cpu": 0,
            "pid": 1,
            "comm": "[evil](http://evil.example)",
            "frames": ["```", "x\n## Injected heading", *[f"f{i}" for i in range(5000)]],
        },
        dmesg_tail=["\u202elog line", "![img](https://evil.example/i.png)"] * 500,
        missing=["m"] * 5000,
    )


def test_markup_header_injection_and_oversize_fields_are_bounded_and_escaped() -> None:
    report, used, notes, error = report_check.parse_parser_output(_document(_hostile()))
    assert error is None and used and notes == [] and report is not None
    assert report.panic_message is not None and len(report.panic_message) <= 400
    assert "\r" not in report.panic_message and "\n" not in report.panic_message
    assert "https[:]//evil.example" in report.panic_message
    assert report.crashing_cpu is not None
    assert len(report.crashing_cpu.frames) == report_check.FRAMES_PER_STACK + 1
    assert report.crashing_cpu.frames[-1].endswith("more, left out]")
    assert len(report.dmesg_tail) == report_check.MAX_LOG_LINES + 1
    assert len(report.missing) == report_check.MAX_NOTES + 1

    dump = parse_metadata_key(KEY)
    outcome = job.Outcome("reported", KEY, dump.instance_id, report_keys=["reports/x"])
    message = job.notification(dump, report, outcome, "bucket")
    rows = message.split("\n")
    assert not [row for row in rows if row.startswith(("Bcc:", "Reset", "## "))]
    assert "http://" not in message and "https://" not in message
    assert len(message) < 10_000

    markdown = render_markdown(report)
    assert "](http://" not in markdown and "](https://" not in markdown
    assert "\\<img" in markdown and "http://evil" not in markdown
    assert "\n## Injected heading" not in markdown
    assert "\\[evil\\]" in markdown
    assert len(job.summary_line(report)) <= job.SUMMARY_CHARS


@pytest.mark.parametrize(
    ("document", "named"),
    [
        (b"not json", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"report": {}}', "'ok' flag"),
        (_document(_report(format="<script>")), "'format'"),
        (_document(_report(panic_message=["a"])), "'panic_message'"),
        (_document(_report(crashing_cpu={"cpu": -1, "frames": []})), "crashing_cpu.cpu"),
        (_document(_report(other_cpus=[{"cpu": 1, "frames": [1, 2]}])), "'frames'"),
        (_document(_report(load_average=[1, "x", 3])), "'load_average'"),
        (_document(_report(memory={"total": -5})), "'memory'"),
        (_document(_report(uptime_seconds=float("nan"))), "'uptime_seconds'"),
        (_document(_report(), notes="x"), "notes"),
    ],
)
def test_a_report_of_the_wrong_shape_is_refused_naming_the_field(
    document: bytes, named: str
) -> None:
    with pytest.raises(report_check.BadReportError, match=named.replace("(", r"\(")):
        report_check.parse_parser_output(document)


def test_a_parser_failure_is_quoted_as_one_bounded_line() -> None:
    raw = json.dumps({"ok": False, "error": "bad\nBcc: x " + "E" * 5000}).encode()
    report, _used, _notes, error = report_check.parse_parser_output(raw)
    assert report is None and error is not None
    assert "\n" not in error and len(error) <= 1000


ISOLATED = sandbox.ParserUser(os.getuid() + 1 if os.getuid() else 65534, 65534)
CURRENT = sandbox.ParserUser(None, None)


def test_the_supervisor_reads_no_symlink_fifo_or_oversize_report(tmp_path: Path) -> None:
    secret = tmp_path / "environ"
    secret.write_text("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/secret")
    link = tmp_path / "link.json"
    link.symlink_to(secret)
    with pytest.raises(ValueError, match="cannot be opened safely"):
        sandbox.read_report_file(link, CURRENT)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        sandbox.read_report_file(fifo, CURRENT)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2048)
    with pytest.raises(ValueError, match="over 1024"):
        sandbox.read_report_file(big, CURRENT, limit=1024)
    with pytest.raises(ValueError, match="wrote no report"):
        sandbox.read_report_file(tmp_path / "none.json", CURRENT)
    # a file the parser's user does not own (e.g. a hard link to one of root's) is refused
    with pytest.raises(ValueError, match="not a file of the parser's own"):
        sandbox.read_report_file(secret, ISOLATED)


def test_limits_follow_the_dump_and_the_deadline() -> None:
    small = sandbox.limits_for(input_bytes=40 * 2**20, memory_mib=4096, deadline_seconds=3600)
    big = sandbox.limits_for(input_bytes=50 * 2**30, memory_mib=4096, deadline_seconds=None)
    late = sandbox.limits_for(input_bytes=50 * 2**30, memory_mib=4096, deadline_seconds=900)
    assert small.wall_seconds == sandbox.BASE_SECONDS + sandbox.SECONDS_PER_GIB
    assert big.wall_seconds == sandbox.BASE_SECONDS + 51 * sandbox.SECONDS_PER_GIB
    assert late.wall_seconds == 840  # the job's deadline less a minute to record the outcome
    assert small.address_space_bytes == (4096 - sandbox.SUPERVISOR_RESERVE_MIB) * 2**20
    assert small.cpu_seconds == small.wall_seconds
    with pytest.raises(sandbox.SandboxError, match="raise the job's timeout"):
        sandbox.limits_for(input_bytes=1, memory_mib=4096, deadline_seconds=80)


def test_the_parser_user_is_never_root_and_needs_a_root_supervisor() -> None:
    with pytest.raises(sandbox.SandboxError, match="must not run as root"):
        sandbox.ParserUser.resolve("0")
    with pytest.raises(sandbox.SandboxError, match="no such user"):
        sandbox.ParserUser.resolve("no-such-user-crashcart")
    assert not sandbox.ParserUser.resolve("current").isolated
    if os.geteuid() == 0:
        assert sandbox.ParserUser.resolve(None) == sandbox.ParserUser(65534, 65534)
    else:
        with pytest.raises(sandbox.SandboxError, match="not root"):
            sandbox.ParserUser.resolve(None)


def test_the_parser_environment_is_built_from_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/x")
    monkeypatch.setenv("CRASHCART_TABLE_NAME", "t")
    env = sandbox.parser_environment(Path("/scratch/x/out"))
    assert set(env) == {
        "PATH",
        "PYTHONPATH",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONNOUSERSITE",
        "HOME",
        "TMPDIR",
        "LANG",
    }
