"""The synthesized IAM of grant_diagnostic_interrupt says exactly what we intend."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from crashcart.constructs import grant_diagnostic_interrupt
from crashcart.constructs.diagnostic_interrupt_operator_policy import (
    SID_DENY_DELETE_ALL_TAGS,
    SID_DENY_TAG_AT_LAUNCH,
    SID_DENY_TAG_KEY,
    TAG_KEYS_OPERATOR,
)
from crashcart.opt_in import OptInTag
from tests.conftest import TEST_ACCOUNT, TEST_REGION
from tests.support.access import instance_arn


@pytest.fixture(scope="module")
def synthesized() -> dict[str, Any]:
    app = cdk.App()
    env = cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION)
    stack = cdk.Stack(app, "GrantStack", env=env)
    interrupter = iam.Role(
        stack, "Interrupter", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com")
    )
    bystander = iam.Role(
        stack, "Bystander", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com")
    )
    bystander.add_to_policy(
        iam.PolicyStatement(actions=["sqs:SendMessage"], resources=["arn:aws:sqs:*:*:x"])
    )
    grant = grant_diagnostic_interrupt(interrupter)

    agnostic = cdk.Stack(app, "AgnosticStack")
    agnostic_role = iam.Role(
        agnostic, "Interrupter", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com")
    )
    grant_diagnostic_interrupt(agnostic_role)

    multi = cdk.Stack(app, "MultiStack", env=env)
    multi_role = iam.Role(multi, "Interrupter", assumed_by=iam.AccountRootPrincipal())
    grant_diagnostic_interrupt(
        multi_role,
        tag=OptInTag(key="team:nmi", value="yes"),
        regions=["eu-west-1", "us-east-1", "eu-west-1"],
        accounts=["222222222222", "333333333333"],
    )

    # A principal that cannot hold an identity policy: nothing can be granted to it.
    policyless_grant = grant_diagnostic_interrupt(iam.ServicePrincipal("ec2.amazonaws.com"))
    return {
        "grant": grant,
        "policyless_grant": policyless_grant,
        "template": Template.from_stack(stack),
        "agnostic": Template.from_stack(agnostic),
        "multi": Template.from_stack(multi),
        "stack": stack,
        "interrupter": interrupter,
    }


def _statements(template: Template) -> list[dict[str, Any]]:
    policies = template.find_resources("AWS::IAM::Policy")
    return [
        statement
        for policy in policies.values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action", [])
    return action if isinstance(action, list) else [action]


def test_grant_is_successful_and_names_the_role(synthesized: dict[str, Any]) -> None:
    grant: iam.Grant = synthesized["grant"]
    assert grant.success
    assert grant.principal_statements[0].actions == ["ec2:SendDiagnosticInterrupt"]


def test_interrupt_statement_is_exact(synthesized: dict[str, Any]) -> None:
    template: Template = synthesized["template"]
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        {
                            "Effect": "Allow",
                            "Action": "ec2:SendDiagnosticInterrupt",
                            "Resource": instance_arn(TEST_REGION, TEST_ACCOUNT),
                            "Condition": {
                                "StringEquals": {
                                    "aws:ResourceTag/crashcart:diagnostic-interrupt": "enabled"
                                }
                            },
                        }
                    ]
                )
            }
        },
    )


def test_tamper_denies_are_exact(synthesized: dict[str, Any]) -> None:
    any_instance = instance_arn("*", "*")
    key_condition = {TAG_KEYS_OPERATOR: {"aws:TagKeys": ["crashcart:diagnostic-interrupt"]}}
    synthesized["template"].has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        {
                            "Sid": SID_DENY_TAG_KEY,
                            "Effect": "Deny",
                            "Action": ["ec2:CreateTags", "ec2:DeleteTags"],
                            "Resource": any_instance,
                            "Condition": key_condition,
                        },
                        {
                            "Sid": SID_DENY_TAG_AT_LAUNCH,
                            "Effect": "Deny",
                            "Action": "ec2:RunInstances",
                            "Resource": any_instance,
                            "Condition": key_condition,
                        },
                        {
                            "Sid": SID_DENY_DELETE_ALL_TAGS,
                            "Effect": "Deny",
                            "Action": "ec2:DeleteTags",
                            "Resource": any_instance,
                            "Condition": {"Null": {"aws:TagKeys": "true"}},
                        },
                    ]
                )
            }
        },
    )


def test_tag_key_match_ignores_case(synthesized: dict[str, Any]) -> None:
    denies = [s for s in _statements(synthesized["template"]) if s["Effect"] == "Deny"]
    tag_key_denies = [s for s in denies if "aws:TagKeys" in str(s.get("Condition"))]
    operators = {
        operator
        for statement in tag_key_denies
        for operator, pairs in statement["Condition"].items()
        if "aws:TagKeys" in pairs
    }
    # StringEquals / StringLike on aws:TagKeys would let "CrashCart:Diagnostic-Interrupt"
    # through, which aws:ResourceTag/crashcart:diagnostic-interrupt still matches.
    assert operators == {"ForAnyValue:StringEqualsIgnoreCase", "Null"}


def test_policy_attached_to_the_interrupter_only(synthesized: dict[str, Any]) -> None:
    template: Template = synthesized["template"]
    stack: cdk.Stack = synthesized["stack"]
    interrupter_id = stack.get_logical_id(synthesized["interrupter"].node.default_child)
    holders = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        if any("ec2:SendDiagnosticInterrupt" in _actions(s) for s in statements):
            holders.append(policy["Properties"]["Roles"])
    assert holders == [[{"Ref": interrupter_id}]]
    assert not template.find_resources("AWS::IAM::ManagedPolicy")


def test_no_star_resource_on_the_interrupt(synthesized: dict[str, Any]) -> None:
    for name in ("template", "agnostic", "multi"):
        for statement in _statements(synthesized[name]):
            if "ec2:SendDiagnosticInterrupt" in _actions(statement):
                resources = statement["Resource"]
                resources = resources if isinstance(resources, list) else [resources]
                assert "*" not in resources, name
                assert "Condition" in statement, name


def test_no_wildcard_actions(synthesized: dict[str, Any]) -> None:
    for name in ("template", "agnostic", "multi"):
        for statement in _statements(synthesized[name]):
            for action in _actions(statement):
                assert "*" not in action, (name, action)


def test_no_allowed_tagging_next_to_the_interrupt(synthesized: dict[str, Any]) -> None:
    tagging = {"ec2:CreateTags", "ec2:DeleteTags", "ec2:RunInstances"}
    checked = 0
    for name in ("template", "agnostic", "multi"):
        for policy in synthesized[name].find_resources("AWS::IAM::Policy").values():
            statements = policy["Properties"]["PolicyDocument"]["Statement"]
            allowed = {
                action
                for statement in statements
                if statement["Effect"] == "Allow"
                for action in _actions(statement)
            }
            if "ec2:SendDiagnosticInterrupt" not in allowed:
                continue
            checked += 1
            assert allowed == {"ec2:SendDiagnosticInterrupt"}, name
            denied = {
                action
                for statement in statements
                if statement["Effect"] == "Deny"
                for action in _actions(statement)
            }
            assert denied == tagging, name
    assert checked == 3


def test_environment_agnostic_stack_uses_pseudo_parameters(synthesized: dict[str, Any]) -> None:
    synthesized["agnostic"].has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": "ec2:SendDiagnosticInterrupt",
                                "Resource": instance_arn(
                                    {"Ref": "AWS::Region"}, {"Ref": "AWS::AccountId"}
                                ),
                            }
                        )
                    ]
                )
            }
        },
    )


def test_regions_and_accounts_multiply_and_deduplicate(synthesized: dict[str, Any]) -> None:
    statements = _statements(synthesized["multi"])
    interrupt = [s for s in statements if "ec2:SendDiagnosticInterrupt" in _actions(s)]
    assert len(interrupt) == 1
    assert interrupt[0]["Resource"] == [
        instance_arn(region, account)
        for account in ("222222222222", "333333333333")
        for region in ("eu-west-1", "us-east-1")
    ]
    assert interrupt[0]["Condition"] == {"StringEquals": {"aws:ResourceTag/team:nmi": "yes"}}
    denies = [s for s in statements if s["Effect"] == "Deny"]
    assert len(denies) == 3
    assert all(s["Sid"] != SID_DENY_TAG_KEY for s in denies)  # tag-specific ids
    assert {"ForAnyValue:StringEqualsIgnoreCase": {"aws:TagKeys": ["team:nmi"]}} in [
        s["Condition"] for s in denies
    ]


def test_principal_without_policy_gets_an_unsuccessful_grant(
    synthesized: dict[str, Any],
) -> None:
    grant: iam.Grant = synthesized["policyless_grant"]
    assert not grant.success
    with pytest.raises(Exception, match=r"could not be added"):
        grant.assert_success()


def test_minimal_template_resource_counts(synthesized: dict[str, Any]) -> None:
    template: Template = synthesized["template"]
    template.resource_count_is("AWS::IAM::Role", 2)
    template.resource_count_is("AWS::IAM::Policy", 2)  # interrupter's and bystander's


def test_nag_acknowledgement_sits_on_the_default_policy_only(
    synthesized: dict[str, Any],
) -> None:
    role: iam.Role = synthesized["interrupter"]
    policy = role.node.find_child("DefaultPolicy")
    acknowledged = {
        finding
        for entry in policy.node.metadata
        if entry.type == "aws:cdk:acknowledged-rules"
        for finding in entry.data
    }
    assert acknowledged == {
        f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:"
        f"{TEST_REGION}:{TEST_ACCOUNT}:instance/*]"
    }
    assert not [e for e in role.node.metadata if e.type == "aws:cdk:acknowledged-rules"]
