"""Status-check failure -> guarded diagnostic interrupt: alarms, delivery, function, records.

:class:`UnresponsiveInstanceRemediation` watches EC2 instances' ``StatusCheckFailed_Instance``
metric and, when an instance stays impaired, lets the remediation function (runtime code in
``crashcart/functions/remediation/``) decide, behind its guards, whether to send
``ec2:SendDiagnosticInterrupt`` so the guest panics into kdump and leaves a vmcore.

Two ways to say which instances are watched (exactly one):

- ``instances=[...]``: CDK ``ec2.IInstance`` objects (the construct tags them with the
  opt-in tag) or raw instance ids (they must carry the tag already: a synth warning says
  so). One CloudWatch alarm per instance, so the template grows by one resource per
  instance; the construct refuses, with the largest number that fits, a list that would
  take the stack past CloudFormation's 500-resource limit.
- ``fleet=FleetWatch()``: one CloudWatch Metrics Insights query alarm over every instance
  of the account and region (``GROUP BY InstanceId``); each instance that breaches is a
  *contributor* and produces its own "CloudWatch Alarm Contributor State Change" event. The
  template is the same size for 10 or 10,000 instances; the function re-checks the opt-in
  tag of every contributor, so untagged instances are never interrupted.

Everything is delivered through one EventBridge rule (matching only this deployment's
alarms, by a generated name prefix) to the function, asynchronously, with a rule-target
dead-letter queue (delivery failures) *and* the function's on-failure destination (function
errors after Lambda's retries), plus a queue for events the function rejects. Each queue has
an alarm that notifies the topic on every message sent to it, and the rule one on events its
dead-letter queue refused; this account's alarms may publish to the topic.

The default alarm window is 3 of 3 one-minute datapoints: AWS recommends 3 x 1 minute for
an alarm that *reboots* an instance, and an interrupt destroys as much state as a reboot
(it ends in one), so the bar is not lower; "N of N" rather than "N of M" because a hung
kernel fails every check, while an instance that passes some minutes is answering and is
not what an NMI is for. The function re-confirms ``impaired`` with DescribeInstanceStatus
before acting, so a longer window buys little safety and costs minutes of outage.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

import aws_cdk as cdk
import jsii
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct, IValidation

from crashcart import _props as props
from crashcart.constructs._internal.acknowledgements import acknowledge_finding, acknowledge_packs
from crashcart.constructs._internal.function_code import REMEDIATION as REMEDIATION_FUNCTION
from crashcart.constructs._internal.lambda_functions import (
    acknowledge_plain_environment,
    acknowledge_unreserved,
    acknowledge_untraced,
    check_reserved_concurrency,
)
from crashcart.constructs._internal.queues import encrypted_queue
from crashcart.constructs._internal.secure_function import (
    QueueDestination,
    function_log_group,
    function_role,
)
from crashcart.constructs._internal.service_access import (
    alarm_topic_statements,
    allow_rules_on_key,
    failure_queue_alarm,
    undeliverable_events_alarm,
)
from crashcart.constructs._internal.service_key import allow_logs_on_key
from crashcart.constructs.diagnostic_interrupt_access import (
    grant_diagnostic_interrupt,
    nag_rendering,
)
from crashcart.constructs.incident_store import (
    BREAKER_RESET_ACTIONS,
    REMEDIATION_ACTIONS,
    IncidentStore,
)
from crashcart.errors import ConfigurationError
from crashcart.opt_in import OptInTag
from crashcart.runtime import dumps, metrics
from crashcart.runtime import environment as variables
from crashcart.runtime.incident import BREAKER_PREFIX

#: CloudFormation's hard limit of resources per stack.
MAX_STACK_RESOURCES: Final = 500
#: Template resources each explicitly listed instance adds (its status-check alarm).
RESOURCES_PER_INSTANCE: Final = 1

#: EventBridge detail types of CloudWatch alarm events.
ALARM_STATE_CHANGE: Final = "CloudWatch Alarm State Change"
CONTRIBUTOR_STATE_CHANGE: Final = "CloudWatch Alarm Contributor State Change"

#: The metric every alarm watches: 1 when the instance (guest) status check failed.
# aws-assumption: ec2-status-check-metric
STATUS_METRIC: Final = "StatusCheckFailed_Instance"
#: Metrics Insights returns at most this many time series (contributors) per query.
# aws-assumption: metrics-insights-fleet-query
MAX_CONTRIBUTORS: Final = 500
#: Metrics Insights alarms evaluate only the most recent three hours of data.
MAX_INSIGHTS_EVALUATION_MINUTES: Final = 180
#: The fleet query; ``{limit}`` is FleetWatch.max_contributors.
FLEET_QUERY: Final = (
    'SELECT MAX(StatusCheckFailed_Instance) FROM SCHEMA("AWS/EC2", InstanceId) '
    "GROUP BY InstanceId ORDER BY MAX() DESC LIMIT {limit}"
)

#: Embedded-metric-format metrics the runtime writes (defined in crashcart.runtime.metrics):
#: namespace, the one dimension (value: function name), names by outcome.
# aws-assumption: emf-log-metrics
METRIC_NAMESPACE: Final = metrics.NAMESPACE
METRIC_DIMENSION: Final = metrics.DIMENSION
OUTCOME_METRICS: Final = metrics.REMEDIATION_OUTCOMES

#: Read-only EC2 calls the function makes; EC2 supports no resource scoping for them.
DESCRIBE_ACTIONS: Final = (
    "ec2:DescribeInstanceStatus",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeInstances",
)
#: Incident table calls (the incident store's remediation writer).
TABLE_ACTIONS: Final = REMEDIATION_ACTIONS
#: What the function needs of the deployment's key (table, topic, queues).
KEY_ACTIONS: Final = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")
#: What a single-part PutObject needs of an SSE-KMS evidence bucket's key.
EVIDENCE_KEY_ACTIONS: Final = ("kms:Encrypt", "kms:GenerateDataKey")
#: The S3 prefix the function writes console-output evidence under.
EVIDENCE_PREFIX: Final = dumps.EVIDENCE_PREFIX

_INSTANCE_ID = re.compile(r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})\Z")
_ONE_DAY = 86_400


def _unresolved(value: object) -> bool:
    return cdk.Token.is_unresolved(value)


def _seconds(name: str, duration: cdk.Duration, *, minimum: int) -> int | None:
    """Whole seconds of ``duration``; None if it is a token; ConfigurationError if invalid."""
    if not isinstance(duration, cdk.Duration):
        raise ConfigurationError(
            f"{name}={duration!r}: must be a cdk.Duration, e.g. cdk.Duration.minutes(30)"
        )
    try:
        seconds = duration.to_seconds()
    except Exception as error:  # jsii raises for non-integral or unit-converted tokens
        if "token" in str(error).lower() or "unresolved" in str(error).lower():
            return None
        raise ConfigurationError(
            f"{name}={duration.to_human_string()}: must be a whole number of seconds"
        ) from error
    if _unresolved(seconds):
        return None
    if seconds != int(seconds) or seconds < minimum:
        raise ConfigurationError(
            f"{name}={duration.to_human_string()}: must be a whole number of seconds, at "
            f"least {minimum}"
        )
    return int(seconds)


# --------------------------------------------------------------------------------------
# Settings (frozen, keyword-only, validated on construction)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AlarmWindow:
    """How long ``StatusCheckFailed_Instance`` must fail before the function is asked.

    Every alarm uses the ``Maximum`` of one-minute periods (status checks run once a minute)
    and treats missing data as not breaching (a stopped instance reports nothing; that is
    not a hang).

    :param evaluation_periods: the number of one-minute periods looked at. Default: 3, as
        AWS recommends for alarms that reboot an instance (an interrupt ends in a reboot).
    :param datapoints_to_alarm: how many of them must have failed. Default: 3 (all of them:
        a hung kernel fails every check; one that passes some is still answering).
    """

    evaluation_periods: int = 3
    datapoints_to_alarm: int = 3

    def __post_init__(self) -> None:
        ep, dp = self.evaluation_periods, self.datapoints_to_alarm
        for name, value in (("evaluation_periods", ep), ("datapoints_to_alarm", dp)):
            if _unresolved(value):
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(
                    f"AlarmWindow {name}={value!r}: must be a whole number of at least 1 "
                    "(one-minute periods)"
                )
        if _unresolved(ep) or _unresolved(dp):
            return
        if dp > ep:
            raise ConfigurationError(
                f"AlarmWindow datapoints_to_alarm={dp} is greater than evaluation_periods={ep}: "
                "an alarm cannot need more failing minutes than it looks at; use at most "
                f"{ep}, or raise evaluation_periods"
            )
        if ep > _ONE_DAY // 60:
            raise ConfigurationError(
                f"AlarmWindow evaluation_periods={ep}: CloudWatch allows at most one day "
                f"({_ONE_DAY // 60} one-minute periods) of evaluation"
            )


@dataclass(frozen=True, kw_only=True)
class FleetWatch:
    """Watch every instance of the account and region with one Metrics Insights alarm.

    The alarm's query is ``SELECT MAX(StatusCheckFailed_Instance) FROM SCHEMA("AWS/EC2",
    InstanceId) GROUP BY InstanceId ORDER BY MAX() DESC LIMIT <max_contributors>``: failing
    instances sort first, so the contributors are the instances that fail. Limits (AWS):
    a query returns at most 500 time series and processes at most 10,000 metrics (larger
    fleets per region are only partly watched); 200 Metrics Insights alarms per account
    and region; alarms evaluate at most the last three hours of data.

    :param max_contributors: the query's ``LIMIT``: how many failing instances one
        evaluation can report at once. Default: 500 (the most a query returns).
    """

    max_contributors: int = MAX_CONTRIBUTORS

    def __post_init__(self) -> None:
        value = self.max_contributors
        if _unresolved(value):
            return
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not 1 <= value <= MAX_CONTRIBUTORS
        ):
            raise ConfigurationError(
                f"FleetWatch max_contributors={value!r}: must be a whole number from 1 to "
                f"{MAX_CONTRIBUTORS} (a Metrics Insights query returns at most "
                f"{MAX_CONTRIBUTORS} time series)"
            )

    @property
    def query(self) -> str:
        """The Metrics Insights query of the fleet alarm."""
        return FLEET_QUERY.format(limit=self.max_contributors)


class AttestationPolicy(Enum):
    """What the function does when an instance has not attested recently that kdump is armed."""

    #: refuse to interrupt: without kdump the interrupt only crashes the machine.
    REQUIRE = "require"
    #: interrupt anyway, and say so in the incident and the notification.
    WARN = "warn"
    #: do not look at the attestation.
    IGNORE = "ignore"


@dataclass(frozen=True, kw_only=True)
class InterruptGuards:
    """Per-instance guards the function applies before an interrupt.

    :param boot_grace: skip instances launched or started within this. Default: 15 minutes
        (an instance's checks are ``initializing`` for the first minutes; big instances boot
        slowly).
    :param cooldown: no second interrupt of one instance within this. Default: 6 hours, far
        longer than a dump plus reboot (``dump_deadline``), and long enough that an
        instance interrupted just before midnight UTC is not interrupted again just after,
        when its daily budget resets.
    :param daily_budget: at most this many interrupts of one instance per UTC day; beyond
        it a human is notified and nothing more happens. Default: 1 (a machine that still
        fails after one dump fails for a reason an NMI does not fix).
    :param dump_deadline: after an interrupt, when a missing dump is reported overdue.
        Default: 30 minutes (writing a filtered, compressed vmcore of a large instance,
        rebooting and uploading it).
    :param attestation: what to do when the instance has not attested "kdump armed".
        Default: ``AttestationPolicy.REQUIRE``.
    :param attestation_max_age: an attestation older than this counts as missing.
        Default: 7 days.
    :param allow_unverified_arch: let arm64 (Graviton) instances through: the interrupt's
        effect there is not verified (see docs/remediation.md). Default: False.
    """

    boot_grace: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(15))
    cooldown: cdk.Duration = field(default_factory=lambda: cdk.Duration.hours(6))
    daily_budget: int = 1
    dump_deadline: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(30))
    attestation: AttestationPolicy = AttestationPolicy.REQUIRE
    attestation_max_age: cdk.Duration = field(default_factory=lambda: cdk.Duration.days(7))
    allow_unverified_arch: bool = False

    def __post_init__(self) -> None:
        _seconds("InterruptGuards boot_grace", self.boot_grace, minimum=0)
        cooldown = _seconds("InterruptGuards cooldown", self.cooldown, minimum=60)
        deadline = _seconds("InterruptGuards dump_deadline", self.dump_deadline, minimum=60)
        _seconds("InterruptGuards attestation_max_age", self.attestation_max_age, minimum=60)
        attestation: object = self.attestation  # callers may pass anything at run time
        if not isinstance(attestation, AttestationPolicy):
            allowed = ", ".join(f"AttestationPolicy.{p.name}" for p in AttestationPolicy)
            raise ConfigurationError(
                f"InterruptGuards attestation={attestation!r}: must be one of {allowed}"
            )
        unverified: object = self.allow_unverified_arch
        if not isinstance(unverified, bool):
            raise ConfigurationError(
                f"InterruptGuards allow_unverified_arch={self.allow_unverified_arch!r}: "
                "must be True or False"
            )
        budget = self.daily_budget
        if not _unresolved(budget) and (
            not isinstance(budget, int) or isinstance(budget, bool) or budget < 1
        ):
            raise ConfigurationError(
                f"InterruptGuards daily_budget={budget!r}: must be a whole number of at "
                "least 1 (to stop all interrupts, set the kill-switch parameter to 'on')"
            )
        if cooldown is not None and deadline is not None and cooldown < deadline:
            raise ConfigurationError(
                f"InterruptGuards cooldown={cooldown}s is shorter than dump_deadline="
                f"{deadline}s: a second interrupt could hit an instance that is still "
                "writing or shipping its first dump; make the cooldown at least the deadline"
            )
        if cooldown is not None and not _unresolved(budget):
            reachable = _ONE_DAY // min(cooldown, _ONE_DAY) + 1
            if budget > reachable:
                raise ConfigurationError(
                    f"InterruptGuards daily_budget={budget} can never be reached with "
                    f"cooldown={cooldown}s (at most {reachable} interrupts fit in a UTC day); "
                    "lower the budget or shorten the cooldown"
                )


@dataclass(frozen=True, kw_only=True)
class CircuitBreaker:
    """The fleet and availability-zone circuit breakers.

    Every *new* ALARM counts (interrupted or not). When the count within ``window``
    reaches a threshold the breaker opens *before* that alarm is acted on: many instances
    failing at once is most likely an infrastructure event, and crashing them all would make
    it worse. One notification goes out; the breaker closes after ``quiet`` without a new
    ALARM, or when an operator resets it (:meth:`UnresponsiveInstanceRemediation.
    grant_reset_breaker`).

    :param fleet_threshold: new ALARMs in the window, across the deployment, that open the
        fleet breaker (so at most ``fleet_threshold - 1`` interrupts per window).
        Default: 5.
    :param az_threshold: the same per availability zone. Default: 3.
    :param window: the counting window. Default: 15 minutes.
    :param quiet: no new ALARM for this long closes an open breaker. Default: 1 hour.
    """

    fleet_threshold: int = 5
    az_threshold: int = 3
    window: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(15))
    quiet: cdk.Duration = field(default_factory=lambda: cdk.Duration.hours(1))

    def __post_init__(self) -> None:
        for name in ("fleet_threshold", "az_threshold"):
            value = getattr(self, name)
            if _unresolved(value):
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 2:
                raise ConfigurationError(
                    f"CircuitBreaker {name}={value!r}: must be a whole number of at least 2; "
                    "the alarm that reaches the threshold opens the breaker and is not acted "
                    "on, so 1 would never interrupt anything (use the kill switch for that)"
                )
        fleet, az = self.fleet_threshold, self.az_threshold
        if not _unresolved(fleet) and not _unresolved(az) and az > fleet:
            raise ConfigurationError(
                f"CircuitBreaker az_threshold={az} is greater than fleet_threshold={fleet}: "
                "every ALARM also counts for the fleet, so the zone breaker could never open "
                "first; use an az_threshold of at most the fleet_threshold"
            )
        _seconds("CircuitBreaker window", self.window, minimum=60)
        _seconds("CircuitBreaker quiet", self.quiet, minimum=60)


# --------------------------------------------------------------------------------------
# The construct
# --------------------------------------------------------------------------------------


class UnresponsiveInstanceRemediation(Construct):
    """Detect instances whose guest stopped answering and interrupt them, behind guards.

    Attributes: ``function``, ``role``, ``table``, ``topic``, ``key``, ``rule``,
    ``dead_letter_queue``, ``failure_queue``, ``rejected_queue``, ``queue_alarms`` (one
    per queue, on messages sent), ``undeliverable_events_alarm`` (events the rule could not
    put into its dead-letter queue), ``alarms`` (the status-check alarms: one per instance,
    or the one fleet alarm),
    ``kill_switch``, ``log_group``, ``alarm_name_prefix``, ``evidence_bucket``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        evidence_bucket: s3.IBucket,
        evidence_key: kms.IKey | None = None,
        instances: Sequence[ec2.IInstance | str] | None = None,
        fleet: FleetWatch | None = None,
        tag: OptInTag = OptInTag(),  # noqa: B008 - frozen value
        alarm_window: AlarmWindow = AlarmWindow(),
        guards: InterruptGuards = InterruptGuards(),
        breaker: CircuitBreaker = CircuitBreaker(),
        dry_run: bool = True,
        incidents: IncidentStore | None = None,
        topic: sns.ITopic | None = None,
        notifications: Sequence[sns.ITopicSubscription] = (),
        encryption_key: kms.IKey | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        reserved_concurrency: int | None = None,
        timeout: cdk.Duration = cdk.Duration.minutes(1),  # noqa: B008 - immutable
        memory_size: int = 256,
        retry_attempts: int = 2,
        max_event_age: cdk.Duration = cdk.Duration.hours(1),  # noqa: B008 - immutable
        vpc: ec2.IVpc | None = None,
        vpc_subnets: ec2.SubnetSelection | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
    ) -> None:
        """Create the remediation for ``instances`` or, with ``fleet``, for every instance.

        :param evidence_bucket: where the function writes console output before an
            interrupt (``evidence/<instance-id>/<opened_at>/console-output.txt``).
        :param evidence_key: the KMS key of ``evidence_bucket``. Default: the bucket's own
            ``encryption_key`` when it has one; otherwise no KMS right is granted (an
            SSE-S3 bucket needs none).
        :param instances: the instances to watch: ``ec2.IInstance`` objects (tagged here
            with the opt-in tag) or instance ids (``i-...``) that must carry the tag
            already. One alarm each. Default: none; then ``fleet`` is required.
        :param fleet: watch every instance of the account and region with one Metrics
            Insights alarm (template size independent of the fleet). Default: None
            (``instances`` is required). Exactly one of ``instances`` and ``fleet``.
        :param tag: the opt-in tag. Default: ``crashcart:diagnostic-interrupt=enabled``.
        :param alarm_window: the alarm window. Default: 3 of 3 one-minute periods.
        :param guards: per-instance guards. Default: ``InterruptGuards()`` (see there).
        :param breaker: fleet / zone circuit breakers. Default: ``CircuitBreaker()``.
        :param dry_run: send ``SendDiagnosticInterrupt`` with ``DryRun=True`` only: every
            guard, record, permission check and notification happens, no instance is
            crashed. Default: True (a shadow rollout; set False to arm it).
        :param incidents: where incidents are kept and announced (table, key, topic).
            Default: a new ``IncidentStore`` with ``encryption_key``, ``topic`` and
            ``removal_policy`` (its resources keep the logical ids this construct gave them
            before the store existed).
        :param topic: the SNS topic for notifications (incidents and queue alarms), when
            ``incidents`` is not given. This
            account's alarms are allowed to publish to it (``cloudwatch.amazonaws.com``,
            scoped by ``aws:SourceAccount`` / ``aws:SourceArn``), and to use its key. A topic
            (or key) imported by ARN cannot be changed here: its owner must allow that
            (docs/remediation.md), and a synth warning says so. Default: a new topic,
            encrypted with ``encryption_key``, TLS-only.
        :param notifications: subscriptions to add to the topic, e.g.
            ``[sns_subscriptions.EmailSubscription("oncall@example.com")]`` or a
            ``UrlSubscription("https://...")`` (each recipient confirms the subscription
            first). Default: none - subscribe later with ``topic.add_subscription(...)``;
            until something subscribes, notifications reach nobody.
        :param encryption_key: the customer KMS key for the queues and the log group, and
            for the table and topic when ``incidents`` is not given. A key you bring must
            allow the ``logs``, ``events`` and ``cloudwatch`` service principals (see docs).
            Default: the incident store's key (a new key with rotation enabled).
        :param log_retention: how long the function's logs are kept. Default: one year.
        :param reserved_concurrency: reserve this many concurrent executions (1-1000) for
            the function, which also caps it. Default: None, no reservation: a reservation
            fails the deploy in accounts with a small concurrency quota (new and sandbox
            accounts). The breaker and the per-instance claim, not concurrency, bound the
            interrupts (see docs).
        :param timeout: the function's timeout. Default: 1 minute.
        :param memory_size: the function's memory in MiB. Default: 256.
        :param retry_attempts: Lambda's asynchronous retries after a function error (0-2).
            Default: 2 (the function fails closed by raising; a retry re-checks every fact).
        :param max_event_age: how old an event may get while retried, by EventBridge and by
            Lambda, before it goes to a queue (60 s - 6 h). The function rejects alarm state
            changes older than twice this (both retries together). Default: 1 hour.
        :param vpc: run the function in this VPC (it needs endpoints or NAT for EC2, SSM,
            DynamoDB, SNS, SQS, S3, KMS, CloudWatch Logs). Default: no VPC.
        :param vpc_subnets: subnets in ``vpc``. Default: the VPC's private subnets.
        :param removal_policy: what happens to the incident table on removal, when
            ``incidents`` is not given. Default: RETAIN (the table is also
            deletion-protected).
        :raises ConfigurationError: for every invalid value, with what is allowed and why.
        """
        subscriptions = _check_prop_types(
            evidence_bucket=evidence_bucket,
            evidence_key=evidence_key,
            tag=tag,
            alarm_window=alarm_window,
            guards=guards,
            breaker=breaker,
            topic=topic,
            notifications=notifications,
            encryption_key=encryption_key,
            vpc=vpc,
        )
        props.check(
            "UnresponsiveInstanceRemediation",
            "incidents",
            incidents,
            IncidentStore,
            example="IncidentStore(self, 'Incidents')",
            optional=True,
        )
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        watched = _check_mode(instances, fleet)
        check_reserved_concurrency(reserved_concurrency)
        _check_int("memory_size", memory_size, 128, 10_240)
        _check_int("retry_attempts", retry_attempts, 0, 2)
        timeout_s = _seconds("timeout", timeout, minimum=10)
        if timeout_s is not None and timeout_s > 900:
            raise ConfigurationError(f"timeout={timeout_s}s: Lambda allows at most 900 s")
        age_s = _seconds("max_event_age", max_event_age, minimum=60)
        if age_s is not None and age_s > 6 * 3600:
            raise ConfigurationError(
                f"max_event_age={age_s}s: Lambda keeps asynchronous events at most 6 hours"
            )
        if not isinstance(dry_run, bool):
            raise ConfigurationError(f"dry_run={dry_run!r}: must be True or False")
        periods = alarm_window.evaluation_periods
        if (
            fleet is not None
            and not _unresolved(periods)
            and periods > MAX_INSIGHTS_EVALUATION_MINUTES
        ):
            raise ConfigurationError(
                f"AlarmWindow evaluation_periods={periods} with fleet mode: Metrics Insights "
                f"alarms evaluate at most the last {MAX_INSIGHTS_EVALUATION_MINUTES} minutes "
                "of data"
            )

        raw_ids = [i for i in watched if isinstance(i, str)]
        if raw_ids:
            cdk.Annotations.of(self).add_warning_v2(
                "crashcart:remediation:instanceIdsMustBeTagged",
                f"{len(raw_ids)} instance(s) given by id ({', '.join(raw_ids[:5])}"
                f"{', ...' if len(raw_ids) > 5 else ''}): crashcart cannot tag them. Each must "
                f"carry the tag {tag.key}={tag.value}, or the function skips it and IAM denies "
                "the interrupt",
            )

        self.tag = tag
        self.dry_run = dry_run
        self.evidence_bucket = evidence_bucket
        self.alarm_name_prefix: str = _alarm_name_prefix(self)

        # -- incident store (table, key, topic), kill switch ---------------------------------
        if incidents is None:
            # "Default" is left out of logical ids: the table, key and topic keep the ids
            # they had when this construct created them itself (a new id would replace them).
            incidents = IncidentStore(
                self,
                "Default",
                encryption_key=encryption_key,
                topic=topic,
                removal_policy=removal_policy,
                key_description="crashcart remediation: incident table, topic, queues, logs",
                topic_display_name="crashcart remediation",
            )
        elif topic is not None:
            raise ConfigurationError(
                "topic was given with incidents: the remediation announces on its incident "
                "store's topic; give the topic to the IncidentStore instead"
            )
        self.incidents = incidents
        key = encryption_key or incidents.encryption_key
        if key is None:
            raise ConfigurationError(
                "the incident store's table has no customer key: give encryption_key for the "
                "remediation's queues and log group"
            )
        self.key: kms.IKey = key
        self._allow_services_on_key()
        self.table = incidents.table
        self.topic: sns.ITopic = incidents.topic
        #: The topic subscriptions added from ``notifications`` (each recipient confirms
        #: first; aws-assumption: sns-subscription-confirmation).
        self.subscriptions: list[sns.Subscription] = [
            self.topic.add_subscription(subscription) for subscription in subscriptions
        ]
        for added in self.subscriptions:
            acknowledge_finding(
                added,
                "Serverless::Serverless-SNSRedrivePolicy",
                "a notification is a copy for people: every incident, skip and failure it "
                "reports is also recorded in the incident table and the function's log, and "
                "SNS counts undeliverable ones (NumberOfNotificationsFailed); a redrive queue "
                "would keep a second copy of incident text nobody reads",
            )

        # aws-assumption: ssm-kill-switch-parameter
        self.kill_switch = ssm.StringParameter(
            self,
            "KillSwitch",
            string_value="off",
            description=(
                "crashcart remediation kill switch: 'off' lets the function interrupt; any "
                "other value (e.g. 'on') stops every interrupt"
            ),
            tier=ssm.ParameterTier.STANDARD,
        )

        # -- queues ---------------------------------------------------------------------
        self.dead_letter_queue = self._queue(
            "DeadLetterQueue", "events EventBridge could not deliver to the function"
        )
        self.failure_queue = self._queue(
            "FailureQueue", "events the function failed on after Lambda's retries"
        )
        self.rejected_queue = self._queue(
            "RejectedQueue", "malformed or foreign events the function refused"
        )

        # -- function -------------------------------------------------------------------
        self.log_group = function_log_group(self, "Logs", key=self.key, retention=log_retention)
        self.role = function_role(
            self, "Role", description="crashcart remediation function: exactly the rights it uses"
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler=REMEDIATION_FUNCTION.handler,
            code=REMEDIATION_FUNCTION.code(),
            description="crashcart: guarded SendDiagnosticInterrupt on status-check failure",
            role=self.role,
            timeout=timeout,
            memory_size=memory_size,
            # aws-assumption: lambda-unreserved-concurrency-minimum
            reserved_concurrent_executions=reserved_concurrency,
            log_group=self.log_group,
            # aws-assumption: emf-log-metrics
            logging_format=lambda_.LoggingFormat.TEXT,
            vpc=vpc,
            vpc_subnets=vpc_subnets,
            environment=self._environment(guards, breaker, max_event_age),
        )
        acknowledge_untraced(self.function)
        acknowledge_plain_environment(self.function)
        acknowledge_unreserved(
            self.function,
            reserved_concurrency,
            bound="the per-instance claim (one DynamoDB transaction) and the fleet / zone "
            "circuit breaker bound the interrupts however many copies run at once",
        )
        # A throttled event (no reservation: the account's pool is shared) is retried by
        # Lambda until max_event_age, then lands in the failure queue.
        # aws-assumption: lambda-async-throttle-retry
        self.function.configure_async_invoke(
            retry_attempts=retry_attempts,
            max_event_age=max_event_age,
            on_failure=QueueDestination(self.failure_queue),
        )
        self._grant_function_rights(evidence_key or evidence_bucket.encryption_key)

        # -- delivery -------------------------------------------------------------------
        detail_type = CONTRIBUTOR_STATE_CHANGE if fleet is not None else ALARM_STATE_CHANGE
        self.rule = events.Rule(
            self,
            "AlarmRule",
            description=(
                f"crashcart: {detail_type} of alarms named {self.alarm_name_prefix}* "
                "to the remediation function"
            ),
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=[detail_type],
                account=[stack.account],
                region=[stack.region],
                detail={
                    "alarmName": [{"prefix": self.alarm_name_prefix}],
                    "state": {"value": ["ALARM", "OK"]},
                },
            ),
        )
        self.rule.add_target(
            targets.LambdaFunction(
                self.function,
                dead_letter_queue=self.dead_letter_queue,
                max_event_age=max_event_age,
                retry_attempts=185,
            )
        )

        self.queue_alarms: list[cloudwatch.Alarm] = [
            self._queue_depth_alarm(queue, what)
            for queue, what in (
                (self.dead_letter_queue, "undelivered events (EventBridge -> function)"),
                (self.failure_queue, "events the function failed on"),
                (self.rejected_queue, "events the function rejected as malformed or foreign"),
            )
        ]
        #: Events EventBridge could not even put into the dead-letter queue (lost).
        self.undeliverable_events_alarm = undeliverable_events_alarm(
            self, "UndeliverableEventsAlarm", self.rule, self.topic
        )

        self._acknowledge_findings(vpc is None)

        # -- status-check alarms (last: the resource budget is what is left) -------------
        self.alarms: list[cloudwatch.Alarm] = []
        if fleet is not None:
            self.alarms.append(self._fleet_alarm(fleet, alarm_window))
        else:
            self._check_resource_budget(len(watched))
            for instance in watched:
                self.alarms.append(self._instance_alarm(instance, alarm_window))
            # Resources added to the stack after this construct count too: check again
            # when the whole stack is known, before CloudFormation would refuse it.
            self.node.add_validation(_StackResourceBudget(self, len(watched)))
        for alarm in self.alarms:
            self._acknowledge_status_alarm(alarm)

    # -- public API ----------------------------------------------------------------------

    @property
    def max_explicit_instances(self) -> int:
        """How many more explicitly listed instances this stack could still take."""
        return MAX_STACK_RESOURCES - _count_resources(cdk.Stack.of(self)) - 1

    def metric(self, metric_name: str, **props: Any) -> cloudwatch.Metric:
        """A metric the function emits (embedded metric format), as a 5-minute Sum."""
        return cloudwatch.Metric(
            namespace=METRIC_NAMESPACE,
            metric_name=metric_name,
            dimensions_map={METRIC_DIMENSION: self.function.function_name},
            statistic=props.pop("statistic", "Sum"),
            period=props.pop("period", cdk.Duration.minutes(5)),
            **props,
        )

    def metric_interrupts_sent(self, **props: Any) -> cloudwatch.Metric:
        """Interrupts sent (not dry run)."""
        return self.metric(OUTCOME_METRICS["interrupted"], **props)

    def metric_interrupts_dry_run(self, **props: Any) -> cloudwatch.Metric:
        """Interrupts that dry-run mode sent with ``DryRun=True``."""
        return self.metric(OUTCOME_METRICS["dry_run"], **props)

    def metric_interrupts_skipped(self, **props: Any) -> cloudwatch.Metric:
        """ALARMs a guard refused to act on."""
        return self.metric(OUTCOME_METRICS["skipped"], **props)

    def metric_interrupts_failed(self, **props: Any) -> cloudwatch.Metric:
        """Interrupts EC2 refused or that failed."""
        return self.metric(OUTCOME_METRICS["failed"], **props)

    def metric_events_rejected(self, **props: Any) -> cloudwatch.Metric:
        """Malformed or foreign events sent to the rejected queue."""
        return self.metric(OUTCOME_METRICS["rejected"], **props)

    def metric_breaker_opened(self, **props: Any) -> cloudwatch.Metric:
        """Times the fleet or a zone circuit breaker opened."""
        return self.metric(OUTCOME_METRICS["breaker_opened"], **props)

    def metric_first_unattested_skips(self, **props: Any) -> cloudwatch.Metric:
        """Instances skipped for the first time because their kdump attestation was not valid
        (each is also notified; later skips of the same instance count only as skipped)."""
        return self.metric(OUTCOME_METRICS["unattested_first_skip"], **props)

    def grant_reset_breaker(self, grantee: iam.IGrantable) -> iam.ManagedPolicy:
        """Let ``grantee`` read and reset the circuit-breaker items, and nothing else.

        Attaches a customer managed policy (in the grantee's stack) to the grantee's role,
        user or group: ``dynamodb:GetItem`` / ``UpdateItem`` / ``DeleteItem`` on the incident
        table, only for partition keys starting with ``breaker#``
        (``dynamodb:LeadingKeys``), plus the table key's use. A managed policy, not an
        inline one, so that compliance packs that forbid inline policies (NIST 800-53,
        HIPAA, PCI DSS ``IAMNoInlinePolicy``) pass in the grantee's stack. To put the
        statements in a policy of your own instead, use :meth:`reset_breaker_statements`.
        Calling it twice for one grantee returns the same policy.

        :raises ConfigurationError: the grantee's principal is not a role, user or group.
        """
        return self._grant_policy(
            grantee,
            "ResetBreaker",
            self.reset_breaker_statements(),
            "crashcart: read and reset the remediation circuit breakers",
        )

    def reset_breaker_statements(self) -> list[iam.PolicyStatement]:
        """The statements :meth:`grant_reset_breaker` grants, for a policy of your own."""
        return [
            iam.PolicyStatement(
                sid="CrashcartResetBreaker",
                actions=list(BREAKER_RESET_ACTIONS),
                resources=[self.table.table_arn],
                conditions={
                    # aws-assumption: dynamodb-fine-grained-keys
                    "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{BREAKER_PREFIX}*"]},
                },
            ),
            iam.PolicyStatement(
                sid="CrashcartResetBreakerKey",
                actions=list(KEY_ACTIONS),
                resources=[self.key.key_arn],
            ),
        ]

    def grant_kill_switch(self, grantee: iam.IGrantable) -> iam.ManagedPolicy:
        """Let ``grantee`` read and set the kill-switch parameter (``on`` / ``off``).

        Attaches a customer managed policy (in the grantee's stack) to the grantee's role,
        user or group, for the reason given in :meth:`grant_reset_breaker`; the statements
        alone are :meth:`kill_switch_statements`.

        :raises ConfigurationError: the grantee's principal is not a role, user or group.
        """
        return self._grant_policy(
            grantee,
            "KillSwitch",
            self.kill_switch_statements(),
            "crashcart: read and set the remediation kill switch",
        )

    def kill_switch_statements(self) -> list[iam.PolicyStatement]:
        """The statements :meth:`grant_kill_switch` grants, for a policy of your own."""
        return [
            iam.PolicyStatement(
                sid="CrashcartKillSwitch",
                actions=["ssm:GetParameter", "ssm:PutParameter"],
                resources=[self.kill_switch.parameter_arn],
            )
        ]

    def _grant_policy(
        self,
        grantee: iam.IGrantable,
        what: str,
        statements: list[iam.PolicyStatement],
        description: str,
    ) -> iam.ManagedPolicy:
        owner = f"UnresponsiveInstanceRemediation.grant_{_snake(what)}"
        props.check(owner, "grantee", grantee, iam.IGrantable, example="an iam.Role")
        principal = grantee.grant_principal
        attach: dict[str, list[Any]] = {"roles": [], "users": [], "groups": []}
        for kind, interface in (("roles", iam.IRole), ("users", iam.IUser), ("groups", iam.IGroup)):
            if props.implements(principal, interface):
                attach[kind].append(principal)
                break
        else:
            raise ConfigurationError(
                f"{owner}: the grantee's principal (a {type(principal).__name__}) is not "
                "an IAM role, user or group, so no customer managed policy can be attached "
                "to it; put "
                f"{_snake(what)}_statements() in a policy of your own instead"
            )
        digest = hashlib.sha256(self.node.path.encode()).hexdigest()[:8]
        if isinstance(principal, Construct):
            # In the grantee's own stack, as an inline grant would be.
            scope: Construct = principal
            policy_id = f"Crashcart{what}{digest}"
        else:
            # An imported role (a jsii interface proxy, not a construct): here.
            node = getattr(principal, "node", None)
            name = node.path if node is not None else repr(principal)
            scope = self
            policy_id = f"{what}Grant{hashlib.sha256(name.encode()).hexdigest()[:8]}"
        existing = scope.node.try_find_child(policy_id)
        if isinstance(existing, iam.ManagedPolicy):
            return existing
        return iam.ManagedPolicy(
            scope,
            policy_id,
            description=f"{description} ({self.node.path})",
            statements=statements,
            roles=attach["roles"],
            users=attach["users"],
            groups=attach["groups"],
        )

    # -- building blocks -----------------------------------------------------------------

    def _queue(self, construct_id: str, what: str) -> sqs.Queue:
        queue = encrypted_queue(
            self,
            construct_id,
            key=self.key,
            dead_letter_store=f"this queue is itself a dead-letter store ({what}); an alarm "
            "notifies the topic on every message sent to it",
        )
        return queue

    def _allow_services_on_key(self) -> None:
        """Logs (the log group), EventBridge (the rule's dead-letter queue) and this account's
        alarms (the topic) may use the deployment's key."""
        allow_logs_on_key(self, self.key, "CrashcartLogsUseKey")
        # aws-assumption: sse-kms-keys-for-service-senders
        allow_rules_on_key(self, self.key, "CrashcartEventBridgeDeadLetterQueue")
        _publish, use_key = alarm_topic_statements(self, self.incidents.topic)
        self.key.add_to_resource_policy(use_key)

    def _environment(
        self, guards: InterruptGuards, breaker: CircuitBreaker, max_event_age: cdk.Duration
    ) -> dict[str, str]:
        return {
            variables.TABLE_NAME: self.table.table_name,
            variables.TOPIC_ARN: self.topic.topic_arn,
            variables.EVIDENCE_BUCKET: self.evidence_bucket.bucket_name,
            variables.REJECTED_QUEUE_URL: self.rejected_queue.queue_url,
            variables.KILL_SWITCH_PARAMETER: self.kill_switch.parameter_name,
            variables.OPT_IN_TAG_KEY: self.tag.key,
            variables.OPT_IN_TAG_VALUE: self.tag.value,
            variables.ALARM_NAME_PREFIX: self.alarm_name_prefix,
            variables.DRY_RUN: "true" if self.dry_run else "false",
            variables.BOOT_GRACE_SECONDS: _env_seconds(guards.boot_grace),
            variables.COOLDOWN_SECONDS: _env_seconds(guards.cooldown),
            variables.DAILY_BUDGET: _env_number(guards.daily_budget),
            variables.BREAKER_FLEET_THRESHOLD: _env_number(breaker.fleet_threshold),
            variables.BREAKER_AZ_THRESHOLD: _env_number(breaker.az_threshold),
            variables.BREAKER_WINDOW_SECONDS: _env_seconds(breaker.window),
            variables.BREAKER_QUIET_SECONDS: _env_seconds(breaker.quiet),
            variables.ATTESTATION_POLICY: guards.attestation.value,
            variables.ATTESTATION_MAX_AGE_SECONDS: _env_seconds(guards.attestation_max_age),
            variables.ALLOW_UNVERIFIED_ARCH: "true" if guards.allow_unverified_arch else "false",
            variables.DUMP_DEADLINE_SECONDS: _env_seconds(guards.dump_deadline),
            # The function rejects state changes older than twice this (EventBridge's
            # retries, then Lambda's queue): stale or forged timestamps.
            variables.MAX_EVENT_AGE_SECONDS: _env_seconds(max_event_age),
        }

    def _grant_function_rights(self, evidence_key: kms.IKey | None) -> None:
        """Exactly the rights the function uses (brief: 'Permissions the function uses')."""
        stack = cdk.Stack.of(self)
        role = self.role
        instance_arn = f"arn:{stack.partition}:ec2:{stack.region}:{stack.account}:instance/*"
        statements = [
            iam.PolicyStatement(
                sid="Logs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            ),
            iam.PolicyStatement(
                sid="DescribeInstances",
                actions=list(DESCRIBE_ACTIONS),
                resources=["*"],
            ),
            iam.PolicyStatement(
                # aws-assumption: ec2-tag-condition-keys
                sid="ConsoleOutputOptedIn",
                actions=["ec2:GetConsoleOutput"],
                resources=[instance_arn],
                conditions={"StringEquals": {self.tag.condition_key: self.tag.value}},
            ),
            iam.PolicyStatement(
                sid="KillSwitch",
                actions=["ssm:GetParameter"],
                resources=[self.kill_switch.parameter_arn],
            ),
            iam.PolicyStatement(
                sid="IncidentTable",
                actions=list(TABLE_ACTIONS),
                resources=[self.table.table_arn],
            ),
            iam.PolicyStatement(
                sid="Notify",
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
            ),
            iam.PolicyStatement(
                sid="Evidence",
                actions=["s3:PutObject"],
                resources=[self.evidence_bucket.arn_for_objects(f"{EVIDENCE_PREFIX}*")],
            ),
            iam.PolicyStatement(
                sid="Queues",
                actions=["sqs:SendMessage"],
                resources=[self.rejected_queue.queue_arn, self.failure_queue.queue_arn],
            ),
            iam.PolicyStatement(
                sid="DeploymentKey",
                actions=list(KEY_ACTIONS),
                resources=[self.key.key_arn],
            ),
        ]
        topic_key = getattr(self.topic, "master_key", None)
        if topic_key is not None and topic_key is not self.key:
            statements.append(
                iam.PolicyStatement(
                    sid="TopicKey",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[topic_key.key_arn],
                )
            )
        if evidence_key is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="EvidenceKey",
                    actions=list(EVIDENCE_KEY_ACTIONS),
                    resources=[evidence_key.key_arn],
                )
            )
        if self.function.is_bound_to_vpc:
            statements.append(
                iam.PolicyStatement(
                    sid="VpcNetworkInterfaces",
                    actions=[
                        "ec2:AssignPrivateIpAddresses",
                        "ec2:CreateNetworkInterface",
                        "ec2:DeleteNetworkInterface",
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:UnassignPrivateIpAddresses",
                    ],
                    resources=["*"],
                )
            )
        for statement in statements:
            role.add_to_principal_policy(statement)
        grant_diagnostic_interrupt(self.function, tag=self.tag).assert_success()

    def _queue_depth_alarm(self, queue: sqs.Queue, what: str) -> cloudwatch.Alarm:
        # On messages sent, not visible: each new failure notifies again even while an
        # earlier one still waits in the queue.
        return failure_queue_alarm(queue, "DepthAlarm", queue, self.topic, what)

    def _instance_alarm(
        self, instance: ec2.IInstance | str, window: AlarmWindow
    ) -> cloudwatch.Alarm:
        if isinstance(instance, str):
            instance_id = instance
            if _unresolved(instance):
                # A token (e.g. a CfnParameter): name the alarm by what it resolves to, which
                # is stable across synths (ids are a contract: a new id replaces the alarm).
                resolved = json.dumps(cdk.Stack.of(self).resolve(instance), sort_keys=True)
                digest = hashlib.sha256(resolved.encode()).hexdigest()[:12]
                construct_id = f"StatusAlarm-token-{digest}"
            else:
                construct_id = f"StatusAlarm-{instance}"
        else:
            instance_id = instance.instance_id
            construct_id = f"StatusAlarm-{cdk.Names.node_unique_id(instance.node)}"
            cdk.Tags.of(instance).add(self.tag.key, self.tag.value)
        return cloudwatch.Alarm(
            self,
            construct_id,
            alarm_name=f"{self.alarm_name_prefix}{instance_id}",
            alarm_description=(
                f"crashcart: instance {instance_id} failed its instance status check; the "
                "remediation function decides whether to send a diagnostic interrupt"
            ),
            metric=cloudwatch.Metric(
                namespace="AWS/EC2",
                metric_name=STATUS_METRIC,
                dimensions_map={"InstanceId": instance_id},
                statistic="Maximum",
                period=cdk.Duration.minutes(1),
            ),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=window.evaluation_periods,
            datapoints_to_alarm=window.datapoints_to_alarm,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _fleet_alarm(self, fleet: FleetWatch, window: AlarmWindow) -> cloudwatch.Alarm:
        return cloudwatch.Alarm(
            self,
            "FleetStatusAlarm",
            alarm_name=f"{self.alarm_name_prefix}fleet",
            alarm_description=(
                "crashcart: every instance whose instance status check fails is a contributor; "
                "the remediation function checks the opt-in tag and its guards"
            ),
            metric=cloudwatch.MathExpression(
                expression=fleet.query,
                period=cdk.Duration.minutes(1),
                using_metrics={},
                label="StatusCheckFailed_Instance by InstanceId",
            ),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=window.evaluation_periods,
            datapoints_to_alarm=window.datapoints_to_alarm,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _check_resource_budget(self, count: int) -> None:
        room = self.max_explicit_instances
        if count * RESOURCES_PER_INSTANCE > room:
            raise ConfigurationError(
                f"{count} explicitly listed instances need {count * RESOURCES_PER_INSTANCE} "
                f"alarms, but stack {cdk.Stack.of(self).stack_name!r} has room for at most "
                f"{room} more resources (CloudFormation allows {MAX_STACK_RESOURCES} per "
                "stack; the remediation itself and the stack's other resources use the rest). "
                "Use fleet=FleetWatch() instead: one Metrics Insights alarm watches any "
                "number of instances, or split the instances across stacks"
            )

    def _acknowledge_findings(self, no_vpc: bool) -> None:
        stack = cdk.Stack.of(self)
        policy = self.role.node.find_child("DefaultPolicy")
        instance_arn = f"arn:{stack.partition}:ec2:{stack.region}:{stack.account}:instance/*"
        evidence_arn = self.evidence_bucket.arn_for_objects(f"{EVIDENCE_PREFIX}*")
        wildcards = {
            "*": (
                "ec2:DescribeInstances, DescribeInstanceStatus and DescribeInstanceTypes "
                "support no resource-level permissions: AWS requires Resource '*'"
            ),
            instance_arn: (
                "GetConsoleOutput and SendDiagnosticInterrupt must reach instances that do "
                "not exist at deploy time; instance/* is limited to this account and region "
                "and, by a StringEquals aws:ResourceTag condition, to opted-in instances"
            ),
            evidence_arn: (
                "PutObject only under the evidence/ prefix of the evidence bucket: object "
                "keys include the instance id and incident time, known only at run time"
            ),
        }
        for arn, reason in wildcards.items():
            # cdk-nag names the resource as rendered in the template (<AWS::Partition>,
            # <Logical.Arn>); one whose rendering is unknown stays unacknowledged (reported).
            rendered = nag_rendering(stack.resolve(arn))
            if rendered is not None:
                acknowledge_finding(
                    policy, f"AwsSolutions::AwsSolutions-IAM5[Resource::{rendered}]", reason
                )
        acknowledge_packs(
            self.function,
            "LambdaDLQ",
            ("NIST.800.53.R5", "HIPAA.Security"),
            "function errors go to the EventInvokeConfig on-failure destination (FailureQueue), "
            "which keeps the event with the error and request context; a function DLQ would "
            "duplicate it",
        )
        if no_vpc:
            acknowledge_packs(
                self.function,
                "LambdaInsideVPC",
                ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"),
                "the function only calls AWS APIs (EC2, SSM, DynamoDB, SNS, SQS, S3, KMS) and "
                "opens no connection into a network; pass vpc= to run it in a VPC with "
                "interface endpoints",
            )
        acknowledge_packs(
            policy,
            "IAMNoInlinePolicy",
            ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"),
            "the function role's own policy, bound to this one role: a customer managed policy "
            "could be attached to other principals and hand them the interrupt right",
        )

    def _acknowledge_status_alarm(self, alarm: cloudwatch.Alarm) -> None:
        acknowledge_packs(
            alarm,
            "CloudWatchAlarmAction",
            ("NIST.800.53.R5", "HIPAA.Security"),
            "acted on through its EventBridge state-change event (rule AlarmRule -> the "
            "guarded function); an alarm action would bypass the guards or notify twice",
        )


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _env_seconds(duration: cdk.Duration) -> str:
    return _env_number(duration.to_seconds())


def _env_number(value: float) -> str:
    if _unresolved(value):
        return cdk.Token.as_string(value)
    return str(int(value))


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if _unresolved(value):
        return
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigurationError(f"{name}={value!r}: must be a whole number from {low} to {high}")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _check_prop_types(
    *,
    evidence_bucket: object,
    evidence_key: object,
    tag: object,
    alarm_window: object,
    guards: object,
    breaker: object,
    topic: object,
    notifications: object,
    encryption_key: object,
    vpc: object,
) -> list[sns.ITopicSubscription]:
    """A prop of the wrong type fails here, naming it, not as an AttributeError later."""
    owner = "UnresponsiveInstanceRemediation"
    props.check(owner, "evidence_bucket", evidence_bucket, s3.IBucket, example="dumps.bucket")
    props.check(
        owner, "evidence_key", evidence_key, kms.IKey, example="dumps.encryption_key", optional=True
    )
    props.check(owner, "tag", tag, OptInTag, example="OptInTag(key='team:nmi', value='yes')")
    props.check(
        owner,
        "alarm_window",
        alarm_window,
        AlarmWindow,
        example="AlarmWindow(evaluation_periods=3, datapoints_to_alarm=3)",
    )
    props.check(owner, "guards", guards, InterruptGuards, example="InterruptGuards(daily_budget=1)")
    props.check(
        owner, "breaker", breaker, CircuitBreaker, example="CircuitBreaker(fleet_threshold=5)"
    )
    props.check(
        owner, "topic", topic, sns.ITopic, example="sns.Topic(self, 'Topic')", optional=True
    )
    props.check(
        owner,
        "encryption_key",
        encryption_key,
        kms.IKey,
        example="kms.Key(self, 'Key', enable_key_rotation=True)",
        optional=True,
    )
    props.check(owner, "vpc", vpc, ec2.IVpc, example="ec2.Vpc(self, 'Vpc')", optional=True)

    def subscription(name: str, item: object) -> None:
        props.check(
            owner,
            name,
            item,
            sns.ITopicSubscription,
            example="sns_subscriptions.EmailSubscription('oncall@example.com')",
        )

    return props.check_sequence(
        owner, "notifications", notifications, subscription, what="sns.ITopicSubscription"
    )


def _check_mode(
    instances: Sequence[ec2.IInstance | str] | None, fleet: FleetWatch | None
) -> list[ec2.IInstance | str]:
    if instances is not None and fleet is not None:
        raise ConfigurationError(
            "both instances and fleet were given: choose one. fleet=FleetWatch() watches "
            "every instance (the function checks the tag); instances=[...] watches only "
            "those, with one alarm each. Both would announce one hang twice"
        )
    if fleet is not None:
        if not isinstance(fleet, FleetWatch):
            raise ConfigurationError(f"fleet={fleet!r}: must be a FleetWatch")
        return []
    if instances is None or isinstance(instances, str) or len(instances) == 0:
        raise ConfigurationError(
            f"instances={instances!r}: give a non-empty list of ec2.IInstance objects or "
            "instance ids, or fleet=FleetWatch() to watch every instance of the region"
        )
    seen: set[str] = set()
    for instance in instances:
        if isinstance(instance, str):
            if not _unresolved(instance) and not _INSTANCE_ID.match(instance):
                raise ConfigurationError(
                    f"instance id {instance!r} is not an EC2 instance id (i- followed by 8 or "
                    "17 lower-case hex digits)"
                )
            key = instance
        elif hasattr(instance, "instance_id") and hasattr(instance, "node"):
            key = cdk.Names.node_unique_id(instance.node)
        else:
            raise ConfigurationError(
                f"instances entry {instance!r}: must be an ec2.IInstance or an instance id"
            )
        if key in seen:
            raise ConfigurationError(
                f"instance {key!r} is listed twice: it would get two alarms and two events "
                "for one hang"
            )
        seen.add(key)
    return list(instances)


def _alarm_name_prefix(scope: Construct) -> str:
    """``crashcart-<stack name>-<8 hex of the construct path>-``: unique per deployment."""
    stack = cdk.Stack.of(scope)
    name = stack.stack_name if not _unresolved(stack.stack_name) else "stack"
    digest = hashlib.sha256(scope.node.path.encode()).hexdigest()[:8]
    return f"crashcart-{name[:60]}-{digest}-"


def _count_resources(stack: cdk.Stack) -> int:
    return sum(1 for child in stack.node.find_all() if isinstance(child, cdk.CfnResource))


@jsii.implements(IValidation)
class _StackResourceBudget:
    """Synth-time check: the finished stack still fits CloudFormation's resource limit."""

    def __init__(self, remediation: UnresponsiveInstanceRemediation, instances: int) -> None:
        self._stack = cdk.Stack.of(remediation)
        self._instances = instances

    def validate(self) -> list[str]:
        # +1: the CDK metadata resource the synthesizer adds to the template.
        total = _count_resources(self._stack) + 1
        if total <= MAX_STACK_RESOURCES:
            return []
        return [
            f"stack {self._stack.stack_name!r} would have {total} resources, more than the "
            f"{MAX_STACK_RESOURCES} CloudFormation allows; its {self._instances} explicitly "
            f"listed instances use {self._instances * RESOURCES_PER_INSTANCE} of them (one "
            "alarm each). Use fleet=FleetWatch() instead: one Metrics Insights alarm watches "
            "any number of instances, or list fewer instances per stack"
        ]


# Re-exported for the docs and tests.
__all__ = [
    "ALARM_STATE_CHANGE",
    "CONTRIBUTOR_STATE_CHANGE",
    "FLEET_QUERY",
    "MAX_STACK_RESOURCES",
    "METRIC_DIMENSION",
    "METRIC_NAMESPACE",
    "OUTCOME_METRICS",
    "AlarmWindow",
    "AttestationPolicy",
    "CircuitBreaker",
    "FleetWatch",
    "InterruptGuards",
    "UnresponsiveInstanceRemediation",
]
