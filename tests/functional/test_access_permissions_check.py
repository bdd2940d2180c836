"""``crashcart check-permissions`` against botocore's Stubber, with exact expected parameters."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from crashcart import cli
from crashcart.cli import check_permissions as permissions_check
from crashcart.cli.check_permissions import Outcome, check_permissions, classify_instance_type
from crashcart.errors import ConfigurationError
from crashcart.opt_in import OptInTag
from tests.conftest import TEST_REGION

INSTANCE = "i-0123456789abcdef0"
OPTED_IN = [{"Key": "crashcart:diagnostic-interrupt", "Value": "enabled"}]


@pytest.fixture
def ec2() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("ec2", region_name=TEST_REGION)
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _dry_run(stubber: Stubber, code: str = "DryRunOperation") -> None:
    stubber.add_client_error(
        "send_diagnostic_interrupt",
        service_error_code=code,
        service_message="Request would have succeeded, but DryRun flag is set."
        if code == "DryRunOperation"
        else "You are not authorized to perform this operation.",
        http_status_code=412 if code == "DryRunOperation" else 403,
        expected_params={"InstanceId": INSTANCE, "DryRun": True},
    )


def _describe(
    stubber: Stubber,
    *,
    tags: list[dict[str, str]] = OPTED_IN,
    state: str = "running",
    instance_type: str = "m5.large",
    architecture: str = "x86_64",
) -> None:
    stubber.add_response(
        "describe_instances",
        {
            "Reservations": [
                {
                    "Instances": [
                        {
                            "InstanceId": INSTANCE,
                            "InstanceType": instance_type,
                            "Architecture": architecture,
                            "State": {"Code": 16, "Name": state},
                            "Tags": tags,
                        }
                    ]
                }
            ]
        },
        expected_params={"InstanceIds": [INSTANCE]},
    )


def _describe_type(
    stubber: Stubber,
    *,
    instance_type: str = "m5.large",
    hypervisor: str | None = "nitro",
    bare_metal: bool = False,
    architectures: tuple[str, ...] = ("x86_64",),
) -> None:
    info: dict[str, Any] = {
        "InstanceType": instance_type,
        "BareMetal": bare_metal,
        "ProcessorInfo": {"SupportedArchitectures": list(architectures)},
    }
    if hypervisor is not None:
        info["Hypervisor"] = hypervisor
    stubber.add_response(
        "describe_instance_types",
        {"InstanceTypes": [info]},
        expected_params={"InstanceTypes": [instance_type]},
    )


def test_ready_instance(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    _dry_run(stubber)
    _describe(stubber)
    _describe_type(stubber)
    report = check_permissions(client, INSTANCE)
    assert report.outcome is Outcome.READY
    assert report.exit_code == 0
    text = report.render()
    assert "allowed: the DryRun call answered DryRunOperation" in text
    assert "present: crashcart:diagnostic-interrupt=enabled" in text
    assert "x86_64 on Nitro: the verified path" in text
    assert "PROBLEM" not in text
    assert f"{INSTANCE} in {TEST_REGION}" in text


def test_denied(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    _dry_run(stubber, "UnauthorizedOperation")
    _describe(stubber)
    _describe_type(stubber)
    report = check_permissions(client, INSTANCE)
    assert report.outcome is Outcome.DENIED
    assert report.exit_code == 4
    assert "[PROBLEM] permission: denied" in report.render()


def test_not_opted_in_and_denied_reports_both_and_exits_denied(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    _dry_run(stubber, "UnauthorizedOperation")
    _describe(stubber, tags=[{"Key": "Name", "Value": "web"}])
    _describe_type(stubber)
    report = check_permissions(client, INSTANCE)
    problems = [f.problem for f in report.findings if not f.ok]
    assert problems == [Outcome.DENIED, Outcome.NOT_OPTED_IN]
    assert report.exit_code == Outcome.DENIED
    assert "missing: tag the instance crashcart:diagnostic-interrupt=enabled" in report.render()


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ([{"Key": "crashcart:diagnostic-interrupt", "Value": "disabled"}], "is 'disabled'"),
        (
            [{"Key": "CrashCart:Diagnostic-Interrupt", "Value": "enabled"}],
            "case-sensitive",
        ),
        ([], "missing"),
    ],
)
def test_not_opted_in(ec2: tuple[Any, Stubber], tags: list[dict[str, str]], expected: str) -> None:
    client, stubber = ec2
    _dry_run(stubber)
    _describe(stubber, tags=tags)
    _describe_type(stubber)
    report = check_permissions(client, INSTANCE)
    assert report.exit_code == 5
    assert Outcome.NOT_OPTED_IN.value == 5
    assert expected in report.render()


def test_custom_tag(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    _dry_run(stubber)
    _describe(stubber, tags=[{"Key": "team:nmi", "Value": "yes"}])
    _describe_type(stubber)
    report = check_permissions(client, INSTANCE, tag=OptInTag(key="team:nmi", value="yes"))
    assert report.exit_code == 0


def test_stopped_instance(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    _dry_run(stubber)
    _describe(stubber, state="stopped")
    _describe_type(stubber)
    report = check_permissions(client, INSTANCE)
    assert report.exit_code == 7
    assert Outcome.NOT_RUNNING.value == 7
    assert "stopped: only a running instance" in report.render()


def test_xen_type_is_unsupported(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    _dry_run(stubber)
    _describe(stubber, instance_type="m4.large")
    _describe_type(stubber, instance_type="m4.large", hypervisor="xen")
    report = check_permissions(client, INSTANCE)
    assert report.exit_code == 6
    assert Outcome.UNSUPPORTED_TYPE.value == 6
    assert "Xen hypervisor" in report.render()


def test_graviton_is_unverified(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    _dry_run(stubber)
    _describe(stubber, instance_type="m7g.large", architecture="arm64")
    _describe_type(stubber, instance_type="m7g.large", architectures=("arm64",))
    report = check_permissions(client, INSTANCE)
    assert report.exit_code == 8
    assert Outcome.UNVERIFIED.value == 8
    assert "arm64 (Graviton)" in report.render()


def test_instance_not_found(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    _dry_run(stubber, "InvalidInstanceID.NotFound")
    stubber.add_client_error(
        "describe_instances",
        service_error_code="InvalidInstanceID.NotFound",
        service_message=f"The instance ID '{INSTANCE}' does not exist",
        expected_params={"InstanceIds": [INSTANCE]},
    )
    report = check_permissions(client, INSTANCE)
    assert report.exit_code == 3
    assert Outcome.CHECK_FAILED.value == 3
    assert len(report.findings) == 2  # no tag / state / type checks without an instance
    assert "no instance" in report.render()


def test_describe_type_failure_is_a_failed_check(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    _dry_run(stubber)
    _describe(stubber)
    stubber.add_client_error(
        "describe_instance_types",
        service_error_code="UnauthorizedOperation",
        expected_params={"InstanceTypes": ["m5.large"]},
    )
    report = check_permissions(client, INSTANCE)
    assert report.exit_code == Outcome.CHECK_FAILED
    assert "could not describe type m5.large" in report.render()


def test_dry_run_without_error_is_reported_loudly(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    stubber.add_response(
        "send_diagnostic_interrupt", {}, expected_params={"InstanceId": INSTANCE, "DryRun": True}
    )
    _describe(stubber)
    _describe_type(stubber)
    report = check_permissions(client, INSTANCE)
    assert report.exit_code == Outcome.CHECK_FAILED
    assert "whether an interrupt was sent is unknown" in report.render()


def test_malformed_instance_id_is_rejected_before_any_call(ec2: tuple[Any, Stubber]) -> None:
    client, _ = ec2
    with pytest.raises(ConfigurationError, match="not an EC2 instance id"):
        check_permissions(client, "instance-1")


@pytest.mark.parametrize(
    ("instance_type", "architecture", "info", "outcome"),
    [
        ("a1.large", "arm64", {"Hypervisor": "nitro"}, Outcome.UNSUPPORTED_TYPE),
        ("t2.micro", "x86_64", {"Hypervisor": "xen"}, Outcome.UNSUPPORTED_TYPE),
        ("m5.metal", "x86_64", {"BareMetal": True}, None),
        ("c7g.metal", "arm64", {"BareMetal": True}, Outcome.UNVERIFIED),
        ("mac1.metal", "x86_64_mac", {"BareMetal": True}, Outcome.UNVERIFIED),
        ("x9.large", "x86_64", {}, Outcome.UNVERIFIED),
        (
            "m5.large",
            "",
            {"Hypervisor": "nitro", "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]}},
            None,
        ),
    ],
)
def test_classify_instance_type(
    instance_type: str, architecture: str, info: dict[str, Any], outcome: Outcome | None
) -> None:
    assert classify_instance_type(instance_type, architecture, info).problem == outcome


class _FakeSession:
    """Stands in for boto3.session.Session in the CLI test: hands out the stubbed client."""

    client_to_return: Any = None

    def __init__(self, profile_name: str | None = None, region_name: str | None = None) -> None:
        self.region_name = region_name

    def client(self, service: str, region_name: str | None = None) -> Any:
        assert service == "ec2"
        assert region_name == TEST_REGION
        return self.client_to_return


def test_cli_end_to_end(
    ec2: tuple[Any, Stubber],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client, stubber = ec2
    _dry_run(stubber, "UnauthorizedOperation")
    _describe(stubber)
    _describe_type(stubber)
    _FakeSession.client_to_return = client
    monkeypatch.setattr(boto3.session, "Session", _FakeSession)
    code = cli.main(["check-permissions", "--instance-id", INSTANCE, "--region", TEST_REGION])
    out = capsys.readouterr().out
    assert code == 4
    assert "Result: NOT ALLOWED" in out


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-permissions", "--instance-id", "nope", "--region", "x"]) == 2
    assert "not an EC2 instance id" in capsys.readouterr().err
    assert cli.main(["check-permissions", "--instance-id", INSTANCE, "--tag-key", "aws:x"]) == 2
    with pytest.raises(SystemExit) as exited:
        cli.main(["check-permissions"])  # --instance-id is required
    assert exited.value.code == 2
    assert cli.main([]) == 2  # no subcommand: help on stderr


def test_cli_registry_calls_add_parser_of_each_module(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    fake = types.ModuleType("crashcart_fake_subcommand")

    def add_parser(subparsers: Any) -> None:
        parser = subparsers.add_parser("hello")
        parser.set_defaults(handler=lambda args: 42)

    fake.add_parser = add_parser  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "crashcart_fake_subcommand", fake)
    parser = cli.build_parser((*cli.SUBCOMMAND_MODULES, "crashcart_fake_subcommand"))
    args = parser.parse_args(["hello"])
    assert args.handler(args) == 42
    assert isinstance(
        parser.parse_args(["check-permissions", "--instance-id", INSTANCE]), argparse.Namespace
    )
    assert "crashcart.cli.check_permissions" in cli.SUBCOMMAND_MODULES
    assert permissions_check.COMMAND == "check-permissions"


def test_an_unknown_profile_is_a_credentials_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Exit 3 and the words `crashcart attestation` uses (crashcart/cli/support.py)."""
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    code = cli.main(
        ["check-permissions", "--instance-id", INSTANCE, "--profile", "no-such-profile"]
    )
    assert code == 3
    err = capsys.readouterr().err
    assert "error: AWS credentials unusable:" in err and "no-such-profile" in err


def test_python_dash_m_crashcart_is_the_command_line() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "crashcart", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "check-permissions" in result.stdout and "triage" in result.stdout
