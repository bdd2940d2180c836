"""fleet=ManagedAlarms() passes the cdk-nag packs, with exactly the reviewed acknowledgements,
and every alarm it adds notifies a topic that allows CloudWatch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crashcart import ManagedAlarms
from crashcart.compliance import add_compliance_checks
from crashcart.stacks.remediation import CrashcartRemediationStack
from tests.conftest import TEST_ACCOUNT, TEST_REGION
from tests.support.nag import validation_report
from tests.support.remediation import env, new_app

_ALL = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
_NIST_HIPAA = ("NIST.800.53.R5", "HIPAA.Security")


def _packs(rule: str, packs: tuple[str, ...]) -> set[str]:
    return {f"{pack}::{pack}-{rule}" for pack in packs}


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("managed-nag")
    app = new_app(str(outdir))
    CrashcartRemediationStack(app, "Managed", env=env(), fleet=ManagedAlarms())
    add_compliance_checks(app)
    app.synth()  # raises ValidationFailed on any unacknowledged finding
    return outdir


@pytest.fixture(scope="module")
def report(assembly: Path) -> dict[str, Any]:
    return validation_report(assembly)


def _acknowledged(report: dict[str, Any]) -> set[tuple[str, str]]:
    used: set[tuple[str, str]] = set()
    for plugin in report["pluginReports"]:
        for suppressed in plugin.get("suppressedViolations", []):
            at = suppressed["acknowledgedAt"]
            assert at != "Managed" and "/" in at, f"acknowledged too broadly at {at!r}"
            if at.startswith("Managed/Remediation/AlarmManager"):
                used.add((at.removeprefix("Managed/Remediation/"), suppressed["acknowledgedId"]))
    return used


def test_nothing_is_left_unacknowledged(report: dict[str, Any]) -> None:
    open_findings = [
        (plugin["pluginName"], violation["ruleName"])
        for plugin in report["pluginReports"]
        for violation in plugin.get("violations", [])
    ]
    assert open_findings == []


def test_the_alarm_managers_acknowledgements_are_exactly_the_reviewed_list(
    report: dict[str, Any],
) -> None:
    prefix_arn = f"arn:aws:cloudwatch:{TEST_REGION}:{TEST_ACCOUNT}:alarm:crashcart-Managed-"
    acknowledged = _acknowledged(report)
    policy = {rule for path, rule in acknowledged if path.startswith("AlarmManager/Policy")}
    assert "AwsSolutions::AwsSolutions-IAM5[Resource::*]" in policy
    assert len(policy) == 2
    assert any(
        rule.startswith(f"AwsSolutions::AwsSolutions-IAM5[Resource::{prefix_arn}")
        for rule in policy
    )
    function = {rule for path, rule in acknowledged if path.startswith("AlarmManager/Function")}
    assert function == (
        _packs("LambdaDLQ", _NIST_HIPAA)
        | _packs("LambdaInsideVPC", _ALL)
        | _packs("LambdaConcurrency", _NIST_HIPAA)
        | {"Serverless::Serverless-LambdaTracing", "Serverless::Serverless-LambdaDLQ"}
    ), sorted(function)
    others = {path for path, _ in acknowledged} - {
        path
        for path, _ in acknowledged
        if path.startswith(("AlarmManager/Policy", "AlarmManager/Function"))
    }
    assert others == set(), sorted(others)
