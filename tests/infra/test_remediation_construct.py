"""UnresponsiveInstanceRemediation synthesizes what we intend: alarms, delivery, rights, data."""

from __future__ import annotations

import json
import re
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Annotations, Match, Template

from crashcart.constructs.existing_dump_bucket import ExistingDumpBucket
from crashcart.constructs.unresponsive_instance_remediation import (
    ALARM_STATE_CHANGE,
    CONTRIBUTOR_STATE_CHANGE,
    METRIC_DIMENSION,
    METRIC_NAMESPACE,
    OUTCOME_METRICS,
    AlarmWindow,
    AttestationPolicy,
    CircuitBreaker,
    FleetWatch,
    InterruptGuards,
    MissedAlarmSweep,
    UnresponsiveInstanceRemediation,
)
from crashcart.errors import ConfigurationError
from crashcart.opt_in import OptInTag
from crashcart.runtime.environment import REMEDIATION_ORGANISATION
from tests.conftest import TEST_ACCOUNT, TEST_REGION
from tests.support.remediation import (
    INSTANCE_IDS,
    env,
    evidence_bucket,
    imported_vpc,
    load_runtime_settings,
    new_app,
    only,
    resources_of,
)

PARTITION = {"Ref": "AWS::Partition"}
# cdk.json's @aws-cdk/core:enablePartitionLiterals: a stack whose region is known gets its
# partition as a literal when the construct formats an ARN through the stack.
INSTANCE_ARN = f"arn:aws:ec2:{TEST_REGION}:{TEST_ACCOUNT}:instance/*"
# grant_diagnostic_interrupt writes the partition as the AWS::Partition pseudo parameter.
INTERRUPT_INSTANCE_ARN = {
    "Fn::Join": ["", ["arn:", PARTITION, f":ec2:{TEST_REGION}:{TEST_ACCOUNT}:instance/*"]]
}
ANY_INSTANCE_ARN = {"Fn::Join": ["", ["arn:", PARTITION, ":ec2:*:*:instance/*"]]}
OPT_IN = {"StringEquals": {"aws:ResourceTag/crashcart:diagnostic-interrupt": "enabled"}}


class Synth:
    """One synthesized stack: its construct, Template, and template dict."""

    def __init__(self, stack: cdk.Stack, construct: UnresponsiveInstanceRemediation) -> None:
        self.stack = stack
        self.construct = construct
        self.template = Template.from_stack(stack)
        self.json: dict[str, Any] = self.template.to_json()

    def logical(self, construct: Any) -> str:
        return self.stack.get_logical_id(construct.node.default_child)

    def ref(self, construct: Any) -> dict[str, Any]:
        return {"Ref": self.logical(construct)}

    def arn(self, construct: Any) -> dict[str, Any]:
        return {"Fn::GetAtt": [self.logical(construct), "Arn"]}


@pytest.fixture(scope="module")
def explicit() -> Synth:
    """Minimal props, explicit mode: two raw instance ids."""
    app = new_app()
    stack = cdk.Stack(app, "Explicit", env=env())
    bucket, _ = evidence_bucket(stack)
    construct = UnresponsiveInstanceRemediation(
        stack, "Remediation", dumps=ExistingDumpBucket(bucket=bucket), instances=list(INSTANCE_IDS)
    )
    return Synth(stack, construct)


@pytest.fixture(scope="module")
def fleet() -> Synth:
    """Minimal props, fleet mode."""
    app = new_app()
    stack = cdk.Stack(app, "Fleet", env=env())
    bucket, _ = evidence_bucket(stack)
    construct = UnresponsiveInstanceRemediation(
        stack, "Remediation", dumps=ExistingDumpBucket(bucket=bucket), fleet=FleetWatch()
    )
    return Synth(stack, construct)


