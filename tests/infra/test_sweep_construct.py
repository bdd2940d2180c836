"""DumpOverdueSweep template: schedule, exact rights, no reserved concurrency, DLQ, validation."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match, Template

from crashcart.constructs.dump_overdue_sweep import (
    CENSUS_METRICS,
    AttestationWatch,
    DumpOverdueSweep,
)
from crashcart.errors import ConfigurationError
from crashcart.opt_in import OptInTag
from tests.conftest import TEST_ACCOUNT, TEST_REGION
from tests.support.incidents import store_of

ENV = cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION)


def _table(stack: cdk.Stack, key: kms.IKey | None = None) -> dynamodb.Table:
    return dynamodb.Table(
        stack,
        "Incidents",
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        encryption=(
            dynamodb.TableEncryption.CUSTOMER_MANAGED
            if key
            else dynamodb.TableEncryption.AWS_MANAGED
        ),
        encryption_key=key,
    )


@pytest.fixture(scope="module")
def stacks() -> dict[str, Any]:
    app = cdk.App()
    minimal = cdk.Stack(app, "Minimal", env=ENV)
    table = _table(minimal)
    topic = sns.Topic(minimal, "Topic")
    minimal_sweep = DumpOverdueSweep(minimal, "Sweep", incidents=store_of(minimal, table, topic))

    full = cdk.Stack(app, "Full", env=ENV)
    key = kms.Key(full, "IncidentKey", enable_key_rotation=True)
    full_sweep = DumpOverdueSweep(
        full,
        "Sweep",
        incidents=store_of(full, _table(full, key), sns.Topic(full, "Topic", master_key=key)),
        schedule=cdk.Duration.minutes(15),
        encryption_key=key,
        parameter_name="/team/dump-bucket",
        log_retention=logs.RetentionDays.THREE_MONTHS,
        attestation_watch=AttestationWatch(
            tag=OptInTag(key="team:nmi", value="yes"),
            max_age=cdk.Duration.days(2),
            silent_for=cdk.Duration.hours(6),
        ),
    )
    unwatched = cdk.Stack(app, "Unwatched", env=ENV)
    unwatched_sweep = DumpOverdueSweep(
        unwatched,
        "Sweep",
        incidents=store_of(unwatched, _table(unwatched), sns.Topic(unwatched, "Topic")),
        attestation_watch=None,
    )
    return {
        "minimal": Template.from_stack(minimal),
        "minimal_ids": {
            "table": minimal.get_logical_id(table.node.default_child),  # type: ignore[arg-type]
            "topic": minimal.get_logical_id(topic.node.default_child),  # type: ignore[arg-type]
            "key": minimal.get_logical_id(minimal_sweep.encryption_key.node.default_child),  # type: ignore[arg-type]
            "queue": minimal.get_logical_id(minimal_sweep.dead_letter_queue.node.default_child),  # type: ignore[arg-type]
            "logs": minimal.get_logical_id(minimal_sweep.log_group.node.default_child),  # type: ignore[arg-type]
            "function": minimal.get_logical_id(minimal_sweep.function.node.default_child),  # type: ignore[arg-type]
        },
        "full": Template.from_stack(full),
        "full_key": full.get_logical_id(key.node.default_child),  # type: ignore[arg-type]
        "full_sweep": full_sweep,
        "minimal_sweep": minimal_sweep,
        "unwatched": Template.from_stack(unwatched),
        "unwatched_sweep": unwatched_sweep,
    }


def _get_att(logical_id: str, attribute: str = "Arn") -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, attribute]}


def test_minimal_resource_counts(stacks: dict[str, Any]) -> None:
    template: Template = stacks["minimal"]
    for kind, count in {
        "AWS::Lambda::Function": 1,
        "AWS::Lambda::EventInvokeConfig": 1,
        "AWS::Lambda::Permission": 1,
        "AWS::Events::Rule": 1,
        "AWS::SQS::Queue": 1,
        "AWS::SQS::QueuePolicy": 1,
        "AWS::KMS::Key": 1,
        "AWS::Logs::LogGroup": 1,
        "AWS::IAM::Role": 1,
        "AWS::IAM::ManagedPolicy": 1,
        "AWS::IAM::Policy": 0,  # no inline default policy: every right is in the managed one
        "AWS::CloudWatch::Alarm": 3,  # the attestation census alarm; DLQ messages; refused events
    }.items():
        template.resource_count_is(kind, count)
    stacks["unwatched"].resource_count_is("AWS::CloudWatch::Alarm", 2)  # failure alarms only


def test_schedule_rule_with_dlq_and_retries(stacks: dict[str, Any]) -> None:
    ids = stacks["minimal_ids"]
    stacks["minimal"].has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": "rate(5 minutes)",
            "State": "ENABLED",
            "Targets": [
                Match.object_like(
                    {
                        "Arn": _get_att(ids["function"]),
                        "DeadLetterConfig": {"Arn": _get_att(ids["queue"])},
                        "RetryPolicy": {
                            "MaximumRetryAttempts": 4,
                            "MaximumEventAgeInSeconds": 3600,
                        },
                    }
                )
            ],
        },
    )
    stacks["full"].has_resource_properties(
        "AWS::Events::Rule", {"ScheduleExpression": "rate(15 minutes)"}
    )


def test_the_dead_letter_queue_is_watched(stacks: dict[str, Any]) -> None:
    """Issue 14, defect 3: nobody watched the sweep's dead-letter queue."""
    ids = stacks["minimal_ids"]
    template: Template = stacks["minimal"]
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/SQS",
            "MetricName": "NumberOfMessagesSent",
            "Dimensions": [{"Name": "QueueName", "Value": _get_att(ids["queue"], "QueueName")}],
            "Statistic": "Sum",
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": ids["topic"]}],
        },
    )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/Events",
            "MetricName": "InvocationsFailedToBeSentToDlq",
            "AlarmActions": [{"Ref": ids["topic"]}],
        },
    )
    # The topic lets this account's alarms publish (it had no policy at all before).
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "Topics": [{"Ref": ids["topic"]}],
            "PolicyDocument": {
                "Statement": [
                    Match.object_like(
                        {
                            "Principal": {"Service": "cloudwatch.amazonaws.com"},
                            "Action": "sns:Publish",
                        }
                    )
                ]
            },
        },
    )


