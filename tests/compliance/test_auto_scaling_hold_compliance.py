"""AutoScalingHold with held groups and the backstop: five cdk-nag packs, checkov, cfn-lint.

The reference app's default has no group (no hook, no lifecycle rule) and, in dry run, no
backstop; this stack has both, armed, next to the remediation it serves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_autoscaling as autoscaling

from crashcart.compliance import add_compliance_checks
from crashcart.constructs.auto_scaling_hold import AutoScalingHold
from crashcart.constructs.crash_dump_bucket import CrashDumpBucket
from crashcart.constructs.unresponsive_instance_remediation import (
    FleetWatch,
    UnresponsiveInstanceRemediation,
)
from tests.support.cfn_lint import cfn_lint
from tests.support.checkov import run_checkov
from tests.support.nag import assert_every_pack_ran_clean, validation_report
from tests.support.remediation import app_context, env

STACK = "HeldGroups"


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("cdk-out-hold")
    app = cdk.App(outdir=str(outdir), context=app_context())
    add_compliance_checks(app)
    stack = cdk.Stack(app, STACK, env=env())
    dumps = CrashDumpBucket(stack, "CrashDumps")
    remediation = UnresponsiveInstanceRemediation(
        stack,
        "Remediation",
        dumps=dumps,
        fleet=FleetWatch(),
        dry_run=False,
    )
    AutoScalingHold(
        stack,
        "Hold",
        remediation=remediation,
        groups=[
            autoscaling.AutoScalingGroup.from_auto_scaling_group_name(stack, f"G{i}", name)
            for i, name in enumerate(("web", "workers"))
        ],
        backstop=True,
    )
    app.synth()  # raises ValidationFailed on any unacknowledged finding
    return outdir


def test_all_five_packs_pass(synthesized: Path) -> None:
    assert_every_pack_ran_clean(synthesized)


def test_the_holds_acknowledgements_are_narrow_and_have_reasons(synthesized: Path) -> None:
    found: set[tuple[str, str]] = set()
    for plugin in validation_report(synthesized)["pluginReports"]:
        for violation in plugin.get("suppressedViolations", []):
            for construct in violation["violatingConstructs"]:
                path = construct["constructPath"]
                if path.startswith(f"{STACK}/Hold/"):
                    assert len(violation.get("reason", "")) >= 20, violation
                    found.add((path.split("/", 2)[2], violation["acknowledgedId"]))
    # nothing on the hooks, the rules or the backstop alarm: only function, its managed
    # policy, queue
    assert {path.split("/")[0] for path, _ in found} == {
        "Function",
        "FunctionPolicy",
        "DeadLetterQueue",
    }
    iam5 = {finding for path, finding in found if "IAM5" in finding}
    assert any("autoScalingGroupName/web" in f for f in iam5), iam5
    assert any("autoScalingGroupName/workers" in f for f in iam5), iam5


def test_checkov_finds_no_failed_check(synthesized: Path) -> None:
    report: dict[str, Any] = run_checkov([synthesized / f"{STACK}.template.json"])
    failed = [
        (check["check_id"], check["resource"]) for check in report["results"]["failed_checks"]
    ]
    assert failed == []
    assert report["summary"]["passed"] > 50


def test_cfn_lint(synthesized: Path) -> None:
    result = cfn_lint(synthesized / f"{STACK}.template.json")
    assert result.returncode == 0, result.stdout + result.stderr
