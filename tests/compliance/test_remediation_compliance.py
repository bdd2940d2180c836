"""CrashcartRemediationStack (fleet and explicit modes) passes the cdk-nag packs and cfn-lint.

Acknowledgements are listed here one by one: a new one (or one that vanished) fails the
test, so it shows in review. docs/remediation.md explains each.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crashcart.compliance import NAG_PACKS, add_compliance_checks
from crashcart.stacks.remediation import CrashcartRemediationStack
from tests.conftest import TEST_ACCOUNT, TEST_REGION
from tests.support.cfn_lint import cfn_lint
from tests.support.nag import validation_report
from tests.support.remediation import INSTANCE_IDS, env, new_app

STACKS = ("RemediationFleet", "RemediationExplicit")

_ALL = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
_NIST_HIPAA = ("NIST.800.53.R5", "HIPAA.Security")
#: A queue that is itself a dead-letter store: no DLQ (AwsSolutions), no redrive (Serverless).
_DEAD_LETTER_STORE = {"AwsSolutions::AwsSolutions-SQS3", "Serverless::Serverless-SQSRedrivePolicy"}


def _packs(rule: str, packs: tuple[str, ...]) -> set[str]:
    return {f"{pack}::{pack}-{rule}" for pack in packs}


def expected_acknowledgements(stack: str) -> set[tuple[str, str]]:
    """(construct path relative to the stack, acknowledged id) that suppress a finding.

    Only the remediation construct's own: the crash-dump bucket of the stack has its list in
    tests/compliance/test_dumps_compliance.py."""
    entries: dict[str, set[str]] = {
        "Remediation/DeadLetterQueue": _DEAD_LETTER_STORE,
        "Remediation/FailureQueue": _DEAD_LETTER_STORE,
        "Remediation/RejectedQueue": _DEAD_LETTER_STORE,
        "Remediation/FunctionPolicy": {
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            # the interrupt grant writes AWS::Partition; GetConsoleOutput's ARN, formatted by
            # the stack, has the literal partition (@aws-cdk/core:enablePartitionLiterals)
            "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:"
            f"{TEST_REGION}:{TEST_ACCOUNT}:instance/*]",
            f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:aws:ec2:{TEST_REGION}:{TEST_ACCOUNT}"
            ":instance/*]",
            "AwsSolutions::AwsSolutions-IAM5[Resource::<CrashDumpsBucketAE8A221C.Arn>/evidence/*]",
        },
        "Remediation/Function": _packs("LambdaDLQ", _NIST_HIPAA)
        | _packs("LambdaInsideVPC", _ALL)
        | _packs("LambdaConcurrency", _NIST_HIPAA)
        | {"Serverless::Serverless-LambdaDLQ", "Serverless::Serverless-LambdaTracing"},
        "Remediation/Default/Incidents": _packs("DynamoDBInBackupPlan", _NIST_HIPAA),
    }
    if stack == "RemediationFleet":
        entries["Remediation/FleetStatusAlarm"] = _packs("CloudWatchAlarmAction", _NIST_HIPAA)
        # the fleet alarm's partial-data events are kept here (an alarm on every message)
        entries["Remediation/PartialDataQueue"] = _DEAD_LETTER_STORE
    else:
        for instance_id in INSTANCE_IDS:
            entries[f"Remediation/StatusAlarm-{instance_id}"] = _packs(
                "CloudWatchAlarmAction", _NIST_HIPAA
            )
    return {(path, finding) for path, findings in entries.items() for finding in findings}


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("remediation-nag")
    app = new_app(str(outdir))
    CrashcartRemediationStack(app, "RemediationFleet", env=env())
    CrashcartRemediationStack(
        app, "RemediationExplicit", env=env(), instance_ids=list(INSTANCE_IDS)
    )
    add_compliance_checks(app)
    app.synth()  # raises ValidationFailed on any unacknowledged finding
    return outdir


@pytest.fixture(scope="module")
def report(assembly: Path) -> dict[str, Any]:
    return validation_report(assembly)


def test_no_unacknowledged_finding_in_either_mode(report: dict[str, Any]) -> None:
    open_findings = [
        (plugin["pluginName"], violation["ruleName"])
        for plugin in report["pluginReports"]
        for violation in plugin.get("violations", [])
    ]
    # @aws-cdk/core:annotationsInValidationReport (cdk.json) puts construct warnings in the
    # report too; the only one here is the intended warning about instances given by id.
    annotations = [f for f in open_findings if f[0] == "Construct Annotations"]
    assert annotations == [
        ("Construct Annotations", "Annotation::crashcart:remediation:instanceIdsMustBeTagged")
    ]
    assert [f for f in open_findings if f[0] != "Construct Annotations"] == []
    packs = {plugin["pluginName"] for plugin in report["pluginReports"]}
    assert packs - {"Construct Annotations"} == set(NAG_PACKS)


@pytest.mark.parametrize("stack", STACKS)
def test_acknowledgements_are_exactly_the_reviewed_list(report: dict[str, Any], stack: str) -> None:
    used: set[tuple[str, str]] = set()
    for plugin in report["pluginReports"]:
        for suppressed in plugin.get("suppressedViolations", []):
            at = suppressed["acknowledgedAt"]
            assert at != stack and "/" in at, f"acknowledged too broadly at {at!r}"
            assert len(suppressed["reason"]) >= 20
            if at.startswith(f"{stack}/Remediation"):
                used.add((at.removeprefix(f"{stack}/"), suppressed["acknowledgedId"]))
    assert used == expected_acknowledgements(stack)


@pytest.mark.parametrize("stack", STACKS)
def test_the_constructs_acknowledgements_are_all_in_use(
    assembly: Path, report: dict[str, Any], stack: str
) -> None:
    """No stale acknowledgement: every one the remediation code records suppresses a finding."""
    used = {
        (suppressed["acknowledgedAt"], suppressed["acknowledgedId"])
        for plugin in report["pluginReports"]
        for suppressed in plugin.get("suppressedViolations", [])
    }
    metadata = json.loads((assembly / f"{stack}.metadata.json").read_text())
    recorded = {
        (path.lstrip("/"), finding)
        for path, entries in metadata.items()
        for entry in entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
        for finding in entry["data"]
        # grant_diagnostic_interrupt acknowledges its own ARN on the role; the narrower
        # acknowledgement on the role's policy (which also covers GetConsoleOutput) wins.
        if path.lstrip("/") != f"{stack}/Remediation/Role"
        # crashcart's acknowledgements (the nag packs), not the CDK's own records for its
        # template validations (e.g. CloudFormation-Validate::W3010 on a VPC)
        and finding.split("::")[0] in NAG_PACKS
    }
    assert recorded, "no acknowledgement metadata found: the check would prove nothing"
    assert recorded - used == set()


@pytest.mark.parametrize("stack", STACKS)
def test_cfn_lint_is_clean(assembly: Path, stack: str) -> None:
    template = assembly / f"{stack}.template.json"
    result = cfn_lint(template)
    assert result.returncode == 0, result.stdout + result.stderr


def test_reference_stack_defaults(assembly: Path) -> None:
    fleet = json.loads((assembly / "RemediationFleet.template.json").read_text())
    explicit = json.loads((assembly / "RemediationExplicit.template.json").read_text())

    def count(template: dict[str, Any], kind: str) -> int:
        return sum(1 for r in template["Resources"].values() if r["Type"] == kind)

    # status alarm(s), then failure alarms: a queue alarm per queue and, per rule with a
    # dead-letter queue, one on events that queue refused. Remediation 3 + 2 (the alarm rule
    # and the missed-alarm sweep's schedule), dump arrival 2 + 1, triage job 2 + 2,
    # dump-overdue sweep 1 + 1, plus the sweep's attestation alarm; the kill-switch reach
    # 1 + 2; lifecycle hold 1 + 1 (no group given: its schedule rule only; dry run: no
    # backstop). Fleet mode also watches its alarm's partial data (2: the queue's alarm, and
    # one on events its rule could not deliver). Then the self-watch alarms: 4 named
    # (interrupts, breaker, sweep found work, unattested), one per queue (11), two per
    # crashcart function (5) and one per function with an on-failure destination
    # (remediation, overdue sweep, kill-switch reach, lifecycle hold: 4).
    failure_alarms = (3 + 2) + (2 + 1) + (2 + 2) + (1 + 1) + 1 + (1 + 2) + (1 + 1) + 2
    failure_alarms += 4 + 11 + 2 * 5 + 4
    assert count(fleet, "AWS::CloudWatch::Alarm") == 1 + failure_alarms
    # explicit instances: no partial-data watch (its 2 alarms, and its queue's self-watch alarm)
    assert count(explicit, "AWS::CloudWatch::Alarm") == len(INSTANCE_IDS) + failure_alarms - 3
    assert count(fleet, "AWS::ECS::TaskDefinition") == 1  # full triage is on by default
    assert count(fleet, "AWS::EC2::Instance") == 0  # no real instances by default
    for template in (fleet, explicit):
        (function,) = [
            r
            for logical_id, r in template["Resources"].items()
            if r["Type"] == "AWS::Lambda::Function" and logical_id.startswith("Remediation")
        ]
        assert function["Properties"]["Environment"]["Variables"]["CRASHCART_DRY_RUN"] == "true"
        assert set(template["Outputs"]) >= {"KillSwitchParameter", "TopicArn", "IncidentTableName"}