@pytest.fixture(scope="module")
def full() -> Synth:
    """Every prop set: CDK instances, BYO topic and key, VPC, custom settings."""
    app = new_app()
    stack = cdk.Stack(app, "Full", env=env())
    bucket, evidence_key = evidence_bucket(stack)
    vpc = imported_vpc(stack)
    instance = ec2.Instance(
        stack,
        "Web",
        vpc=vpc,
        instance_type=ec2.InstanceType("m5.large"),
        machine_image=ec2.MachineImage.generic_linux({TEST_REGION: "ami-0123456789abcdef0"}),
        require_imdsv2=True,
    )
    key = kms.Key(stack, "OwnKey", enable_key_rotation=True)
    topic = sns.Topic(stack, "OwnTopic", master_key=key, enforce_ssl=True)
    operator = iam.Role(stack, "Operator", assumed_by=iam.AccountRootPrincipal())
    construct = UnresponsiveInstanceRemediation(
        stack,
        "Remediation",
        dumps=ExistingDumpBucket(bucket=bucket, encryption_key=evidence_key),
        instances=[instance, "i-0fedcba9876543210"],
        tag=OptInTag(key="acme:nmi", value="yes"),
        alarm_window=AlarmWindow(evaluation_periods=5, datapoints_to_alarm=4),
        guards=InterruptGuards(
            boot_grace=cdk.Duration.minutes(20),
            cooldown=cdk.Duration.hours(12),
            daily_budget=2,
            dump_deadline=cdk.Duration.hours(1),
            attestation=AttestationPolicy.WARN,
            attestation_max_age=cdk.Duration.days(2),
            allow_unverified_arch=True,
        ),
        breaker=CircuitBreaker(
            fleet_threshold=10,
            az_threshold=4,
            window=cdk.Duration.minutes(30),
            quiet=cdk.Duration.hours(2),
        ),
        missed_alarm_sweep=MissedAlarmSweep(
            schedule=cdk.Duration.minutes(10),
            max_per_pass=5,
            max_pages=3,
            stale_after=cdk.Duration.hours(1),
        ),
        dry_run=False,
        topic=topic,
        encryption_key=key,
        log_retention=logs.RetentionDays.TWO_YEARS,
        reserved_concurrency=3,
        timeout=cdk.Duration.minutes(2),
        memory_size=512,
        retry_attempts=1,
        max_event_age=cdk.Duration.hours(2),
        vpc=vpc,
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    construct.grant_reset_breaker(operator)
    construct.grant_kill_switch(operator)
    synth = Synth(stack, construct)
    synth.instance = instance  # type: ignore[attr-defined]
    synth.operator = operator  # type: ignore[attr-defined]
    synth.topic = topic  # type: ignore[attr-defined]
    synth.key = key  # type: ignore[attr-defined]
    synth.evidence_key = evidence_key  # type: ignore[attr-defined]
    return synth


# -- resource counts (minimal props) ------------------------------------------------------

COMMON_COUNTS = {
    "AWS::KMS::Key": 2,  # the deployment key + the test's evidence key
    "AWS::DynamoDB::Table": 1,
    "AWS::SNS::Topic": 1,
    "AWS::SNS::TopicPolicy": 1,
    "AWS::SSM::Parameter": 1,
    "AWS::SQS::Queue": 3,
    "AWS::SQS::QueuePolicy": 3,
    "AWS::Logs::LogGroup": 1,
    "AWS::IAM::Role": 1,
    "AWS::IAM::ManagedPolicy": 1,  # the function's rights; no inline policy
    "AWS::Lambda::Function": 1,
    "AWS::Lambda::EventInvokeConfig": 1,
    "AWS::Lambda::Permission": 2,  # the alarm rule and the missed-alarm sweep's schedule
    "AWS::Events::Rule": 2,
    "AWS::S3::Bucket": 1,
    "AWS::S3::BucketPolicy": 1,
}


@pytest.mark.parametrize(("mode", "status_alarms"), [("explicit", 2), ("fleet", 1)])
def test_minimal_props_resource_counts(
    mode: str, status_alarms: int, request: pytest.FixtureRequest
) -> None:
    synth: Synth = request.getfixturevalue(mode)
    # + 3 queue alarms + 1 alarm per rule (2) on events it could not put into its
    # dead-letter queue
    expected = dict(COMMON_COUNTS, **{"AWS::CloudWatch::Alarm": status_alarms + 5})
    if mode == "fleet":
        # + the partial-data watch: its queue (and policy), rule, and two alarms (messages
        # sent to the queue; events its rule could not deliver)
        for kind, more in (
            ("AWS::SQS::Queue", 1),
            ("AWS::SQS::QueuePolicy", 1),
            ("AWS::Events::Rule", 1),
            ("AWS::CloudWatch::Alarm", 2),
        ):
            expected[kind] += more
    actual: dict[str, int] = {}
    for resource in synth.json["Resources"].values():
        actual[resource["Type"]] = actual.get(resource["Type"], 0) + 1
    assert actual == expected
    assert len(synth.construct.alarms) == status_alarms
    assert len(synth.construct.queue_alarms) == 3


# -- status-check alarms --------------------------------------------------------------------


def test_one_alarm_per_instance_on_the_instance_status_check(explicit: Synth) -> None:
    prefix = explicit.construct.alarm_name_prefix
    for instance_id in INSTANCE_IDS:
        explicit.template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "AlarmName": f"{prefix}{instance_id}",
                "Namespace": "AWS/EC2",
                "MetricName": "StatusCheckFailed_Instance",
                "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                "Statistic": "Maximum",
                "Period": 60,
                "EvaluationPeriods": 3,
                "DatapointsToAlarm": 3,
                "Threshold": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "TreatMissingData": "notBreaching",
            },
        )


def test_status_alarms_have_no_actions_of_their_own(explicit: Synth, fleet: Synth) -> None:
    # The function acts through EventBridge; an alarm action (reboot, SNS) would bypass it.
    for synth in (explicit, fleet):
        for alarm in synth.construct.alarms:
            props = synth.json["Resources"][synth.logical(alarm)]["Properties"]
            for key in ("AlarmActions", "OKActions", "InsufficientDataActions"):
                assert key not in props


def test_fleet_alarm_is_one_metrics_insights_query(fleet: Synth) -> None:
    prefix = fleet.construct.alarm_name_prefix
    fleet.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": f"{prefix}fleet",
            "Metrics": [
                {
                    "Expression": (
                        'SELECT MAX(StatusCheckFailed_Instance) FROM SCHEMA("AWS/EC2", '
                        "InstanceId) GROUP BY InstanceId ORDER BY MAX() DESC LIMIT 500"
                    ),
                    "Id": Match.any_value(),
                    "Period": 60,
                    "ReturnData": True,
                    "Label": Match.any_value(),
                }
            ],
            "EvaluationPeriods": 3,
            "DatapointsToAlarm": 3,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
        },
    )


