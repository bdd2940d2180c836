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

Where the parts are: the value types in :mod:`.remediation_settings`; under ``_internal/``:
the prop checks, the incident store it defaults to and the function's environment in
``remediation_checks``; the function's rights and the operator grants in ``remediation_iam``;
the alarm rule, the sweep's schedule and the failure queues in ``remediation_delivery``; the
status-check alarms in ``remediation_alarms``; the ``metric_*`` methods in
``remediation_metrics``; the compliance acknowledgements in ``remediation_acknowledgements``;
the incident table, key and topic in :mod:`.incident_store`; the runtime in
``crashcart/functions/remediation/``. This module keeps the props, their documentation and
the wiring in its one order (store, queues, function, delivery, alarms, budget check).
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from crashcart import _props as props
from crashcart.constructs._internal.fleet_shards import (
    AlarmManager,
)
from crashcart.constructs._internal.function_code import REMEDIATION as REMEDIATION_FUNCTION
from crashcart.constructs._internal.lambda_functions import (
    acknowledge_function_defaults,
)
from crashcart.constructs._internal.remediation_acknowledgements import (
    acknowledge_findings,
    acknowledge_subscription,
)
from crashcart.constructs._internal.remediation_alarms import (
    STATUS_METRIC,
    watch_status_checks,
)
from crashcart.constructs._internal.remediation_checks import (
    MAX_STACK_RESOURCES,
    RESOURCES_PER_INSTANCE,
    alarm_name_prefix,
    check_prop_types,
    check_settings,
    count_resources,
    function_environment,
    incident_store,
    warn_untagged_ids,
)
from crashcart.constructs._internal.remediation_delivery import (
    ALARM_STATE_CHANGE,
    CONTRIBUTOR_STATE_CHANGE,
    alarm_rule,
    allow_services_on_key,
    failure_queue,
    missed_alarm_sweep_rule,
    queue_alarms,
)
from crashcart.constructs._internal.remediation_iam import (
    DESCRIBE_ACTIONS,
    EVIDENCE_KEY_ACTIONS,
    EVIDENCE_PREFIX,
    KEY_ACTIONS,
    TABLE_ACTIONS,
    RemediationGrants,
    grant_function_rights,
)
from crashcart.constructs._internal.remediation_metrics import (
    METRIC_DIMENSION,
    METRIC_NAMESPACE,
    OUTCOME_METRICS,
    RemediationMetrics,
)
from crashcart.constructs._internal.secure_function import (
    QueueDestination,
    function_log_group,
    function_role,
    python_function,
)
from crashcart.constructs._internal.service_access import undeliverable_events_alarm
from crashcart.constructs.existing_dump_bucket import DumpBucket, ExistingDumpBucket
from crashcart.constructs.fleet_scale import ManagedAlarms
from crashcart.constructs.incident_store import (
    IncidentStore,
)
from crashcart.constructs.organisation_link import OrganisationLink, check_organisation
from crashcart.constructs.remediation_settings import (
    FLEET_QUERY,
    MAX_CONTRIBUTORS,
    AlarmWindow,
    AttestationPolicy,
    CircuitBreaker,
    FleetWatch,
    InterruptGuards,
    MissedAlarmSweep,
)
from crashcart.opt_in import OptInTag

# --------------------------------------------------------------------------------------
# The construct
# --------------------------------------------------------------------------------------


