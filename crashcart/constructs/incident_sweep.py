"""DumpOverdueSweep: a scheduled function that says "dump overdue" when a crash dump is late.

After a diagnostic interrupt the remediation function sets the incident's ``dump_deadline``;
the dump-arrival function sets ``dump_keys`` when the dump lands. Nothing happens when the
dump never lands: this construct closes that gap. Every ``schedule`` it scans the incident
table for incidents past their deadline without a dump, flags them ``dump-overdue`` (a
conditional write: a dump arriving meanwhile wins) and publishes one message per incident.
"""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import jsii
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from crashcart import _props as props
from crashcart.compliance import acknowledge
from crashcart.errors import ConfigurationError

__all__ = ["DEFAULT_PARAMETER_NAME", "DumpOverdueSweep"]

_LAMBDA_ROOT = Path(__file__).resolve().parent.parent / "lambda" / "incident_sweep"
#: The dump-bucket parameter the notification tells people to check (CrashDumpBucket default).
DEFAULT_PARAMETER_NAME = "/crashcart/dump-bucket"
_MIN_MINUTES = 1
_MAX_MINUTES = 60
_PACKS = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
#: What DynamoDB needs of a customer-managed table key for reads and writes.
_TABLE_KEY_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")
#: What sns:Publish to an encrypted topic / sqs:SendMessage to an encrypted queue need.
_MESSAGE_KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")