def test_function_settings(stacks: dict[str, Any]) -> None:
    ids = stacks["minimal_ids"]
    template: Template = stacks["minimal"]
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.14",
            "Handler": "crashcart.functions.incident_sweep.handler.handler",
            "ReservedConcurrentExecutions": Match.absent(),  # issue 14: no default reservation
            "LoggingConfig": {"LogGroup": {"Ref": ids["logs"]}},
            "Environment": {
                "Variables": {
                    "CRASHCART_TABLE_NAME": {"Ref": ids["table"]},
                    "CRASHCART_TOPIC_ARN": {"Ref": ids["topic"]},
                    "CRASHCART_DUMP_BUCKET_PARAMETER": "/crashcart/dump-bucket",
                    "CRASHCART_ATTESTATION_CENSUS": "true",
                    "CRASHCART_OPT_IN_TAG_KEY": "crashcart:diagnostic-interrupt",
                    "CRASHCART_OPT_IN_TAG_VALUE": "enabled",
                    "CRASHCART_ATTESTATION_MAX_AGE_SECONDS": "604800",
                }
            },
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "MaximumRetryAttempts": 2,
            "DestinationConfig": {"OnFailure": {"Destination": _get_att(ids["queue"])}},
        },
    )
    template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {"RetentionInDays": 365, "KmsKeyId": _get_att(ids["key"])},
    )
    template.has_resource_properties("AWS::SQS::Queue", {"KmsMasterKeyId": _get_att(ids["key"])})
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_role_rights_are_exact(stacks: dict[str, Any]) -> None:
    ids = stacks["minimal_ids"]
    policies = stacks["minimal"].find_resources("AWS::IAM::ManagedPolicy")
    (policy,) = policies.values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statements == [
        {
            "Sid": "Logs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": _get_att(ids["logs"]),
        },
        {
            "Sid": "IncidentTable",
            "Effect": "Allow",
            "Action": ["dynamodb:Scan", "dynamodb:UpdateItem"],
            "Resource": _get_att(ids["table"]),
        },
        {
            "Sid": "Notify",
            "Effect": "Allow",
            "Action": "sns:Publish",
            "Resource": {"Ref": ids["topic"]},
        },
        {
            "Sid": "FailedInvocations",
            "Effect": "Allow",
            "Action": "sqs:SendMessage",
            "Resource": _get_att(ids["queue"]),
        },
        {
            "Sid": "AttestationCensus",
            "Effect": "Allow",
            "Action": "ec2:DescribeInstances",
            "Resource": "*",
        },
        {
            "Sid": "Key0",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": _get_att(ids["key"]),
        },
    ]
    (role_id,) = stacks["minimal"].find_resources("AWS::IAM::Role")
    assert policy["Properties"]["Roles"] == [{"Ref": role_id}]


