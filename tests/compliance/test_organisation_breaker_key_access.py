"""The breaker key's SYNTHESIZED policy and a member's SYNTHESIZED ``OrganisationPolicy``,
evaluated together offline (``@cloud-copilot/iam-simulate``): cross-account, a KMS action is
allowed only when both allow it (aws-assumptions dynamodb-resource-policy-cross-account,
dynamodb-cmk-caller-key-actions, kms-via-service-endpoint-names)."""

from __future__ import annotations

import functools
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template

from crashcart import OrganisationBreaker, OrganisationLink
from crashcart.constructs.organisation_link import organisation_statements
from tests.conftest import TEST_REGION
from tests.support import iam_simulate
from tests.support.access import resolve_intrinsics
from tests.support.remediation import new_app

pytestmark = pytest.mark.skipif(
    not iam_simulate.available(), reason="needs node and npm's @cloud-copilot/iam-simulate"
)

CENTRAL, MEMBER, OUTSIDER = "999999999999", "222222222222", "444444444444"
ORG = "o-a1b2c3d4e5"
KEY_ARN = f"arn:aws:kms:{TEST_REGION}:{CENTRAL}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
LINK = OrganisationLink(
    breaker_table_arn=f"arn:aws:dynamodb:{TEST_REGION}:{CENTRAL}:table/crashcart-org-breaker",
    breaker_key_arn=KEY_ARN,
    central_event_bus_arn=f"arn:aws:events:{TEST_REGION}:{CENTRAL}:event-bus/crashcart-central",
)
#: What DynamoDB in the commercial partition puts in kms:ViaService for the table's Region.
VIA_DYNAMODB = f"dynamodb.{TEST_REGION}.amazonaws.com"


@functools.cache
def key_policy() -> dict[str, Any]:
    stack = cdk.Stack(
        new_app(), "Central", env=cdk.Environment(account=CENTRAL, region=TEST_REGION)
    )
    OrganisationBreaker(stack, "OrgBreaker", organisation_id=ORG)
    resources = Template.from_stack(stack).to_json()["Resources"]
    ((_, key),) = [(k, v) for k, v in resources.items() if v["Type"] == "AWS::KMS::Key"]
    policy: dict[str, Any] = resolve_intrinsics(key["Properties"]["KeyPolicy"], resources)
    return policy


@functools.cache
def member_policy() -> dict[str, Any]:
    stack = cdk.Stack(new_app(), "Member", env=cdk.Environment(account=MEMBER, region=TEST_REGION))
    document = iam.PolicyDocument(statements=organisation_statements(LINK, stack))
    policy: dict[str, Any] = resolve_intrinsics(stack.resolve(document.to_json()), {})
    return policy


def key_request(
    action: str, *, via: str | None = VIA_DYNAMODB, account: str = MEMBER, org: str = ORG
) -> dict[str, Any]:
    context: dict[str, Any] = {"aws:PrincipalOrgID": org, "aws:PrincipalAccount": account}
    if via is not None:
        context["kms:ViaService"] = via
        context["kms:CallerAccount"] = account
    simulation = iam_simulate.simulation(
        action=action,
        principal=f"arn:aws:sts::{account}:assumed-role/crashcart-remediation/fn",
        resource=KEY_ARN,
        resource_account=CENTRAL,
        context=context,
        identity=[member_policy()],
        resource_policy=key_policy(),
    )
    return simulation


def test_a_member_uses_the_breaker_key_only_through_dynamodb_in_the_region() -> None:
    cases = {
        "decrypt via DynamoDB": key_request("kms:Decrypt"),
        "describe via DynamoDB": key_request("kms:DescribeKey"),
        "generate via DynamoDB": key_request("kms:GenerateDataKey"),
        "decrypt directly": key_request("kms:Decrypt", via=None),
        "decrypt via S3": key_request("kms:Decrypt", via=f"s3.{TEST_REGION}.amazonaws.com"),
        "decrypt via DynamoDB elsewhere": key_request(
            "kms:Decrypt", via="dynamodb.us-east-1.amazonaws.com"
        ),
        "create a grant via DynamoDB": key_request("kms:CreateGrant"),
        "outsider via DynamoDB": key_request("kms:Decrypt", account=OUTSIDER, org="o-zzzzzzzzzz"),
    }
    answers = iam_simulate.decide(list(cases.values()))
    assert not [a for a in answers if a["decision"] == "Error"], answers
    assert {name: a["decision"] for name, a in zip(cases, answers, strict=True)} == {
        "decrypt via DynamoDB": "Allowed",
        "describe via DynamoDB": "Allowed",
        "generate via DynamoDB": "Allowed",
        "decrypt directly": "ImplicitlyDenied",
        "decrypt via S3": "ImplicitlyDenied",
        "decrypt via DynamoDB elsewhere": "ImplicitlyDenied",
        "create a grant via DynamoDB": "ImplicitlyDenied",
        "outsider via DynamoDB": "ImplicitlyDenied",
    }