class UnresponsiveInstanceRemediation(RemediationMetrics, RemediationGrants, Construct):
    """Detect instances whose guest stopped answering and interrupt them, behind guards.

    Attributes: ``function``, ``role``, ``table``, ``topic``, ``key``, ``rule``,
    ``dead_letter_queue``, ``failure_queue``, ``rejected_queue``, ``queue_alarms`` (one
    per queue, on messages sent), ``undeliverable_events_alarm`` (events the rule could not
    put into its dead-letter queue), ``alarms`` (the status-check alarms: one per instance,
    or the one fleet alarm),
    ``kill_switch``, ``log_group``, ``alarm_name_prefix``, ``dumps``, ``evidence_bucket``
    and ``evidence_key`` (the bucket and key of ``dumps``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dumps: DumpBucket,
        instances: Sequence[ec2.IInstance | str] | None = None,
        fleet: FleetWatch | ManagedAlarms | None = None,
        tag: OptInTag = OptInTag(),  # noqa: B008 - frozen value
        alarm_window: AlarmWindow = AlarmWindow(),  # noqa: B008 - frozen value
        guards: InterruptGuards = InterruptGuards(),  # noqa: B008 - frozen value
        breaker: CircuitBreaker = CircuitBreaker(),  # noqa: B008 - frozen value
        missed_alarm_sweep: MissedAlarmSweep | None = MissedAlarmSweep(),  # noqa: B008 - frozen
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
        organisation: OrganisationLink | None = None,
    ) -> None:
        """Create the remediation for ``instances`` or, with ``fleet``, for every instance.

        :param dumps: the crash-dump bucket, where the function also writes console output
            before an interrupt (``evidence/<instance-id>/<opened_at>/console-output.txt``):
            the deployment's ``CrashDumpBucket``, or an ``ExistingDumpBucket`` (bucket and
            key) for one crashcart did not create. The function may ``kms:Encrypt`` /
            ``GenerateDataKey`` with its key (none is granted for an SSE-S3 bucket).
        :param instances: the instances to watch: ``ec2.IInstance`` objects (tagged here
            with the opt-in tag) or instance ids (``i-...``) that must carry the tag
            already. One alarm each. Default: none; then ``fleet`` is required.
        :param fleet: watch every instance of the account and region: ``FleetWatch()``,
            one Metrics Insights alarm (up to 10,000 instances; a partial-data evaluation
            notifies the topic), or ``ManagedAlarms()``, one ordinary alarm per opted-in
            instance kept at run time by the alarm manager (past 10,000 instances; no
            account-wide setting). Either way the template size is independent of the fleet.
            Default: None (``instances`` is required). Exactly one of ``instances`` and
            ``fleet``.
        :param tag: the opt-in tag. Default: ``crashcart:diagnostic-interrupt=enabled``.
        :param alarm_window: the alarm window. Default: 3 of 3 one-minute periods.
        :param guards: per-instance guards. Default: ``InterruptGuards()`` (see there).
        :param breaker: fleet / zone circuit breakers. Default: ``CircuitBreaker()``.
        :param missed_alarm_sweep: a scheduled pass of the function over the impaired
            opted-in instances whose alarm event was missed (or whose incident went stale),
            decided as an alarm would be. ``None``: no pass (no rule). Default:
            ``MissedAlarmSweep()``, every 5 minutes.
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
        :param organisation: ``OrganisationLink`` (docs/organisation/breakers.md): take a slot
            of the organisation breaker first, report to the central bus. Default: None.
        :raises ConfigurationError: for every invalid value, with what is allowed and why.
        """
        subscriptions = check_prop_types(
            dumps=dumps,
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
        watched = check_settings(
            instances=instances,
            fleet=fleet,
            alarm_window=alarm_window,
            missed_alarm_sweep=missed_alarm_sweep,
            dry_run=dry_run,
            reserved_concurrency=reserved_concurrency,
            timeout=timeout,
            memory_size=memory_size,
            retry_attempts=retry_attempts,
            max_event_age=max_event_age,
        )
        self.missed_alarm_sweep_settings = missed_alarm_sweep
        self.organisation = check_organisation(organisation, cdk.Stack.of(self))
        warn_untagged_ids(self, watched, tag)

        self.tag = tag
        self.dry_run = dry_run
        self.dumps = dumps
        #: The bucket and key of ``dumps`` (console-output evidence goes there).
        self.evidence_bucket: s3.IBucket = dumps.bucket
        self.evidence_key: kms.IKey | None = dumps.encryption_key
        self.alarm_name_prefix: str = alarm_name_prefix(self)

        # -- incident store (table, key, topic), kill switch ---------------------------------
        self.incidents, self.key = incident_store(
            self,
            incidents,
            encryption_key=encryption_key,
            topic=topic,
            removal_policy=removal_policy,
        )
        allow_services_on_key(self)
        self.table = self.incidents.table
        self.topic: sns.ITopic = self.incidents.topic
        #: The topic subscriptions added from ``notifications`` (each recipient confirms
        #: first; aws-assumption: sns-subscription-confirmation).
        self.subscriptions: list[sns.Subscription] = [
            self.topic.add_subscription(subscription) for subscription in subscriptions
        ]
        for added in self.subscriptions:
            acknowledge_subscription(added)

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
        self.dead_letter_queue = failure_queue(
            self, "DeadLetterQueue", "events EventBridge could not deliver to the function"
        )
        self.failure_queue = failure_queue(
            self, "FailureQueue", "events the function failed on after Lambda's retries"
        )
        self.rejected_queue = failure_queue(
            self, "RejectedQueue", "malformed or foreign events the function refused"
        )

        # -- function -------------------------------------------------------------------
        self.log_group = function_log_group(self, "Logs", key=self.key, retention=log_retention)
        self.role = function_role(
            self, "Role", description="crashcart remediation function: exactly the rights it uses"
        )
        #: The function's environment (the runtime contract; the lifecycle hold reuses it).
        self.function_environment: dict[str, str] = function_environment(
            self, guards, breaker, max_event_age
        )
        self.function = python_function(
            self,
            REMEDIATION_FUNCTION,
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
            environment=self.function_environment,
        )
        acknowledge_function_defaults(
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
        grant_function_rights(self, self.evidence_key)

        # -- delivery (``_internal/remediation_delivery.py``) ---------------------------
        self.rule = alarm_rule(self, fleet, max_event_age)
        self.queue_alarms: list[cloudwatch.Alarm] = queue_alarms(self)
        #: Events EventBridge could not even put into the dead-letter queue (lost).
        self.undeliverable_events_alarm = undeliverable_events_alarm(
            self, "UndeliverableEventsAlarm", self.rule, self.topic
        )
        #: The missed-alarm sweep's schedule (None when ``missed_alarm_sweep`` is None).
        self.missed_alarm_sweep_rule: events.Rule | None = None
        if missed_alarm_sweep is not None:
            self.missed_alarm_sweep_rule, self.sweep_undeliverable_events_alarm = (
                missed_alarm_sweep_rule(self, missed_alarm_sweep)
            )

        acknowledge_findings(self, vpc is None)

        # -- status-check alarms (last: the resource budget is what is left) -------------
        self.alarms: list[cloudwatch.Alarm] = []
        #: ``fleet=FleetWatch()``: the queue and rule of partial-data evaluations, and the
        #: alarm that notifies the topic of each (None in the other modes).
        self.partial_data_queue: sqs.Queue | None = None
        self.partial_data_rule: events.Rule | None = None
        self.partial_data_alarm: cloudwatch.Alarm | None = None
        #: ``fleet=ManagedAlarms()``: the alarm manager (None in the other modes).
        self.alarm_manager: AlarmManager | None = None
        watch_status_checks(self, fleet, watched, alarm_window, log_retention)

    # -- public API ----------------------------------------------------------------------

    @property
    def max_explicit_instances(self) -> int:
        """How many more explicitly listed instances this stack could still take."""
        return MAX_STACK_RESOURCES - count_resources(cdk.Stack.of(self)) - 1


# Re-exported for the docs and tests.
__all__ = [
    "ALARM_STATE_CHANGE",
    "CONTRIBUTOR_STATE_CHANGE",
    "DESCRIBE_ACTIONS",
    "EVIDENCE_KEY_ACTIONS",
    "EVIDENCE_PREFIX",
    "FLEET_QUERY",
    "KEY_ACTIONS",
    "MAX_CONTRIBUTORS",
    "MAX_STACK_RESOURCES",
    "METRIC_DIMENSION",
    "METRIC_NAMESPACE",
    "OUTCOME_METRICS",
    "RESOURCES_PER_INSTANCE",
    "STATUS_METRIC",
    "TABLE_ACTIONS",
    "AlarmWindow",
    "AttestationPolicy",
    "CircuitBreaker",
    "ExistingDumpBucket",
    "FleetWatch",
    "InterruptGuards",
    "ManagedAlarms",
    "MissedAlarmSweep",
    "UnresponsiveInstanceRemediation",
]
