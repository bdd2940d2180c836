"""The reference app passes the compliance packs; acknowledgements are listed and narrow."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam

from crashcart.compliance import NAG_PACKS, SAME_CHECK, acknowledge, add_compliance_checks
from crashcart.errors import ConfigurationError
from crashcart.tools.acknowledgements import read_report, render_markdown, summarize
from crashcart.tools.compliance_doc import TABLE_END, TABLE_START
from tests.conftest import REPO_ROOT, TEST_ACCOUNT, TEST_REGION

COMPLIANCE_DOC = REPO_ROOT / "docs" / "compliance.md"


def test_every_pack_ran_with_no_unacknowledged_finding(reference_assembly: Path) -> None:
    # A pack appears in the report only when it has something to say (a finding, open or
    # acknowledged): each of the five has acknowledged findings in the reference app, so
    # each must be there. That every pack runs on every stack is the next test's job.
    summary = summarize(read_report(reference_assembly))
    assert sorted(summary.packs) == sorted(NAG_PACKS)
    assert len(NAG_PACKS) == 5 and "Serverless" in NAG_PACKS
    assert summary.violations == 0


def test_the_packs_watch_every_stack_of_the_reference_app(tmp_path: Path) -> None:
    """A finding planted in each reference stack is reported by every pack."""
    from aws_cdk import aws_s3 as s3
    from aws_cdk import aws_sqs as sqs

    from crashcart.stacks import CONTEXT_ACCOUNT, CONTEXT_REGION, build_reference_app

    app = cdk.App(
        outdir=str(tmp_path),
        context={CONTEXT_ACCOUNT: TEST_ACCOUNT, CONTEXT_REGION: TEST_REGION},
    )
    stacks = build_reference_app(app)
    for stack in stacks:
        s3.Bucket(stack, "PlantedBareBucket")  # no logs, no TLS-only policy: four packs object
        sqs.Queue(stack, "PlantedBareQueue")  # no redrive policy: the Serverless pack objects
    add_compliance_checks(app)
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    report = read_report(tmp_path)
    flagged = {
        (plugin["pluginName"], construct["constructPath"].split("/")[0])
        for plugin in report["pluginReports"]
        for finding in plugin.get("violations", [])
        for construct in finding.get("violatingConstructs", [])
        if "/PlantedBare" in construct["constructPath"]
    }
    assert flagged == {(pack, stack.stack_name) for pack in NAG_PACKS for stack in stacks}


def test_acknowledgements_match_the_reviewed_list(reference_assembly: Path) -> None:
    """docs/compliance.md lists every acknowledgement; a new or vanished one fails here."""
    expected = render_markdown(summarize(read_report(reference_assembly)))
    text = COMPLIANCE_DOC.read_text(encoding="utf-8")
    listed = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip() + "\n"
    assert listed == expected, (
        "the acknowledged findings changed: run `make docs`, review the diff of "
        "docs/compliance.md and commit it with the change that caused it"
    )


def test_every_acknowledgement_has_a_specific_reason(reference_assembly: Path) -> None:
    for ack in summarize(read_report(reference_assembly)).acknowledgements:
        assert len(ack.reason) >= 20, ack
        assert not re.fullmatch(r"(?i)\s*(n/?a|ok|todo|fine|accepted|suppressed)\W*", ack.reason)


def _stack_with_two_wildcard_arns() -> tuple[cdk.App, iam.Role]:
    app = cdk.App()
    stack = cdk.Stack(
        app, "AckProbe", env=cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION)
    )
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    for resource in ("instance", "volume"):
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ec2:DescribeInstances"],
                resources=[stack.format_arn(service="ec2", resource=resource, resource_name="*")],
            )
        )
    return app, role


def test_an_arn_acknowledgement_covers_that_arn_only() -> None:
    """Finding ids with several '::' (cdk-nag #2351/#2359 in FACTS.md) are acknowledged
    exactly: acknowledging the instance ARN leaves the volume ARN a finding."""
    app, role = _stack_with_two_wildcard_arns()
    acknowledge(
        role,
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:eu-west-1:"
        "111111111111:instance/*]",
        "probe: the instance ARN wildcard is what this test acknowledges",
    )
    add_compliance_checks(app)
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    report = json.loads((Path(app.outdir) / "validation-report.json").read_text())
    aws = next(p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions")
    open_ids = {v["ruleName"] for v in aws["violations"]}
    acked = {v["ruleName"] for v in aws["suppressedViolations"]}
    assert any("volume/*" in rule for rule in open_ids)
    assert not any("instance/*" in rule for rule in open_ids)
    assert any("instance/*" in rule for rule in acked)


def test_one_reason_answers_the_same_check_in_every_pack(tmp_path: Path) -> None:
    """Acknowledging AwsSolutions-SQS3 (no dead-letter queue) also acknowledges the
    Serverless pack's SQSRedrivePolicy on that queue, with the same reason (SAME_CHECK)."""
    from aws_cdk import aws_sqs as sqs

    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(
        app, "SameCheck", env=cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION)
    )
    acked = sqs.Queue(stack, "Acked", enforce_ssl=True)
    sqs.Queue(stack, "NotAcked", enforce_ssl=True)
    reason = "probe: this queue is itself a dead-letter store"
    acknowledge(acked, "AwsSolutions::AwsSolutions-SQS3", reason)
    add_compliance_checks(app)
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    report = read_report(tmp_path)
    suppressed = {
        (plugin["pluginName"], finding["ruleName"], construct["constructPath"], finding["reason"])
        for plugin in report["pluginReports"]
        for finding in plugin.get("suppressedViolations", [])
        for construct in finding["violatingConstructs"]
    }
    open_findings = {
        (finding["ruleName"], construct["constructPath"])
        for plugin in report["pluginReports"]
        for finding in plugin.get("violations", [])
        for construct in finding["violatingConstructs"]
    }
    path = "SameCheck/Acked/Resource"
    assert ("AwsSolutions", "AwsSolutions-SQS3", path, reason) in suppressed
    assert ("Serverless", "Serverless-SQSRedrivePolicy", path, reason) in suppressed
    assert ("Serverless-SQSRedrivePolicy", "SameCheck/NotAcked/Resource") in open_findings
    assert SAME_CHECK["AwsSolutions::AwsSolutions-SQS3"] == (
        "Serverless::Serverless-SQSRedrivePolicy",
    )


@pytest.mark.parametrize(
    ("finding", "reason"),
    [
        ("AwsSolutions-IAM5", "a long enough reason for the check"),
        ("Unknown::Rule", "a long enough reason for the check"),
        ("AwsSolutions::AwsSolutions-SQS3", "too short"),
    ],
)
def test_fails_on_a_malformed_acknowledgement(finding: str, reason: str) -> None:
    _app, role = _stack_with_two_wildcard_arns()
    with pytest.raises(ConfigurationError):
        acknowledge(role, finding, reason)


def test_acknowledgement_tool_prints_the_table(reference_assembly: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "crashcart.tools.acknowledgements", str(reference_assembly)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("| pack | rule | construct | reason |")
    assert result.stdout == render_markdown(summarize(read_report(reference_assembly)))
