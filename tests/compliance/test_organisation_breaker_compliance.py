"""The organisation breaker's two sides pass the five cdk-nag packs, checkov and cfn-lint:
the central account's ``OrganisationBreaker`` stack, and a member's remediation with
``organisation=OrganisationLink(...)``. Acknowledgements and skips are listed literally."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3

from crashcart import FleetWatch, OrganisationBreaker, OrganisationLink
from crashcart import UnresponsiveInstanceRemediation as Remediation
from crashcart.compliance import NAG_PACKS, add_compliance_checks
from crashcart.constructs.existing_dump_bucket import ExistingDumpBucket
from tests.conftest import TEST_REGION
from tests.support.cfn_lint import cfn_lint
from tests.support.checkov import checkov_summary, run_checkov
from tests.support.nag import validation_report
from tests.support.remediation import new_app

CENTRAL = "999999999999"
ORG = "o-a1b2c3d4e5"
LINK = OrganisationLink(
    breaker_table_arn=f"arn:aws:dynamodb:{TEST_REGION}:{CENTRAL}:table/crashcart-org-breaker",
    breaker_key_arn=f"arn:aws:kms:{TEST_REGION}:{CENTRAL}:key/1234abcd-12ab-34cd-56ef-1234",
    central_event_bus_arn=f"arn:aws:events:{TEST_REGION}:{CENTRAL}:event-bus/crashcart-central",
)
_NIST_HIPAA = ("NIST.800.53.R5", "HIPAA.Security")


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("organisation-nag")
    app = new_app(str(outdir))
    central = cdk.Stack(app, "OrgCentral", env=cdk.Environment(account=CENTRAL, region=TEST_REGION))
    OrganisationBreaker(central, "OrgBreaker", organisation_id=ORG)
    member = cdk.Stack(
        app, "OrgMember", env=cdk.Environment(account="111111111111", region=TEST_REGION)
    )
    # The evidence bucket of the member account (not under test here: imported).
    bucket = s3.Bucket.from_bucket_name(member, "Evidence", "crashcart-evidence-111111111111")
    Remediation(
        member,
        "Remediation",
        dumps=ExistingDumpBucket(bucket=bucket),
        fleet=FleetWatch(),
        organisation=LINK,
    )
    add_compliance_checks(app)
    app.synth()  # raises ValidationFailed on any unacknowledged finding
    return outdir


@pytest.fixture(scope="module")
def report(assembly: Path) -> dict[str, Any]:
    return validation_report(assembly)


def test_every_pack_ran_and_nothing_is_left_open(report: dict[str, Any]) -> None:
    packs = {plugin["pluginName"] for plugin in report["pluginReports"]}
    assert packs - {"Construct Annotations"} == set(NAG_PACKS)
    open_findings = [
        (plugin["pluginName"], violation["ruleName"])
        for plugin in report["pluginReports"]
        for violation in plugin.get("violations", [])
    ]
    assert open_findings == []


def test_the_central_stack_acknowledges_only_the_backup_plan(report: dict[str, Any]) -> None:
    used = {
        (s["acknowledgedAt"], s["acknowledgedId"])
        for plugin in report["pluginReports"]
        for s in plugin.get("suppressedViolations", [])
        if s["acknowledgedAt"].startswith("OrgCentral")
    }
    assert used == {
        ("OrgCentral/OrgBreaker/Table", f"{pack}::{pack}-DynamoDBInBackupPlan")
        for pack in _NIST_HIPAA
    }


def test_the_organisation_policy_needs_no_acknowledgement(report: dict[str, Any]) -> None:
    at = {
        s["acknowledgedAt"]
        for plugin in report["pluginReports"]
        for s in plugin.get("suppressedViolations", [])
    }
    assert not any("OrganisationPolicy" in path for path in at)


def test_checkov_and_cfn_lint_pass_both_templates(assembly: Path) -> None:
    templates = [assembly / "OrgCentral.template.json", assembly / "OrgMember.template.json"]
    summary = checkov_summary(templates)
    failed = [
        (check["check_id"], check["resource"])
        for report in [run_checkov(templates)]
        for check in report.get("results", {}).get("failed_checks", [])
    ]
    assert (summary["failed"], failed) == (0, [])
    skipped = {
        (check["check_id"], check["resource"].split(".")[0])
        for check in run_checkov(templates).get("results", {}).get("skipped_checks", [])
        if "OrgBreaker" in check["resource"]
    }
    assert skipped == {("CKV_AWS_33", "AWS::KMS::Key")}
    assert summary["parsing_errors"] == 0 and summary["resource_count"] > 20
    for template in templates:
        result = cfn_lint(template)
        assert result.returncode == 0, result.stdout + result.stderr
