"""AutoScalingHold: never lose a dump to a replacement, never leave a machine hung.

An Auto Scaling group replaces an instance whose EC2 status checks stay impaired within
minutes, and replacement terminates it with its ``/var/crash``. For each group you pass,
this construct adds a termination lifecycle hook (default result CONTINUE) and a function
that answers it:

- a terminating instance whose latest incident waits for its dump is held
  (``Terminating:Wait``) with heartbeats until the dump ships or a deadline sized from the
  instance's memory passes; one that is impaired without an incident goes through the
  remediation's own guards (and is held if interrupted); every other termination continues
  at once;
- every interrupted instance (in a group or not) that is still impaired at that deadline,
  with its system check ok, is rebooted once through the API, recorded and notified;
- a backstop alarm (a Metrics Insights alarm over opted-in instances, window longer than
  the longest dump deadline, native reboot action per contributor) covers a failed function.

The kill switch of the remediation stops all of it: holds continue at the next tick, no
escalation reboot. Only the groups given here get a hook (never groups found at run time: a
hook added behind CloudFormation's back outlives crashcart and stalls every scale-in).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from crashcart import _props as props
from crashcart.constructs._internal.acknowledgements import acknowledge_finding, acknowledge_packs
from crashcart.constructs._internal.function_code import LIFECYCLE_HOLD
from crashcart.constructs._internal.lambda_functions import (
    acknowledge_plain_environment,
    acknowledge_unreserved,
    acknowledge_untraced,
    check_reserved_concurrency,
)
from crashcart.constructs._internal.queues import encrypted_queue
from crashcart.constructs._internal.remediation_alarms import STATUS_METRIC
from crashcart.constructs._internal.remediation_checks import env_seconds
from crashcart.constructs._internal.remediation_iam import (
    DESCRIBE_ACTIONS,
    EVIDENCE_PREFIX,
    other_key_statements,
)
from crashcart.constructs._internal.secure_function import (
    QueueDestination,
    function_log_group,
    function_role,
)
from crashcart.constructs._internal.service_access import (
    failure_queue_alarm,
    undeliverable_events_alarm,
)
from crashcart.constructs.diagnostic_interrupt_operator_policy import (
    instance_arns,
    interrupt_statement,
    nag_rendering,
    tag_tamper_deny_statements,
)
from crashcart.constructs.incident_store import REMEDIATION_ACTIONS
from crashcart.constructs.unresponsive_instance_remediation import UnresponsiveInstanceRemediation
from crashcart.errors import ConfigurationError
from crashcart.runtime import environment as variables

__all__ = ["AutoScalingHold", "DumpDeadline"]

# aws-assumption: lifecycle-hook-heartbeat-limits
MIN_HEARTBEAT: Final = 30
MAX_HEARTBEAT: Final = 7_200
GLOBAL_HOLD_SECONDS: Final = 48 * 3_600
#: What the hold needs of the table beyond the remediation's writer: the holds partition
#: (DeleteItem) and the escalation's filtered Scan.
HOLD_TABLE_ACTIONS: Final = (*REMEDIATION_ACTIONS, "dynamodb:DeleteItem", "dynamodb:Scan")
LIFECYCLE_ACTIONS: Final = (
    "autoscaling:CompleteLifecycleAction",
    "autoscaling:RecordLifecycleActionHeartbeat",
)
#: The backstop: one-period length, and the most data a Metrics Insights alarm evaluates.
# aws-assumption: metrics-insights-alarm-contributor-ec2-actions
BACKSTOP_PERIOD: Final = cdk.Duration.minutes(5)
METRICS_INSIGHTS_MAX_SECONDS: Final = 3 * 3_600
#: How much longer than the longest dump deadline the backstop waits.
BACKSTOP_MARGIN_SECONDS: Final = 30 * 60
BACKSTOP_QUERY: Final = (
    'SELECT MAX({metric}) FROM SCHEMA("AWS/EC2", InstanceId) '
    "WHERE tag.\"{key}\" = '{value}' "
    "GROUP BY InstanceId ORDER BY MAX() DESC LIMIT 500"
)
_PACKS: Final = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")


@dataclass(frozen=True, kw_only=True)
class DumpDeadline:
    """How long a crash dump may take: ``base`` + ``per_gib`` x the instance's memory (GiB),
    at most ``maximum``. A hold and an escalation wait that long after the interrupt.

    :param base: boot of the capture kernel, the reboot, the agent's start and upload of a
        small dump. Default: 15 minutes.
    :param per_gib: writing and shipping each GiB of memory (makedumpfile filters most of
        it; this is the unfiltered worst case on a slow volume). Default: 30 seconds.
    :param maximum: the cap, also for an instance type whose memory is unknown. At most
        2.5 hours while the backstop alarm is on (its window must be longer and a Metrics
        Insights alarm sees three hours of data). Default: 2 hours.
    """

    base: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(15))
    per_gib: cdk.Duration = field(default_factory=lambda: cdk.Duration.seconds(30))
    maximum: cdk.Duration = field(default_factory=lambda: cdk.Duration.hours(2))

    def __post_init__(self) -> None:
        for name in ("base", "per_gib", "maximum"):
            value = getattr(self, name)
            if not isinstance(value, cdk.Duration):
                raise ConfigurationError(
                    f"DumpDeadline {name}={value!r}: give a cdk.Duration "
                    "(e.g. cdk.Duration.minutes(15))"
                )
        base, maximum = self.base.to_seconds(), self.maximum.to_seconds()
        if base < 60 or maximum < base:
            raise ConfigurationError(
                f"DumpDeadline base={base:g}s maximum={maximum:g}s: the base must be at least "
                "a minute and the maximum at least the base (a dump needs a reboot and an upload)"
            )


class AutoScalingHold(Construct):
    """Termination hooks for the given groups, the hold / escalation function, the backstop."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        remediation: UnresponsiveInstanceRemediation,
        groups: Sequence[autoscaling.IAutoScalingGroup] = (),
        heartbeat_timeout: cdk.Duration | None = None,
        dump_deadline: DumpDeadline = DumpDeadline(),
        schedule: cdk.Duration | None = None,
        escalation_reboot: bool = True,
        backstop: bool = False,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        reserved_concurrency: int | None = None,
    ) -> None:
        """
        :param remediation: the remediation whose incidents, kill switch, opt-in tag, key,
            topic, crash-dump bucket (its ``dumps``: evidence and its key) and guards the
            hold uses.
        :param groups: the Auto Scaling groups to hold terminating instances for; each gets
            one termination lifecycle hook (default result CONTINUE). Default: none (only
            the escalation and the backstop).
        :param heartbeat_timeout: the hooks' heartbeat timeout, 30 s - 2 h; the function
            renews it every third of it. Default: 10 minutes.
        :param dump_deadline: Default: ``DumpDeadline()`` (15 min + 30 s/GiB, at most 2 h).
        :param schedule: how often holds are renewed and deadlines checked, whole minutes,
            at most a third of the heartbeat timeout. Default: every minute.
        :param escalation_reboot: reboot an interrupted instance still impaired at its
            deadline (False: only notify). Default: True.
        :param backstop: the backstop alarm (reboot after a window longer than the longest
            deadline). Its Metrics Insights query selects opted-in instances by their resource
            tag, which matches nothing unless the account has "resource tags for telemetry"
            switched on (account-wide; ``aws observabilityadmin
            get-telemetry-enrichment-status``). So it is off by default, and a synth-time
            note says so when the remediation is armed: pass True only where that setting
            is on. Without it, a failing hold / escalation function is still reported by its
            failure and error alarms.
            Default: False.
        :param log_retention: Default: one year.
        :param reserved_concurrency: Default: None (overlapping runs are safe: every hold
            and escalation write is conditional or idempotent).
        """
        owner = "AutoScalingHold"
        props.check(
            owner,
            "remediation",
            remediation,
            UnresponsiveInstanceRemediation,
            example="the UnresponsiveInstanceRemediation of this stack",
        )
        for group in groups:
            props.check(
                owner,
                "groups",
                group,
                autoscaling.IAutoScalingGroup,
                example="an autoscaling.AutoScalingGroup or AutoScalingGroup.from_...",
            )
        check_reserved_concurrency(reserved_concurrency)
        heartbeat = heartbeat_timeout or cdk.Duration.minutes(10)
        tick = schedule or cdk.Duration.minutes(1)
        heartbeat_s = int(heartbeat.to_seconds())
        if not MIN_HEARTBEAT <= heartbeat_s <= MAX_HEARTBEAT:
            raise ConfigurationError(
                f"heartbeat_timeout={heartbeat_s}s: a lifecycle hook's heartbeat timeout is "
                f"{MIN_HEARTBEAT}-{MAX_HEARTBEAT} s"
            )
        tick_s = tick.to_seconds()
        if tick_s % 60 or not 60 <= tick_s * 3 <= heartbeat_s:
            raise ConfigurationError(
                f"schedule={tick_s:g}s: whole minutes, and at most a third of the heartbeat "
                f"timeout ({heartbeat_s}s), so a hold survives two missed runs"
            )
        longest = min(GLOBAL_HOLD_SECONDS, 100 * heartbeat_s)
        maximum = int(dump_deadline.maximum.to_seconds())
        if maximum > longest:
            raise ConfigurationError(
                f"dump_deadline maximum={maximum}s: Auto Scaling holds a lifecycle action at "
                f"most {longest}s (48 h or 100 heartbeat timeouts, the lesser)"
            )
        backstop_periods = math.ceil(
            (maximum + BACKSTOP_MARGIN_SECONDS) / BACKSTOP_PERIOD.to_seconds()
        )
        backstop_seconds = backstop_periods * int(BACKSTOP_PERIOD.to_seconds())
        if backstop and backstop_seconds > METRICS_INSIGHTS_MAX_SECONDS:
            raise ConfigurationError(
                f"dump_deadline maximum={maximum}s with the backstop on: its window "
                f"({backstop_seconds}s, the maximum plus {BACKSTOP_MARGIN_SECONDS}s) would "
                f"exceed the {METRICS_INSIGHTS_MAX_SECONDS}s a Metrics Insights alarm "
                "evaluates; lower the maximum or pass backstop=False"
            )
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.remediation = remediation
        self.groups = tuple(groups)
        key = remediation.key
        #: The one hook name used in every group.
        self.hook_name = f"crashcart-dump-hold-{cdk.Names.unique_id(self)[-12:]}"

        # -- hooks (one per given group) ------------------------------------------------
        # A termination hook applies to health-check replacement too; the group deregisters
        # the instance from its load balancers before the hook holds it; "launch before
        # terminating" keeps capacity while one is held (recommended in the docs, not set
        # here: the group is the user's).
        # aws-assumption: lifecycle-hooks-cover-health-replacement
        # aws-assumption: asg-deregisters-before-terminate-wait
        # aws-assumption: asg-launch-before-terminating
        self.hooks: list[autoscaling.LifecycleHook] = [
            autoscaling.LifecycleHook(
                self,
                # ids follow the group, not its list position: a reordered list must not
                # replace a hook (the new one would collide with the old one's name)
                f"Hook-{cdk.Names.node_unique_id(group.node)}",
                auto_scaling_group=group,
                lifecycle_hook_name=self.hook_name,
                # aws-assumption: lifecycle-terminate-continue-abandon
                lifecycle_transition=autoscaling.LifecycleTransition.INSTANCE_TERMINATING,
                default_result=autoscaling.DefaultResult.CONTINUE,
                heartbeat_timeout=heartbeat,
            )
            for group in self.groups
        ]

        # -- function -------------------------------------------------------------------
        self.dead_letter_queue = encrypted_queue(
            self,
            "DeadLetterQueue",
            key=key,
            dead_letter_store="the dead-letter store of the hold's rules and the function's "
            "on-failure destination",
        )
        self.log_group = function_log_group(self, "Logs", key=key, retention=log_retention)
        self.role = function_role(
            self, "Role", description="crashcart lifecycle hold and escalation: exactly its rights"
        )
        environment = {
            **_remediation_environment(remediation),
            variables.HOLD_GROUPS: cdk.Fn.join(
                ",", [g.auto_scaling_group_name for g in self.groups]
            )
            if self.groups
            else "",
            variables.HOLD_HOOK_NAME: self.hook_name,
            variables.HOLD_HEARTBEAT_SECONDS: str(heartbeat_s),
            variables.DUMP_BASE_SECONDS: env_seconds(dump_deadline.base),
            variables.DUMP_SECONDS_PER_GIB: env_seconds(dump_deadline.per_gib),
            variables.DUMP_MAX_SECONDS: str(maximum),
            variables.ESCALATION_REBOOT: "true" if escalation_reboot else "false",
        }
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler=LIFECYCLE_HOLD.handler,
            code=LIFECYCLE_HOLD.code(),
            description="crashcart: hold terminating instances for their dump; escalate",
            role=self.role,
            timeout=cdk.Duration.minutes(2),
            memory_size=256,
            # aws-assumption: lambda-unreserved-concurrency-minimum
            reserved_concurrent_executions=reserved_concurrency,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.TEXT,
            environment=environment,
        )
        acknowledge_untraced(self.function)
        acknowledge_plain_environment(self.function)
        acknowledge_unreserved(
            self.function,
            reserved_concurrency,
            bound="the interrupt goes through the remediation's claim (cooldown, budget, "
            "breakers); an escalation reboot is recorded conditionally before it is sent",
        )
        self.function.configure_async_invoke(
            retry_attempts=2,
            max_event_age=cdk.Duration.hours(1),
            on_failure=QueueDestination(self.dead_letter_queue),
        )
        self._grant(remediation.evidence_key)

        # -- delivery -------------------------------------------------------------------
        target = targets.LambdaFunction(
            self.function,
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=10,
            max_event_age=cdk.Duration.hours(1),
        )
        self.rules: list[events.Rule] = [
            events.Rule(
                self,
                "Schedule",
                description="crashcart: renew or end lifecycle holds; escalate hung instances",
                schedule=events.Schedule.rate(tick),
                targets=[target],
            )
        ]
        if self.groups:
            # aws-assumption: lifecycle-hook-events
            self.rules.append(
                events.Rule(
                    self,
                    "LifecycleRule",
                    description="crashcart: termination lifecycle actions of the held groups",
                    event_pattern=events.EventPattern(
                        source=["aws.autoscaling"],
                        detail_type=["EC2 Instance-terminate Lifecycle Action"],
                        account=[stack.account],
                        region=[stack.region],
                        detail={
                            "AutoScalingGroupName": [
                                g.auto_scaling_group_name for g in self.groups
                            ],
                            "LifecycleHookName": [self.hook_name],
                        },
                    ),
                    targets=[target],
                )
            )
        self.alarms: list[cloudwatch.Alarm] = [
            failure_queue_alarm(
                self,
                "DeadLetterAlarm",
                self.dead_letter_queue,
                remediation.topic,
                "lifecycle actions or ticks the hold function failed on",
            ),
            *(
                undeliverable_events_alarm(
                    self, f"{rule.node.id}UndeliverableAlarm", rule, remediation.topic
                )
                for rule in self.rules
            ),
        ]

        # -- backstop -------------------------------------------------------------------
        #: Reboots an opted-in instance whose instance check failed for the whole window.
        self.backstop_alarm: cloudwatch.Alarm | None = None
        if backstop:
            self.backstop_alarm = self._backstop(backstop_periods)
        elif not remediation.dry_run:
            # aws-assumption: metrics-insights-tag-filter
            cdk.Annotations.of(self).add_info(
                "crashcart AutoScalingHold: no backstop reboot alarm. Its query selects "
                "opted-in instances by resource tag, which needs resource tags for telemetry "
                "switched on for the account; with that on, pass backstop=True (reference "
                "app: -c crashcart:resource-tags-for-telemetry=true). The hold function's "
                "failures still reach the topic through its failure and error alarms."
            )

        for pack in _PACKS:
            acknowledge_finding(
                self.function,
                f"{pack}::{pack}-LambdaInsideVPC",
                "the function only calls regional AWS APIs (Auto Scaling, EC2, SSM, "
                "DynamoDB, SNS, SQS, S3); a VPC would add endpoints without reducing its reach",
            )
        acknowledge_packs(
            self.function,
            "LambdaDLQ",
            _PACKS[:2],
            "failed invocations go to the EventInvokeConfig on-failure destination "
            "(DeadLetterQueue), which keeps the event with the error",
        )

    # -- rights ----------------------------------------------------------------------------

    def _grant(self, evidence_key: kms.IKey | None) -> None:
        stack = cdk.Stack.of(self)
        remediation = self.remediation
        instance_arn = f"arn:{stack.partition}:ec2:{stack.region}:{stack.account}:instance/*"
        tag_condition = {"StringEquals": {remediation.tag.condition_key: remediation.tag.value}}
        evidence_arn = remediation.evidence_bucket.arn_for_objects(f"{EVIDENCE_PREFIX}*")
        statements = [
            iam.PolicyStatement(
                sid="Logs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            ),
            iam.PolicyStatement(
                sid="DescribeInstances", actions=list(DESCRIBE_ACTIONS), resources=["*"]
            ),
            iam.PolicyStatement(
                # aws-assumption: ec2-tag-condition-keys
                sid="OptedInInstances",
                actions=["ec2:GetConsoleOutput", "ec2:RebootInstances"],
                resources=[instance_arn],
                conditions=tag_condition,
            ),
            iam.PolicyStatement(
                sid="KillSwitch",
                actions=["ssm:GetParameter"],
                resources=[remediation.kill_switch.parameter_arn],
            ),
            iam.PolicyStatement(
                sid="IncidentTable",
                actions=list(HOLD_TABLE_ACTIONS),
                resources=[remediation.table.table_arn],
            ),
            iam.PolicyStatement(
                sid="Notify", actions=["sns:Publish"], resources=[remediation.topic.topic_arn]
            ),
            iam.PolicyStatement(sid="Evidence", actions=["s3:PutObject"], resources=[evidence_arn]),
            iam.PolicyStatement(
                sid="Queues",
                actions=["sqs:SendMessage"],
                resources=[
                    remediation.rejected_queue.queue_arn,
                    self.dead_letter_queue.queue_arn,
                ],
            ),
            iam.PolicyStatement(
                sid="DeploymentKey",
                actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                resources=[remediation.key.key_arn],
            ),
        ]
        if self.groups:
            # aws-assumption: autoscaling-group-resource-arns
            statements.append(
                iam.PolicyStatement(
                    sid="LifecycleActionsOfHeldGroups",
                    actions=list(LIFECYCLE_ACTIONS),
                    resources=[g.auto_scaling_group_arn for g in self.groups],
                )
            )
        statements.extend(other_key_statements(remediation, evidence_key))
        # The same interrupt right (and tag-tamper denies) as the remediation function.
        statements.append(
            interrupt_statement(
                tag=remediation.tag, regions=[stack.region], accounts=[stack.account]
            )
        )
        statements.extend(tag_tamper_deny_statements(remediation.tag))
        # One IAM style for every crashcart function: a customer managed policy on the
        # function's own role, written whole here (no grant adds to an inline default policy).
        policy = iam.ManagedPolicy(
            self,
            "FunctionPolicy",
            description="crashcart lifecycle hold and escalation: exactly the rights it uses",
            statements=statements,
            roles=[self.role],
        )
        # The function starts only once its rights exist.
        self.function.node.add_dependency(policy)
        wildcards = {
            "*": "ec2 Describe* calls support no resource-level permissions: AWS requires '*'",
            instance_arn: (
                "GetConsoleOutput, RebootInstances and SendDiagnosticInterrupt reach instances "
                "that do not exist at deploy time; limited to this account and region and, by "
                "a StringEquals aws:ResourceTag condition, to opted-in instances"
            ),
            evidence_arn: "PutObject only under evidence/: keys hold the instance and time",
        }
        for arn in instance_arns([stack.region], [stack.account]):
            wildcards[arn] = (
                "SendDiagnosticInterrupt reaches instances that do not exist at deploy time; "
                "limited to this account and region and, by a StringEquals "
                "aws:ResourceTag condition, to opted-in instances"
            )
        for group in self.groups:
            wildcards[group.auto_scaling_group_arn] = (
                "an Auto Scaling group's ARN holds a generated id unknown at deploy time; the "
                "ARN names exactly this group (autoScalingGroupName/<name>)"
            )
        for arn, reason in wildcards.items():
            rendered = nag_rendering(stack.resolve(arn))
            if rendered is not None:
                acknowledge_finding(
                    policy, f"AwsSolutions::AwsSolutions-IAM5[Resource::{rendered}]", reason
                )

    # -- backstop --------------------------------------------------------------------------

    def _backstop(self, periods: int) -> cloudwatch.Alarm:
        tag = self.remediation.tag
        alarm = cloudwatch.Alarm(
            self,
            "BackstopAlarm",
            alarm_description=(
                "crashcart backstop: an opted-in instance failed its instance status check "
                f"for {periods * 5} minutes, longer than the longest dump deadline: the "
                "hold / escalation function did not act; each such instance is rebooted"
            ),
            metric=cloudwatch.MathExpression(
                # aws-assumption: metrics-insights-tag-filter
                expression=BACKSTOP_QUERY.format(
                    metric=STATUS_METRIC, key=tag.key, value=tag.value
                ),
                period=BACKSTOP_PERIOD,
                using_metrics={},
                label="StatusCheckFailed_Instance of opted-in instances",
            ),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        # The native reboot action, per contributor (aws-assumption:
        # metrics-insights-alarm-contributor-ec2-actions). CDK's Ec2Action refuses a metric
        # without an InstanceId dimension (it predates Metrics Insights alarms), so the
        # action is written on the resource.
        stack = cdk.Stack.of(self)
        cfn = alarm.node.default_child
        assert isinstance(cfn, cloudwatch.CfnAlarm)
        cfn.alarm_actions = [f"arn:{stack.partition}:automate:{stack.region}:ec2:reboot"]
        return alarm


def _remediation_environment(remediation: UnresponsiveInstanceRemediation) -> dict[str, str]:
    """The remediation function's own variables: its guards decide the hold's interrupt."""
    return dict(remediation.function_environment)
