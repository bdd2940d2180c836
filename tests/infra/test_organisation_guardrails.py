"""OrganisationGuardrails: statements to merge by default; attached SCPs within both quotas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from crashcart.constructs.organisation_guardrails import GuardrailTarget, OrganisationGuardrails
from crashcart.errors import ConfigurationError
from crashcart.guardrails import (
    GuardrailPolicies,
    ServiceControlPolicy,
    main,
    merge_statements,
    render_service_control_policies,
)
from tests.support.cfn_lint import cfn_lint
from tests.support.nag import validation_report
from tests.support.remediation import new_app

_POLICY = "AWS::Organizations::Policy"


def _stack() -> cdk.Stack:
    return cdk.Stack(cdk.App(), "Guardrails")


def test_by_default_nothing_is_deployed_and_the_statements_are_handed_over() -> None:
    stack = _stack()
    guardrails = OrganisationGuardrails(stack, "Guardrails")
    Template.from_stack(stack).resource_count_is(_POLICY, 0)
    assert guardrails.scps == []
    sids = [statement["Sid"] for statement in guardrails.statements]
    assert len(sids) == 6 and len(set(sids)) == 6
    assert "DenyInterruptOfInstancesNotOptedIn" in sids


def test_attached_scps_go_to_every_target_as_json_objects() -> None:
    stack = _stack()
    policies = render_service_control_policies(
        platform_role_arns=["arn:aws:iam::*:role/platform-deployer"]
    )
    OrganisationGuardrails(
        stack,
        "Guardrails",
        policies=policies,
        attach=True,
        targets=[
            GuardrailTarget(target_id="ou-ab12-34cd56ef", attached_scps=3),
            GuardrailTarget(target_id="123456789012", attached_scps=1),
        ],
    )
    template = Template.from_stack(stack)
    template.resource_count_is(_POLICY, 2)
    for policy in policies.all():
        template.has_resource_properties(
            _POLICY,
            {
                "Name": policy.name,
                "Type": "SERVICE_CONTROL_POLICY",
                "Content": policy.document,
                "TargetIds": ["ou-ab12-34cd56ef", "123456789012"],
            },
        )


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (
            {"attach": True, "targets": [GuardrailTarget(target_id="r-ab12", attached_scps=4)]},
            "r-ab12 has 4 SCPs attached; 2 more would exceed",
        ),
        ({"attach": True}, "attach=True needs targets"),
        (
            {"targets": [GuardrailTarget(target_id="r-ab12", attached_scps=1)]},
            "without attach=True",
        ),
        ({"attach": True, "targets": ["ou-ab12-34cd56ef"]}, "is not a GuardrailTarget"),
        (
            {
                "attach": True,
                "targets": [
                    GuardrailTarget(target_id="r-ab12", attached_scps=1),
                    GuardrailTarget(target_id="r-ab12", attached_scps=1),
                ],
            },
            "repeat a target",
        ),
        ({"attach": "yes"}, "attach='yes'"),
        ({"policies": {"interrupt": {}}}, "give crashcart.guardrails.render_service_control"),
    ],
)
def test_fails_closed(props: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        OrganisationGuardrails(_stack(), "Guardrails", **props)


@pytest.mark.parametrize(
    ("target_id", "count", "message"),
    [
        ("ou-ab12", 1, "target_id='ou-ab12'"),
        ("12345", 1, "target_id='12345'"),
        ("r-ab12", 0, "attached_scps=0"),
        ("r-ab12", 6, "attached_scps=6"),
        ("r-ab12", True, "attached_scps=True"),
    ],
)
def test_targets_are_checked(target_id: str, count: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        GuardrailTarget(target_id=target_id, attached_scps=count)


def test_a_document_over_5120_characters_is_refused_before_anything_is_created() -> None:
    rendered = render_service_control_policies()
    big = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Big",
                "Effect": "Deny",
                "Action": ["ec2:SendDiagnosticInterrupt"],
                "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:PrincipalArn": ["x" * 5200]}},
            }
        ],
    }
    oversized = GuardrailPolicies(
        interrupt=ServiceControlPolicy(name="big", description="big", document=big),
        tagging=rendered.tagging,
    )
    stack = _stack()
    with pytest.raises(ConfigurationError, match="allows at most 5120"):
        OrganisationGuardrails(
            stack,
            "Guardrails",
            policies=oversized,
            attach=True,
            targets=[GuardrailTarget(target_id="r-ab12", attached_scps=1)],
        )
    assert stack.node.try_find_child("Guardrails") is None


def test_the_merge_output_counts_what_the_statements_add(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--merge"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = merge_statements(render_service_control_policies())
    assert printed == expected
    statements = printed["statements"]
    assert len(statements) == 6
    minified = json.dumps(statements, separators=(",", ":"))
    # the list's brackets are the only characters not counted
    assert printed["characters"] == len(minified) - 2 + 1
    assert printed["limit"] == 5120


def test_attached_guardrails_pass_the_packs_and_cfn_lint(tmp_path: Path) -> None:
    from crashcart.compliance import add_compliance_checks

    app = new_app(str(tmp_path))
    stack = cdk.Stack(
        app, "Guardrails", env=cdk.Environment(account="111111111111", region="us-east-1")
    )
    OrganisationGuardrails(
        stack,
        "Guardrails",
        attach=True,
        targets=[GuardrailTarget(target_id="ou-ab12-34cd56ef", attached_scps=2)],
    )
    add_compliance_checks(app)
    app.synth()
    # synth raises on any unacknowledged finding; none is acknowledged here either
    report = validation_report(tmp_path)
    assert [p.get("violations") for p in report["pluginReports"] if p.get("violations")] == []
    assert not any(p.get("suppressedViolations") for p in report["pluginReports"])
    result = cfn_lint(tmp_path / "Guardrails.template.json")
    assert result.returncode == 0, result.stdout
