"""checkov over the reference app's templates: no failed check, every skip listed here.

A skip is written at the resource (``Metadata: checkov: skip``) by
``crashcart.compliance.skip_checkov``, or by an acknowledgement of the cdk-nag finding that
tests the same property (``crashcart.compliance.CHECKOV_SAME_CHECK``); each carries its
reason. The list below is literal so that a new skip shows in review.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from crashcart.compliance import acknowledge, skip_checkov
from crashcart.errors import ConfigurationError
from tests.support.checkov import checkov_cli, checkov_command, network_is_cut_off, run_checkov
from tests.support.reference import reference_template_files_without_nag

#: (check id, resource) of every skipped check in the reference app.
EXPECTED_SKIPS = (
    {
        ("CKV_AWS_18", "AWS::S3::Bucket.DebugSymbolsAccessLogsAA29520D"),
        ("CKV_AWS_18", "AWS::S3::Bucket.KdumpImagePipelineAccessLogsFBAB84A0"),
        ("CKV_AWS_18", "AWS::S3::Bucket.CrashDumpsAccessLogsD72BA3EB"),
        ("CKV_AWS_33", "AWS::KMS::Key.KdumpImagePipelineKeyDC03BA98"),
    }
    | {
        (check, f"AWS::Lambda::Function.{function}")
        for function in (
            "CrashDumpsDumpArrivalFunctionA304B544",
            "RemediationFunction559AD217",
            "DumpOverdueSweepFunction976DF652",
            "HoldFunctionEBF17CF5",
            "KillSwitchReachFunction0D5E2982",
        )
        for check in ("CKV_AWS_115", "CKV_AWS_117", "CKV_AWS_173")
    }
    | {
        ("CKV_AWS_116", "AWS::Lambda::Function.RemediationFunction559AD217"),
        ("CKV_AWS_116", "AWS::Lambda::Function.DumpOverdueSweepFunction976DF652"),
        ("CKV_AWS_116", "AWS::Lambda::Function.HoldFunctionEBF17CF5"),
        ("CKV_AWS_116", "AWS::Lambda::Function.KillSwitchReachFunction0D5E2982"),
    }
)

#: Measured with checkov 3.3.30: 108 resources, 217 passed checks. The bounds leave room for
#: growth but fail if checkov stops reading the templates.
MIN_RESOURCES = 100
MIN_PASSED = 200


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    templates = reference_template_files_without_nag()
    assert len(templates) == 3
    return run_checkov(sorted(templates.values()))


def test_checkov_finds_no_failed_check(report: dict[str, Any]) -> None:
    failed = [
        (check["check_id"], check["resource"], check["file_path"], check["check_name"])
        for check in report["results"]["failed_checks"]
    ]
    assert failed == []


def test_checkov_really_checked_the_templates(report: dict[str, Any]) -> None:
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= MIN_RESOURCES, summary
    assert summary["passed"] >= MIN_PASSED, summary


def test_every_skip_is_listed_and_has_a_reason(report: dict[str, Any]) -> None:
    skipped = report["results"]["skipped_checks"]
    assert {(check["check_id"], check["resource"]) for check in skipped} == EXPECTED_SKIPS
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment", "")) >= 20, check


def test_checkov_runs_without_a_network() -> None:
    """The report above came from a checkov with no network interface but loopback (root
    or user namespaces); it still passed, so it needs none."""
    if not network_is_cut_off():
        pytest.skip("unshare --net is not permitted here: offline only by flags and env")
    assert network_is_cut_off()


def _template(tmp_path: Path, resources: dict[str, Any]) -> Path:
    path = tmp_path / "probe.template.json"
    path.write_text(json.dumps({"Resources": resources}), encoding="utf-8")
    return path


def test_the_gate_can_fail_and_reads_the_skip_metadata(tmp_path: Path) -> None:
    bare = {"Type": "AWS::S3::Bucket", "Properties": {}}
    skipped = {
        **bare,
        "Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_18", "comment": "probe reason"}]}},
    }
    report = run_checkov([_template(tmp_path, {"Bare": bare, "Skipped": skipped})])
    failed = {(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]}
    skips = {(c["check_id"], c["resource"]) for c in report["results"]["skipped_checks"]}
    assert ("CKV_AWS_18", "AWS::S3::Bucket.Bare") in failed
    assert ("CKV_AWS_18", "AWS::S3::Bucket.Skipped") not in failed
    assert skips == {("CKV_AWS_18", "AWS::S3::Bucket.Skipped")}


def test_the_fork_servers_run_is_the_commands(tmp_path: Path) -> None:
    """checkov run by this process's fork server (tests/support/checkov.py) says what the
    ``checkov`` command says with the same arguments: exit status 1 and the same report."""
    bare = {"Type": "AWS::S3::Bucket", "Properties": {}}
    argv = ["--skip-download", "--framework", "cloudformation", "--output", "json"]
    argv += ["--file", str(_template(tmp_path, {"Bare": bare}))]
    command, served = checkov_cli(argv), checkov_command(argv)
    assert command.returncode == 1, command.stdout[-2000:] + command.stderr[-2000:]
    assert served.returncode == command.returncode, served.stderr[-2000:]
    assert json.loads(served.stdout) == json.loads(command.stdout)


def test_a_fork_server_that_died_is_reported_and_replaced(tmp_path: Path) -> None:
    """The server runs in a network namespace of its own where the machine allows one; a
    server that died says so in the run's error, and the next run starts a new one."""
    from tests.support import checkov as support

    argv = ["--skip-download", "--framework", "cloudformation", "--output", "json"]
    argv += ["--file", str(_template(tmp_path, {"Bare": {"Type": "AWS::S3::Bucket"}}))]
    first = checkov_command(argv)
    server = support._server()
    if network_is_cut_off():
        assert os.readlink(f"/proc/{server.pid}/ns/net") != os.readlink("/proc/self/ns/net")
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    with pytest.raises(AssertionError, match=r"checkov's fork server (had ended|ended during)"):
        checkov_command(argv)
    again = checkov_command(argv)
    assert first.returncode == again.returncode == 1, again.stderr[-2000:]
    assert support._server().pid != server.pid


