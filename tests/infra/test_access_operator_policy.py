"""DiagnosticInterruptOperatorPolicy and CrashcartAccessStack synthesize what we intend."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from crashcart.constructs import DiagnosticInterruptOperatorPolicy
from crashcart.constructs.diagnostic_interrupt_operator_policy import (
    OPERATOR_DESCRIBE_ACTIONS,
    SID_INTERRUPT,
    SID_OPERATOR_CONSOLE,
    SID_OPERATOR_DESCRIBE,
)
from crashcart.errors import ConfigurationError
from crashcart.opt_in import OptInTag
from crashcart.stacks.access import CrashcartAccessStack
from tests.conftest import TEST_ACCOUNT, TEST_REGION
from tests.support.access import instance_arn

TAG_CONDITION = {"StringEquals": {"aws:ResourceTag/crashcart:diagnostic-interrupt": "enabled"}}


@pytest.fixture(scope="module")
def templates() -> dict[str, Any]:
    app = cdk.App()
    env = cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION)
    minimal = CrashcartAccessStack(app, "Minimal", env=env)
    mfa = CrashcartAccessStack(app, "Mfa", require_mfa=True)

    full = cdk.Stack(app, "Full", env=env)
    on_call = iam.Role(full, "OnCall", assumed_by=iam.AccountRootPrincipal())
    other = iam.Role(full, "Other", assumed_by=iam.AccountRootPrincipal())
    group = iam.Group(full, "Operators")
    user = iam.User(full, "Operator")
    policy = DiagnosticInterruptOperatorPolicy(
        full,
        "Policy",
        tag=OptInTag(key="ops:nmi", value="on"),
        regions=["eu-west-1", "eu-central-1"],
        accounts=["222222222222"],
        require_mfa=True,
        roles=[on_call],
        groups=[group],
        users=[user],
        description="on-call may interrupt",
    )
    return {
        "minimal": Template.from_stack(minimal),
        "minimal_stack": minimal,
        "mfa": Template.from_stack(mfa),
        "full": Template.from_stack(full),
        "full_stack": full,
        "policy": policy,
        "on_call": on_call,
        "other": other,
    }


def _managed_statements(template: Template) -> list[dict[str, Any]]:
    (policy,) = template.find_resources("AWS::IAM::ManagedPolicy").values()
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def test_minimal_stack_resource_counts(templates: dict[str, Any]) -> None:
    template: Template = templates["minimal"]
    assert set(template.to_json()["Resources"]) == {
        logical_id for logical_id in template.find_resources("AWS::IAM::ManagedPolicy")
    }
    template.resource_count_is("AWS::IAM::ManagedPolicy", 1)
    template.resource_count_is("AWS::IAM::Role", 0)
    template.has_output("OperatorPolicyArn", {"Value": {"Ref": Match.any_value()}})


def test_minimal_stack_statements_are_exact(templates: dict[str, Any]) -> None:
    statements = _managed_statements(templates["minimal"])
    arn = instance_arn(TEST_REGION, TEST_ACCOUNT)
    assert statements[:3] == [
        {
            "Sid": SID_INTERRUPT,
            "Effect": "Allow",
            "Action": "ec2:SendDiagnosticInterrupt",
            "Resource": arn,
            "Condition": TAG_CONDITION,
        },
        {
            "Sid": SID_OPERATOR_CONSOLE,
            "Effect": "Allow",
            "Action": "ec2:GetConsoleOutput",
            "Resource": arn,
            "Condition": TAG_CONDITION,
        },
        {
            "Sid": SID_OPERATOR_DESCRIBE,
            "Effect": "Allow",
            "Action": list(OPERATOR_DESCRIBE_ACTIONS),
            "Resource": "*",
        },
    ]
    assert [s["Effect"] for s in statements[3:]] == ["Deny", "Deny", "Deny"]


def test_star_resource_only_on_describe_calls(templates: dict[str, Any]) -> None:
    for name in ("minimal", "mfa", "full"):
        for statement in _managed_statements(templates[name]):
            actions = statement["Action"]
            actions = actions if isinstance(actions, list) else [actions]
            assert all("*" not in action for action in actions)
            if statement["Resource"] == "*":
                assert all(action.startswith("ec2:Describe") for action in actions), name


def test_no_allowed_tagging_in_operator_policy(templates: dict[str, Any]) -> None:
    for name in ("minimal", "mfa", "full"):
        allowed = {
            action
            for statement in _managed_statements(templates[name])
            if statement["Effect"] == "Allow"
            for action in (
                statement["Action"]
                if isinstance(statement["Action"], list)
                else [statement["Action"]]
            )
        }
        assert not allowed & {"ec2:CreateTags", "ec2:DeleteTags", "ec2:RunInstances"}


def test_mfa_condition_only_on_the_interrupt(templates: dict[str, Any]) -> None:
    statements = _managed_statements(templates["mfa"])
    with_mfa = [s for s in statements if "aws:MultiFactorAuthPresent" in str(s)]
    assert len(with_mfa) == 1
    assert with_mfa[0]["Action"] == "ec2:SendDiagnosticInterrupt"
    assert with_mfa[0]["Condition"] == {
        **TAG_CONDITION,
        "Bool": {"aws:MultiFactorAuthPresent": "true"},
    }
    assert with_mfa[0]["Resource"] == instance_arn(
        {"Ref": "AWS::Region"}, {"Ref": "AWS::AccountId"}
    )
    minimal = _managed_statements(templates["minimal"])
    assert "MultiFactorAuthPresent" not in str(minimal)


def test_all_props(templates: dict[str, Any]) -> None:
    full: Template = templates["full"]
    stack: cdk.Stack = templates["full_stack"]

    def ref(construct: Any) -> dict[str, str]:
        return {"Ref": stack.get_logical_id(construct.node.default_child)}

    on_call, other = templates["on_call"], templates["other"]
    full.has_resource_properties(
        "AWS::IAM::ManagedPolicy",
        {
            "Description": "on-call may interrupt",
            "Roles": [ref(on_call)],
            "Groups": [Match.any_value()],
            "Users": [Match.any_value()],
        },
    )
    statements = _managed_statements(full)
    interrupt = statements[0]
    assert interrupt["Sid"].startswith(SID_INTERRUPT) and interrupt["Sid"] != SID_INTERRUPT
    assert interrupt["Resource"] == [
        instance_arn("eu-west-1", "222222222222"),
        instance_arn("eu-central-1", "222222222222"),
    ]
    assert interrupt["Condition"] == {
        "StringEquals": {"aws:ResourceTag/ops:nmi": "on"},
        "Bool": {"aws:MultiFactorAuthPresent": "true"},
    }
    assert str(ref(other)) not in str(full.find_resources("AWS::IAM::ManagedPolicy"))
    policy: DiagnosticInterruptOperatorPolicy = templates["policy"]
    assert policy.regions == ("eu-west-1", "eu-central-1")
    assert policy.accounts == ("222222222222",)
    assert policy.require_mfa is True
    assert policy.tag == OptInTag(key="ops:nmi", value="on")
    assert len(policy.deny_statements) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"regions": []}, "regions is empty"),
        ({"regions": ["eu-west-*"]}, "not an AWS region name"),
        ({"regions": "eu-west-1"}, "single string"),
        ({"accounts": []}, "accounts is empty"),
        ({"accounts": ["12345"]}, "not 12 digits"),
        ({"accounts": ["*"]}, "not 12 digits"),
    ],
)
def test_fails_on_bad_scope(kwargs: dict[str, Any], message: str) -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "Bad")
    with pytest.raises(ConfigurationError, match=message):
        DiagnosticInterruptOperatorPolicy(stack, "Policy", **kwargs)