def test_all_props_window_and_cdk_instances(full: Synth) -> None:
    instance_ref = full.ref(full.instance)  # type: ignore[attr-defined]
    prefix = full.construct.alarm_name_prefix
    full.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": {"Fn::Join": ["", [prefix, instance_ref]]},
            "Dimensions": [{"Name": "InstanceId", "Value": instance_ref}],
            "EvaluationPeriods": 5,
            "DatapointsToAlarm": 4,
        },
    )
    full.template.has_resource_properties(
        "AWS::EC2::Instance",
        {"Tags": Match.array_with([{"Key": "acme:nmi", "Value": "yes"}])},
    )


def test_raw_instance_ids_warn_that_they_must_carry_the_tag(explicit: Synth) -> None:
    Annotations.from_stack(explicit.stack).has_warning(
        "/Explicit/Remediation",
        Match.string_like_regexp("2 instance.*given by id.*crashcart:diagnostic-interrupt=enabled"),
    )


def test_alarm_name_prefix_is_generated_per_deployment() -> None:
    app = new_app()
    prefixes = set()
    for name in ("One", "Two"):
        stack = cdk.Stack(app, name, env=env())
        bucket, _ = evidence_bucket(stack)
        construct = UnresponsiveInstanceRemediation(
            stack, "Remediation", dumps=ExistingDumpBucket(bucket=bucket), fleet=FleetWatch()
        )
        assert construct.alarm_name_prefix.startswith(f"crashcart-{name}-")
        assert construct.alarm_name_prefix.endswith("-")
        prefixes.add(construct.alarm_name_prefix)
    assert len(prefixes) == 2


# -- delivery: rule, both failure paths, queues -----------------------------------------


@pytest.mark.parametrize(
    ("mode", "detail_type"),
    [("explicit", ALARM_STATE_CHANGE), ("fleet", CONTRIBUTOR_STATE_CHANGE)],
)
def test_rule_matches_only_this_deployments_alarms(
    mode: str, detail_type: str, request: pytest.FixtureRequest
) -> None:
    synth: Synth = request.getfixturevalue(mode)
    rule = synth.json["Resources"][synth.logical(synth.construct.rule)]
    assert rule["Type"] == "AWS::Events::Rule"
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.cloudwatch"],
        "detail-type": [detail_type],
        "account": [TEST_ACCOUNT],
        "region": [TEST_REGION],
        "detail": {
            "alarmName": [{"prefix": synth.construct.alarm_name_prefix}],
            "state": {"value": ["ALARM", "OK"]},
        },
    }
    assert rule["Properties"]["State"] == "ENABLED"


def test_every_status_alarm_name_matches_the_rule_prefix(explicit: Synth, fleet: Synth) -> None:
    for synth in (explicit, fleet):
        prefix = synth.construct.alarm_name_prefix
        for alarm in synth.construct.alarms:
            name = synth.json["Resources"][synth.logical(alarm)]["Properties"]["AlarmName"]
            if isinstance(name, dict):  # Fn::Join [prefix, Ref]
                name = name["Fn::Join"][1][0]
            assert isinstance(name, str) and name.startswith(prefix)


def test_rule_target_has_dead_letter_queue_and_retry_policy(explicit: Synth) -> None:
    c = explicit.construct
    explicit.template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "Targets": [
                {
                    "Arn": explicit.arn(c.function),
                    "Id": Match.any_value(),
                    "DeadLetterConfig": {"Arn": explicit.arn(c.dead_letter_queue)},
                    "RetryPolicy": {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 185},
                }
            ]
        },
    )
    explicit.template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [explicit.ref(c.dead_letter_queue)],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": "sqs:SendMessage",
                                "Effect": "Allow",
                                "Principal": {"Service": "events.amazonaws.com"},
                                "Condition": {"ArnEquals": {"aws:SourceArn": explicit.arn(c.rule)}},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_async_invoke_config_sends_function_failures_to_the_failure_queue(
    explicit: Synth, full: Synth
) -> None:
    for synth, retries, age in ((explicit, 2, 3600), (full, 1, 7200)):
        synth.template.has_resource_properties(
            "AWS::Lambda::EventInvokeConfig",
            {
                "FunctionName": synth.ref(synth.construct.function),
                "Qualifier": "$LATEST",
                "MaximumRetryAttempts": retries,
                "MaximumEventAgeInSeconds": age,
                "DestinationConfig": {
                    "OnFailure": {"Destination": synth.arn(synth.construct.failure_queue)}
                },
            },
        )


