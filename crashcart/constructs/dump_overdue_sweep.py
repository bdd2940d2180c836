"""DumpOverdueSweep: a scheduled function that says "dump overdue" when a crash dump is late.

After a diagnostic interrupt the remediation function sets the incident's ``dump_deadline``;
the dump-arrival function sets ``dump_keys`` when the dump lands. Nothing happens when the
dump never lands: this construct closes that gap. Every ``schedule`` it scans the incident
table for incidents past their deadline without a dump, flags them ``dump-overdue`` (a
conditional write: a dump arriving meanwhile wins) and publishes one message per incident.

The same pass counts the running opted-in instances and those attested kdump-armed
(:class:`AttestationWatch`); an alarm notifies the topic when opted-in instances ran for a
whole ``silent_for`` and none attested, the state in which the remediation function (with
attestation policy ``require``) skips every real alarm.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from crashcart import _props as props
from crashcart.compliance import acknowledge
from crashcart.constructs._internal.function_code import INCIDENT_SWEEP
from crashcart.constructs._internal.lambda_functions import (
    acknowledge_failure_destination,
    acknowledge_function_defaults,
    acknowledge_outside_vpc,
    check_reserved_concurrency,
)
from crashcart.constructs._internal.secure_function import (
    managed_function_parts,
    python_function,
    rule_target,
    send_failures_to,
)
from crashcart.constructs._internal.service_access import (
    failure_queue_alarm,
    undeliverable_events_alarm,
)
from crashcart.constructs.incident_store import SWEEP_ACTIONS, IncidentStore
from crashcart.errors import ConfigurationError
from crashcart.opt_in import OptInTag
from crashcart.runtime import dumps, metrics
from crashcart.runtime import environment as variables
from crashcart.runtime.attestation import MIN_MAX_AGE_SECONDS

__all__ = ["CENSUS_METRICS", "DEFAULT_PARAMETER_NAME", "AttestationWatch", "DumpOverdueSweep"]

#: The dump-bucket parameter the notification tells people to check (CrashDumpBucket default).
DEFAULT_PARAMETER_NAME = dumps.DEFAULT_PARAMETER_NAME
_MIN_MINUTES = 1
_MAX_MINUTES = 60
#: What DynamoDB needs of a customer-managed table key for reads and writes.
_TABLE_KEY_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")
#: What sns:Publish to an encrypted topic / sqs:SendMessage to an encrypted queue need.
_MESSAGE_KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
#: The census metrics the function writes (embedded metric format; the runtime's
#: ``attestation.METRICS``, a test keeps them equal), namespace and dimension.
CENSUS_METRICS = metrics.SWEEP_CENSUS
_METRIC_NAMESPACE = metrics.NAMESPACE
_METRIC_DIMENSION = metrics.DIMENSION
#: CloudWatch: an alarm whose period is at least an hour may look back at most seven days.
#: aws-assumption: alarm-evaluation-window
_MAX_SILENT_HOURS = 7 * 24


@dataclass(frozen=True, kw_only=True)
class AttestationWatch:
    """The sweep's attestation census and the alarm on it.

    Each sweep lists the running instances carrying ``tag`` (``ec2:DescribeInstances``, which
    supports no resource scoping) and counts those whose ``crashcart:kdump-attestation`` is
    armed and not older than ``max_age``, judged as the remediation function judges it.
    ``AttestationSilentAlarm`` goes to ALARM, and notifies the topic, when in every hour of
    ``silent_for`` there were running opted-in instances and none of them was attested.

    :param tag: the opt-in tag. Default: ``OptInTag()`` (give the remediation's).
    :param max_age: an older attestation counts as missing. Default: 7 days (give the
        remediation's ``InterruptGuards.attestation_max_age``).
    :param silent_for: how long no opted-in instance may go unattested before the alarm,
        whole hours from 1 hour to 7 days. Default: 1 day (the agent attests at boot and
        hourly: a day of silence is not a slow timer).
    """

    tag: OptInTag = field(default_factory=OptInTag)
    max_age: cdk.Duration = field(default_factory=lambda: cdk.Duration.days(7))
    silent_for: cdk.Duration = field(default_factory=lambda: cdk.Duration.days(1))

    def __post_init__(self) -> None:
        if not isinstance(self.tag, OptInTag):
            raise ConfigurationError(
                f"AttestationWatch tag={self.tag!r}: give an OptInTag (the remediation's)"
            )
        if not self.max_age.is_unresolved() and self.max_age.to_seconds() < MIN_MAX_AGE_SECONDS:
            raise ConfigurationError(
                f"AttestationWatch max_age={self.max_age.to_human_string()}: give at least "
                f"{MIN_MAX_AGE_SECONDS // 3600} hours: the agent attests hourly (plus up to 5 "
                "minutes of timer jitter), so a shorter age counts healthy instances as stale"
            )
        if self.silent_for.is_unresolved():
            return
        seconds = self.silent_for.to_seconds()
        if seconds % 3600 or not 3600 <= seconds <= _MAX_SILENT_HOURS * 3600:
            raise ConfigurationError(
                f"AttestationWatch silent_for={self.silent_for.to_human_string()}: give whole "
                f"hours from 1 hour to 7 days (the alarm looks at one-hour periods, and "
                "CloudWatch alarms look back at most seven days)"
            )


class DumpOverdueSweep(Construct):
    """Scheduled "dump overdue" detection over the incident table.

    Example::

        DumpOverdueSweep(
            self,
            "DumpOverdueSweep",
            incidents=remediation.incidents,
            encryption_key=remediation.key,
        )
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        incidents: IncidentStore,
        schedule: cdk.Duration | None = None,
        encryption_key: kms.IKey | None = None,
        parameter_name: str = DEFAULT_PARAMETER_NAME,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        attestation_watch: AttestationWatch | None = AttestationWatch(),
        reserved_concurrency: int | None = None,
    ) -> None:
        """
        :param incidents: the incident store: its table is swept (with its key), "dump
            overdue" messages and the alarms on the sweep's failures go to its topic (this
            account's alarms are allowed to publish to it and to use its key; a topic or key
            imported by ARN must allow that itself, and a synth warning says so).
        :param schedule: how often the sweep runs, whole minutes from 1 to 60. Default:
            every 5 minutes (a dump is reported at most 5 minutes after its deadline).
        :param encryption_key: the KMS key of the log group and the dead-letter queue. Its
            key policy must let CloudWatch Logs and EventBridge use it (the remediation
            construct's key does). Default: a new customer-managed key with rotation whose
            policy allows exactly that.
        :param parameter_name: the dump-bucket SSM parameter named in the message.
            Default: ``/crashcart/dump-bucket`` (``CrashDumpBucket``'s default).
        :param log_retention: how long the function's logs are kept. Default: one year.
        :param attestation_watch: count running opted-in instances and attested ones each
            pass, and alarm (to ``topic``) when none attested for a day. ``None`` turns it
            off (no EC2 right, no alarm). Default: ``AttestationWatch()``.
        :param reserved_concurrency: reserve this many concurrent executions (1-1000) for
            the function, which also caps it (1: two sweeps never run at once). Default:
            None, no reservation: a reservation fails the deploy in accounts with a small
            concurrency quota, and overlapping sweeps are safe (each flag is a conditional
            write; at worst one incident is notified twice).
        """
        owner = "DumpOverdueSweep"
        props.check(owner, "incidents", incidents, IncidentStore, example="remediation.incidents")
        props.check(
            owner,
            "encryption_key",
            encryption_key,
            kms.IKey,
            example="remediation.key",
            optional=True,
        )
        super().__init__(scope, construct_id)
        table, topic = incidents.table, incidents.topic
        schedule = schedule or cdk.Duration.minutes(5)
        _check_schedule(schedule)
        check_reserved_concurrency(reserved_concurrency)
        if not cdk.Token.is_unresolved(parameter_name) and not parameter_name.startswith("/"):
            raise ConfigurationError(
                f"parameter_name={parameter_name!r}: give the full SSM parameter name, "
                "starting with '/' (e.g. /crashcart/dump-bucket)"
            )
        self.attestation_watch = attestation_watch

        #: :attr:`dead_letter_queue`: failed deliveries of the schedule (EventBridge) and
        #: failed invocations (Lambda's on-failure destination, after its retries);
        #: :attr:`log_group`: the function's (KMS-encrypted); :attr:`role`: exactly the rights
        #: in :attr:`policy`, the customer-managed policy holding every right of the function;
        #: :attr:`encryption_key`: the key of the log group and the dead-letter queue.
        self.encryption_key, self.dead_letter_queue, self.log_group, self.role, self.policy = (
            managed_function_parts(
                self,
                key=encryption_key,
                what="crashcart dump-overdue sweep",
                queue=(
                    "DeadLetterQueue",
                    "dead-letter queue",
                    "this queue is itself the dead-letter store of the sweep's "
                    "schedule rule and the function's on-failure destination",
                ),
                retention=log_retention,
                rights="scan and flag incidents, notify",
            )
        )
        self.policy.add_statements(*self._statements(table, topic))

        #: The sweep function.
        self.function = python_function(
            self,
            INCIDENT_SWEEP,
            # Every right is in the managed policy: CDK's automatic grants would add an
            # inline default policy.
            role=self.role.without_policy_updates(),
            description="crashcart: incidents whose crash dump is late -> dump-overdue",
            timeout=cdk.Duration.minutes(2),
            # aws-assumption: lambda-unreserved-concurrency-minimum
            reserved_concurrent_executions=reserved_concurrency,
            log_group=self.log_group,
            environment={
                variables.TABLE_NAME: table.table_name,
                variables.TOPIC_ARN: topic.topic_arn,
                variables.DUMP_BUCKET_PARAMETER: parameter_name,
                **self._census_environment(),
            },
        )
        self.function.node.add_dependency(self.policy)
        acknowledge_function_defaults(
            self.function,
            reserved_concurrency,
            bound="overlapping sweeps are safe: every flag is a conditional write, so at "
            "worst one incident is notified twice",
        )
        send_failures_to(self.function, self.dead_letter_queue)
        acknowledge_outside_vpc(self.function, apis="DynamoDB, SNS", caller="the sweep")
        acknowledge_failure_destination(
            self.function, "DeadLetterQueue", more="; a function DLQ would duplicate it"
        )

        #: "No opted-in instance attested for ``silent_for``" (None without the watch).
        self.attestation_alarm: cloudwatch.Alarm | None = None
        if attestation_watch is not None:
            self.attestation_alarm = self._attestation_alarm(attestation_watch, topic)
            acknowledge(
                self.policy,
                "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                "ec2:DescribeInstances supports no resource-level permissions: AWS requires "
                "Resource '*' (read-only: the census lists opted-in instances and their tags)",
            )

        #: The schedule.
        self.rule = events.Rule(
            self,
            "Schedule",
            description="crashcart: look for incidents whose crash dump is overdue",
            schedule=events.Schedule.rate(schedule),
            targets=[rule_target(self.function, self.dead_letter_queue, retry_attempts=4)],
        )

        #: A failed schedule delivery or sweep notifies on every new message; events that
        #: EventBridge could not even put into the queue (lost) notify too.
        self.alarms: list[cloudwatch.Alarm] = [
            failure_queue_alarm(
                self,
                "DeadLetterAlarm",
                self.dead_letter_queue,
                topic,
                "sweep runs that failed (undelivered schedule events or function errors)",
            ),
            undeliverable_events_alarm(self, "UndeliverableEventsAlarm", self.rule, topic),
        ]

    def metric_opted_in_instances(self, **props: Any) -> cloudwatch.Metric:
        """Running opted-in instances at each census (hourly ``Maximum`` by default)."""
        return self._census_metric(CENSUS_METRICS["opted_in"], **props)

    def metric_attested_instances(self, **props: Any) -> cloudwatch.Metric:
        """Of those, attested kdump-armed within the max age (hourly ``Maximum``)."""
        return self._census_metric(CENSUS_METRICS["attested"], **props)

    def _census_metric(self, name: str, **props: Any) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=_METRIC_NAMESPACE,
            metric_name=name,
            dimensions_map={_METRIC_DIMENSION: self.function.function_name},
            statistic=props.pop("statistic", "Maximum"),
            period=props.pop("period", cdk.Duration.hours(1)),
            **props,
        )

    def _census_environment(self) -> dict[str, str]:
        watch = self.attestation_watch
        if watch is None:
            return {variables.ATTESTATION_CENSUS: "false"}
        seconds = watch.max_age.to_seconds()
        return {
            variables.ATTESTATION_CENSUS: "true",
            variables.OPT_IN_TAG_KEY: watch.tag.key,
            variables.OPT_IN_TAG_VALUE: watch.tag.value,
            variables.ATTESTATION_MAX_AGE_SECONDS: (
                cdk.Token.as_string(seconds) if watch.max_age.is_unresolved() else str(int(seconds))
            ),
        }

    def _attestation_alarm(self, watch: AttestationWatch, topic: sns.ITopic) -> cloudwatch.Alarm:
        hours = (
            24 if watch.silent_for.is_unresolved() else int(watch.silent_for.to_seconds() // 3600)
        )
        alarm = cloudwatch.Alarm(
            self,
            "AttestationSilentAlarm",
            alarm_description=(
                f"crashcart: opted-in instances ({watch.tag.key}={watch.tag.value}) have been "
                f"running for {hours} h and none attested kdump armed: with attestation policy "
                "require the remediation skips every alarm. Run 'crashcart attestation'; see "
                "docs/aws-assumptions.md (attestation-self-tag) and docs/incident-sweep.md"
            ),
            # aws-assumption: emf-lambda-stdout (the census counts are embedded metrics)
            metric=cloudwatch.MathExpression(
                expression="IF(optedin > 0 AND attested == 0, 1, 0)",
                using_metrics={
                    "optedin": self.metric_opted_in_instances(),
                    "attested": self.metric_attested_instances(),
                },
                label="running opted-in instances, none attested",
                period=cdk.Duration.hours(1),
            ),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=hours,
            datapoints_to_alarm=hours,
            # No census (the sweep failed: its queue alarms) or no data: not this alarm's case.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
        alarm.add_ok_action(cloudwatch_actions.SnsAction(topic))
        return alarm

    def _statements(self, table: dynamodb.ITable, topic: sns.ITopic) -> list[iam.PolicyStatement]:
        statements = [
            iam.PolicyStatement(
                sid="Logs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            ),
            iam.PolicyStatement(
                sid="IncidentTable",
                actions=list(SWEEP_ACTIONS),
                resources=[table.table_arn],
            ),
            iam.PolicyStatement(sid="Notify", actions=["sns:Publish"], resources=[topic.topic_arn]),
            iam.PolicyStatement(
                sid="FailedInvocations",
                actions=["sqs:SendMessage"],
                resources=[self.dead_letter_queue.queue_arn],
            ),
        ]
        if self.attestation_watch is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="AttestationCensus", actions=["ec2:DescribeInstances"], resources=["*"]
                )
            )
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
