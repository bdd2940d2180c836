"""CanaryCrashDrill passes the five cdk-nag packs (narrow acknowledgements), cfn-lint, checkov."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
import pytest

from crashcart.compliance import add_compliance_checks
from tests.support.canary_drill_stack import drill_stack
from tests.support.cfn_lint import cfn_lint
from tests.support.checkov import run_checkov
from tests.support.nag import assert_every_pack_ran_clean, validation_report


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("cdk-out-canary-drill")
    app = cdk.App(outdir=str(outdir))
    add_compliance_checks(app)
    drill_stack(app)
    app.synth()  # raises ValidationFailed on any unacknowledged finding
    return outdir


def test_all_five_packs_pass(synthesized: Path) -> None:
    assert_every_pack_ran_clean(synthesized)


def test_the_drills_acknowledgements_are_listed(synthesized: Path) -> None:
    found = set()
    for plugin in validation_report(synthesized)["pluginReports"]:
        for violation in plugin.get("suppressedViolations", []):
            assert len(violation.get("reason", "")) >= 20, violation
            for construct in violation["violatingConstructs"]:
                path = construct["constructPath"].split("/", 1)[1].split("/Resource")[0]
                if path.startswith("CanaryDrill/"):
                    found.add((path, violation["acknowledgedId"].split("[")[0]))
    assert found == EXPECTED, sorted(found ^ EXPECTED)


EXPECTED = {
    ("CanaryDrill/DeadLetterQueue", "AwsSolutions::AwsSolutions-SQS3"),
    ("CanaryDrill/DeadLetterQueue", "Serverless::Serverless-SQSRedrivePolicy"),
    ("CanaryDrill/Policy", "AwsSolutions::AwsSolutions-IAM5"),
    ("CanaryDrill/MachinePolicy", "AwsSolutions::AwsSolutions-IAM5"),
    ("CanaryDrill/StateMachine", "AwsSolutions::AwsSolutions-SF2"),
    ("CanaryDrill/Policy", "AwsSolutions::AwsSolutions-IAM5"),
    ("CanaryDrill/MachineRole/DefaultPolicy", "AwsSolutions::AwsSolutions-IAM5"),
    ("CanaryDrill/StateMachine", "Serverless::Serverless-StepFunctionStateMachineXray"),
    *(
        (f"CanaryDrill/{where}/DefaultPolicy", f"{pack}::{pack}-IAMNoInlinePolicy")
        for where in ("MachineRole", "StateMachine/EventsRole")
        for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
    ),
    *(
        ("CanaryDrill/Table", f"{pack}::{pack}-DynamoDBInBackupPlan")
        for pack in ("NIST.800.53.R5", "HIPAA.Security")
    ),
    ("CanaryDrill/Function", "Serverless::Serverless-LambdaTracing"),
    ("CanaryDrill/Function", "Serverless::Serverless-LambdaDLQ"),
    *(
        ("CanaryDrill/Function", f"{pack}::{pack}-LambdaInsideVPC")
        for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
    ),
    *(
        ("CanaryDrill/Function", f"{pack}::{pack}-{rule}")
        for pack in ("NIST.800.53.R5", "HIPAA.Security")
        for rule in ("LambdaDLQ", "LambdaConcurrency")
    ),
}


def test_cfn_lint(synthesized: Path) -> None:
    result = cfn_lint(synthesized / "DrillStack.template.json")
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov(synthesized: Path) -> None:
    report = run_checkov([synthesized / "DrillStack.template.json"])
    failed = [
        (c["check_id"], c["resource"]) for c in report.get("results", {}).get("failed_checks", [])
    ]
    assert failed == []


def test_the_hang_command_passes_shellcheck_and_loads_the_drills_module(tmp_path: Path) -> None:
    from crashcart.constructs._internal.canary_hang_document import HANG_MODULE, hang_document
    from tests.compliance.test_pipeline_documents import _shellcheck
    from tests.support.tools import require_shellcheck

    require_shellcheck()
    (step,) = hang_document()["mainSteps"]  # type: ignore[misc]
    script = "\n".join(step["inputs"]["runCommand"]) + "\n"
    result = _shellcheck(script, tmp_path, "hang")
    assert result.returncode == 0, result.stdout
    source = (HANG_MODULE / "crashcart_hang.c").read_text(encoding="utf-8")
    assert source.rstrip("\n") in script
    assert script.rstrip().endswith('insmod "$work/crashcart_hang.ko" all_cpus=1')
