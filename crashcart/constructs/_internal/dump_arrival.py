"""The dump-arrival unit of a crash-dump bucket: a new ``metadata.json`` -> the dump-arrival
function updates (or opens) the instance's incident and notifies.

Private to :mod:`crashcart.constructs.crash_dump_bucket` (``notify_incidents``). Every
failure ends in a queue that alarms on the incident topic; the function's rights are a
customer managed policy on its own role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from crashcart.compliance import acknowledge
from crashcart.constructs._internal.dump_bucket_iam import logical_id
from crashcart.constructs._internal.dump_events import metadata_written
from crashcart.constructs._internal.function_code import DUMP_ARRIVAL
from crashcart.constructs._internal.lambda_functions import (
    acknowledge_dead_letter_queue,
    acknowledge_outside_vpc,
    acknowledge_plain_environment,
    acknowledge_unreserved,
    acknowledge_untraced,
)
from crashcart.constructs._internal.queues import encrypted_queue
from crashcart.constructs._internal.secure_function import (
    function_role,
    python_function,
    rule_target,
)
from crashcart.constructs._internal.service_access import (
    allow_rules_on_key,
    failure_queue_alarm,
    undeliverable_events_alarm,
)
from crashcart.constructs.incident_store import DUMP_ARRIVAL_ACTIONS, IncidentStore
from crashcart.runtime import environment as variables

if TYPE_CHECKING:
    from crashcart.constructs.crash_dump_bucket import CrashDumpBucket


@dataclass(frozen=True)
class DumpArrival:
    """What :func:`dump_arrival` created."""

    function: lambda_.Function
    queue: sqs.Queue
    undelivered: sqs.Queue
    rule: events.Rule
    alarms: list[cloudwatch.Alarm]


def dump_arrival(
    dumps: CrashDumpBucket,
    scope: Construct,
    *,
    incidents: IncidentStore,
    window: cdk.Duration,
    reserved_concurrency: int | None,
    log_retention: logs.RetentionDays,
) -> DumpArrival:
    """The function, its failure queues, the ``metadata.json`` rule and the alarms, in
    ``scope`` (see :meth:`CrashDumpBucket.notify_incidents`)."""
    table, topic = incidents.table, incidents.topic
    queue = encrypted_queue(scope, "FailedEvents", key=dumps.encryption_key)
    # No SQS3 acknowledgement needed: cdk-nag sees this queue is the function's DLQ.
    # Events EventBridge could not deliver to the function (the rule target's DLQ), with
    # a key of their own: the dump key never trusts EventBridge.
    queue_key = kms.Key(
        scope,
        "QueueKey",
        description="crashcart dump arrival: events EventBridge could not deliver",
        enable_key_rotation=True,
    )
    allow_rules_on_key(scope, queue_key, "EventBridgeRulesOfThisAccount")
    undelivered = encrypted_queue(
        scope,
        "Undelivered",
        key=queue_key,
        dead_letter_store="this queue is itself the dead-letter store of the dump-arrival "
        "rule's target; an alarm notifies on every message sent to it",
    )
    log_group = dumps.log_group(
        scope,
        "Logs",
        retention=log_retention,
        holds="panic summaries, not dump contents",
    )

    role = function_role(scope, "Role", description="crashcart dump-arrival function")
    statements: list[iam.PolicyStatement] = []
    statements.append(
        iam.PolicyStatement(
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn],
        )
    )
    statements.append(
        iam.PolicyStatement(
            actions=["s3:GetObject"],
            resources=[dumps.dumps_arn_pattern],
        )
    )
    statements.append(
        iam.PolicyStatement(
            actions=["kms:Decrypt", "kms:GenerateDataKey"],
            resources=[dumps.encryption_key.key_arn],
        )
    )
    statements.append(
        iam.PolicyStatement(
            actions=list(DUMP_ARRIVAL_ACTIONS),
            resources=[table.table_arn],
        )
    )
    if table.encryption_key is not None:
        statements.append(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                resources=[table.encryption_key.key_arn],
            )
        )
    statements.append(iam.PolicyStatement(actions=["sns:Publish"], resources=[topic.topic_arn]))
    if topic.master_key is not None:
        statements.append(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[topic.master_key.key_arn],
            )
        )
    statements.append(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[queue.queue_arn]))
    policy = iam.ManagedPolicy(
        scope,
        "Policy",
        description="crashcart dump-arrival function",
        statements=statements,
        roles=[role],
    )
    acknowledge(
        policy,
        f"AwsSolutions::AwsSolutions-IAM5[Resource::<{logical_id(dumps.bucket)}.Arn>/dumps/*]",
        "the function reads the dmesg.txt of whichever dump arrived: any key under "
        "dumps/ (read only; the bucket holds nothing else it may read)",
    )

    function = python_function(
        scope,
        DUMP_ARRIVAL,
        # Every permission is in the managed policy above: CDK's automatic grants (logs,
        # dead-letter queue) would add an inline default policy.
        role=role.without_policy_updates(),
        description="crashcart: crash dump arrived -> incident update + notification",
        timeout=cdk.Duration.seconds(60),
        # aws-assumption: lambda-unreserved-concurrency-minimum
        reserved_concurrent_executions=reserved_concurrency,
        # Lambda writes it with the function's role (its managed policy grants that).
        # aws-assumption: lambda-destinations-use-the-function-role
        dead_letter_queue=queue,
        retry_attempts=2,
        log_group=log_group,
        environment={
            variables.TABLE_NAME: table.table_name,
            variables.TOPIC_ARN: topic.topic_arn,
            variables.DUMP_BUCKET: dumps.bucket.bucket_name,
            variables.ATTACH_WINDOW_SECONDS: str(int(window.to_seconds())),
        },
    )
    function.node.add_dependency(policy)
    acknowledge_untraced(function)
    acknowledge_plain_environment(function)
    acknowledge_unreserved(
        function,
        reserved_concurrency,
        bound="each invocation only updates the incident of the instance whose own "
        "prefix received the object, and only that instance can write there",
    )
    acknowledge_outside_vpc(function, apis="S3, DynamoDB, SNS")
    acknowledge_dead_letter_queue(function, queue, name="dump-arrival")
    rule = events.Rule(
        scope,
        "MetadataCreated",
        description="crashcart: a crash dump's metadata.json was written (dump complete)",
        event_pattern=metadata_written(dumps.bucket.bucket_name),
        targets=[
            rule_target(
                function, undelivered, retry_attempts=8, max_event_age=cdk.Duration.hours(24)
            )
        ],
    )
    alarms = [
        failure_queue_alarm(
            scope,
            "FailedEventsAlarm",
            queue,
            topic,
            "dump-arrival events the function failed on",
        ),
        failure_queue_alarm(
            scope,
            "UndeliveredAlarm",
            undelivered,
            topic,
            "dump-arrival events EventBridge could not deliver to the function",
        ),
        undeliverable_events_alarm(scope, "UndeliverableEventsAlarm", rule, topic),
    ]
    return DumpArrival(
        function=function, queue=queue, undelivered=undelivered, rule=rule, alarms=alarms
    )
