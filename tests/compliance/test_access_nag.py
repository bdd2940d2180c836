"""The access stack and a granted role pass all five cdk-nag packs, acknowledged narrowly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam

from crashcart.compliance import acknowledge_all, add_compliance_checks
from crashcart.constructs import grant_diagnostic_interrupt
from crashcart.stacks.access import CrashcartAccessStack
from crashcart.tools.acknowledgements import read_report, summarize
from tests.conftest import TEST_ACCOUNT, TEST_REGION

#: The grantee's own business (a test role with a default inline policy), not the grant's.
INLINE_POLICY_ACKS = {
    f"{pack}::{pack}-IAMNoInlinePolicy": (
        "test role: the grantee decides between inline and managed policies; the grant "
        "adds to whichever identity policy the grantee has"
    )
    for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
}


@pytest.fixture(scope="module")
def nag_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    outdir = tmp_path_factory.mktemp("access-nag")
    app = cdk.App(outdir=str(outdir))
    env = cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION)
    CrashcartAccessStack(app, "AccessPinned", env=env)
    CrashcartAccessStack(app, "AccessAgnostic", require_mfa=True)
    granted = cdk.Stack(app, "Granted", env=env)
    role = iam.Role(granted, "Remediation", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    grant_diagnostic_interrupt(role, regions=[TEST_REGION, "us-east-1"])
    acknowledge_all(role, INLINE_POLICY_ACKS)
    add_compliance_checks(app)
    app.synth()  # raises ValidationFailed on any unacknowledged finding
    return read_report(Path(outdir))


def test_zero_unacknowledged_findings(nag_report: dict[str, Any]) -> None:
    assert summarize(nag_report).violations == 0


def test_acknowledgements_are_exactly_the_reviewed_ones(nag_report: dict[str, Any]) -> None:
    acknowledged = {(a.rule, a.construct_path) for a in summarize(nag_report).acknowledgements}
    instance = "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:{}:instance/*]"
    star = "AwsSolutions-IAM5[Resource::*]"
    pinned = "AccessPinned/OperatorPolicy/Resource/Resource"
    agnostic = "AccessAgnostic/OperatorPolicy/Resource/Resource"
    granted = "Granted/Remediation/DefaultPolicy/Resource"
    assert acknowledged == {
        (instance.format(f"{TEST_REGION}:{TEST_ACCOUNT}"), pinned),
        (star, pinned),
        (instance.format("<AWS::Region>:<AWS::AccountId>"), agnostic),
        (star, agnostic),
        (instance.format(f"{TEST_REGION}:{TEST_ACCOUNT}"), granted),
        (instance.format(f"us-east-1:{TEST_ACCOUNT}"), granted),
        *{
            (f"{pack}-IAMNoInlinePolicy", granted)
            for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
        },
    }


def test_acknowledged_wildcards_are_the_instance_arns_and_describe_star(
    nag_report: dict[str, Any],
) -> None:
    findings = [
        finding
        for plugin in nag_report["pluginReports"]
        for finding in plugin.get("suppressedViolations", [])
    ]
    reasons = {finding.get("reason", "") for finding in findings}
    assert any("instance/* is limited to the named region and account" in r for r in reasons)
    assert any("support no resource-level permissions" in r for r in reasons)
    text = str(findings)
    # The deny statements' ec2:*:*:instance/* never needed an acknowledgement.
    assert ":ec2:*:*:instance/*" not in text


def test_an_extra_wildcard_is_not_covered_by_our_acknowledgements(tmp_path: Path) -> None:
    """The acknowledgement names the exact ARN: a different wildcard on the role still fails."""
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Widened", env=cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION))
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    grant_diagnostic_interrupt(role)
    acknowledge_all(role, INLINE_POLICY_ACKS)
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["ec2:RebootInstances"],
            resources=[f"arn:aws:ec2:{TEST_REGION}:{TEST_ACCOUNT}:instance/*"],
        )
    )
    add_compliance_checks(app)
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    report = read_report(tmp_path)
    open_findings = [
        finding for plugin in report["pluginReports"] for finding in plugin.get("violations", [])
    ]
    assert [finding["ruleName"] for finding in open_findings] == [
        f"AwsSolutions-IAM5[Resource::arn:aws:ec2:{TEST_REGION}:{TEST_ACCOUNT}:instance/*]"
    ]
