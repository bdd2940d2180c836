"""DumpTriageJob's roles: the supervisor's task role, the execution role, EventBridge's role.

Every permission is in a managed policy with a statement id (no inline policies): the task
role is the supervisor's (read the one dump, write its report, update its incident,
notify); the parser it starts holds no credentials at all (crashcart.triage.sandbox).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from crashcart.compliance import acknowledge, acknowledge_all
from crashcart.constructs._internal.service_key import key_through_s3
from crashcart.constructs._internal.triage_network import NAG_PACKS_WITH_VPC_RULES
from crashcart.constructs.incident_store import TRIAGE_READ_ACTIONS, TRIAGE_WRITE_ACTIONS
from crashcart.runtime.incident import TRIAGE_ATTRIBUTES

if TYPE_CHECKING:
    from crashcart.constructs.crash_dump_bucket import CrashDumpBucket
    from crashcart.constructs.dump_triage_job import DumpTriageJob

#: The incident attributes the job may touch (the incident record's triage writer).
INCIDENT_ATTRIBUTES = TRIAGE_ATTRIBUTES


def _ref(stack: cdk.Stack, construct: Construct) -> str:
    child = construct.node.default_child
    assert isinstance(child, cdk.CfnElement)
    return stack.get_logical_id(child)


def task_policy(
    job: DumpTriageJob, dumps: CrashDumpBucket, table: dynamodb.ITable, topic: sns.ITopic
) -> iam.ManagedPolicy:
    """The supervisor's permissions (the task role): the parser has none (it runs without
    credentials, crashcart.triage.sandbox)."""
    stack = cdk.Stack.of(job)
    statements = [
        iam.PolicyStatement(
            sid="TriageReadDumps",
            actions=["s3:GetObject"],
            resources=[dumps.dumps_arn_pattern],
        ),
        iam.PolicyStatement(
            sid="TriageWriteReports",
            actions=["s3:PutObject"],
            resources=[dumps.reports_arn_pattern],
        ),
        key_through_s3(
            job,
            "TriageDumpKeyThroughS3",
            dumps.encryption_key.key_arn,
            ["kms:Decrypt", "kms:GenerateDataKey"],
        ),
        iam.PolicyStatement(
            sid="TriageFindIncident",
            actions=list(TRIAGE_READ_ACTIONS),
            resources=[table.table_arn],
        ),
        # The task parses untrusted memory images with C code (drgn, makedumpfile): it
        # may write only the report attributes of an incident, nothing else.
        iam.PolicyStatement(
            sid="TriageLinkIncident",
            actions=list(TRIAGE_WRITE_ACTIONS),
            resources=[table.table_arn],
            conditions={
                # aws-assumption: dynamodb-fine-grained-keys
                "ForAllValues:StringEquals": {"dynamodb:Attributes": list(INCIDENT_ATTRIBUTES)}
            },
        ),
        iam.PolicyStatement(
            sid="TriageNotify", actions=["sns:Publish"], resources=[topic.topic_arn]
        ),
    ]
    if table.encryption_key is not None:
        statements.append(
            iam.PolicyStatement(
                sid="TriageIncidentTableKey",
                actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                resources=[table.encryption_key.key_arn],
            )
        )
    if topic.master_key is not None:
        statements.append(
            iam.PolicyStatement(
                sid="TriageTopicKey",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[topic.master_key.key_arn],
            )
        )
    policy = iam.ManagedPolicy(
        job,
        "TaskPolicy",
        description="crashcart triage job: read a dump, write its report, update the incident",
        statements=statements,
        roles=[job.task_role],
    )
    bucket_ref = _ref(stack, dumps.bucket)
    acknowledge_all(
        policy,
        {
            f"AwsSolutions::AwsSolutions-IAM5[Resource::<{bucket_ref}.Arn>/dumps/*]": (
                "the job reads the dump whichever instance shipped it: any key under "
                "dumps/ (read only)"
            ),
            f"AwsSolutions::AwsSolutions-IAM5[Resource::<{bucket_ref}.Arn>/reports/*]": (
                "the job writes reports/<instance>/<dump id>/report.{md,json} for "
                "whichever dump it triaged; instances cannot write reports/"
            ),
        },
    )
    return policy


def execution_role(job: DumpTriageJob, log_group: logs.ILogGroup) -> iam.Role:
    """Pull the job's image and write its logs. With a caller's image, CDK grants the pull."""
    role = iam.Role(
        job,
        "ExecutionRole",
        # aws-assumption: service-role-trust-principals
        assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
        description="crashcart triage job: ECS pulls the image and writes the logs",
    )
    if job.image_asset is None:
        acknowledge_all(
            role,
            {
                f"{pack}::{pack}-IAMNoInlinePolicy": "the caller's container image: CDK "
                "grants its pull (registry, secret) in the role's default policy"
                for pack in NAG_PACKS_WITH_VPC_RULES
            },
        )
        acknowledge(
            role,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "the caller's ECR image: ecr:GetAuthorizationToken has no resource-level "
            "permissions (CDK scopes the pull to the repository)",
        )
        return role
    policy = iam.ManagedPolicy(
        job,
        "ExecutionPolicy",
        description="crashcart triage job: pull the job image, write the job logs",
        statements=[
            iam.PolicyStatement(
                sid="TriagePullImage",
                actions=[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchGetImage",
                ],
                resources=[job.image_asset.repository.repository_arn],
            ),
            iam.PolicyStatement(
                sid="TriageRegistryLogin",
                actions=["ecr:GetAuthorizationToken"],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="TriageWriteLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            ),
        ],
        roles=[role],
    )
    acknowledge(
        policy,
        "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
        "ecr:GetAuthorizationToken has no resource-level permissions; the pull itself "
        "is scoped to the asset repository",
    )
    # Every permission is in the managed policy: CDK's own grants would add an inline one.
    return role.without_policy_updates()  # type: ignore[return-value]


def events_role(job: DumpTriageJob) -> iam.IRole:
    """EventBridge runs this task definition on this cluster, passing its two roles.

    CDK's own grants for the target are dropped (``without_policy_updates``): they would
    go to an inline policy. They include ``ecs:TagResource``, which RunTask needs only
    when the target sets tags or ``propagate_tags`` - add it here if you do.
    """
    role = iam.Role(
        job,
        "EventsRole",
        # aws-assumption: service-role-trust-principals
        assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
        description="crashcart triage job: EventBridge starts the task",
    )
    iam.ManagedPolicy(
        job,
        "EventsPolicy",
        description="crashcart triage job: run the triage task on its cluster",
        statements=[
            iam.PolicyStatement(
                sid="TriageRunTask",
                actions=["ecs:RunTask"],
                resources=[job.task_definition.task_definition_arn],
                # aws-assumption: ecs-runtask-conditions
                conditions={"ArnEquals": {"ecs:cluster": job.cluster.cluster_arn}},
            ),
            iam.PolicyStatement(
                sid="TriagePassTaskRoles",
                actions=["iam:PassRole"],
                resources=[job.task_role.role_arn, job.execution_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
            ),
        ],
        roles=[role],
    )
    return role.without_policy_updates()