def test_the_only_wildcard_resource_is_the_census_describe(stacks: dict[str, Any]) -> None:
    """ec2:DescribeInstances supports no resource scoping; nothing else may use '*'."""
    for name in ("minimal", "full", "unwatched"):
        wildcards = []
        for policy in stacks[name].find_resources("AWS::IAM::ManagedPolicy").values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                resources = statement["Resource"]
                for resource in resources if isinstance(resources, list) else [resources]:
                    if "*" in str(resource):
                        wildcards.append(statement)
        expected = (
            []
            if name == "unwatched"
            else [
                {
                    "Sid": "AttestationCensus",
                    "Effect": "Allow",
                    "Action": "ec2:DescribeInstances",
                    "Resource": "*",
                }
            ]
        )
        assert wildcards == expected, name


def test_attestation_alarm_fires_when_opted_in_instances_ran_a_day_unattested(
    stacks: dict[str, Any],
) -> None:
    """aws-assumption: attestation-self-tag: the day-long silence alarm, to the topic."""
    ids = stacks["minimal_ids"]
    alarms = stacks["minimal"].find_resources("AWS::CloudWatch::Alarm")
    ((logical_id, alarm),) = [
        (name, body) for name, body in alarms.items() if "AttestationSilentAlarm" in name
    ]
    assert logical_id.startswith("SweepAttestationSilentAlarm")
    props = alarm["Properties"]
    assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert (props["Threshold"], props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (
        1,
        24,
        24,
    )
    assert props["TreatMissingData"] == "notBreaching"
    assert props["AlarmActions"] == [{"Ref": ids["topic"]}]
    assert props["OKActions"] == [{"Ref": ids["topic"]}]
    expression, *metrics = props["Metrics"]
    assert expression["Expression"] == "IF(optedin > 0 AND attested == 0, 1, 0)"
    assert expression["ReturnData"] is True  # the period is each metric's (3600 s)
    by_id = {m["Id"]: m for m in metrics}
    for metric_id, name in (("optedin", "OptedInInstances"), ("attested", "AttestedInstances")):
        stat = by_id[metric_id]["MetricStat"]
        assert by_id[metric_id]["ReturnData"] is False
        assert (stat["Stat"], stat["Period"]) == ("Maximum", 3600)
        assert stat["Metric"] == {
            "Namespace": "crashcart",
            "MetricName": name,
            "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": ids["function"]}}],
        }
    assert "crashcart attestation" in props["AlarmDescription"]
    sweep: DumpOverdueSweep = stacks["minimal_sweep"]
    assert sweep.attestation_alarm is not None


def test_census_metric_names_are_the_runtimes() -> None:
    from crashcart.functions.incident_sweep import attestation as runtime

    assert dict(runtime.METRICS) == CENSUS_METRICS
    assert runtime.METRIC_NAMESPACE == "crashcart" and runtime.METRIC_DIMENSION == "FunctionName"


