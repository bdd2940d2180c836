"""DebugSymbolStore: the synthesized template says what we intend (synthesized once per module)."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template

from crashcart.constructs.debug_symbol_store import (
    SYMBOLS_PREFIX,
    DebugSymbolStore,
    metadata_key,
    symbol_key,
)
from crashcart.errors import ConfigurationError
from tests.conftest import TEST_ACCOUNT, TEST_REGION

ENV = cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION)
BUCKET_ARN = "arn:aws:s3:::SYMBOLS"
KEY_ARN = "arn:aws:kms:eu-west-1:111111111111:key/SYMBOLS"
VIA_S3 = "s3.eu-west-1.<AWS::URLSuffix>"
BUILD_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6"


def _stack(name: str, app: cdk.App | None = None) -> cdk.Stack:
    return cdk.Stack(app or cdk.App(), name, env=ENV)


class Built:
    def __init__(self) -> None:
        stack = _stack("Minimal")
        DebugSymbolStore(stack, "Symbols")
        self.minimal = Template.from_stack(stack)

        stack = _stack("Granted")
        self.publisher = iam.Role(
            stack, "BuildRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com")
        )
        self.reader = iam.Role(
            stack, "TriageRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com")
        )
        store = DebugSymbolStore(stack, "Symbols")
        self.publish_policy = store.grant_publish(self.publisher)
        self.read_policy = store.grant_read(self.reader)
        # Granting twice attaches once.
        assert store.grant_publish(self.publisher) is self.publish_policy
        assert store.grant_read(self.reader) is self.read_policy
        self.store = store
        self.granted = Template.from_stack(stack)


@pytest.fixture(scope="module")
def built() -> Built:
    return Built()


def _resolve(value: Any) -> Any:
    """Template values -> plain strings (the symbol bucket's ARN becomes ``BUCKET_ARN``)."""
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(str(_resolve(p)) for p in parts)
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical, attr = value["Fn::GetAtt"]
        if logical.startswith("SymbolsBucket"):
            return BUCKET_ARN
        if logical.startswith("SymbolsKey"):
            return KEY_ARN
        return f"<{logical}.{attr}>"
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return f"<{value['Ref']}>"
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    return value


def _by_prefix(template: Template, type_: str, prefix: str) -> dict[str, Any]:
    found = [v for k, v in template.find_resources(type_).items() if k.startswith(prefix)]
    assert len(found) == 1, found
    return found[0]  # type: ignore[no-any-return]


def _bucket_policy(template: Template) -> list[dict[str, Any]]:
    policy = _by_prefix(template, "AWS::S3::BucketPolicy", "SymbolsBucketPolicy")
    return [_resolve(s) for s in policy["Properties"]["PolicyDocument"]["Statement"]]


def _statements(template: Template, prefix: str) -> list[dict[str, Any]]:
    policy = _by_prefix(template, "AWS::IAM::ManagedPolicy", prefix)
    return [_resolve(s) for s in policy["Properties"]["PolicyDocument"]["Statement"]]


# --- resources and bucket settings --------------------------------------------------------------


def test_minimal_resource_counts(built: Built) -> None:
    for type_, count in {
        "AWS::S3::Bucket": 2,
        "AWS::S3::BucketPolicy": 2,
        "AWS::KMS::Key": 1,
        "AWS::IAM::ManagedPolicy": 0,
        "AWS::IAM::Policy": 0,
        "AWS::Lambda::Function": 0,
    }.items():
        built.minimal.resource_count_is(type_, count)


def test_bucket_encrypted_private_versioned_logged(built: Built) -> None:
    built.minimal.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    bucket = _by_prefix(built.minimal, "AWS::S3::Bucket", "SymbolsBucket")
    assert bucket["DeletionPolicy"] == "Retain"
    props = bucket["Properties"]
    assert _resolve(props["BucketEncryption"]) == {
        "ServerSideEncryptionConfiguration": [
            {
                "BucketKeyEnabled": False,
                "ServerSideEncryptionByDefault": {
                    "SSEAlgorithm": "aws:kms",
                    "KMSMasterKeyID": KEY_ARN,
                },
            }
        ]
    }
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert props["LoggingConfiguration"]["LogFilePrefix"] == "symbol-bucket/"
    assert props["LoggingConfiguration"]["DestinationBucketName"]["Ref"].startswith(
        "SymbolsAccessLogs"
    )


def test_lifecycle_keeps_current_versions(built: Built) -> None:
    props = _by_prefix(built.minimal, "AWS::S3::Bucket", "SymbolsBucket")["Properties"]
    assert props["LifecycleConfiguration"] == {
        "Rules": [
            {
                "Id": "noncurrent-versions-and-incomplete-uploads",
                "Status": "Enabled",
                "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            }
        ]
    }
    rule = props["LifecycleConfiguration"]["Rules"][0]
    assert "ExpirationInDays" not in rule and "Transitions" not in rule


def test_access_log_bucket_uses_sse_s3(built: Built) -> None:
    logs = _by_prefix(built.minimal, "AWS::S3::Bucket", "SymbolsAccessLogs")["Properties"]
    assert logs["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
        ]
    }
    assert logs["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert logs["VersioningConfiguration"] == {"Status": "Enabled"}
    assert logs["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == 365


def test_tls_only(built: Built) -> None:
    statements = _bucket_policy(built.minimal)
    assert {
        "Action": "s3:*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": [BUCKET_ARN, f"{BUCKET_ARN}/*"],
    } in statements
    assert {
        "Action": "s3:*",
        "Condition": {"NumericLessThan": {"s3:TlsVersion": 1.2}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": [BUCKET_ARN, f"{BUCKET_ARN}/*"],
    } in statements


def test_nobody_may_overwrite_a_symbol(built: Built) -> None:
    statements = _bucket_policy(built.minimal)
    assert len(statements) == 3  # TLS, TLS version, no overwrite: nothing allowed here
    assert {
        "Sid": "DenySymbolOverwrite",
        "Action": "s3:PutObject",
        "Condition": {
            "Null": {"s3:if-none-match": "true"},
            "Bool": {"s3:ObjectCreationOperation": "true"},
        },
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": f"{BUCKET_ARN}/symbols/*",
    } in statements
    # Grants add no bucket-policy statement (no role of another stack is named).
    assert _bucket_policy(built.granted) == statements


# --- grants -------------------------------------------------------------------------------------


def test_publish_policy_is_create_only_under_symbols(built: Built) -> None:
    assert _statements(built.granted, "SymbolsPublishPolicy") == [
        {
            "Sid": "PublishSymbols",
            "Action": "s3:PutObject",
            "Effect": "Allow",
            "Resource": f"{BUCKET_ARN}/symbols/*",
        },
        {
            "Sid": "EncryptSymbolsThroughS3",
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
            "Effect": "Allow",
            "Resource": KEY_ARN,
            "Condition": {
                "StringEquals": {"kms:ViaService": VIA_S3},
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": f"{BUCKET_ARN}/symbols/*"},
            },
        },
    ]


def test_read_policy_gets_symbols_by_key(built: Built) -> None:
    assert _statements(built.granted, "SymbolsReadPolicy") == [
        {
            "Sid": "ReadSymbols",
            "Action": "s3:GetObject",
            "Effect": "Allow",
            "Resource": f"{BUCKET_ARN}/symbols/*",
        },
        {
            "Sid": "MissingSymbolsAre404",
            "Action": "s3:ListBucket",
            "Effect": "Allow",
            "Resource": BUCKET_ARN,
        },
        {
            "Sid": "DecryptSymbolsThroughS3",
            "Action": "kms:Decrypt",
            "Effect": "Allow",
            "Resource": KEY_ARN,
            "Condition": {
                "StringEquals": {"kms:ViaService": VIA_S3},
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": f"{BUCKET_ARN}/symbols/*"},
            },
        },
    ]


def test_policies_are_attached_to_the_right_roles_only(built: Built) -> None:
    roles = built.granted.find_resources("AWS::IAM::Role")
    arns = {k: v["Properties"].get("ManagedPolicyArns", []) for k, v in roles.items()}
    publisher = next(k for k in arns if k.startswith("BuildRole"))
    reader = next(k for k in arns if k.startswith("TriageRole"))
    assert [_resolve(a) for a in arns[publisher]] == [
        f"<{_policy_id(built.granted, 'SymbolsPublishPolicy')}>"
    ]
    assert [_resolve(a) for a in arns[reader]] == [
        f"<{_policy_id(built.granted, 'SymbolsReadPolicy')}>"
    ]
    for policy in built.granted.find_resources("AWS::IAM::ManagedPolicy").values():
        assert "Roles" not in policy["Properties"]


def _policy_id(template: Template, prefix: str) -> str:
    (found,) = [
        k for k in template.find_resources("AWS::IAM::ManagedPolicy") if k.startswith(prefix)
    ]
    return found


def test_no_wildcard_actions_or_deletes(built: Built) -> None:
    text = str(built.granted.find_resources("AWS::IAM::ManagedPolicy"))
    for action in ("s3:*", "kms:*", "s3:DeleteObject", "s3:PutObjectAcl", "kms:Encrypt'"):
        assert f"'{action}" not in text


def test_grant_read_to_a_function_user_group_and_imported_role() -> None:
    stack = _stack("Readers")
    store = DebugSymbolStore(stack, "Symbols")
    function = lambda_.Function(
        stack,
        "Fn",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return None\n"),
    )
    user = iam.User(stack, "Analyst")
    group = iam.Group(stack, "Analysts")
    imported = iam.Role.from_role_arn(
        stack, "Imported", f"arn:aws:iam::{TEST_ACCOUNT}:role/triage-elsewhere"
    )
    for grantee in (function, user, group, imported):
        store.grant_read(grantee)
    template = Template.from_stack(stack)
    read = _policy_id(template, "SymbolsReadPolicy")
    template.has_resource_properties(
        "AWS::IAM::Role",
        {"ManagedPolicyArns": Match.array_with([{"Ref": read}])},
    )
    template.has_resource_properties("AWS::IAM::User", {"ManagedPolicyArns": [{"Ref": read}]})
    template.has_resource_properties("AWS::IAM::Group", {"ManagedPolicyArns": [{"Ref": read}]})
    template.has_resource_properties("AWS::IAM::ManagedPolicy", {"Roles": ["triage-elsewhere"]})
    template.resource_count_is("AWS::IAM::ManagedPolicy", 1)


def test_fails_grant_read_to_a_service_principal() -> None:
    store = DebugSymbolStore(_stack("Service"), "Symbols")

    class ServiceGrantee:
        grant_principal = iam.ServicePrincipal("ecs-tasks.amazonaws.com")

    with pytest.raises(ConfigurationError, match="role, user or group"):
        store.grant_read(ServiceGrantee())  # type: ignore[arg-type]


def test_store_and_pipeline_role_in_different_stacks_do_not_form_a_cycle() -> None:
    """The role's stack reads the bucket name; the grant must not point back at it."""
    app = cdk.App()
    store = DebugSymbolStore(_stack("SymbolStore", app), "Symbols")
    builder = _stack("Builder", app)
    role = iam.Role(builder, "BuildRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    cdk.CfnOutput(builder, "Bucket", value=store.bucket.bucket_name)
    store.grant_publish(role)
    store.grant_read(role)
    assembly = app.synth()  # a cycle raises here
    assert {s.stack_name for s in assembly.stacks} == {"SymbolStore", "Builder"}


# --- props --------------------------------------------------------------------------------------


def test_given_key_and_all_props() -> None:
    stack = _stack("Full")
    key = kms.Key(stack, "OwnKey", enable_key_rotation=True)
    DebugSymbolStore(
        stack,
        "Symbols",
        encryption_key=key,
        noncurrent_version_expiration=cdk.Duration.days(7),
        access_log_expiration=cdk.Duration.days(90),
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::KMS::Key", 1)
    bucket = _by_prefix(template, "AWS::S3::Bucket", "SymbolsBucket")
    assert bucket["DeletionPolicy"] == "Delete"
    encryption = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption[0]["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {
        "Fn::GetAtt": [next(iter(template.find_resources("AWS::KMS::Key"))), "Arn"]
    }
    rule = bucket["Properties"]["LifecycleConfiguration"]["Rules"][0]
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 7}
    logs = _by_prefix(template, "AWS::S3::Bucket", "SymbolsAccessLogs")
    assert logs["Properties"]["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == 90
    assert logs["DeletionPolicy"] == "Delete"


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"noncurrent_version_expiration": cdk.Duration.hours(12)}, "whole number of days"),
        ({"noncurrent_version_expiration": cdk.Duration.hours(36)}, "whole number of days"),
        ({"access_log_expiration": cdk.Duration.hours(1)}, "access_log_expiration=1 hour"),
        ({"removal_policy": cdk.RemovalPolicy.SNAPSHOT}, "no snapshots"),
    ],
    ids=["noncurrent-half-day", "noncurrent-fraction", "access-logs", "snapshot"],
)
def test_fails_on_bad_props(props: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        DebugSymbolStore(_stack("Bad"), "Symbols", **props)


# --- key layout ---------------------------------------------------------------------------------


def test_key_layout() -> None:
    assert SYMBOLS_PREFIX == DebugSymbolStore.SYMBOLS_PREFIX == "symbols/"
    assert symbol_key(BUILD_ID) == f"symbols/{BUILD_ID}/vmlinux"
    assert DebugSymbolStore.symbol_key(BUILD_ID.upper()) == f"symbols/{BUILD_ID}/vmlinux"
    assert metadata_key(BUILD_ID) == f"symbols/{BUILD_ID}/metadata.json"
    assert symbol_key(BUILD_ID, "metadata.json") == metadata_key(BUILD_ID)
    assert symbol_key("ab" * 64) == f"symbols/{'ab' * 64}/vmlinux"  # 128 digits
    token = cdk.Token.as_string(cdk.Aws.ACCOUNT_ID)
    assert symbol_key(token).startswith("symbols/${Token[")


@pytest.mark.parametrize(
    "bad",
    ["", "ab" * 19, "ab" * 65, BUILD_ID + "a", BUILD_ID[:-1] + "g", f" {BUILD_ID}", "../x"],
    ids=["empty", "short", "long", "odd", "not-hex", "space", "path"],
)
def test_fails_on_a_bad_build_id(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="is not a GNU build id: give 40 to 128"):
        symbol_key(bad)
    with pytest.raises(ValueError):  # ConfigurationError is a ValueError
        DebugSymbolStore.symbol_key(bad)


def test_fails_on_an_unknown_object_name() -> None:
    with pytest.raises(ConfigurationError, match=r"'vmlinux' and 'metadata\.json'"):
        symbol_key(BUILD_ID, "System.map")
