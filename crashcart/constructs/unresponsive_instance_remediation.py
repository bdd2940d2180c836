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

Where the parts are: the value types in :mod:`.remediation_settings`; the prop checks and
the function's environment in ``_internal/remediation_checks.py``; the function's rights and
the operator grants in ``_internal/remediation_iam.py``; the status-check alarms in
``_internal/remediation_alarms.py``; the compliance acknowledgements in
``_internal/remediation_acknowledgements.py``; the incident table, key and topic in
:mod:`.incident_store`; the runtime in ``crashcart/functions/remediation/``. This module is
longer than 450 lines because the constructor documents its 27 props and wires the
deployment in its one order (store, queues, function, delivery, alarms, budget check).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import aws_cdk as cdk
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
from constructs import Construct

from crashcart import _props as props
from crashcart.constructs._internal.acknowledgements import acknowledge_finding
from crashcart.constructs._internal.fleet_shards import (
    AlarmManager,
    check_insights_alarm_quota,
    partial_data_watch,
)
from crashcart.constructs._internal.function_code import REMEDIATION as REMEDIATION_FUNCTION
from crashcart.constructs._internal.lambda_functions import (
    acknowledge_plain_environment,
    acknowledge_unreserved,
    acknowledge_untraced,
    check_reserved_concurrency,
)
from crashcart.constructs._internal.queues import encrypted_queue
from crashcart.constructs._internal.remediation_acknowledgements import acknowledge_findings
from crashcart.constructs._internal.remediation_alarms import (
    STATUS_METRIC,
    acknowledge_status_alarm,
    fleet_alarm,
    instance_alarm,
)
from crashcart.constructs._internal.remediation_checks import (
    MAX_STACK_RESOURCES,
    RESOURCES_PER_INSTANCE,
    StackResourceBudget,
    alarm_name_prefix,
    check_int,
    check_mode,
    check_prop_types,
    count_resources,
    function_environment,
)
from crashcart.constructs._internal.remediation_iam import (
    DESCRIBE_ACTIONS,
    EVIDENCE_KEY_ACTIONS,
    EVIDENCE_PREFIX,
    KEY_ACTIONS,
    TABLE_ACTIONS,
    grant_function_rights,
    grant_policy,
    kill_switch_statements,
    reset_breaker_statements,
)
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
from crashcart.constructs.existing_dump_bucket import DumpBucket, ExistingDumpBucket
from crashcart.constructs.fleet_scale import ManagedAlarms
from crashcart.constructs.incident_store import (
    IncidentStore,
)
from crashcart.constructs.remediation_settings import (
    FLEET_QUERY,
    MAX_CONTRIBUTORS,
    AlarmWindow,
    AttestationPolicy,
    CircuitBreaker,
    FleetWatch,
    InterruptGuards,
    MissedAlarmSweep,
    _seconds,
    _unresolved,
)
from crashcart.errors import ConfigurationError
from crashcart.opt_in import OptInTag
from crashcart.runtime import metrics

#: The rule input that starts a pass of the missed-alarm sweep (the function's ``sweep.py``).
SWEEP_TRIGGER_KEY: Final = "crashcart-action"
SWEEP_TRIGGER_VALUE: Final = "missed-alarm-sweep"

#: EventBridge detail types of CloudWatch alarm events.
ALARM_STATE_CHANGE: Final = "CloudWatch Alarm State Change"
CONTRIBUTOR_STATE_CHANGE: Final = "CloudWatch Alarm Contributor State Change"
#: Metrics Insights alarms evaluate only the most recent three hours of data.
MAX_INSIGHTS_EVALUATION_MINUTES: Final = 180