def test_queues_are_encrypted_with_the_deployment_key_and_tls_only(explicit: Synth) -> None:
    c = explicit.construct
    for queue in (c.dead_letter_queue, c.failure_queue, c.rejected_queue):
        props = explicit.json["Resources"][explicit.logical(queue)]["Properties"]
        assert props["KmsMasterKeyId"] == explicit.arn(c.key)
        assert props["MessageRetentionPeriod"] == 14 * 86400
    ssl_denies = [
        policy
        for policy in resources_of(explicit.json, "AWS::SQS::QueuePolicy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Deny"
        and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(ssl_denies) == 3


def test_each_queue_alarms_on_every_message_sent_to_it(explicit: Synth) -> None:
    # Messages sent, not visible: a second failure while the first still waits in the queue
    # must notify again (a depth alarm would stay in ALARM and say nothing).
    c = explicit.construct
    for queue in (c.dead_letter_queue, c.failure_queue, c.rejected_queue):
        explicit.template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "Namespace": "AWS/SQS",
                "MetricName": "NumberOfMessagesSent",
                "Dimensions": [
                    {
                        "Name": "QueueName",
                        "Value": {"Fn::GetAtt": [explicit.logical(queue), "QueueName"]},
                    }
                ],
                "Statistic": "Sum",
                "Period": 300,
                "Threshold": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "EvaluationPeriods": 1,
                "TreatMissingData": "notBreaching",
                "AlarmActions": [explicit.ref(c.topic)],
            },
        )


# -- the function and its role ---------------------------------------------------------


def test_function_runtime_concurrency_timeout_memory_logs(explicit: Synth) -> None:
    c = explicit.construct
    explicit.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.14",
            "Handler": "crashcart.functions.remediation.handler.handler",
            "ReservedConcurrentExecutions": Match.absent(),  # issue 14: no default reservation
            "Timeout": 60,
            "MemorySize": 256,
            "Role": explicit.arn(c.role),
            "LoggingConfig": {"LogGroup": explicit.ref(c.log_group), "LogFormat": "Text"},
        },
    )
    explicit.template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {"RetentionInDays": 365, "KmsKeyId": explicit.arn(c.key)},
    )


def test_function_environment_is_the_contract(explicit: Synth) -> None:
    c = explicit.construct
    _, function = only(explicit.json, "AWS::Lambda::Function")
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables == {
        "CRASHCART_TABLE_NAME": explicit.ref(c.table),
        "CRASHCART_TOPIC_ARN": explicit.ref(c.topic),
        "CRASHCART_EVIDENCE_BUCKET": {
            "Ref": explicit.stack.get_logical_id(c.evidence_bucket.node.default_child)
        },
        "CRASHCART_REJECTED_QUEUE_URL": explicit.ref(c.rejected_queue),
        "CRASHCART_KILL_SWITCH_PARAMETER": explicit.ref(c.kill_switch),
        "CRASHCART_OPT_IN_TAG_KEY": "crashcart:diagnostic-interrupt",
        "CRASHCART_OPT_IN_TAG_VALUE": "enabled",
        "CRASHCART_ALARM_NAME_PREFIX": c.alarm_name_prefix,
        "CRASHCART_DRY_RUN": "true",
        "CRASHCART_BOOT_GRACE_SECONDS": "900",
        "CRASHCART_COOLDOWN_SECONDS": "21600",
        "CRASHCART_DAILY_BUDGET": "1",
        "CRASHCART_BREAKER_FLEET_THRESHOLD": "5",
        "CRASHCART_BREAKER_AZ_THRESHOLD": "3",
        "CRASHCART_BREAKER_WINDOW_SECONDS": "900",
        "CRASHCART_BREAKER_QUIET_SECONDS": "3600",
        "CRASHCART_ATTESTATION_POLICY": "require",
        "CRASHCART_ATTESTATION_MAX_AGE_SECONDS": "604800",
        "CRASHCART_ALLOW_UNVERIFIED_ARCH": "false",
        "CRASHCART_DUMP_DEADLINE_SECONDS": "1800",
        "CRASHCART_MAX_EVENT_AGE_SECONDS": "3600",
        "CRASHCART_MISSED_SWEEP_MAX_PER_PASS": "10",
        "CRASHCART_MISSED_SWEEP_MAX_PAGES": "20",
        "CRASHCART_MISSED_SWEEP_STALE_SECONDS": "1800",
    }


def test_environment_names_and_defaults_match_the_runtime_settings(explicit: Synth) -> None:
    runtime = load_runtime_settings()
    _, function = only(explicit.json, "AWS::Lambda::Function")
    variables = function["Properties"]["Environment"]["Variables"]
    # every variable but the organisation's (set only with organisation=...)
    assert set(variables) == set(runtime.ENVIRONMENT) - set(REMEDIATION_ORGANISATION)
    for name, default in runtime.ENVIRONMENT.items():
        if name in REMEDIATION_ORGANISATION:
            continue
        if default is not None and name != "CRASHCART_DRY_RUN":
            # The construct's defaults are the runtime's; dry run is the one deliberate change.
            assert variables[name] == default, name


