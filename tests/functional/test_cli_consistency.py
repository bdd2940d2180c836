"""The ``crashcart`` subcommands agree: --version, plain --help, credentials and regions.

They share crashcart/cli/support.py: the same words and exit codes for missing or unusable
credentials (3) and for a missing or malformed region (2), plain-text help, and --version.
Every AWS endpoint here is 127.0.0.1 (nothing listens on port 9): no request leaves the
machine, and none is needed to fail these ways.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crashcart import cli
from crashcart.cli.support import version
from crashcart.triage.report import escape_markdown
from tests.conftest import TEST_REGION
from tests.support.dumps import NMI_PANIC_DMESG, vmcore_bytes

CONSOLE = Path(sys.executable).parent / "crashcart"
INSTANCE = "i-0123456789abcdef0"
#: The argument each AWS subcommand needs besides the region.
AWS_COMMANDS = {
    "check-permissions": ["check-permissions", "--instance-id", INSTANCE],
    "attestation": ["attestation"],
}
NO_CREDENTIALS = (
    "error: no AWS credentials found: configure a profile (--profile), environment variables "
    "or an SSO session"
)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_EC2_METADATA_DISABLED": "true",
        **(env or {}),
    }
    return subprocess.run(
        [str(CONSOLE), *args], env=full, capture_output=True, text=True, timeout=120, check=False
    )


def _no_credentials(tmp_path: Path) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SESSION_TOKEN": "",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }


# -- --version and --help ------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["check-permissions"], ["attestation"], ["triage"]])
def test_version(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([*command, "--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"crashcart {version()}"


def test_version_is_the_installed_distribution() -> None:
    from importlib import metadata

    assert version() == metadata.version("crashcart")
    done = subprocess.run(
        [sys.executable, "-m", "crashcart.triage", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (done.returncode, done.stdout.strip()) == (0, f"crashcart {version()}")


@pytest.mark.parametrize("command", [[], ["check-permissions"], ["attestation"], ["triage"]])
def test_help_is_plain_text(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([*command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for markup in ("``", ":class:", ":meth:", ":func:", ":mod:", "====="):
        assert markup not in text, (markup, text)
    assert "--version" in text
    if command:
        assert "exit codes:" in text


# -- credentials: the same words and exit code from both AWS commands ---------------------


@pytest.mark.parametrize("command", sorted(AWS_COMMANDS))
def test_missing_credentials_same_message_exit_3(command: str, tmp_path: Path) -> None:
    done = run(*AWS_COMMANDS[command], "--region", TEST_REGION, env=_no_credentials(tmp_path))
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert f"crashcart {command}: {NO_CREDENTIALS}" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.parametrize("command", sorted(AWS_COMMANDS))
def test_unknown_profile_same_message_exit_3(command: str, tmp_path: Path) -> None:
    done = run(
        *AWS_COMMANDS[command],
        "--region",
        TEST_REGION,
        "--profile",
        "no-such-profile",
        env={"AWS_CONFIG_FILE": str(tmp_path / "config")},
    )
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert f"crashcart {command}: error: AWS credentials unusable: " in done.stderr
    assert "no-such-profile" in done.stderr and "Traceback" not in done.stderr


# -- regions: validated the same way ------------------------------------------------------


@pytest.mark.parametrize("command", sorted(AWS_COMMANDS))
@pytest.mark.parametrize("region", ["eu_west_1", "EU-WEST-1", "westeurope", "eu-west-1\n"])
def test_malformed_region_same_message_exit_2(command: str, region: str) -> None:
    done = run(*AWS_COMMANDS[command], "--region", region)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert (
        f"crashcart {command}: error: region {region!r} (--region) is not an AWS region name"
        in done.stderr
    )


@pytest.mark.parametrize("command", sorted(AWS_COMMANDS))
def test_a_malformed_configured_region_is_named_too(command: str, tmp_path: Path) -> None:
    done = run(
        *AWS_COMMANDS[command], env={"AWS_REGION": "eu west 1", "AWS_DEFAULT_REGION": "eu west 1"}
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "region 'eu west 1' (the AWS configuration) is not an AWS region name" in done.stderr


@pytest.mark.parametrize("command", sorted(AWS_COMMANDS))
def test_no_region_same_message_exit_2(command: str, tmp_path: Path) -> None:
    env = {"AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_CONFIG_FILE": str(tmp_path)}
    done = run(*AWS_COMMANDS[command], env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"crashcart {command}: error: no region: pass --region or configure one" in done.stderr


# -- triage without drgn ------------------------------------------------------------------


@pytest.fixture
def shipped_dump(tmp_path: Path) -> Path:
    """A dump folder as the agent ships it: vmcore (fake bytes) and dmesg.txt."""
    dump = tmp_path / "vmcore"
    dump.write_bytes(vmcore_bytes("kdump-compressed"))
    (tmp_path / "dmesg.txt").write_text(NMI_PANIC_DMESG)
    return dump


@pytest.mark.parametrize("with_vmlinux", [False, True], ids=["log-only", "vmlinux-given"])
def test_triage_without_drgn_gives_the_log_only_report(
    shipped_dump: Path,
    with_vmlinux: bool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "drgn", None)  # `import drgn` raises ImportError
    args = ["triage", str(shipped_dump)]
    if with_vmlinux:
        vmlinux = shipped_dump.parent / "vmlinux"
        vmlinux.write_bytes(b"\x7fELF")
        args += ["--vmlinux", str(vmlinux)]
    code = cli.main(args)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Kernel panic" in captured.out or "NMI: Not continuing" in captured.out
    # The report is Markdown, and its notes are escaped as such (crashcart.triage.report).
    assert escape_markdown("drgn is not installed (pip install 'crashcart[triage]')") in (
        captured.out
    )
    assert "crashcart triage: warning: drgn is not installed" in captured.err
    if with_vmlinux:
        assert "was not used" in captured.out


def test_triage_without_drgn_still_refuses_what_is_not_a_dump(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "drgn", None)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a crash dump\n")
    assert cli.main(["triage", str(notes)]) == 2
    assert "not a crash dump" in capsys.readouterr().err
