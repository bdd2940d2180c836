"""Keys that AWS services use on crashcart's behalf: CloudWatch Logs, EventBridge, alarms.

A log group, a rule's dead-letter queue or a topic encrypted with a customer key works only
if the key's policy lets the service principal use it, scoped to this account's resources.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from crashcart.constructs._internal.service_access import allow_rules_on_key

#: What CloudWatch Logs needs of the key of a log group it encrypts.
LOGS_KEY_ACTIONS = (
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
)


def allow_logs_on_key(scope: Construct, key: kms.IKey, sid: str) -> None:
    """Let CloudWatch Logs (the regional principal) use ``key`` for this account's log groups.

    An imported key ignores the statement (``statement_added`` is False): the docs say what
    its owner must add.
    """
    stack = cdk.Stack.of(scope)
    account, region, partition = stack.account, stack.region, stack.partition
    key.add_to_resource_policy(
        iam.PolicyStatement(
            # aws-assumption: logs-regional-principal-key-policy
            sid=sid,
            principals=[iam.ServicePrincipal(f"logs.{region}.amazonaws.com")],
            actions=list(LOGS_KEY_ACTIONS),
            resources=["*"],
            conditions={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": (
                        f"arn:{partition}:logs:{region}:{account}:log-group:*"
                    )
                }
            },
        )
    )


def logs_and_rules_key(
    scope: Construct, construct_id: str, *, description: str, sid_prefix: str = ""
) -> kms.Key:
    """A new key (rotation on, retained) for a function's log group and dead-letter queues:
    CloudWatch Logs and this account's EventBridge rules may use it."""
    key = kms.Key(
        scope,
        construct_id,
        description=description,
        enable_key_rotation=True,
        removal_policy=cdk.RemovalPolicy.RETAIN,
    )
    allow_logs_on_key(scope, key, f"{sid_prefix}LogsUseKey")
    # aws-assumption: sse-kms-keys-for-service-senders
    # aws-assumption: eventbridge-uses-queue-keys
    allow_rules_on_key(scope, key, f"{sid_prefix}EventBridgeDeadLetterQueue")
    return key


def service_endpoint(service: str, region: str) -> str:
    """The endpoint name a ``kms:ViaService`` condition compares with: ``<service>.<region>.``
    and the partition's URL suffix (``amazonaws.com``; ``amazonaws.com.cn`` in the China
    Regions), as ``AWS::URLSuffix`` of the stack it ends up in
    (aws-assumption: kms-via-service-endpoint-names)."""
    return f"{service}.{region}.{cdk.Aws.URL_SUFFIX}"


def key_through_s3(
    scope: Construct, sid: str, key_arn: str, actions: list[str], *, objects: str | None = None
) -> iam.PolicyStatement:
    """``actions`` on the key, only when S3 uses it for the caller in the stack's Region
    (``kms:ViaService``), and with ``objects`` only for objects matching that ARN pattern
    (S3's encryption context): aws-assumption: kms-via-s3-encryption-context."""
    stack = cdk.Stack.of(scope)
    conditions: dict[str, dict[str, str]] = {
        "StringEquals": {"kms:ViaService": f"s3.{stack.region}.{stack.url_suffix}"}
    }
    if objects is not None:
        conditions["StringLike"] = {"kms:EncryptionContext:aws:s3:arn": objects}
    return iam.PolicyStatement(sid=sid, actions=actions, resources=[key_arn], conditions=conditions)