def test_all_props_environment(full: Synth) -> None:
    _, function = only(full.json, "AWS::Lambda::Function")
    variables = function["Properties"]["Environment"]["Variables"]
    assert {k: v for k, v in variables.items() if isinstance(v, str)} == {
        "CRASHCART_OPT_IN_TAG_KEY": "acme:nmi",
        "CRASHCART_OPT_IN_TAG_VALUE": "yes",
        "CRASHCART_ALARM_NAME_PREFIX": full.construct.alarm_name_prefix,
        "CRASHCART_DRY_RUN": "false",
        "CRASHCART_BOOT_GRACE_SECONDS": "1200",
        "CRASHCART_COOLDOWN_SECONDS": "43200",
        "CRASHCART_DAILY_BUDGET": "2",
        "CRASHCART_BREAKER_FLEET_THRESHOLD": "10",
        "CRASHCART_BREAKER_AZ_THRESHOLD": "4",
        "CRASHCART_BREAKER_WINDOW_SECONDS": "1800",
        "CRASHCART_BREAKER_QUIET_SECONDS": "7200",
        "CRASHCART_ATTESTATION_POLICY": "warn",
        "CRASHCART_ATTESTATION_MAX_AGE_SECONDS": "172800",
        "CRASHCART_ALLOW_UNVERIFIED_ARCH": "true",
        "CRASHCART_DUMP_DEADLINE_SECONDS": "3600",
        "CRASHCART_MAX_EVENT_AGE_SECONDS": "7200",
        "CRASHCART_MISSED_SWEEP_MAX_PER_PASS": "5",
        "CRASHCART_MISSED_SWEEP_MAX_PAGES": "3",
        "CRASHCART_MISSED_SWEEP_STALE_SECONDS": "3600",
    }
    assert variables["CRASHCART_TOPIC_ARN"] == full.ref(full.topic)  # type: ignore[attr-defined]
    full.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "ReservedConcurrentExecutions": 3,
            "Timeout": 120,
            "MemorySize": 512,
            "VpcConfig": {
                "SubnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
                "SecurityGroupIds": Match.any_value(),
            },
        },
    )
    full.template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 731})
    # Bring-your-own topic and key: nothing of that kind created by the construct.
    assert full.construct.topic is full.topic  # type: ignore[attr-defined]
    assert full.construct.key is full.key  # type: ignore[attr-defined]
    assert len(resources_of(full.json, "AWS::SNS::Topic")) == 1
    assert len(resources_of(full.json, "AWS::KMS::Key")) == 2  # own key + evidence key
    full.template.has_resource(
        "AWS::DynamoDB::Table", {"DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete"}
    )


