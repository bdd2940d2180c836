"""CrashDumpBucket passes all five cdk-nag packs with narrow acknowledgements, and cfn-lint.

One app is synthesized per module (with the nag plugins); the tests read its outputs.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam

from crashcart.compliance import add_compliance_checks
from crashcart.constructs.crash_dump_bucket import CrashDumpBucket
from tests.conftest import TEST_ACCOUNT, TEST_REGION
from tests.support.cfn_lint import cfn_lint
from tests.support.incidents import stand_in_incidents, store_of
from tests.support.nag import assert_every_pack_ran_clean, validation_report

STACK = "CrashDumps"


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("cdk-out-dumps")
    app = cdk.App(outdir=str(outdir))
    add_compliance_checks(app)
    stack = cdk.Stack(app, STACK, env=cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION))
    role = iam.Role(stack, "InstanceRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    analyst = iam.Role(stack, "Analyst", assumed_by=iam.AccountRootPrincipal())
    dumps = CrashDumpBucket(stack, "Dumps", instance_roles=[role])
    dumps.grant_read(analyst)
    table, topic, _key = stand_in_incidents(stack)
    dumps.notify_incidents(incidents=store_of(stack, table, topic))
    app.synth()  # raises ValidationFailed on any unacknowledged finding
    return outdir


def test_all_five_packs_pass(synthesized: Path) -> None:
    assert_every_pack_ran_clean(synthesized)


def _acknowledged(outdir: Path) -> set[tuple[str, str]]:
    """(construct path below the stack, acknowledged id) of every suppressed finding."""
    found = set()
    for plugin in validation_report(outdir)["pluginReports"]:
        for violation in plugin.get("suppressedViolations", []):
            assert len(violation.get("reason", "")) >= 20, violation
            for construct in violation["violatingConstructs"]:
                path = construct["constructPath"].split("/", 1)[1]
                found.add((path, violation["acknowledgedId"]))
    return found


def test_acknowledgements_are_narrow(synthesized: Path) -> None:
    """Every acknowledgement sits on the construct that causes it (a new one shows here)."""
    flat = _acknowledged(synthesized)
    assert flat, "no acknowledgement recorded: the report format changed?"
    allowed_paths = (
        "Dumps/AccessLogs",
        "Dumps/Bucket",
        "Dumps/UploadPolicy",
        "Dumps/AgentPolicy",
        "Dumps/ReadPolicy",
        "Dumps/DumpArrival/FailedEvents",
        "Dumps/DumpArrival/Undelivered",
        "Dumps/DumpArrival/Policy",
        "Dumps/DumpArrival/Function",
        "Incidents",
    )
    for path, finding in flat:
        assert path.startswith(allowed_paths), (path, finding)
    # No blanket acknowledgement on the stack or the construct root.
    assert not [p for p, _ in flat if p in ("", "Dumps")]
    iam5 = {f for _, f in flat if "IAM5" in f}
    assert iam5 == {
        "AwsSolutions::AwsSolutions-IAM5[Resource::<DumpsBucketA92B12EA.Arn>/dumps/<aws:userid>/*]",
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:eu-west-1:"
        "111111111111:instance/*]",
        "AwsSolutions::AwsSolutions-IAM5[Resource::<DumpsBucketA92B12EA.Arn>/dumps/*]",
        "AwsSolutions::AwsSolutions-IAM5[Resource::<DumpsBucketA92B12EA.Arn>/*]",
    }


def test_cfn_lint(synthesized: Path) -> None:
    template = synthesized / f"{STACK}.template.json"
    result = cfn_lint(template)
    assert result.returncode == 0, result.stdout + result.stderr
