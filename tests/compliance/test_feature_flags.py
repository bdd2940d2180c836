"""CDK feature flags: cdk.json has the recommended ones, and the constructs do not depend on them.

cdk.json sets every flag a new CDK app gets (the CLI's init template, the same list as
aws-cdk-lib's recommended values), with one deliberate exception listed in DEVIATIONS. A
user's app has its own flags, so the reference app must synthesize and pass every cdk-nag
pack both in a bare ``App()`` (every flag at its unconfigured default) and in an app with
exactly the recommended flags.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from crashcart.compliance import NAG_PACKS, add_compliance_checks
from crashcart.stacks import CONTEXT_ACCOUNT, CONTEXT_REGION, build_reference_app
from tests.conftest import REPO_ROOT, TEST_ACCOUNT, TEST_REGION
from tests.support.nag import validation_report

#: The flags `cdk init` writes into a new app's cdk.json (the pinned CLI's list).
RECOMMENDED_FLAGS_FILE = (
    REPO_ROOT
    / "node_modules"
    / "aws-cdk"
    / "lib"
    / "init-templates"
    / ".recommended-feature-flags.json"
)

#: Where cdk.json deliberately differs from the recommended value, and why.
DEVIATIONS: dict[str, tuple[Any, str]] = {
    "@aws-cdk/core:enableAdditionalMetadataCollection": (
        False,
        "it widens the usage data the CDK puts into AWS::CDK::Metadata for AWS (construct "
        "property keys and values, method calls); crashcart adds no telemetry",
    ),
}


def _recommended() -> dict[str, Any]:
    flags: dict[str, Any] = json.loads(RECOMMENDED_FLAGS_FILE.read_text(encoding="utf-8"))
    assert len(flags) > 50, "the CLI's recommended-flags file changed shape"
    return flags


def _cdk_json_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    return context


def test_cdk_json_sets_every_recommended_flag() -> None:
    context = _cdk_json_context()
    expected = {flag: DEVIATIONS.get(flag, (value,))[0] for flag, value in _recommended().items()}
    actual = {flag: context.get(flag, "<unset>") for flag in expected}
    assert actual == expected


def test_deviations_are_real_and_explained() -> None:
    recommended = _recommended()
    for flag, (value, reason) in DEVIATIONS.items():
        assert flag in recommended and recommended[flag] != value, flag
        assert len(reason) >= 40, flag


def _synthesize_with_packs(outdir: Path, context: dict[str, Any]) -> dict[str, Any]:
    app = cdk.App(outdir=str(outdir), context=context)
    stacks = build_reference_app(app)
    assert len(stacks) == 3
    add_compliance_checks(app)
    app.synth()  # raises ValidationFailed on any unacknowledged finding
    return validation_report(outdir)


@pytest.mark.parametrize("where", ["environment-agnostic", "account and region"])
@pytest.mark.parametrize("flags", ["bare App()", "recommended flags"])
def test_the_reference_app_passes_every_pack_with_and_without_the_flags(
    tmp_path: Path, flags: str, where: str
) -> None:
    """With a known account and region, flags such as @aws-cdk/core:enablePartitionLiterals
    change how ARNs render, and with them the ids of ARN-specific acknowledgements."""
    context = {} if flags == "bare App()" else _recommended()
    if where == "account and region":
        context |= {CONTEXT_ACCOUNT: TEST_ACCOUNT, CONTEXT_REGION: TEST_REGION}
    report = _synthesize_with_packs(tmp_path, context)
    plugins = report["pluginReports"]
    assert sorted(plugin["pluginName"] for plugin in plugins) == sorted(NAG_PACKS)
    assert [v for plugin in plugins for v in plugin.get("violations", [])] == []
    # The run really was under those flags: the cross-stack reference follows
    # @aws-cdk/core:defaultCrossStackReferences (strong, the unconfigured default: an
    # export; weak, recommended: an output read with Fn::GetStackOutput).
    remediation = (tmp_path / "CrashcartRemediation.template.json").read_text()
    assert ("Fn::GetStackOutput" in remediation) == (flags == "recommended flags")
    assert ("Fn::ImportValue" in remediation) == (flags == "bare App()")