class DumpOverdueSweep(Construct):
    """Scheduled "dump overdue" detection over the incident table.

    Example::

        DumpOverdueSweep(
            self,
            "DumpOverdueSweep",
            table=remediation.table,
            topic=remediation.topic,
            encryption_key=remediation.key,
        )
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: dynamodb.ITable,
        topic: sns.ITopic,
        schedule: cdk.Duration | None = None,
        encryption_key: kms.IKey | None = None,
        parameter_name: str = DEFAULT_PARAMETER_NAME,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
    ) -> None:
        """
        :param table: the incident table (``UnresponsiveInstanceRemediation.table``). When it
            is encrypted with a customer key, the function may use that key.
        :param topic: where "dump overdue" messages go (and its key, if it has one).
        :param schedule: how often the sweep runs, whole minutes from 1 to 60. Default:
            every 5 minutes (a dump is reported at most 5 minutes after its deadline).
        :param encryption_key: the KMS key of the log group and the dead-letter queue. Its
            key policy must let CloudWatch Logs and EventBridge use it (the remediation
            construct's key does). Default: a new customer-managed key with rotation whose
            policy allows exactly that.
        :param parameter_name: the dump-bucket SSM parameter named in the message.
            Default: ``/crashcart/dump-bucket`` (``CrashDumpBucket``'s default).
        :param log_retention: how long the function's logs are kept. Default: one year.
        """
        owner = "DumpOverdueSweep"
        props.check(owner, "table", table, dynamodb.ITable, example="remediation.table")
        props.check(owner, "topic", topic, sns.ITopic, example="remediation.topic")
        props.check(
            owner,
            "encryption_key",
            encryption_key,
            kms.IKey,
            example="remediation.key",
            optional=True,
        )
        super().__init__(scope, construct_id)
        schedule = schedule or cdk.Duration.minutes(5)
        _check_schedule(schedule)
        if not cdk.Token.is_unresolved(parameter_name) and not parameter_name.startswith("/"):
            raise ConfigurationError(
                f"parameter_name={parameter_name!r}: give the full SSM parameter name, "
                "starting with '/' (e.g. /crashcart/dump-bucket)"
            )
        stack = cdk.Stack.of(self)

        #: The key of the log group and the dead-letter queue.
        self.encryption_key: kms.IKey = encryption_key or self._new_key(stack)

        #: Failed deliveries of the schedule (EventBridge) and failed invocations (Lambda's
        #: on-failure destination, after its retries).
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.encryption_key,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        acknowledge(
            self.dead_letter_queue,
            "AwsSolutions::AwsSolutions-SQS3",
            "this queue is itself the dead-letter store of the sweep's schedule rule and "
            "the function's on-failure destination",
        )

        #: The function's log group (KMS-encrypted).
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=log_retention,
            encryption_key=self.encryption_key,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )

        #: The function's role: exactly the rights in :attr:`policy`.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="crashcart dump-overdue sweep",
        )
        #: The customer-managed policy holding every right of the function.
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            description="crashcart dump-overdue sweep: scan and flag incidents, notify",
            statements=self._statements(table, topic),
            roles=[self.role],
        )

        #: The sweep function.
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="handler.handler",
            code=lambda_.Code.from_asset(
                str(_LAMBDA_ROOT), exclude=["__pycache__", "*.pyc", ".mypy_cache"]
            ),
            # Every right is in the managed policy: CDK's automatic grants would add an
            # inline default policy.
            role=self.role.without_policy_updates(),
            description="crashcart: incidents whose crash dump is late -> dump-overdue",
            timeout=cdk.Duration.minutes(2),
            memory_size=256,
            reserved_concurrent_executions=1,
            log_group=self.log_group,
            environment={
                "CRASHCART_TABLE_NAME": table.table_name,
                "CRASHCART_TOPIC_ARN": topic.topic_arn,
                "CRASHCART_DUMP_BUCKET_PARAMETER": parameter_name,
            },
        )
        self.function.node.add_dependency(self.policy)
        self.function.configure_async_invoke(
            retry_attempts=2,
            max_event_age=cdk.Duration.hours(1),
            on_failure=_QueueDestination(self.dead_letter_queue),
        )
        for pack in _PACKS:
            acknowledge(
                self.function,
                f"{pack}::{pack}-LambdaInsideVPC",
                "the sweep only calls regional AWS APIs (DynamoDB, SNS); a VPC would add "
                "endpoints and ENIs without reducing its reach",
            )
        for pack in _PACKS[:2]:
            acknowledge(
                self.function,
                f"{pack}::{pack}-LambdaDLQ",
                "failed invocations go to the EventInvokeConfig on-failure destination "
                "(DeadLetterQueue), which keeps the event with the error; a function DLQ "
                "would duplicate it",
            )

        #: The schedule.
        self.rule = events.Rule(
            self,
            "Schedule",
            description="crashcart: look for incidents whose crash dump is overdue",
            schedule=events.Schedule.rate(schedule),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    dead_letter_queue=self.dead_letter_queue,
                    retry_attempts=4,
                    max_event_age=cdk.Duration.hours(1),
                )
            ],
        )

    def _statements(self, table: dynamodb.ITable, topic: sns.ITopic) -> list[iam.PolicyStatement]:
        statements = [
            iam.PolicyStatement(
                sid="Logs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            ),
            iam.PolicyStatement(
                sid="IncidentTable",
                actions=["dynamodb:Scan", "dynamodb:UpdateItem"],
                resources=[table.table_arn],
            ),
            iam.PolicyStatement(sid="Notify", actions=["sns:Publish"], resources=[topic.topic_arn]),
            iam.PolicyStatement(
                sid="FailedInvocations",
                actions=["sqs:SendMessage"],
                resources=[self.dead_letter_queue.queue_arn],
            ),
        ]
        # One statement per key, with the union of what each use needs (the remediation
        # construct encrypts its table and topic with one key).
        stack = cdk.Stack.of(self)
        keys: dict[str, tuple[kms.IKey, set[str]]] = {}
        uses: list[tuple[kms.IKey | None, tuple[str, ...]]] = [
            (table.encryption_key, _TABLE_KEY_ACTIONS),
            (topic.master_key, _MESSAGE_KEY_ACTIONS),
            (self.encryption_key, _MESSAGE_KEY_ACTIONS),
        ]
        for key, actions in uses:
            if key is None:
                continue
            identity = json.dumps(stack.resolve(key.key_arn), sort_keys=True)
            keys.setdefault(identity, (key, set()))[1].update(actions)
        for index, (key, key_actions) in enumerate(keys.values()):
            statements.append(
                iam.PolicyStatement(
                    sid=f"Key{index}",
                    actions=sorted(key_actions),
                    resources=[key.key_arn],
                )
            )
        return statements

    def _new_key(self, stack: cdk.Stack) -> kms.Key:
        key = kms.Key(
            self,
            "Key",
            description="crashcart dump-overdue sweep: logs and dead-letter queue",
            enable_key_rotation=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        account, region, partition = stack.account, stack.region, stack.partition
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="LogsUseKey",
                principals=[iam.ServicePrincipal(f"logs.{region}.amazonaws.com")],
                actions=[
                    "kms:Decrypt",
                    "kms:DescribeKey",
                    "kms:Encrypt",
                    "kms:GenerateDataKey",
                    "kms:ReEncryptFrom",
                    "kms:ReEncryptTo",
                ],
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
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="EventBridgeDeadLetterQueue",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
                conditions={
                    "StringEquals": {"aws:SourceAccount": account},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{partition}:events:{region}:{account}:rule/*"
                    },
                },
            )
        )
        return key


def _check_schedule(schedule: cdk.Duration) -> None:
    if schedule.is_unresolved():
        return  # a token (e.g. a parameter): EventBridge validates it at deployment
    seconds = schedule.to_seconds()
    if seconds % 60 or not _MIN_MINUTES * 60 <= seconds <= _MAX_MINUTES * 60:
        raise ConfigurationError(
            f"schedule={schedule.to_human_string()}: give whole minutes from {_MIN_MINUTES} "
            f"to {_MAX_MINUTES} (EventBridge rates are whole minutes; longer than an hour "
            "would leave a lost dump unreported for too long)"
        )


@jsii.implements(lambda_.IDestination)
class _QueueDestination:
    """An on-failure destination that binds nothing: the role's rights are granted exactly."""

    def __init__(self, queue: sqs.IQueue) -> None:
        self._queue = queue

    def bind(
        self,
        scope: Construct,
        fn: lambda_.IFunction,
        *,
        type: lambda_.DestinationType,
    ) -> lambda_.DestinationConfig:
        return lambda_.DestinationConfig(destination=self._queue.queue_arn)
