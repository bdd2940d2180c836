"""The organisation guardrail SCPs: exact statements, size limit, bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crashcart.errors import ConfigurationError
from crashcart.guardrails import (
    SCP_MAX_CHARACTERS,
    ServiceControlPolicy,
    check_service_control_policy,
    main,
    render_service_control_policies,
)
from crashcart.opt_in import OptInTag

BREAK_GLASS = "arn:aws:iam::*:role/crashcart-break-glass"
PLATFORM = "arn:aws:iam::111111111111:role/platform-deployer"


@pytest.fixture(scope="module")
def rendered() -> Any:
    return render_service_control_policies(
        break_glass_role_arns=[BREAK_GLASS], platform_role_arns=[PLATFORM]
    )


def _by_sid(policy: ServiceControlPolicy) -> dict[str, dict[str, Any]]:
    return {statement["Sid"]: statement for statement in policy.document["Statement"]}


def test_interrupt_scp_denies_untagged_except_break_glass(rendered: Any) -> None:
    assert rendered.interrupt.document == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInterruptOfInstancesNotOptedIn",
                "Effect": "Deny",
                "Action": ["ec2:SendDiagnosticInterrupt"],
                "Resource": "arn:aws:ec2:*:*:instance/*",
                "Condition": {
                    "StringNotEquals": {
                        "aws:ResourceTag/crashcart:diagnostic-interrupt": "enabled"
                    },
                    "ArnNotLike": {"aws:PrincipalArn": [BREAK_GLASS]},
                },
            }
        ],
    }


def test_tagging_scp_covers_instances_groups_and_launch_templates(rendered: Any) -> None:
    statements = _by_sid(rendered.tagging)
    key_condition = {
        "ForAnyValue:StringEqualsIgnoreCase": {"aws:TagKeys": ["crashcart:diagnostic-interrupt"]},
        "ArnNotLike": {"aws:PrincipalArn": [PLATFORM]},
    }
    expected_actions = {
        "DenyOptInTagOnInstances": ["ec2:CreateTags", "ec2:DeleteTags"],
        "DenyLaunchWithOptInTag": ["ec2:RunInstances"],
        "DenyOptInTagOnAutoScalingGroups": [
            "autoscaling:CreateAutoScalingGroup",
            "autoscaling:CreateOrUpdateTags",
            "autoscaling:DeleteTags",
        ],
        "DenyOptInTagOnLaunchTemplates": [
            "ec2:CreateLaunchTemplate",
            "ec2:CreateLaunchTemplateVersion",
        ],
    }
    for sid, actions in expected_actions.items():
        assert statements[sid]["Effect"] == "Deny"
        assert statements[sid]["Action"] == actions
        assert statements[sid]["Condition"] == key_condition
    assert statements["DenyDeleteAllInstanceTags"]["Condition"] == {
        "Null": {"aws:TagKeys": "true"},
        "ArnNotLike": {"aws:PrincipalArn": [PLATFORM]},
    }
    assert set(statements) == {*expected_actions, "DenyDeleteAllInstanceTags"}


def test_without_exemptions_there_is_no_principal_condition() -> None:
    policies = render_service_control_policies()
    for policy in policies.all():
        assert "ArnNotLike" not in json.dumps(policy.document)


def test_custom_tag_and_partition() -> None:
    policies = render_service_control_policies(
        tag=OptInTag(key="team:nmi", value="yes"), partition="aws-us-gov"
    )
    (statement,) = policies.interrupt.document["Statement"]
    assert statement["Resource"] == "arn:aws-us-gov:ec2:*:*:instance/*"
    assert statement["Condition"] == {"StringNotEquals": {"aws:ResourceTag/team:nmi": "yes"}}


def test_documents_are_minified_well_formed_json_within_the_limit(rendered: Any) -> None:
    for policy in rendered.all():
        text = policy.to_json()
        assert " " not in text.replace("Deny diagnostic", "")  # no insignificant whitespace
        assert json.loads(text) == policy.document
        assert policy.size == len(text) <= SCP_MAX_CHARACTERS


def test_fails_when_a_document_exceeds_the_scp_size_limit() -> None:
    many = [f"arn:aws:iam::*:role/platform-team-role-number-{i:04d}" for i in range(120)]
    with pytest.raises(ConfigurationError, match=r"characters minified; .* at most 5120"):
        render_service_control_policies(platform_role_arns=many)


def test_roles_that_fit_are_accepted() -> None:
    fitting = [f"arn:aws:iam::*:role/platform-{i}" for i in range(20)]
    policies = render_service_control_policies(platform_role_arns=fitting)
    assert policies.tagging.size <= SCP_MAX_CHARACTERS


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"platform_role_arns": ["platform-deployer"]}, "not an IAM role ARN pattern"),
        ({"platform_role_arns": ["arn:aws:iam::*:user/bob"]}, "not an IAM role ARN pattern"),
        ({"break_glass_role_arns": ["arn:aws:iam::12:role/x"]}, "not an IAM role ARN pattern"),
        ({"break_glass_role_arns": ["arn:aws:iam::*:role/*"]}, "would exempt everyone"),
        ({"break_glass_role_arns": "arn:aws:iam::*:role/x"}, "single string"),
        ({"partition": "aws-moon"}, "partition 'aws-moon'"),
    ],
)
def test_fails_on_bad_input(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        render_service_control_policies(**kwargs)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"Version": "2008-10-17", "Statement": [{}]}, "Version"),
        ({"Version": "2012-10-17", "Statement": []}, "non-empty list"),
        ({"Version": "2012-10-17", "Statement": [{"Sid": "A", "Effect": "Deny"}]}, "lacks"),
        (
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Sid": "A", "Effect": "Deny", "Action": "x:y", "Resource": "*"},
                    {"Sid": "A", "Effect": "Deny", "Action": "x:z", "Resource": "*"},
                ],
            },
            "not unique",
        ),
        ({"Version": "2012-10-17", "Statement": [{"Sid": {1, 2}}]}, "not plain JSON|not JSON"),
    ],
)
def test_check_rejects_malformed_documents(document: dict[str, Any], message: str) -> None:
    policy = ServiceControlPolicy(name="p", description="d", document=document)
    with pytest.raises((ConfigurationError, TypeError), match=message):
        check_service_control_policy(policy)


def test_module_main_prints_both_documents(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--platform-role-arn", PLATFORM]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {
        "crashcart-deny-interrupt-of-untagged-instances",
        "crashcart-protect-opt-in-tag",
    }
    assert main(["--platform-role-arn", "nonsense"]) == 2
