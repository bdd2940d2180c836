"""The organisation breaker's constructs: the central table (``OrganisationBreaker``) and a
member's remediation with ``organisation=OrganisationLink(...)``: exact rights, exact
environment, validation, and nothing changed without the prop."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Annotations, Match, Template

from crashcart import FleetWatch, OrganisationBreaker, OrganisationLink
from crashcart import UnresponsiveInstanceRemediation as Remediation
from crashcart.constructs.existing_dump_bucket import ExistingDumpBucket
from crashcart.errors import ConfigurationError
from tests.conftest import TEST_ACCOUNT, TEST_REGION
from tests.support.remediation import env, evidence_bucket, new_app, resources_of

CENTRAL = "999999999999"
ORG = "o-a1b2c3d4e5"
TABLE_ARN = f"arn:aws:dynamodb:{TEST_REGION}:{CENTRAL}:table/crashcart-org-breaker"
KEY_ARN = f"arn:aws:kms:{TEST_REGION}:{CENTRAL}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
BUS_ARN = f"arn:aws:events:{TEST_REGION}:{CENTRAL}:event-bus/crashcart-central"
#: What a member needs of the breaker key through DynamoDB (aws-assumption:
#: dynamodb-cmk-caller-key-actions), on both sides.
KEY_ACTIONS = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]
#: ``dynamodb.<region>.`` and the partition's URL suffix (amazonaws.com.cn in China).
VIA_DYNAMODB = {"Fn::Join": ["", [f"dynamodb.{TEST_REGION}.", {"Ref": "AWS::URLSuffix"}]]}


def link(**overrides: Any) -> OrganisationLink:
    values: dict[str, Any] = {
        "breaker_table_arn": TABLE_ARN,
        "breaker_key_arn": KEY_ARN,
        "central_event_bus_arn": BUS_ARN,
    }
    values.update(overrides)
    return OrganisationLink(**values)


def member(organisation: OrganisationLink | None, region: str = TEST_REGION) -> dict[str, Any]:
    app = new_app()
    stack = cdk.Stack(app, "Member", env=cdk.Environment(account=TEST_ACCOUNT, region=region))
    bucket, _ = evidence_bucket(stack)
    Remediation(
        stack,
        "Remediation",
        dumps=ExistingDumpBucket(bucket=bucket),
        fleet=FleetWatch(),
        organisation=organisation,
    )
    template: dict[str, Any] = Template.from_stack(stack).to_json()
    return template


def function_of(template: dict[str, Any]) -> dict[str, Any]:
    (function,) = [
        f
        for logical, f in resources_of(template, "AWS::Lambda::Function").items()
        if logical.startswith("RemediationFunction")
    ]
    return function


def policies(template: dict[str, Any]) -> dict[str, Any]:
    return {
        logical.rstrip("0123456789ABCDEF"): p["Properties"]
        for logical, p in resources_of(template, "AWS::IAM::ManagedPolicy").items()
    }


@pytest.fixture(scope="module")
def plain() -> dict[str, Any]:
    return member(None)


@pytest.fixture(scope="module")
def linked() -> dict[str, Any]:
    return member(link(threshold=12, window=cdk.Duration.minutes(10)))


def test_the_linked_function_gets_exactly_the_organisation_rights(linked: dict[str, Any]) -> None:
    organisation = policies(linked)["RemediationOrganisationPolicy"]
    assert organisation["PolicyDocument"]["Statement"] == [
        {
            "Sid": "OrganisationBreaker",
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
            "Resource": TABLE_ARN,
            "Condition": {
                "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["breaker#organisation"]}
            },
        },
        {
            "Sid": "OrganisationBreakerKey",
            "Effect": "Allow",
            "Action": KEY_ACTIONS,
            "Resource": KEY_ARN,
            "Condition": {"StringEquals": {"kms:ViaService": VIA_DYNAMODB}},
        },
        {
            "Sid": "CentralIncidentEvents",
            "Effect": "Allow",
            "Action": "events:PutEvents",
            "Resource": BUS_ARN,
        },
    ]
    (role,) = resources_of(linked, "AWS::IAM::Role")
    assert organisation["Roles"] == [{"Ref": role}]
    (logical,) = [k for k in resources_of(linked, "AWS::IAM::ManagedPolicy") if "Organisation" in k]
    assert logical in function_of(linked)["DependsOn"]


def test_the_linked_function_gets_the_organisation_variables(linked: dict[str, Any]) -> None:
    variables = function_of(linked)["Properties"]["Environment"]["Variables"]
    assert {k: v for k, v in variables.items() if "_ORG_" in k} == {
        "CRASHCART_ORG_BREAKER_TABLE_ARN": TABLE_ARN,
        "CRASHCART_ORG_BREAKER_THRESHOLD": "12",
        "CRASHCART_ORG_BREAKER_WINDOW_SECONDS": "600",
        "CRASHCART_ORG_BREAKER_QUIET_SECONDS": "3600",
        "CRASHCART_ORG_EVENT_BUS_ARN": BUS_ARN,
    }
    # and the runtime reads them as they are written
    from crashcart.functions.remediation.settings import Settings

    settings = Settings.from_env(
        {k: v if isinstance(v, str) else "x" for k, v in variables.items()}
    )
    assert (settings.org_breaker_table_arn, settings.org_breaker_threshold) == (TABLE_ARN, 12)


def test_without_the_prop_the_template_is_the_same_as_before(
    plain: dict[str, Any], linked: dict[str, Any]
) -> None:
    variables = function_of(plain)["Properties"]["Environment"]["Variables"]
    assert not any("_ORG_" in k for k in variables)
    assert set(policies(plain)) == {"RemediationFunctionPolicy"}
    # The link adds its policy, its variables and the dependency, and changes nothing else.
    assert (
        policies(plain)["RemediationFunctionPolicy"]
        == (policies(linked)["RemediationFunctionPolicy"])
    )
    assert set(linked["Resources"]) - set(plain["Resources"]) == {
        k for k in resources_of(linked, "AWS::IAM::ManagedPolicy") if "Organisation" in k
    }
    assert set(plain["Resources"]) <= set(linked["Resources"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"breaker_table_arn": "crashcart-org-breaker"}, "breaker_table_arn="),
        ({"breaker_table_arn": BUS_ARN}, "breaker_table_arn="),
        ({"breaker_key_arn": "alias/crashcart"}, "breaker_key_arn="),
        ({"central_event_bus_arn": "crashcart-central"}, "central_event_bus_arn="),
        (
            {"central_event_bus_arn": BUS_ARN.replace(TEST_REGION, "us-east-1")},
            "several Regions",
        ),
        ({"breaker_key_arn": KEY_ARN.replace(CENTRAL, "888888888888")}, "the table in"),
        ({"threshold": 1}, "threshold=1"),
        ({"threshold": True}, "threshold=True"),
        ({"window": cdk.Duration.seconds(30)}, "window"),
    ],
)
def test_a_bad_link_is_refused_with_what_is_allowed(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        link(**overrides)


def test_a_link_to_another_region_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="deploys to us-east-1"):
        member(link(), region="us-east-1")


def test_the_prop_must_be_an_organisation_link() -> None:
    with pytest.raises(ConfigurationError, match="organisation"):
        member({"breaker_table_arn": TABLE_ARN})  # type: ignore[arg-type]


# -- the central table ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def central() -> dict[str, Any]:
    app = new_app()
    stack = cdk.Stack(app, "Central", env=cdk.Environment(account=CENTRAL, region=TEST_REGION))
    breaker = OrganisationBreaker(stack, "OrgBreaker", organisation_id=ORG)
    operator = iam.Role(stack, "Operator", assumed_by=iam.AccountRootPrincipal())
    breaker.grant_reset(operator)
    template: dict[str, Any] = Template.from_stack(stack).to_json()
    return template


def test_the_table_is_protected_like_the_incident_table(central: dict[str, Any]) -> None:
    ((_, table),) = resources_of(central, "AWS::DynamoDB::Table").items()
    assert table["DeletionPolicy"] == "Retain"
    props = table["Properties"]
    assert props["DeletionProtectionEnabled"] is True
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["SSESpecification"]["SSEType"] == "KMS"
    assert props["BillingMode"] == "PAY_PER_REQUEST"


def test_the_table_policy_lets_the_organisation_take_slots_and_nothing_else(
    central: dict[str, Any],
) -> None:
    ((_, table),) = resources_of(central, "AWS::DynamoDB::Table").items()
    assert table["Properties"]["ResourcePolicy"]["PolicyDocument"]["Statement"] == [
        {
            "Sid": "CrashcartOrganisationTakesSlots",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
            "Resource": "*",
            "Condition": {
                "StringEquals": {"aws:PrincipalOrgID": ORG},
                "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["breaker#organisation"]},
            },
        }
    ]


def test_the_key_lets_the_organisation_use_it_only_through_dynamodb(
    central: dict[str, Any],
) -> None:
    ((_, key),) = resources_of(central, "AWS::KMS::Key").items()
    assert key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    (org,) = [s for s in statements if s.get("Sid") == "CrashcartOrganisationUsesBreakerTable"]
    assert org == {
        "Sid": "CrashcartOrganisationUsesBreakerTable",
        "Effect": "Allow",
        "Principal": {"AWS": "*"},
        "Action": KEY_ACTIONS,
        "Resource": "*",
        "Condition": {
            "StringEquals": {
                "aws:PrincipalOrgID": ORG,
                "kms:ViaService": VIA_DYNAMODB,
            }
        },
    }
    # every other statement is the account's own administration (the CDK default)
    others = [s for s in statements if s is not org]
    assert all(s["Principal"] != {"AWS": "*"} for s in others)


def test_reset_is_delete_and_read_of_the_breaker_item_only(central: dict[str, Any]) -> None:
    (policy,) = resources_of(central, "AWS::IAM::Policy").values()
    (table,) = resources_of(central, "AWS::DynamoDB::Table")
    (item, key) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert item == {
        "Effect": "Allow",
        "Action": ["dynamodb:DeleteItem", "dynamodb:GetItem"],
        "Resource": {"Fn::GetAtt": [table, "Arn"]},
        "Condition": {
            "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["breaker#organisation"]}
        },
    }
    assert key["Action"] == KEY_ACTIONS


@pytest.mark.parametrize("bad", ["", "o-short", "O-A1B2C3D4E5", "r-a1b2c3d4e5", "a1b2c3d4e5"])
def test_a_bad_organisation_id_is_refused(bad: str) -> None:
    stack = cdk.Stack(new_app(), "Central", env=env())
    with pytest.raises(ConfigurationError, match="organisation_id"):
        OrganisationBreaker(stack, "OrgBreaker", organisation_id=bad)


def test_an_imported_key_gets_a_warning_about_its_policy() -> None:
    stack = cdk.Stack(new_app(), "Central", env=env())
    key = kms.Key.from_key_arn(stack, "Key", KEY_ARN)
    OrganisationBreaker(stack, "OrgBreaker", organisation_id=ORG, encryption_key=key)
    warnings = Annotations.from_stack(stack).find_warning("*", Match.any_value())
    assert any("aws:PrincipalOrgID" in str(w.entry.data) for w in warnings)


def test_the_member_and_the_key_policy_give_the_same_key_actions(
    linked: dict[str, Any], central: dict[str, Any]
) -> None:
    """Cross-account, a KMS action is allowed only when the member's policy and the key
    policy both allow it: DescribeKey and Decrypt on both sides, through DynamoDB only."""
    member_statements = policies(linked)["RemediationOrganisationPolicy"]["PolicyDocument"]
    (member_key,) = [
        s for s in member_statements["Statement"] if s["Sid"] == "OrganisationBreakerKey"
    ]
    ((_, key),) = resources_of(central, "AWS::KMS::Key").items()
    (org,) = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Sid") == "CrashcartOrganisationUsesBreakerTable"
    ]
    assert member_key["Action"] == org["Action"]
    assert {"kms:Decrypt", "kms:DescribeKey"} <= set(org["Action"])
    assert "kms:CreateGrant" not in org["Action"]
    assert (
        member_key["Condition"]["StringEquals"]["kms:ViaService"]
        == (org["Condition"]["StringEquals"]["kms:ViaService"])
    )
