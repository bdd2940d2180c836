"""Bad input to the access grants fails at synth with a clear error; helpers behave."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam

from crashcart.constructs import grant_diagnostic_interrupt, interrupt_statement
from crashcart.constructs.diagnostic_interrupt_operator_policy import (
    SID_DENY_TAG_KEY,
    nag_rendering,
    statement_id,
    tag_tamper_deny_statements,
)
from crashcart.errors import ConfigurationError
from crashcart.opt_in import OptInTag


@pytest.fixture(scope="module")
def stack() -> cdk.Stack:
    return cdk.Stack(cdk.App(), "Validation")


def _role(stack: cdk.Stack) -> iam.Role:
    name = f"Role{len(stack.node.children)}"
    return iam.Role(stack, name, assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"regions": []}, r"regions is empty: the grant would allow nothing"),
        ({"regions": ["*"]}, r"region '\*' is not an AWS region name"),
        ({"regions": ["eu-west"]}, r"region 'eu-west' is not an AWS region name"),
        ({"regions": ["EU-WEST-1"]}, r"not an AWS region name"),
        ({"regions": "eu-west-1"}, r"single string"),
        ({"accounts": []}, r"accounts is empty"),
        ({"accounts": ["11111111111"]}, r"account id '11111111111' is not 12 digits"),
        ({"accounts": ["1111111111111"]}, r"is not 12 digits"),
        ({"accounts": ["11111111111a"]}, r"is not 12 digits"),
        ({"accounts": ["*"]}, r"wildcards are not allowed"),
        ({"accounts": [111111111111]}, r"is not 12 digits"),
        ({"accounts": "111111111111"}, r"single string"),
    ],
)
def test_fails_on_bad_regions_or_accounts(
    stack: cdk.Stack, kwargs: dict[str, Any], message: str
) -> None:
    role = _role(stack)
    with pytest.raises(ConfigurationError, match=message):
        grant_diagnostic_interrupt(role, **kwargs)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("", "enabled", "key is empty"),
        ("aws:crashcart", "enabled", "reserved for AWS"),
        ("bad#key", "enabled", "characters EC2 does not allow"),
        ("k" * 129, "enabled", "AWS allows at most 128"),
        ("crashcart:diagnostic-interrupt", "", "value is empty"),
        ("crashcart:diagnostic-interrupt", " enabled", "leading or trailing spaces"),
    ],
)
def test_fails_on_bad_tag(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        OptInTag(key=key, value=value)


def test_tokens_are_not_validated(stack: cdk.Stack) -> None:
    role = _role(stack)
    grant = grant_diagnostic_interrupt(
        role, regions=[cdk.Aws.REGION], accounts=[cdk.Aws.ACCOUNT_ID]
    )
    assert grant.success


def test_valid_regions_include_gov_and_iso_style_names(stack: cdk.Stack) -> None:
    role = _role(stack)
    assert grant_diagnostic_interrupt(
        role, regions=["us-gov-west-1", "ap-southeast-5", "cn-north-1"], accounts=["012345678901"]
    ).success


def test_interrupt_statement_validates_too() -> None:
    with pytest.raises(ConfigurationError, match="regions is empty"):
        interrupt_statement(regions=[], accounts=["111111111111"])
    with pytest.raises(ConfigurationError, match="not 12 digits"):
        interrupt_statement(regions=["eu-west-1"], accounts=["1"])


def test_statement_ids_differ_per_tag_and_stay_alphanumeric() -> None:
    default = statement_id(SID_DENY_TAG_KEY, OptInTag())
    other = statement_id(SID_DENY_TAG_KEY, OptInTag(key="team:nmi"))
    assert default == SID_DENY_TAG_KEY
    assert other != default and other.startswith(SID_DENY_TAG_KEY)
    assert other.isalnum()


def test_tamper_denies_cover_case_variants_of_the_key() -> None:
    statements = [s.to_statement_json() for s in tag_tamper_deny_statements()]
    assert all(s["Effect"] == "Deny" for s in statements)
    keyed = [s for s in statements if "ForAnyValue:StringEqualsIgnoreCase" in s["Condition"]]
    assert {
        tuple(sorted(s["Action"])) if isinstance(s["Action"], list) else s["Action"] for s in keyed
    } == {
        ("ec2:CreateTags", "ec2:DeleteTags"),
        "ec2:RunInstances",
    }
    for statement in keyed:
        assert statement["Condition"]["ForAnyValue:StringEqualsIgnoreCase"] == {
            "aws:TagKeys": ["crashcart:diagnostic-interrupt"]
        }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("arn:aws:ec2:eu-west-1:1:instance/*", "arn:aws:ec2:eu-west-1:1:instance/*"),
        (
            {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":ec2:r:a:instance/*"]]},
            "arn:<AWS::Partition>:ec2:r:a:instance/*",
        ),
        ({"Fn::GetAtt": ["Bucket12", "Arn"]}, "<Bucket12.Arn>"),
        ({"Fn::ImportValue": "x"}, None),
        ({"Fn::Join": ["", ["a", {"Fn::ImportValue": "x"}]]}, None),
        # an organisation member template's Region mapping: cdk-nag prints compact JSON
        (
            {
                "Fn::Join": [
                    "",
                    [
                        "arn:aws:s3:::",
                        {"Fn::FindInMap": ["CrashcartCentral", {"Ref": "AWS::Region"}, "B"]},
                        "/evidence/*",
                    ],
                ]
            },
            'arn:aws:s3:::{"Fn::FindInMap":["CrashcartCentral",{"Ref":"AWS::Region"},"B"]}'
            "/evidence/*",
        ),
    ],
)
def test_nag_rendering(value: object, expected: str | None) -> None:
    assert nag_rendering(value) == expected
