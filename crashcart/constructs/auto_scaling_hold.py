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

Where the parts are: ``DumpDeadline`` and the timing checks in ``_auto_scaling_hold_props``;
the function's rights in ``_internal/auto_scaling_hold_iam.py``; the backstop alarm in
``_internal/auto_scaling_hold_alarms.py``; the runtime in ``crashcart/functions/lifecycle_hold/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from crashcart import _props as props
from crashcart.constructs._auto_scaling_hold_props import DumpDeadline, hold_timing
from crashcart.constructs._internal.acknowledgements import acknowledge_finding
from crashcart.constructs._internal.auto_scaling_hold_alarms import backstop_alarm
from crashcart.constructs._internal.auto_scaling_hold_iam import grant_hold_rights
from crashcart.constructs._internal.function_code import LIFECYCLE_HOLD
from crashcart.constructs._internal.lambda_functions import (
    acknowledge_failure_destination,
    acknowledge_function_defaults,
    check_reserved_concurrency,
)
from crashcart.constructs._internal.remediation_checks import env_seconds
from crashcart.constructs._internal.secure_function import (
    function_parts,
    python_function,
    rule_target,
    send_failures_to,
)
from crashcart.constructs._internal.service_access import (
    failure_queue_alarm,
    undeliverable_events_alarm,
)
from crashcart.constructs.unresponsive_instance_remediation import UnresponsiveInstanceRemediation
from crashcart.runtime import environment as variables

__all__ = ["AutoScalingHold", "DumpDeadline"]

_PACKS: Final = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")


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
        dump_deadline: DumpDeadline = DumpDeadline(),  # noqa: B008 - frozen value
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
        timing = hold_timing(
            heartbeat_timeout=heartbeat_timeout,
            schedule=schedule,
            dump_deadline=dump_deadline,
            backstop=backstop,
        )
        heartbeat, tick, heartbeat_s = timing.heartbeat, timing.tick, timing.heartbeat_seconds
        maximum = timing.maximum_seconds
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
        self.dead_letter_queue, self.log_group, self.role = function_parts(
            self,
            key=key,
            queue_id="DeadLetterQueue",
            queue_holds="the dead-letter store of the hold's rules and the function's "
            "on-failure destination",
            retention=log_retention,
            role_description="crashcart lifecycle hold and escalation: exactly its rights",
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
        self.function = python_function(
            self,
            LIFECYCLE_HOLD,
            description="crashcart: hold terminating instances for their dump; escalate",
            role=self.role,
            timeout=cdk.Duration.minutes(2),
            # aws-assumption: lambda-unreserved-concurrency-minimum
            reserved_concurrent_executions=reserved_concurrency,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.TEXT,
            environment=environment,
        )
        acknowledge_function_defaults(
            self.function,
            reserved_concurrency,
            bound="the interrupt goes through the remediation's claim (cooldown, budget, "
            "breakers); an escalation reboot is recorded conditionally before it is sent",
        )
        send_failures_to(self.function, self.dead_letter_queue)
        grant_hold_rights(self, remediation.evidence_key)

        # -- delivery -------------------------------------------------------------------
        target = rule_target(self.function, self.dead_letter_queue, retry_attempts=10)
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
            self.backstop_alarm = backstop_alarm(self, timing.backstop_periods)
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
        acknowledge_failure_destination(self.function, "DeadLetterQueue")


def _remediation_environment(remediation: UnresponsiveInstanceRemediation) -> dict[str, str]:
    """The remediation function's own variables: its guards decide the hold's interrupt."""
    return dict(remediation.function_environment)
