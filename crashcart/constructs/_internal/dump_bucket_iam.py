"""Who may do what with the crash-dump bucket: the instances' write-only upload (identity
policy and the bucket-policy denies that enforce it), the agent's rights, and the readers'.

Private to :mod:`crashcart.constructs.crash_dump_bucket`, whose ``grant_*`` methods call
these. Every right is a customer managed policy with statement ids, each wildcard
acknowledged at the policy with its reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from crashcart.compliance import acknowledge
from crashcart.constructs._internal.service_key import key_through_s3
from crashcart.constructs.diagnostic_interrupt_operator_policy import nag_rendering
from crashcart.runtime.dumps import LAYOUT_PARAMETER_NAME

if TYPE_CHECKING:
    from crashcart.constructs.crash_dump_bucket import CrashDumpBucket

#: The policy variable that names an instance-profile session: ``<role id>:<instance id>``.
# aws-assumption: aws-userid-instance-session
USERID_VARIABLE = "${aws:userid}"
#: The policy variable holding the id of the instance a request acts on (the resource's
#: ``ec2:InstanceID`` condition key), as AWS's own ``AWSEC2VssSnapshotPolicy`` uses it.
INSTANCE_ID_VARIABLE = "${ec2:InstanceId}"
_INSTANCE_SESSION_PATTERN = "*:i-*"


def logical_id(construct: Construct) -> str:
    """The logical id cdk-nag prints for a construct's resource."""
    child = construct.node.default_child
    assert isinstance(child, cdk.CfnElement)
    return cdk.Stack.of(construct).get_logical_id(child)


def upload_deny_statements(dumps: CrashDumpBucket, role: iam.IRole) -> list[iam.PolicyStatement]:
    """The bucket-policy statements that confine ``role`` to creating new objects under its
    instance's own prefix (see :meth:`CrashDumpBucket.grant_instance_upload`)."""
    principal = iam.ArnPrincipal(role.role_arn)
    bucket_arn = dumps.bucket.bucket_arn
    return [
        iam.PolicyStatement(
            sid=None,
            effect=iam.Effect.DENY,
            principals=[principal],
            not_actions=["s3:PutObject"],
            resources=[bucket_arn, dumps.bucket.arn_for_objects("*")],
        ),
        iam.PolicyStatement(
            effect=iam.Effect.DENY,
            principals=[principal],
            actions=["s3:PutObject"],
            not_resources=[dumps.own_prefix_arn],
        ),
        iam.PolicyStatement(
            effect=iam.Effect.DENY,
            principals=[principal],
            actions=["s3:PutObject"],
            resources=[dumps.bucket.arn_for_objects("*")],
            conditions={
                # aws-assumption: s3-conditional-write-keys
                "Null": {"s3:if-none-match": "true"},
                "Bool": {"s3:ObjectCreationOperation": "true"},
            },
        ),
        iam.PolicyStatement(
            effect=iam.Effect.DENY,
            principals=[principal],
            actions=["s3:PutObject"],
            resources=[dumps.bucket.arn_for_objects("*")],
            # aws-assumption: aws-userid-instance-session
            conditions={"StringNotLike": {"aws:userid": _INSTANCE_SESSION_PATTERN}},
        ),
        iam.PolicyStatement(
            effect=iam.Effect.DENY,
            principals=[principal],
            actions=["s3:PutObject"],
            resources=[dumps.bucket.arn_for_objects("*")],
            conditions={"Null": {"ec2:SourceInstanceARN": "true"}},
        ),
    ]


def upload_policy(dumps: CrashDumpBucket) -> iam.ManagedPolicy:
    """The instances' identity policy: create objects under the own prefix, with the key."""
    stack = cdk.Stack.of(dumps)
    policy = iam.ManagedPolicy(
        dumps,
        "UploadPolicy",
        description="crashcart: create crash dumps under the instance's own prefix",
        statements=[
            *upload_statements(
                stack,
                own_prefix_arn=dumps.own_prefix_arn,
                key_arn=dumps.encryption_key.key_arn,
                dumps_arn_pattern=dumps.dumps_arn_pattern,
            ),
        ],
    )
    acknowledge(
        policy,
        f"AwsSolutions::AwsSolutions-IAM5[Resource::<{logical_id(dumps.bucket)}.Arn>"
        "/dumps/<aws:userid>/*]",
        "an instance may create objects only under its own prefix, named by the "
        "${aws:userid} policy variable (<role id>:<instance id>)",
    )
    return policy


