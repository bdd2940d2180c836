"""OrganisationCentral passes all five cdk-nag packs with narrow acknowledgements, checkov and
cfn-lint (issue 23). One app is synthesized per module (with the nag plugins)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from crashcart.compliance import add_compliance_checks
from crashcart.constructs.organisation_central import OrganisationCentral
from tests.conftest import TEST_ACCOUNT, TEST_REGION
from tests.support.cfn_lint import cfn_lint
from tests.support.checkov import run_checkov
from tests.support.nag import assert_every_pack_ran_clean, validation_report

STACK = "OrganisationCentral"


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("cdk-out-central")
    app = cdk.App(outdir=str(outdir))
    add_compliance_checks(app)
    stack = cdk.Stack(app, STACK, env=cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION))
    OrganisationCentral(stack, "Central", organisation_id="o-a1b2c3d4e5")
    app.synth()  # raises ValidationFailed on any unacknowledged finding
    return outdir


def test_all_five_packs_pass(synthesized: Path) -> None:
    assert_every_pack_ran_clean(synthesized)


#: Every acknowledgement, where it sits (below the construct) and what it acknowledges: a new
#: one shows here in review.
ACKNOWLEDGED = {
    *{
        ("Dumps/AccessLogs", f"{pack}-{rule}")
        for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
        for rule in ("S3BucketReplicationEnabled", "S3DefaultEncryptionKMS")
    },
    *{
        ("Dumps/Bucket", f"{pack}-S3BucketReplicationEnabled")
        for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
    },
    ("IncidentView/FailedEvents", "Serverless-SQSRedrivePolicy"),
    # the way back: PutEvents on any member's default bus in this Region
    (
        "IncidentView/Policy",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:events:<AWS::Region>:*:event-bus/default]",
    ),
    *{
        ("IncidentView/Function", f"{pack}-LambdaInsideVPC")
        for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
    },
    ("IncidentView/Function", "NIST.800.53.R5-LambdaConcurrency"),
    ("IncidentView/Function", "HIPAA.Security-LambdaConcurrency"),
    ("IncidentView/Function", "Serverless-LambdaAsyncFailureDestination"),
    ("IncidentView/Function", "Serverless-LambdaTracing"),
    ("IncidentView/Undelivered", "AwsSolutions-SQS3"),
    ("IncidentView/Undelivered", "Serverless-SQSRedrivePolicy"),
    ("Incidents/Incidents", "NIST.800.53.R5-DynamoDBInBackupPlan"),
    ("Incidents/Incidents", "HIPAA.Security-DynamoDBInBackupPlan"),
    ("Breaker/Table", "NIST.800.53.R5-DynamoDBInBackupPlan"),
    ("Breaker/Table", "HIPAA.Security-DynamoDBInBackupPlan"),
}


def test_acknowledgements_are_exactly_the_reviewed_ones(synthesized: Path) -> None:
    """Every acknowledgement sits below the construct, on what causes it, with a reason."""
    seen = set()
    for plugin in validation_report(synthesized)["pluginReports"]:
        for violation in plugin.get("suppressedViolations", []):
            assert len(violation.get("reason", "")) >= 20, violation
            at = violation["acknowledgedAt"]
            assert at.startswith(f"{STACK}/Central/"), at
            seen.add(
                (
                    at.removeprefix(f"{STACK}/Central/"),
                    violation["acknowledgedId"].split("::", 1)[-1],
                )
            )
    assert seen == ACKNOWLEDGED


def test_cfn_lint(synthesized: Path) -> None:
    result = cfn_lint(synthesized / f"{STACK}.template.json")
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov(synthesized: Path) -> None:
    report: dict[str, Any] = run_checkov([synthesized / f"{STACK}.template.json"])
    failed = [
        (check["check_id"], check["resource"]) for check in report["results"]["failed_checks"]
    ]
    assert failed == []
