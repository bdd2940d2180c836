"""The central incident view unit: the function, its failure queues, the two rules that feed
it (member incident updates on the central bus, dump arrivals on the default bus) and the
alarms on every failure path. The function also puts a "dump received" event on the member's
default bus in this Region (received there by ``CentralDumpReceiver``).

Private to :mod:`crashcart.constructs.organisation_central`. The function's rights are a
customer managed policy on its own role; events it refuses end in its dead-letter queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from crashcart.compliance import acknowledge
from crashcart.constructs._internal.dump_events import metadata_written
from crashcart.constructs._internal.function_code import INCIDENT_VIEW, FunctionPackage
from crashcart.constructs._internal.lambda_functions import (
    acknowledge_dead_letter_queue,
    acknowledge_outside_vpc,
    acknowledge_plain_environment,
    acknowledge_unreserved,
    acknowledge_untraced,
)
from crashcart.constructs._internal.organisation_policies import put_events_conditions
from crashcart.constructs._internal.queues import encrypted_queue
from crashcart.constructs._internal.secure_function import (
    function_log_group,
    function_role,
    python_function,
    rule_target,
)
from crashcart.constructs._internal.service_access import (
    failure_queue_alarm,
    undeliverable_events_alarm,
)
from crashcart.constructs._internal.service_key import logs_and_rules_key
from crashcart.constructs.incident_store import (
    DUMP_ARRIVAL_ACTIONS,
    PUBLISH_KEY_ACTIONS,
    TABLE_KEY_ACTIONS,
    IncidentStore,
)
from crashcart.runtime import environment as variables
from crashcart.runtime.organisation import (
    DUMP_RECEIVED_DETAIL_TYPE,
    DUMP_RECEIVED_SOURCE,
    INCIDENT_DETAIL_TYPE,
    INCIDENT_SOURCE,
)

#: How cdk-nag names the member buses' resource (for the acknowledgement).
MEMBER_BUSES_NAG = "arn:<AWS::Partition>:events:<AWS::Region>:*:event-bus/default"


def member_buses_statement() -> iam.PolicyStatement:
    """``events:PutEvents`` of "dump received" entries only, on default buses in this Region.

    The account stays a wildcard: the members are every account of the organisation, new
    ones included, unknown at synth; no organisation condition: ``aws:ResourceOrgID`` is not
    documented for EventBridge's PutEvents (the member's bus policy is what admits only this
    account); see aws-assumption: org-eventbridge-default-bus-cross-account. What the view
    may put is narrowed instead, to the one source and detail type a member's receiver takes.
    """
    return iam.PolicyStatement(
        sid="DumpReceivedToMemberDefaultBuses",
        actions=["events:PutEvents"],
        resources=[f"arn:{cdk.Aws.PARTITION}:events:{cdk.Aws.REGION}:*:event-bus/default"],
        # aws-assumption: eventbridge-put-events-source-keys
        conditions=put_events_conditions(DUMP_RECEIVED_SOURCE, DUMP_RECEIVED_DETAIL_TYPE),
    )


def incident_writer_statements(
    *, log_group: logs.ILogGroup, incidents: IncidentStore, failed: sqs.IQueue, key: kms.IKey
) -> list[iam.PolicyStatement]:
    """The rights of a function that records dumps on ``incidents`` (the dump-arrival actions
    on its table, publish on its topic, their keys), logs to ``log_group`` and keeps failed
    invocations in ``failed``, both encrypted with ``key`` (the central view; a member's
    ``CentralDumpReceiver``)."""
    table, topic = incidents.table, incidents.topic
    statements = [
        iam.PolicyStatement(
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn],
        ),
        iam.PolicyStatement(actions=list(DUMP_ARRIVAL_ACTIONS), resources=[table.table_arn]),
        iam.PolicyStatement(actions=["sns:Publish"], resources=[topic.topic_arn]),
        iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[failed.queue_arn]),
        iam.PolicyStatement(
            actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn]
        ),
    ]
    if table.encryption_key is not None:
        statements.append(
            iam.PolicyStatement(
                actions=list(TABLE_KEY_ACTIONS), resources=[table.encryption_key.key_arn]
            )
        )
    if topic.master_key is not None and topic.master_key is not table.encryption_key:
        statements.append(
            iam.PolicyStatement(
                actions=list(PUBLISH_KEY_ACTIONS), resources=[topic.master_key.key_arn]
            )
        )
    return statements


def incident_writer_function(
    scope: Construct,
    *,
    package: FunctionPackage,
    what: str,
    description: str,
    incidents: IncidentStore,
    failed: sqs.IQueue,
    key: kms.IKey,
    log_retention: logs.RetentionDays,
    environment: dict[str, str],
    bound: str,
    apis: str,
    extra_statements: Sequence[iam.PolicyStatement] = (),
) -> tuple[lambda_.Function, iam.ManagedPolicy]:
    """A function that writes incidents of ``incidents`` from events (the central view, a
    member's dump receiver): its log group, role and managed policy (the writer's rights
    plus ``extra_statements``), failed events kept in ``failed``, and the acknowledgements
    every such function carries. Construct ids ``Logs``, ``Role``, ``Policy``, ``Function``."""
    log_group = function_log_group(scope, "Logs", key=key, retention=log_retention)
    role = function_role(scope, "Role", description=f"crashcart {what}")
    policy = iam.ManagedPolicy(
        scope,
        "Policy",
        description=f"crashcart {what}",
        statements=[
            *incident_writer_statements(
                log_group=log_group, incidents=incidents, failed=failed, key=key
            ),
            *extra_statements,
        ],
        roles=[role],
    )
    function = python_function(
        scope,
        package,
        role=role.without_policy_updates(),
        description=description,
        timeout=cdk.Duration.seconds(30),
        # aws-assumption: lambda-destinations-use-the-function-role
        dead_letter_queue=failed,
        retry_attempts=2,
        log_group=log_group,
        environment={
            variables.TABLE_NAME: incidents.table.table_name,
            variables.TOPIC_ARN: incidents.topic.topic_arn,
            **environment,
        },
    )
    function.node.add_dependency(policy)
    acknowledge_untraced(function)
    acknowledge_plain_environment(function)
    acknowledge_unreserved(function, None, bound=bound)
    acknowledge_outside_vpc(function, apis=apis)
    acknowledge_dead_letter_queue(function, failed, name=what)
    return function, policy


@dataclass(frozen=True)
class IncidentView:
    """What :func:`incident_view` created."""

    function: lambda_.Function
    failed: sqs.Queue
    undelivered: sqs.Queue
    update_rule: events.Rule
    dump_rule: events.Rule
    alarms: list[cloudwatch.Alarm]


def incident_view(
    scope: Construct,
    *,
    bus: events.IEventBus,
    bucket: s3.IBucket,
    incidents: IncidentStore,
    window: cdk.Duration,
    log_retention: logs.RetentionDays,
) -> IncidentView:
    """The central incident view in ``scope`` (see ``OrganisationCentral``)."""
    topic = incidents.topic
    key = logs_and_rules_key(
        scope,
        "Key",
        description="crashcart central incident view: logs and failed events",
    )
    failed = encrypted_queue(scope, "FailedEvents", key=key)
    undelivered = encrypted_queue(
        scope,
        "Undelivered",
        key=key,
        dead_letter_store="this queue is itself the dead-letter store of the incident "
        "view's rule targets; an alarm notifies on every message sent to it",
    )
    function, policy = incident_writer_function(
        scope,
        package=INCIDENT_VIEW,
        what="central incident view",
        description="crashcart: member incident updates and central dumps -> incident view",
        incidents=incidents,
        failed=failed,
        key=key,
        log_retention=log_retention,
        extra_statements=[member_buses_statement()],
        environment={
            variables.DUMP_BUCKET: bucket.bucket_name,
            variables.ATTACH_WINDOW_SECONDS: str(int(window.to_seconds())),
            variables.PARTITION: cdk.Aws.PARTITION,
        },
        bound="each invocation writes one incident item of the sending account (the bus "
        "policy admits only the organisation; an update for another account is refused)",
        apis="DynamoDB, SNS, EventBridge",
    )
    acknowledge(
        policy,
        f"AwsSolutions::AwsSolutions-IAM5[Resource::{MEMBER_BUSES_NAG}]",
        "the view tells the member account whose dump it linked, on that member's default "
        "bus in this Region; members are every account of the organisation, new ones "
        "included, so the account is a wildcard. Only events:PutEvents, only default buses "
        "of this Region; each member's bus policy admits only this central account and only "
        "source crashcart.central (CentralDumpReceiver)",
    )

    def target() -> targets.LambdaFunction:
        return rule_target(
            function, undelivered, retry_attempts=8, max_event_age=cdk.Duration.hours(24)
        )

    update_rule = events.Rule(
        scope,
        "IncidentUpdates",
        event_bus=bus,
        description="crashcart: a member account's incident update -> central incident view",
        event_pattern=events.EventPattern(
            source=[INCIDENT_SOURCE], detail_type=[INCIDENT_DETAIL_TYPE]
        ),
        targets=[target()],
    )
    dump_rule = events.Rule(
        scope,
        "DumpArrived",
        description="crashcart: a dump's metadata.json landed in the central bucket",
        event_pattern=metadata_written(bucket.bucket_name, segments=3),
        targets=[target()],
    )
    alarms = [
        failure_queue_alarm(
            scope,
            "FailedEventsAlarm",
            failed,
            topic,
            "incident events the view refused or failed on",
        ),
        failure_queue_alarm(
            scope,
            "UndeliveredAlarm",
            undelivered,
            topic,
            "incident events EventBridge could not deliver to the view",
        ),
        undeliverable_events_alarm(scope, "UpdatesUndeliverableAlarm", update_rule, topic),
        undeliverable_events_alarm(scope, "DumpsUndeliverableAlarm", dump_rule, topic),
    ]
    return IncidentView(
        function=function,
        failed=failed,
        undelivered=undelivered,
        update_rule=update_rule,
        dump_rule=dump_rule,
        alarms=alarms,
    )
