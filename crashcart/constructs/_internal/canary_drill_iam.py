"""The canary drill's rights: tag-conditioned, resource-scoped statements.

The function may launch an instance only with this drill's ``crashcart:drill-canary`` tag
(``aws:RequestTag`` at launch), only from an AMI carrying this pipeline's tag, only in the
given subnet and security group, and tag nothing but what it launches (``ec2:CreateAction``).
It and the state machine may terminate only instances carrying the canary tag
(``ec2:ResourceTag``).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs

from crashcart.constructs._internal.service_key import service_endpoint
from crashcart.constructs.incident_store import (
    PUBLISH_KEY_ACTIONS,
    TABLE_KEY_ACTIONS,
    IncidentStore,
)
from crashcart.runtime import canary
from crashcart.runtime.dumps import DUMPS_PREFIX


def _arn(service: str, resource: str, *, account: bool = True, region: bool = True) -> str:
    return (
        f"arn:{cdk.Aws.PARTITION}:{service}:{cdk.Aws.REGION if region else ''}:"
        f"{cdk.Aws.ACCOUNT_ID if account else ''}:{resource}"
    )


def canary_instances() -> str:
    return _arn("ec2", "instance/*")


def on_canaries(
    sid: str, action: str, tag_condition: str, canary_tag_value: str
) -> iam.PolicyStatement:
    """``action`` on the drill's canary instances only: those carrying its canary tag.

    :param tag_condition: the service's resource-tag condition key before ``/<tag key>``
        (``ec2:ResourceTag``, ``ssm:resourceTag``).
    """
    return iam.PolicyStatement(
        sid=sid,
        actions=[action],
        resources=[canary_instances()],
        conditions={"StringEquals": {f"{tag_condition}/{canary.CANARY_TAG_KEY}": canary_tag_value}},
    )


def machine_statements(
    *, function: lambda_.IFunction, canary_tag_value: str
) -> list[iam.PolicyStatement]:
    # aws-assumption: sfn-service-integrations
    return [
        iam.PolicyStatement(
            sid="InvokeSteps",
            actions=["lambda:InvokeFunction"],
            resources=[function.function_arn],
        ),
        # aws-assumption: ec2-resource-tag-terminate
        on_canaries(
            "TerminateCanaries", "ec2:TerminateInstances", "ec2:ResourceTag", canary_tag_value
        ),
    ]


def drill_statements(
    *,
    stack: cdk.Stack,
    log_group: logs.ILogGroup,
    table: dynamodb.ITable,
    incidents: IncidentStore,
    dead_letter_queue: sqs.IQueue,
    key: kms.IKey,
    subnet: ec2.ISubnet,
    security_group: ec2.ISecurityGroup,
    instance_role: iam.IRole,
    hang_document: str,
    candidate_parameter: str,
    verified_parameter: str,
    pipeline_tag_value: str,
    canary_tag_value: str,
    ami_key: kms.IKey,
    dump_bucket: s3.IBucket | None,
) -> list[iam.PolicyStatement]:
    canary_tag = {f"aws:RequestTag/{canary.CANARY_TAG_KEY}": canary_tag_value}
    statements = [
        iam.PolicyStatement(
            sid="Logs",
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn],
        ),
        # aws-assumption: ec2-tag-on-create-conditions
        iam.PolicyStatement(
            sid="LaunchTaggedCanaries",
            actions=["ec2:RunInstances"],
            resources=[canary_instances(), _arn("ec2", "volume/*")],
            conditions={"StringEquals": canary_tag},
        ),
        iam.PolicyStatement(
            sid="LaunchFromThisPipelinesAmis",
            actions=["ec2:RunInstances"],
            resources=[_arn("ec2", "image/*", account=False)],
            conditions={
                "StringEquals": {
                    f"ec2:ResourceTag/{canary.AMI_PIPELINE_TAG_KEY}": pipeline_tag_value
                }
            },
        ),
        iam.PolicyStatement(
            sid="LaunchInTheGivenNetwork",
            actions=["ec2:RunInstances"],
            resources=[
                _arn("ec2", f"subnet/{subnet.subnet_id}"),
                _arn("ec2", f"security-group/{security_group.security_group_id}"),
                _arn("ec2", "network-interface/*"),
            ],
        ),
        iam.PolicyStatement(
            sid="TagOnlyAtLaunch",
            actions=["ec2:CreateTags"],
            resources=[canary_instances(), _arn("ec2", "volume/*")],
            conditions={"StringEquals": {"ec2:CreateAction": "RunInstances", **canary_tag}},
        ),
        iam.PolicyStatement(
            sid="PassTheCanaryRole",
            actions=["iam:PassRole"],
            resources=[instance_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ),
        # aws-assumption: ec2-resource-tag-terminate
        on_canaries(
            "TerminateCanaries", "ec2:TerminateInstances", "ec2:ResourceTag", canary_tag_value
        ),
        iam.PolicyStatement(
            sid="Observe",
            actions=[
                "ec2:DescribeImages",
                "ec2:DescribeInstances",
                "ec2:DescribeInstanceStatus",
                "ec2:DescribeInstanceTypes",
            ],
            resources=["*"],
        ),
        # aws-assumption: ssm-send-command-resource-tag
        on_canaries("HangCanaries", "ssm:SendCommand", "ssm:resourceTag", canary_tag_value),
        iam.PolicyStatement(
            sid="HangDocument",
            actions=["ssm:SendCommand"],
            resources=[_arn("ssm", f"document/{hang_document}")],
        ),
        iam.PolicyStatement(
            sid="PromoteAmis",
            actions=["ec2:CreateTags"],
            resources=[_arn("ec2", "image/*", account=False)],
            conditions={
                "StringEquals": {
                    f"ec2:ResourceTag/{canary.AMI_PIPELINE_TAG_KEY}": pipeline_tag_value
                },
                "ForAllValues:StringEquals": {
                    "aws:TagKeys": [canary.AMI_STATUS_TAG_KEY, canary.AMI_VERIFIED_AT_TAG_KEY]
                },
            },
        ),
        iam.PolicyStatement(
            sid="ReadAmiParameters",
            actions=["ssm:GetParameter"],
            resources=[
                _arn("ssm", f"parameter/{candidate_parameter.lstrip('/')}"),
                _arn("ssm", f"parameter/{verified_parameter.lstrip('/')}"),
            ],
        ),
        iam.PolicyStatement(
            sid="WriteVerifiedParameter",
            actions=["ssm:PutParameter"],
            resources=[_arn("ssm", f"parameter/{verified_parameter.lstrip('/')}")],
        ),
        iam.PolicyStatement(
            sid="DrillTable",
            actions=["dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Scan"],
            resources=[table.table_arn],
        ),
        iam.PolicyStatement(
            sid="ReadIncidents",
            actions=["dynamodb:Query"],
            resources=[incidents.table.table_arn],
        ),
        iam.PolicyStatement(
            sid="Notify", actions=["sns:Publish"], resources=[incidents.topic.topic_arn]
        ),
        iam.PolicyStatement(
            sid="FailedInvocations",
            actions=["sqs:SendMessage"],
            resources=[dead_letter_queue.queue_arn],
        ),
        iam.PolicyStatement(
            sid="Keys",
            actions=sorted(set(TABLE_KEY_ACTIONS) | set(PUBLISH_KEY_ACTIONS)),
            resources=sorted(
                {
                    k.key_arn
                    for k in (key, incidents.encryption_key, incidents.topic.master_key)
                    if k is not None
                },
                key=lambda arn: str(stack.resolve(arn)),
            ),
        ),
        # The candidate's volumes are encrypted with the pipeline's key: EC2 uses it on the
        # launching principal's behalf.
        iam.PolicyStatement(
            sid="AmiKeyForEc2",
            actions=[
                "kms:CreateGrant",
                "kms:Decrypt",
                "kms:GenerateDataKeyWithoutPlaintext",
                "kms:ReEncrypt*",
                "kms:DescribeKey",
            ],
            resources=[ami_key.key_arn],
            conditions={
                "StringEquals": {"kms:ViaService": service_endpoint("ec2", cdk.Aws.REGION)}
            },
        ),
    ]
    if dump_bucket is not None:
        statements.append(
            iam.PolicyStatement(
                sid="DumpSizes",
                actions=["s3:ListBucket"],
                resources=[dump_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{DUMPS_PREFIX}*"]}},
            )
        )
    return statements
