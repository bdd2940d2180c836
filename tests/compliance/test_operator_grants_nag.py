"""grant_kill_switch / grant_reset_breaker pass the user's own compliance packs.

They used to add statements to the grantee's inline default policy, which NIST 800-53,
HIPAA and PCI DSS (``IAMNoInlinePolicy``) flag in the *user's* stack, where crashcart cannot
acknowledge anything. They now attach customer managed policies. The control case grants
the same statements inline and must be flagged, so a clean report is not an absent one.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam

from crashcart.compliance import NAG_PACKS, add_compliance_checks
from crashcart.stacks.remediation import CrashcartRemediationStack
from tests.support.nag import validation_report
from tests.support.remediation import env, new_app


def _synth(outdir: Path, *, inline_control: bool) -> list[tuple[str, str, str]]:
    """Synthesize a workload stack and a people stack whose role gets both grants.

    Returns every unacknowledged finding as (pack, rule, construct path).
    """
    app = new_app(str(outdir))
    workload = CrashcartRemediationStack(app, "Workload", env=env(), full_triage=False)
    people = cdk.Stack(app, "People", env=env())
    on_call = iam.Role(people, "OnCall", assumed_by=iam.AccountRootPrincipal())
    workload.remediation.grant_kill_switch(on_call)
    workload.remediation.grant_reset_breaker(on_call)
    if inline_control:
        for statement in workload.remediation.kill_switch_statements():
            on_call.add_to_principal_policy(statement)
    add_compliance_checks(app)
    try:
        app.synth()
    except Exception:  # ValidationFailed on a finding: the report says which
        if not inline_control:
            raise
    report = validation_report(outdir)
    return [
        (plugin["pluginName"], violation["ruleName"], resource["constructPath"])
        for plugin in report["pluginReports"]
        for violation in plugin.get("violations", [])
        for resource in violation["violatingConstructs"]
    ]


def test_the_grants_raise_no_finding_in_the_grantees_stack(tmp_path: Path) -> None:
    assert _synth(tmp_path, inline_control=False) == []
    packs = {plugin["pluginName"] for plugin in validation_report(tmp_path)["pluginReports"]}
    assert packs == set(NAG_PACKS)


@pytest.mark.slow
def test_control_the_same_statements_inline_are_flagged(tmp_path: Path) -> None:
    findings = _synth(tmp_path, inline_control=True)
    flagged = {(pack, rule) for pack, rule, _path in findings}
    for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"):
        assert any(p == pack and "IAMNoInlinePolicy" in r for p, r in flagged), findings
    assert {path for _pack, _rule, path in findings} == {"People/OnCall/DefaultPolicy/Resource"}