def test_custom_attestation_watch_and_none(stacks: dict[str, Any]) -> None:
    stacks["full"].has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "CRASHCART_ATTESTATION_CENSUS": "true",
                        "CRASHCART_OPT_IN_TAG_KEY": "team:nmi",
                        "CRASHCART_OPT_IN_TAG_VALUE": "yes",
                        "CRASHCART_ATTESTATION_MAX_AGE_SECONDS": "172800",
                    }
                )
            }
        },
    )
    stacks["full"].has_resource_properties(
        "AWS::CloudWatch::Alarm", {"EvaluationPeriods": 6, "DatapointsToAlarm": 6}
    )
    unwatched: Template = stacks["unwatched"]
    unwatched.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Environment": {
                "Variables": Match.object_like({"CRASHCART_ATTESTATION_CENSUS": "false"})
            }
        },
    )
    assert "ec2:" not in str(unwatched.find_resources("AWS::IAM::ManagedPolicy"))
    assert stacks["unwatched_sweep"].attestation_alarm is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"silent_for": cdk.Duration.minutes(30)}, r"silent_for=30 minutes: give whole hours"),
        ({"silent_for": cdk.Duration.minutes(90)}, r"silent_for=.*: give whole hours"),
        ({"silent_for": cdk.Duration.days(8)}, r"silent_for=8 days: give whole hours"),
        ({"max_age": cdk.Duration.seconds(30)}, r"max_age=30 seconds: give at least 3 hours"),
        ({"max_age": cdk.Duration.minutes(90)}, r"max_age=.*: give at least 3 hours"),
        ({"tag": "crashcart:diagnostic-interrupt"}, r"tag='crashcart:.*': give an OptInTag"),
    ],
)
def test_fails_on_bad_attestation_watch(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        AttestationWatch(**kwargs)


def test_one_key_statement_when_table_topic_and_logs_share_a_key(stacks: dict[str, Any]) -> None:
    (policy,) = stacks["full"].find_resources("AWS::IAM::ManagedPolicy").values()
    keys = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Sid"].startswith("Key")
    ]
    assert keys == [
        {
            "Sid": "Key0",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
            "Resource": _get_att(stacks["full_key"]),
        }
    ]


def test_all_props(stacks: dict[str, Any]) -> None:
    template: Template = stacks["full"]
    template.resource_count_is("AWS::KMS::Key", 1)  # the given key only: none created
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Environment": {
                "Variables": Match.object_like(
                    {"CRASHCART_DUMP_BUCKET_PARAMETER": "/team/dump-bucket"}
                )
            }
        },
    )
    template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {"RetentionInDays": 90, "KmsKeyId": _get_att(stacks["full_key"])},
    )
    sweep: DumpOverdueSweep = stacks["full_sweep"]
    assert sweep.function is not None and sweep.rule is not None
    assert sweep.dead_letter_queue is not None


@pytest.mark.parametrize(
    "schedule",
    [cdk.Duration.seconds(90), cdk.Duration.seconds(30), cdk.Duration.hours(2)],
    ids=["not-whole-minutes", "under-a-minute", "over-an-hour"],
)
def test_fails_on_schedule_outside_1_to_60_minutes(schedule: cdk.Duration) -> None:
    stack = cdk.Stack(cdk.App(), "Bad", env=ENV)
    with pytest.raises(ConfigurationError, match=r"schedule=.*whole minutes from 1 to 60"):
        DumpOverdueSweep(
            stack,
            "Sweep",
            incidents=store_of(stack, _table(stack), sns.Topic(stack, "T")),
            schedule=schedule,
        )


def test_fails_on_relative_parameter_name() -> None:
    stack = cdk.Stack(cdk.App(), "Bad", env=ENV)
    with pytest.raises(ConfigurationError, match="parameter_name='crashcart/dump-bucket'"):
        DumpOverdueSweep(
            stack,
            "Sweep",
            incidents=store_of(stack, _table(stack), sns.Topic(stack, "T")),
            parameter_name="crashcart/dump-bucket",
        )


def test_unresolved_schedule_and_parameter_name_are_not_validated() -> None:
    stack = cdk.Stack(cdk.App(), "Token", env=ENV)
    minutes = cdk.CfnParameter(stack, "Minutes", type="Number").value_as_number
    name = cdk.CfnParameter(stack, "Name", type="String").value_as_string
    DumpOverdueSweep(
        stack,
        "Sweep",
        incidents=store_of(stack, _table(stack), sns.Topic(stack, "T")),
        schedule=cdk.Duration.minutes(minutes),
        parameter_name=name,
    )
