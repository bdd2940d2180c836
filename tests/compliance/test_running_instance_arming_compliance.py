"""RunningInstanceArming (with its opt-in reboot window) passes the five cdk-nag packs with no
acknowledgement, cfn-lint, and checkov with no failed check and no skip."""

from __future__ import annotations

import contextlib
from pathlib import Path

import aws_cdk as cdk
import pytest

from crashcart.compliance import add_compliance_checks
from crashcart.constructs.running_instance_arming import RebootWindow, RunningInstanceArming
from tests.support.cfn_lint import cfn_lint
from tests.support.checkov import checkov_summary
from tests.support.pipeline import ENV, acknowledged_findings, unacknowledged_findings

STACK = "Arming"


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("arming-nag")
    app = cdk.App(outdir=str(outdir))
    add_compliance_checks(app)
    stack = cdk.Stack(app, STACK, env=ENV)
    RunningInstanceArming(
        stack, "Arming", reboot_window=RebootWindow(schedule="cron(0 4 ? * SUN *)")
    )
    # An unacknowledged finding raises; the report says which, and the test below prints it.
    with contextlib.suppress(Exception):
        app.synth()
    return outdir


def test_no_finding_and_no_acknowledgement(assembly: Path) -> None:
    report = assembly / "validation-report.json"
    assert report.is_file(), "the cdk-nag packs did not run"
    assert unacknowledged_findings(report) == []
    assert acknowledged_findings(report) == []


def test_cfn_lint_is_clean(assembly: Path) -> None:
    result = cfn_lint(assembly / f"{STACK}.template.json")
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_fails_nothing_and_skips_nothing(assembly: Path) -> None:
    # checkov 3.3.30 has no check for SSM documents of type Command, associations or
    # maintenance windows (its SSM document checks are for Session Manager documents): it
    # reads the template and reports nothing to check. A future check that fails shows here.
    summary = checkov_summary([assembly / f"{STACK}.template.json"])
    assert summary["parsing_errors"] == 0
    assert summary["failed"] == 0
    assert summary["skipped"] == 0