def _function(stack: cdk.Stack) -> lambda_.Function:
    return lambda_.Function(
        stack,
        "Function",
        runtime=lambda_.Runtime.PYTHON_3_14,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return None\n"),
    )


def test_skip_checkov_writes_the_metadata_on_the_resource() -> None:
    stack = cdk.Stack(cdk.App(), "Probe")
    bucket = s3.Bucket(stack, "Bucket")
    skip_checkov(bucket, "CKV_AWS_18", "first reason, long enough")
    skip_checkov(bucket, "CKV_AWS_21", "second reason, long enough")
    skip_checkov(bucket, "CKV_AWS_18", "replaced reason, long enough")
    function = _function(stack)
    acknowledge(
        function,
        "NIST.800.53.R5::NIST.800.53.R5-LambdaInsideVPC",
        "probe: the function calls only regional APIs",
    )
    template = Template.from_stack(stack).to_json()["Resources"]
    bucket_id = stack.get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
    function_id = stack.get_logical_id(function.node.default_child)  # type: ignore[arg-type]
    assert template[bucket_id]["Metadata"]["checkov"]["skip"] == [
        {"id": "CKV_AWS_21", "comment": "second reason, long enough"},
        {"id": "CKV_AWS_18", "comment": "replaced reason, long enough"},
    ]
    assert template[function_id]["Metadata"]["checkov"]["skip"] == [
        {"id": "CKV_AWS_117", "comment": "probe: the function calls only regional APIs"}
    ]


@pytest.mark.parametrize(
    ("check", "reason", "message"),
    [
        ("AwsSolutions-S1", "a long enough reason for the check", "not a checkov id"),
        ("CKV_AWS_18", "too short", "give a specific reason"),
    ],
)
def test_fails_on_a_malformed_skip(check: str, reason: str, message: str) -> None:
    bucket = s3.Bucket(cdk.Stack(cdk.App(), "Probe"), "Bucket")
    with pytest.raises(ConfigurationError, match=message):
        skip_checkov(bucket, check, reason)


def test_fails_on_a_skip_that_reaches_no_resource() -> None:
    stack = cdk.Stack(cdk.App(), "Probe")
    with pytest.raises(ConfigurationError, match="no CloudFormation resource"):
        skip_checkov(stack, "CKV_AWS_18", "a long enough reason for the check")
