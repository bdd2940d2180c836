"""DumpTriageJob under the five cdk-nag packs, and cfn-lint."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest

from crashcart.compliance import add_compliance_checks
from tests.support import triage_job as support
from tests.support.cfn_lint import cfn_lint
from tests.support.nag import assert_every_pack_ran_clean, validation_report


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("cdk-out-triage")
    app = cdk.App(outdir=str(outdir))
    add_compliance_checks(app)
    support.job_stack(app, agnostic=True)
    app.synth()  # raises ValidationFailed on any unacknowledged finding
    return outdir


def test_all_five_packs_pass(synthesized: Path) -> None:
    assert_every_pack_ran_clean(synthesized)


def test_a_callers_ecr_image_also_passes(tmp_path: Path) -> None:
    from aws_cdk import aws_ecr as ecr
    from aws_cdk import aws_ecs as ecs

    app = cdk.App(outdir=str(tmp_path))
    add_compliance_checks(app)
    registry = cdk.Stack(app, "Registry")
    repository = ecr.Repository.from_repository_name(registry, "Repo", "crashcart-triage")
    support.job_stack(
        app, agnostic=True, image=ecs.ContainerImage.from_ecr_repository(repository, "1.0")
    )
    app.synth()  # raises ValidationFailed on any unacknowledged finding


def test_the_jobs_acknowledgements_are_these(synthesized: Path) -> None:
    """Each one has a reason in the construct; a new finding must be looked at here."""
    found = set()
    for plugin in validation_report(synthesized)["pluginReports"]:
        for violation in plugin.get("suppressedViolations", []):
            for construct in violation["violatingConstructs"]:
                path = construct["constructPath"].split("/", 1)[1]
                if path.startswith("Triage/"):
                    rule = violation["acknowledgedId"].split("::", 1)[1]
                    found.add((path.split("/")[1], rule.split("[")[0]))
    assert found == {
        ("TaskPolicy", "AwsSolutions-IAM5"),
        ("ExecutionPolicy", "AwsSolutions-IAM5"),
        ("TaskDefinition", "AwsSolutions-ECS2"),
        ("Vpc", "NIST.800.53.R5-VPCDefaultSecurityGroupClosed"),
        ("Vpc", "HIPAA.Security-VPCDefaultSecurityGroupClosed"),
        ("Vpc", "PCI.DSS.321-VPCDefaultSecurityGroupClosed"),
    } | {
        (queue, rule)
        for queue in ("FailedRuns", "Undelivered")
        for rule in ("AwsSolutions-SQS3", "Serverless-SQSRedrivePolicy")
    }


def test_the_image_context_is_staged_with_the_job(synthesized: Path, tmp_path: Path) -> None:
    assets = json.loads((synthesized / "Triage.assets.json").read_text())["dockerImages"]
    (image,) = assets.values()
    staged = synthesized / image["source"]["directory"]
    assert image["source"]["dockerFile"] == "triage/Dockerfile"
    expected = support.image_context(tmp_path)

    def files(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}

    assert files(staged) == files(expected)


def test_cfn_lint(synthesized: Path) -> None:
    result = cfn_lint(synthesized / "Triage.template.json")
    assert result.returncode == 0, result.stdout + result.stderr