def expected_statements(synth: Synth, *, evidence_key_arn: Any) -> list[dict[str, Any]]:
    c = synth.construct
    bucket_arn = {
        "Fn::GetAtt": [synth.stack.get_logical_id(c.evidence_bucket.node.default_child), "Arn"]
    }
    return [
        {
            "Sid": "Logs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": synth.arn(c.log_group),
        },
        {
            "Sid": "DescribeInstances",
            "Effect": "Allow",
            "Action": [
                "ec2:DescribeInstanceStatus",
                "ec2:DescribeInstanceTypes",
                "ec2:DescribeInstances",
            ],
            "Resource": "*",
        },
        {
            "Sid": "ConsoleOutputOptedIn",
            "Effect": "Allow",
            "Action": "ec2:GetConsoleOutput",
            "Resource": INSTANCE_ARN,
            "Condition": OPT_IN,
        },
        {
            "Sid": "KillSwitch",
            "Effect": "Allow",
            "Action": "ssm:GetParameter",
            "Resource": {
                "Fn::Join": [
                    "",
                    [
                        f"arn:aws:ssm:{TEST_REGION}:{TEST_ACCOUNT}:parameter/",
                        synth.ref(c.kill_switch),
                    ],
                ]
            },
        },
        {
            "Sid": "IncidentTable",
            "Effect": "Allow",
            "Action": [
                "dynamodb:ConditionCheckItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "dynamodb:UpdateItem",
            ],
            "Resource": synth.arn(c.table),
        },
        {
            "Sid": "Notify",
            "Effect": "Allow",
            "Action": "sns:Publish",
            "Resource": synth.ref(c.topic),
        },
        {
            "Sid": "Evidence",
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": {"Fn::Join": ["", [bucket_arn, "/evidence/*"]]},
        },
        {
            "Sid": "Queues",
            "Effect": "Allow",
            "Action": "sqs:SendMessage",
            "Resource": [synth.arn(c.failure_queue), synth.arn(c.rejected_queue)],
        },
        {
            "Sid": "DeploymentKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
            "Resource": synth.arn(c.key),
        },
        {
            "Sid": "EvidenceKey",
            "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
            "Resource": evidence_key_arn,
        },
        {
            "Sid": "CrashcartDiagnosticInterruptOptedIn",
            "Effect": "Allow",
            "Action": "ec2:SendDiagnosticInterrupt",
            "Resource": INTERRUPT_INSTANCE_ARN,
            "Condition": OPT_IN,
        },
        {
            "Sid": "CrashcartDenyOptInTagChanges",
            "Effect": "Deny",
            "Action": ["ec2:CreateTags", "ec2:DeleteTags"],
            "Resource": ANY_INSTANCE_ARN,
            "Condition": {
                "ForAnyValue:StringEqualsIgnoreCase": {
                    "aws:TagKeys": ["crashcart:diagnostic-interrupt"]
                }
            },
        },
        {
            "Sid": "CrashcartDenyOptInTagAtLaunch",
            "Effect": "Deny",
            "Action": "ec2:RunInstances",
            "Resource": ANY_INSTANCE_ARN,
            "Condition": {
                "ForAnyValue:StringEqualsIgnoreCase": {
                    "aws:TagKeys": ["crashcart:diagnostic-interrupt"]
                }
            },
        },
        {
            "Sid": "CrashcartDenyDeleteAllInstanceTags",
            "Effect": "Deny",
            "Action": "ec2:DeleteTags",
            "Resource": ANY_INSTANCE_ARN,
            "Condition": {"Null": {"aws:TagKeys": "true"}},
        },
    ]


def _key_arn_of(synth: Synth, logical_prefix: str) -> dict[str, Any]:
    keys = [k for k in resources_of(synth.json, "AWS::KMS::Key") if k.startswith(logical_prefix)]
    assert len(keys) == 1
    return {"Fn::GetAtt": [keys[0], "Arn"]}


def identity_policies(synth: Synth) -> list[dict[str, Any]]:
    """Every inline and customer managed policy of the template."""
    return [
        policy
        for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
        for policy in resources_of(synth.json, kind).values()
    ]


def test_role_policy_is_exactly_the_rights_the_function_uses(explicit: Synth) -> None:
    c = explicit.construct
    assert not resources_of(explicit.json, "AWS::IAM::Policy")  # no inline policy
    logical, policy = only(explicit.json, "AWS::IAM::ManagedPolicy")
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    expected = expected_statements(explicit, evidence_key_arn=_key_arn_of(explicit, "EvidenceKey"))
    assert statements == expected
    # Attached to the function's role only; the function runs as that role.
    assert policy["Properties"]["Roles"] == [explicit.ref(c.role)]
    for other in ("Users", "Groups"):
        assert other not in policy["Properties"]
    # The function (and its on-failure destination) start only once the rights exist.
    _, function = only(explicit.json, "AWS::Lambda::Function")
    assert logical in function["DependsOn"]
    _, invoke_config = only(explicit.json, "AWS::Lambda::EventInvokeConfig")
    assert logical in invoke_config["DependsOn"]
    _, role = only(explicit.json, "AWS::IAM::Role")
    assert "ManagedPolicyArns" not in role["Properties"]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
        }
    ]


@pytest.mark.parametrize("mode", ["explicit", "fleet", "full"])
def test_no_wildcard_resource_on_interrupt_or_console_output(
    mode: str, request: pytest.FixtureRequest
) -> None:
    synth: Synth = request.getfixturevalue(mode)
    for policy in identity_policies(synth):
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            actions = [actions] if isinstance(actions, str) else actions
            if statement["Effect"] != "Allow":
                continue
            sensitive = {"ec2:SendDiagnosticInterrupt", "ec2:GetConsoleOutput"} & set(actions)
            if sensitive:
                resources = statement["Resource"]
                resources = resources if isinstance(resources, list) else [resources]
                assert "*" not in resources
                assert all(r != "*" and "instance/*" in str(r) for r in resources)
                assert "StringEquals" in statement["Condition"]
            assert not any(a.endswith("*") and a != "*" for a in actions if a.startswith("ec2:"))
            assert "*" not in actions


def test_interrupt_right_is_held_by_the_function_role_only(full: Synth) -> None:
    holders = []
    for policy in identity_policies(full):
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            actions = [actions] if isinstance(actions, str) else actions
            if statement["Effect"] == "Allow" and "ec2:SendDiagnosticInterrupt" in actions:
                holders.extend(policy["Properties"].get("Roles", []))
    assert holders == [full.ref(full.construct.role)]


def test_all_props_role_uses_custom_tag_vpc_rights_and_own_key(full: Synth) -> None:
    c = full.construct
    statements = [
        statement
        for policy in identity_policies(full)
        if policy["Properties"].get("Roles") == [full.ref(c.role)]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    by_sid = {
        s.get("Sid", s["Action"] if isinstance(s["Action"], str) else ""): s for s in statements
    }
    custom = {"StringEquals": {"aws:ResourceTag/acme:nmi": "yes"}}
    assert by_sid["ConsoleOutputOptedIn"]["Condition"] == custom
    assert by_sid["DeploymentKey"]["Resource"] == full.arn(full.key)  # type: ignore[attr-defined]
    assert "TopicKey" not in by_sid  # the BYO topic's key is the deployment key
    assert by_sid["VpcNetworkInterfaces"]["Resource"] == "*"
    interrupt = [s for s in statements if s["Action"] == "ec2:SendDiagnosticInterrupt"]
    assert [s["Condition"] for s in interrupt] == [custom]


def test_grant_reset_breaker_and_kill_switch(full: Synth) -> None:
    """Both grants are customer managed policies on the operator role: no inline policy."""
    c = full.construct
    operator_ref = full.ref(full.operator)  # type: ignore[attr-defined]
    assert not [
        policy
        for policy in resources_of(full.json, "AWS::IAM::Policy").values()
        if operator_ref in policy["Properties"].get("Roles", [])
    ]
    statements = [
        statement
        for policy in resources_of(full.json, "AWS::IAM::ManagedPolicy").values()
        if policy["Properties"].get("Roles") == [operator_ref]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert {
        "Sid": "CrashcartResetBreaker",
        "Action": ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:UpdateItem"],
        "Effect": "Allow",
        "Resource": full.arn(c.table),
        "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["breaker#*"]}},
    } in statements
    assert {
        "Sid": "CrashcartResetBreakerKey",
        "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
        "Effect": "Allow",
        "Resource": full.arn(c.key),
    } in statements
    kill = [s for s in statements if s["Action"] == ["ssm:GetParameter", "ssm:PutParameter"]]
    assert len(kill) == 1 and full.ref(c.kill_switch) in kill[0]["Resource"]["Fn::Join"][1]
    assert not any("ec2:SendDiagnosticInterrupt" in str(s["Action"]) for s in statements)


# -- data: table, topic, kill switch, key ------------------------------------------------


def test_incident_table_is_the_contract(explicit: Synth) -> None:
    c = explicit.construct
    explicit.template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                "BillingMode": "PAY_PER_REQUEST",
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "SSESpecification": {
                    "SSEEnabled": True,
                    "SSEType": "KMS",
                    "KMSMasterKeyId": explicit.arn(c.key),
                },
                "DeletionProtectionEnabled": True,
            },
        },
    )


def test_topic_is_kms_encrypted_and_tls_only(explicit: Synth) -> None:
    c = explicit.construct
    explicit.template.has_resource_properties(
        "AWS::SNS::Topic", {"KmsMasterKeyId": explicit.arn(c.key)}
    )
    explicit.template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_alarms_may_publish_to_the_topic_and_use_its_key(explicit: Synth) -> None:
    """Issue 14, defect 1: enforce_ssl alone left a Deny-only topic policy, and SNS refused
    every alarm action. This account's alarms, and only they, may publish."""
    c = explicit.construct
    _, policy = only(explicit.json, "AWS::SNS::TopicPolicy")
    (allow,) = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"
    ]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish"
    assert allow["Resource"] == explicit.ref(c.topic)
    assert allow["Condition"] == {
        "StringEquals": {"aws:SourceAccount": TEST_ACCOUNT},
        # the partition is a literal: the recommended flags (cdk.json) name target partitions
        "ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:{TEST_REGION}:{TEST_ACCOUNT}:alarm:*"},
    }
    key = explicit.json["Resources"][explicit.logical(c.key)]["Properties"]["KeyPolicy"]
    (use_key,) = [s for s in key["Statement"] if s.get("Sid") == "CrashcartAlarmsNotifyTopic"]
    assert use_key["Condition"] == allow["Condition"]


def test_a_rule_event_the_dead_letter_queue_refuses_alarms(explicit: Synth) -> None:
    c = explicit.construct
    explicit.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/Events",
            "MetricName": "InvocationsFailedToBeSentToDlq",
            "Dimensions": [{"Name": "RuleName", "Value": explicit.ref(c.rule)}],
            "Statistic": "Sum",
            "Threshold": 1,
            "AlarmActions": [explicit.ref(c.topic)],
        },
    )


def test_an_imported_topic_and_key_warn_what_their_owner_must_allow() -> None:
    app = new_app()
    stack = cdk.Stack(app, "Imported", env=env())
    bucket, _ = evidence_bucket(stack)
    key = kms.Key.from_key_arn(
        stack, "TheirKey", f"arn:aws:kms:{TEST_REGION}:{TEST_ACCOUNT}:key/their-key"
    )
    imported = sns.Topic.from_topic_attributes(
        stack,
        "TheirTopic",
        topic_arn=f"arn:aws:sns:{TEST_REGION}:{TEST_ACCOUNT}:their-topic",
        key_arn=key.key_arn,
    )
    UnresponsiveInstanceRemediation(
        stack,
        "Remediation",
        dumps=ExistingDumpBucket(bucket=bucket),
        fleet=FleetWatch(),
        topic=imported,
    )
    Annotations.from_stack(stack).has_warning(
        "/Imported/Remediation",
        Match.string_like_regexp("cannot add to its policy.*cloudwatch.amazonaws.com sns:Publish"),
    )
    assert Template.from_stack(stack).find_resources("AWS::SNS::TopicPolicy") == {}


def test_a_topic_of_the_app_gets_the_alarm_statement(full: Synth) -> None:
    c = full.construct
    full.template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "Topics": [full.ref(c.topic)],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Sid": "CrashcartAlarmsPublish", "Resource": full.ref(c.topic)}
                        )
                    ]
                )
            },
        },
    )


def test_kill_switch_is_a_string_parameter_defaulting_to_off(explicit: Synth) -> None:
    explicit.template.has_resource_properties(
        "AWS::SSM::Parameter", {"Type": "String", "Value": "off"}
    )
    _, parameter = only(explicit.json, "AWS::SSM::Parameter")
    assert "Name" not in parameter["Properties"]  # generated physical name


def test_deployment_key_rotates_and_admits_only_the_services_that_need_it(
    explicit: Synth,
) -> None:
    c = explicit.construct
    key = explicit.json["Resources"][explicit.logical(c.key)]
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"
    statements = {s.get("Sid"): s for s in key["Properties"]["KeyPolicy"]["Statement"]}
    assert statements["CrashcartLogsUseKey"]["Principal"] == {
        "Service": f"logs.{TEST_REGION}.amazonaws.com"
    }
    assert statements["CrashcartEventBridgeDeadLetterQueue"]["Condition"]["StringEquals"] == {
        "aws:SourceAccount": TEST_ACCOUNT
    }
    alarms = statements["CrashcartAlarmsNotifyTopic"]
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert alarms["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]


# -- metrics ---------------------------------------------------------------------------


def test_metric_helpers_name_the_runtime_metrics(explicit: Synth) -> None:
    c = explicit.construct
    runtime = load_runtime_settings()
    assert dict(runtime.METRICS) == OUTCOME_METRICS
    assert runtime.METRIC_NAMESPACE == METRIC_NAMESPACE
    assert runtime.METRIC_DIMENSION == METRIC_DIMENSION
    for method, outcome in (
        (c.metric_interrupts_sent, "interrupted"),
        (c.metric_interrupts_skipped, "skipped"),
        (c.metric_interrupts_failed, "failed"),
        (c.metric_interrupts_dry_run, "dry_run"),
        (c.metric_events_rejected, "rejected"),
        (c.metric_breaker_opened, "breaker_opened"),
    ):
        metric = method()
        assert metric.namespace == "crashcart"
        assert metric.metric_name == OUTCOME_METRICS[outcome]
        assert metric.statistic == "Sum"
        assert explicit.stack.resolve(metric.dimensions[METRIC_DIMENSION]) == explicit.ref(
            c.function
        )
    assert c.metric_interrupts_sent(period=cdk.Duration.minutes(1)).period.to_seconds() == 60


# -- the missed-alarm sweep's schedule ----------------------------------------------------


def test_missed_alarm_sweep_schedule_targets_the_same_function(explicit: Synth) -> None:
    c = explicit.construct
    assert c.missed_alarm_sweep_rule is not None
    rule = explicit.json["Resources"][explicit.logical(c.missed_alarm_sweep_rule)]
    assert rule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == explicit.arn(c.function)
    # EventBridge puts the (quoted) time where <time> stands
    template = target["InputTransformer"]["InputTemplate"].replace("<time>", '"<time>"')
    assert json.loads(template) == {
        "crashcart-action": "missed-alarm-sweep",
        "scheduled-at": "<time>",
    }
    assert target["DeadLetterConfig"] == {"Arn": explicit.arn(c.dead_letter_queue)}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 600, "MaximumRetryAttempts": 2}
    # the schedule's lost events notify too
    alarm = explicit.json["Resources"][explicit.logical(c.sweep_undeliverable_events_alarm)]
    assert alarm["Properties"]["Dimensions"] == [
        {"Name": "RuleName", "Value": explicit.ref(c.missed_alarm_sweep_rule)}
    ]
    assert alarm["Properties"]["AlarmActions"] == [explicit.ref(c.topic)]


def test_all_props_sweep_schedule(full: Synth) -> None:
    rule = full.construct.missed_alarm_sweep_rule
    assert rule is not None
    props = full.json["Resources"][full.logical(rule)]["Properties"]
    assert props["ScheduleExpression"] == "rate(10 minutes)"


def test_no_missed_alarm_sweep_means_no_schedule() -> None:
    app = new_app()
    stack = cdk.Stack(app, "NoSweep", env=env())
    bucket, _key = evidence_bucket(stack)
    construct = UnresponsiveInstanceRemediation(
        stack,
        "Remediation",
        dumps=ExistingDumpBucket(bucket=bucket),
        fleet=FleetWatch(),
        missed_alarm_sweep=None,
    )
    assert construct.missed_alarm_sweep_rule is None
    # the alarm rule and the fleet alarm's partial-data rule; no schedule
    rules = Template.from_stack(stack).find_resources("AWS::Events::Rule")
    assert len(rules) == 2
    assert not [r for r in rules.values() if "ScheduleExpression" in r["Properties"]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schedule": cdk.Duration.seconds(90)}, "whole minutes from 1 to 60"),
        ({"schedule": cdk.Duration.hours(2)}, "whole minutes from 1 to 60"),
        ({"max_per_pass": 0}, "max_per_pass=0: must be a whole number from 1 to 100"),
        ({"max_pages": 101}, "max_pages=101: must be a whole number from 1 to 100"),
        ({"stale_after": cdk.Duration.minutes(1)}, "at least 300"),
    ],
)
def test_fails_on_a_bad_missed_alarm_sweep(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        MissedAlarmSweep(**kwargs)


def test_fails_on_a_missed_alarm_sweep_of_the_wrong_type() -> None:
    app = new_app()
    stack = cdk.Stack(app, "BadSweep", env=env())
    bucket, _key = evidence_bucket(stack)
    with pytest.raises(ConfigurationError, match="give MissedAlarmSweep"):
        UnresponsiveInstanceRemediation(
            stack,
            "Remediation",
            dumps=ExistingDumpBucket(bucket=bucket),
            fleet=FleetWatch(),
            missed_alarm_sweep=True,  # type: ignore[arg-type]
        )