def upload_statements(
    stack: cdk.Stack, *, own_prefix_arn: str, key_arn: str, dumps_arn_pattern: str
) -> list[iam.PolicyStatement]:
    """An instance creates objects under its own prefix, and uses the bucket's key only
    through S3 in the stack's Region for dump objects (multipart uploads need Decrypt)."""
    return [
        iam.PolicyStatement(
            sid="CreateOwnDumps",
            actions=["s3:PutObject"],
            resources=[own_prefix_arn],
        ),
        key_through_s3(
            stack,
            "EncryptDumpsThroughS3",
            key_arn,
            ["kms:GenerateDataKey", "kms:Decrypt"],
            objects=dumps_arn_pattern,
        ),
    ]


def attestation_tag_statement(stack: cdk.Stack, tag_key: str) -> iam.PolicyStatement:
    """The agent may tag its own instance (only), with the attestation tag key (only)."""
    # aws-assumption: attestation-self-tag
    own_instance_arn = stack.format_arn(
        service="ec2", resource="instance", resource_name=INSTANCE_ID_VARIABLE
    )
    return iam.PolicyStatement(
        sid="TagOwnInstanceWithAttestation",
        actions=["ec2:CreateTags"],
        resources=[_instances_arn(stack)],
        conditions={
            "ArnLike": {"ec2:SourceInstanceARN": own_instance_arn},
            "ForAllValues:StringEquals": {"aws:TagKeys": [tag_key]},
            "Null": {"aws:TagKeys": "false"},
        },
    )


def acknowledge_attestation_tag(policy: iam.ManagedPolicy) -> None:
    """The reviewed reason for the instance wildcard of :func:`attestation_tag_statement`."""
    stack = cdk.Stack.of(policy)
    rendered = nag_rendering(stack.resolve(_instances_arn(stack)))
    acknowledge(
        policy,
        f"AwsSolutions::AwsSolutions-IAM5[Resource::{rendered}]",
        "the instance may tag only itself (ec2:SourceInstanceARN must be the ARN "
        "of the tagged instance, ${ec2:InstanceId}) and only with the kdump "
        "attestation tag key",
    )


def _instances_arn(stack: cdk.Stack) -> str:
    return stack.format_arn(service="ec2", resource="instance", resource_name="*")


def agent_policy(dumps: CrashDumpBucket) -> iam.ManagedPolicy:
    """The agent's rights beyond the upload: read the bucket-name parameter, tag its own
    instance with the attestation tag key (only)."""
    stack = cdk.Stack.of(dumps)
    policy = iam.ManagedPolicy(
        dumps,
        "AgentPolicy",
        description="crashcart agent: read the bucket name, attest kdump on itself",
        statements=[
            iam.PolicyStatement(
                sid="ReadBucketNameParameter",
                actions=["ssm:GetParameter"],
                # the layout parameter exists only in an organisation's member accounts: here
                # the agent's read of it answers ParameterNotFound ("instance" layout)
                resources=[dumps.parameter.parameter_arn, layout_parameter_arn(stack)],
            ),
            attestation_tag_statement(stack, dumps.attestation_tag_key),
        ],
    )
    acknowledge_attestation_tag(policy)
    return policy


def layout_parameter_arn(stack: cdk.Stack) -> str:
    """The ARN of this account's and Region's layout parameter (``/crashcart/dump-layout``)."""
    return stack.format_arn(
        service="ssm", resource="parameter", resource_name=LAYOUT_PARAMETER_NAME.lstrip("/")
    )


def read_policy(dumps: CrashDumpBucket) -> iam.ManagedPolicy:
    """The readers' policy: read and list dumps and evidence, decrypt through S3."""
    stack = cdk.Stack.of(dumps)
    policy = iam.ManagedPolicy(
        dumps,
        "ReadPolicy",
        description="crashcart: read crash dumps and evidence",
        statements=[
            iam.PolicyStatement(
                sid="ReadDumps",
                actions=["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectAttributes"],
                resources=[dumps.bucket.arn_for_objects("*")],
            ),
            iam.PolicyStatement(
                sid="ListDumps",
                actions=["s3:ListBucket", "s3:ListBucketVersions"],
                resources=[dumps.bucket.bucket_arn],
            ),
            key_through_s3(
                stack, "DecryptDumpsThroughS3", dumps.encryption_key.key_arn, ["kms:Decrypt"]
            ),
        ],
    )
    acknowledge(
        policy,
        f"AwsSolutions::AwsSolutions-IAM5[Resource::<{logical_id(dumps.bucket)}.Arn>/*]",
        "readers (analysts, triage jobs) read any dump or evidence object of this "
        "bucket: the bucket holds nothing else",
    )
    return policy
