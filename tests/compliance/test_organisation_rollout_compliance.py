"""The organisation rollout passes the five cdk-nag packs, checkov and cfn-lint: the StackSet
stack (with its asset copies), the member template it deploys everywhere, and the asset
buckets; every acknowledgement and checkov skip is on the narrowest construct, listed here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cfn_lint import cfn_lint
from tests.support.checkov import run_checkov
from tests.support.nag import assert_every_pack_ran_clean, validation_report
from tests.support.organisation import DEPLOYING_ACCOUNT, REGIONS, RolloutAssembly, rollout_app

#: checkov skips on the copy function (the first three by the cdk-nag acknowledgements of the
#: same property) and on the member template's functions (as in the reference app).
_FUNCTION_CHECKS = ("CKV_AWS_115", "CKV_AWS_117", "CKV_AWS_173")


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> RolloutAssembly:
    # with the bootstrap key prop: its kms:Decrypt statement on the copy's role is checked too
    return rollout_app(
        str(tmp_path_factory.mktemp("rollout-nag")),
        nag=True,
        bootstrap_key_arn=f"arn:aws:kms:{REGIONS[0]}:{DEPLOYING_ACCOUNT}:key/1234abcd-12ab-34cd",
    )


@pytest.fixture(scope="module")
def templates(assembly: RolloutAssembly) -> dict[str, Path]:
    names = {
        "rollout": "CrashcartRollout.template.json",
        "member": assembly.member_template_file,
        **{region: f"CrashcartAssets-{region}.template.json" for region in REGIONS},
    }
    return {what: assembly.path(name) for what, name in names.items()}


def test_every_nag_pack_ran_clean(assembly: RolloutAssembly) -> None:
    assert_every_pack_ran_clean(assembly.outdir)


def test_the_packs_saw_the_member_template(assembly: RolloutAssembly) -> None:
    """The member stack is synthesized without a stack artifact; its resources are still
    checked: its reviewed acknowledgements (the agent policy's own prefix) were used."""
    report = validation_report(assembly.outdir)
    at = {
        suppressed["acknowledgedAt"]
        for plugin in report["pluginReports"]
        for suppressed in plugin.get("suppressedViolations", [])
    }
    assert any(
        path.startswith("CrashcartRollout/Rollout/Member/Central/AgentPolicy") for path in at
    )
    assert any(path.startswith("CrashcartRollout/Rollout/Member/Remediation") for path in at)
    assert not any(path in ("CrashcartRollout", "CrashcartRollout/Rollout") for path in at), at


def test_the_copy_functions_acknowledgements_are_the_reviewed_list(
    assembly: RolloutAssembly,
) -> None:
    report = validation_report(assembly.outdir)
    used = {
        suppressed["acknowledgedId"]
        for plugin in report["pluginReports"]
        for suppressed in plugin.get("suppressedViolations", [])
        if "/Custom::CDKBucketDeployment" in suppressed["acknowledgedAt"]
    }
    wildcards = {u for u in used if u.startswith("AwsSolutions::AwsSolutions-IAM5[Resource::")}
    # the bootstrap bucket and one asset bucket per Region, nothing else
    assert len(wildcards) == 1 + len(REGIONS), sorted(wildcards)
    assert all("crashcart-assets-" in w or "cdk-hnb659fds-assets-" in w for w in wildcards)


def test_checkov_finds_no_failed_check(templates: dict[str, Path]) -> None:
    report = run_checkov(sorted(templates.values()))
    failed = [
        (check["check_id"], check["resource"], Path(check["file_path"]).name)
        for check in report["results"]["failed_checks"]
    ]
    assert failed == []
    skipped = report["results"]["skipped_checks"]
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment", "")) >= 20, check
    assert {c["check_id"] for c in skipped} <= {
        *_FUNCTION_CHECKS,
        "CKV_AWS_116",
        "CKV_AWS_18",
        "CKV_AWS_158",
    }
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["resource_count"] >= 80, report["summary"]


@pytest.mark.parametrize("what", ["rollout", "member", *REGIONS])
def test_cfn_lint_passes(templates: dict[str, Path], what: str) -> None:
    result = cfn_lint(templates[what])
    assert result.returncode == 0, result.stdout + result.stderr