#: Embedded-metric-format metrics the runtime writes (defined in crashcart.runtime.metrics):
#: namespace, the one dimension (value: function name), names by outcome.
# aws-assumption: emf-log-metrics
METRIC_NAMESPACE: Final = metrics.NAMESPACE
METRIC_DIMENSION: Final = metrics.DIMENSION
OUTCOME_METRICS: Final = metrics.REMEDIATION_OUTCOMES


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
        stack = cdk.Stack.of(self)
        watched = check_mode(instances, fleet)
        check_reserved_concurrency(reserved_concurrency)
        check_int("memory_size", memory_size, 128, 10_240)
        check_int("retry_attempts", retry_attempts, 0, 2)
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
        if missed_alarm_sweep is not None and not isinstance(missed_alarm_sweep, MissedAlarmSweep):
            raise ConfigurationError(
                f"missed_alarm_sweep={missed_alarm_sweep!r}: give MissedAlarmSweep(...) or None"
            )
        self.missed_alarm_sweep_settings = missed_alarm_sweep
        periods = alarm_window.evaluation_periods
        if (
            isinstance(fleet, FleetWatch)
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
        self.dumps = dumps
        #: The bucket and key of ``dumps`` (console-output evidence goes there).
        self.evidence_bucket: s3.IBucket = dumps.bucket
        self.evidence_key: kms.IKey | None = dumps.encryption_key
        self.alarm_name_prefix: str = alarm_name_prefix(self)

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
        #: The function's environment (the runtime contract; the lifecycle hold reuses it).
        self.function_environment: dict[str, str] = function_environment(
            self, guards, breaker, max_event_age
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
            environment=self.function_environment,
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
        grant_function_rights(self, self.evidence_key)

        # -- delivery -------------------------------------------------------------------
        detail_type = (
            CONTRIBUTOR_STATE_CHANGE if isinstance(fleet, FleetWatch) else ALARM_STATE_CHANGE
        )
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
        #: The missed-alarm sweep's schedule (None when ``missed_alarm_sweep`` is None).
        self.missed_alarm_sweep_rule: events.Rule | None = None
        if missed_alarm_sweep is not None:
            self.missed_alarm_sweep_rule = self._missed_alarm_sweep(missed_alarm_sweep)

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
        if isinstance(fleet, FleetWatch):
            check_insights_alarm_quota(self, fleet.alarm_quota, adding=1)
            self.alarms.append(fleet_alarm(self, fleet, alarm_window))
            self.partial_data_alarm = partial_data_watch(self)
        elif isinstance(fleet, ManagedAlarms):
            self.alarm_manager = AlarmManager(
                self,
                "AlarmManager",
                managed=fleet,
                window=alarm_window,
                log_retention=log_retention,
            )
        else:
            self._check_resource_budget(len(watched))
            for instance in watched:
                self.alarms.append(instance_alarm(self, instance, alarm_window))
            # Resources added to the stack after this construct count too: check again
            # when the whole stack is known, before CloudFormation would refuse it.
            self.node.add_validation(StackResourceBudget(self, len(watched)))
        for alarm in self.alarms:
            acknowledge_status_alarm(self, alarm)

    # -- public API ----------------------------------------------------------------------

    @property
    def max_explicit_instances(self) -> int:
        """How many more explicitly listed instances this stack could still take."""
        return MAX_STACK_RESOURCES - count_resources(cdk.Stack.of(self)) - 1

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
        return grant_policy(
            self,
            grantee,
            "ResetBreaker",
            self.reset_breaker_statements(),
            "crashcart: read and reset the remediation circuit breakers",
        )

    def reset_breaker_statements(self) -> list[iam.PolicyStatement]:
        """The statements :meth:`grant_reset_breaker` grants, for a policy of your own."""
        return reset_breaker_statements(self)

    def grant_kill_switch(self, grantee: iam.IGrantable) -> iam.ManagedPolicy:
        """Let ``grantee`` read and set the kill-switch parameter (``on`` / ``off``).

        Attaches a customer managed policy (in the grantee's stack) to the grantee's role,
        user or group, for the reason given in :meth:`grant_reset_breaker`; the statements
        alone are :meth:`kill_switch_statements`.

        :raises ConfigurationError: the grantee's principal is not a role, user or group.
        """
        return grant_policy(
            self,
            grantee,
            "KillSwitch",
            self.kill_switch_statements(),
            "crashcart: read and set the remediation kill switch",
        )

    def kill_switch_statements(self) -> list[iam.PolicyStatement]:
        """The statements :meth:`grant_kill_switch` grants, for a policy of your own."""
        return kill_switch_statements(self)

    def metric_sweep_found_work(self, **props: Any) -> cloudwatch.Metric:
        """Impaired opted-in instances the missed-alarm sweep handed to the decision (each
        one an alarm event that was missed, or an incident that went stale)."""
        return self.metric(OUTCOME_METRICS["sweep_found"], **props)

    def _missed_alarm_sweep(self, sweep: MissedAlarmSweep) -> events.Rule:
        rule = events.Rule(
            self,
            "MissedAlarmSweepSchedule",
            description=(
                "crashcart: the remediation function's pass over impaired opted-in instances "
                "whose alarm event was missed"
            ),
            schedule=events.Schedule.rate(sweep.schedule),
        )
        rule.add_target(
            targets.LambdaFunction(
                self.function,
                event=events.RuleTargetInput.from_object(
                    {SWEEP_TRIGGER_KEY: SWEEP_TRIGGER_VALUE, "scheduled-at": events.EventField.time}
                ),
                dead_letter_queue=self.dead_letter_queue,
                # a lost pass is replaced by the next one: a short retry only
                max_event_age=cdk.Duration.minutes(10),
                retry_attempts=2,
            )
        )
        self.sweep_undeliverable_events_alarm = undeliverable_events_alarm(
            self, "MissedAlarmSweepUndeliverableAlarm", rule, self.topic
        )
        return rule

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

    def _queue_depth_alarm(self, queue: sqs.Queue, what: str) -> cloudwatch.Alarm:
        # On messages sent, not visible: each new failure notifies again even while an
        # earlier one still waits in the queue.
        return failure_queue_alarm(queue, "DepthAlarm", queue, self.topic, what)

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
