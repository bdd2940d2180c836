"""A member stack with CentralDumpReceiver passes all five cdk-nag packs with narrow
acknowledgements, checkov and cfn-lint (issue 23, the way back)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from crashcart.compliance import add_compliance_checks
from crashcart.constructs.central_dump_receiver import CentralDumpReceiver
from crashcart.constructs.incident_store import IncidentStore
from tests.conftest import TEST_ACCOUNT, TEST_REGION
from tests.support.cfn_lint import cfn_lint
from tests.support.checkov import run_checkov
from tests.support.nag import assert_every_pack_ran_clean, validation_report

STACK = "MemberReceiver"


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("cdk-out-receiver")
    app = cdk.App(outdir=str(outdir))
    add_compliance_checks(app)
    stack = cdk.Stack(app, STACK, env=cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION))
    incidents = IncidentStore(stack, "Incidents")
    CentralDumpReceiver(stack, "Receiver", central_account_id="999999999999", incidents=incidents)
    app.synth()  # raises ValidationFailed on any unacknowledged finding
    return outdir


def test_all_five_packs_pass(synthesized: Path) -> None:
    assert_every_pack_ran_clean(synthesized)


#: Every acknowledgement below the receiver and what it acknowledges: a new one shows here.
ACKNOWLEDGED = {
    ("FailedEvents", "Serverless-SQSRedrivePolicy"),
    *{
        ("Function", f"{pack}-LambdaInsideVPC")
        for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
    },
    ("Function", "NIST.800.53.R5-LambdaConcurrency"),
    ("Function", "HIPAA.Security-LambdaConcurrency"),
    ("Function", "Serverless-LambdaAsyncFailureDestination"),
    ("Function", "Serverless-LambdaTracing"),
    ("Undelivered", "AwsSolutions-SQS3"),
    ("Undelivered", "Serverless-SQSRedrivePolicy"),
}


def test_acknowledgements_are_exactly_the_reviewed_ones(synthesized: Path) -> None:
    seen = set()
    for plugin in validation_report(synthesized)["pluginReports"]:
        for violation in plugin.get("suppressedViolations", []):
            assert len(violation.get("reason", "")) >= 20, violation
            at = violation["acknowledgedAt"]
            if not at.startswith(f"{STACK}/Receiver/"):
                continue  # the IncidentStore's own (its tests pin them)
            seen.add(
                (at.removeprefix(f"{STACK}/Receiver/"), violation["acknowledgedId"].split("::")[-1])
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
