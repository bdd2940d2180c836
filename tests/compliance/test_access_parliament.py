"""parliament finds no issue in any policy the access area synthesizes or renders."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from crashcart.guardrails import render_service_control_policies
from tests.support.access import access_policies, parliament_findings

#: Identity and resource policies. Trust policies have no Resource element, which
#: parliament (written for identity policies) reports as MALFORMED; the only trust policy
#: here is the test's own Lambda role.
POLICIES = [policy for policy in access_policies() if policy[1] != "trust"]


def test_every_access_stack_has_policies() -> None:
    stacks = {name.split("/")[0] for name, _, _ in POLICIES}
    assert stacks == {"AccessPinned", "AccessAgnosticMfa", "Granted"}


@pytest.mark.parametrize(("name", "kind", "document"), POLICIES, ids=[p[0] for p in POLICIES])
def test_synthesized_policy_has_no_parliament_findings(
    name: str, kind: str, document: dict[str, Any]
) -> None:
    assert "Fn::" not in str(document) and "'Ref'" not in str(document)  # all resolved
    assert parliament_findings(document) == [], (name, kind)


@pytest.mark.parametrize(
    "roles",
    [
        {},
        {
            "break_glass_role_arns": ["arn:aws:iam::*:role/crashcart-break-glass"],
            "platform_role_arns": [
                "arn:aws:iam::111111111111:role/platform-deployer",
                "arn:aws:iam::*:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_Platform_*",
            ],
        },
    ],
    ids=["no-exemptions", "with-exemptions"],
)
def test_rendered_scps_have_no_parliament_findings(roles: dict[str, list[str]]) -> None:
    for policy in render_service_control_policies(**roles).all():  # type: ignore[arg-type]
        assert parliament_findings(policy.document) == [], policy.name


def _interrupt_policy() -> dict[str, Any]:
    for name, _, document in POLICIES:
        if name.startswith("AccessPinned/") and "SendDiagnosticInterrupt" in str(document):
            return copy.deepcopy(document)
    raise AssertionError("no interrupt policy synthesized")


def _interrupt_statement(document: dict[str, Any]) -> dict[str, Any]:
    for statement in document["Statement"]:
        if statement["Action"] == "ec2:SendDiagnosticInterrupt":
            return statement  # type: ignore[no-any-return]
    raise AssertionError("no interrupt statement")


def test_a_broken_policy_is_flagged_misspelt_action() -> None:
    document = _interrupt_policy()
    _interrupt_statement(document)["Action"] = "ec2:SendDiagnosticInterupt"
    assert any(f.startswith("UNKNOWN_ACTION") for f in parliament_findings(document))


def test_a_broken_policy_is_flagged_wrong_resource_type() -> None:
    document = _interrupt_policy()
    _interrupt_statement(document)["Resource"] = "arn:aws:s3:::some-bucket/*"
    assert any(f.startswith("RESOURCE_MISMATCH") for f in parliament_findings(document))


def test_a_broken_policy_is_flagged_condition_key_not_for_action() -> None:
    document = _interrupt_policy()
    _interrupt_statement(document)["Condition"] = {"StringEquals": {"s3:prefix": "dumps/"}}
    assert any("CONDITION" in f for f in parliament_findings(document))


def test_an_unresolved_intrinsic_would_be_flagged() -> None:
    """Why the helper resolves intrinsics first: parliament cannot read them."""
    document = _interrupt_policy()
    _interrupt_statement(document)["Resource"] = "arn:${AWS::Partition}:ec2:x:y:instance/*"
    assert parliament_findings(document) != []
