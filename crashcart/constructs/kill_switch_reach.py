"""KillSwitchReach: the remediation kill switch also stops the actions of crashcart's alarms.

The kill switch is an SSM parameter (``UnresponsiveInstanceRemediation.kill_switch``): the
functions read it before they act. Alarms do not read parameters: an alarm with an EC2
reboot action, a Lambda action or a Systems Manager action acts by itself. This construct
makes those alarms follow the switch too, without knowing them in advance:

- at synth, an Aspect tags every CloudWatch alarm (metric and composite) of the stack with
  ``crashcart:kill-switch=<this construct's id>``, so alarms other constructs add to the
  stack, now or later, are covered without edits;
- at run time, alarms created outside CloudFormation (per-instance alarms a function
  manages) are recognised by their name prefix (``alarm_name_prefixes``);
- a small function, woken by the parameter's "Parameter Store Change" event and every
  ``reconcile_every``, disables the actions of every such alarm that has an action other
  than an SNS notification while the switch is not ``off``, and enables them again when it
  is ``off``. Notification-only alarms are never touched: with the switch on, people still
  hear about everything (docs/operations.md lists what the switch stops).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import aws_cdk as cdk
import jsii
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from constructs import Construct, IConstruct

from crashcart import _props as props
from crashcart.compliance import acknowledge
from crashcart.constructs._internal.function_code import KILL_SWITCH
from crashcart.constructs._internal.lambda_functions import (
    acknowledge_failure_destination,
    acknowledge_function_defaults,
    acknowledge_outside_vpc,
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
from crashcart.errors import ConfigurationError
from crashcart.runtime import environment as variables
from crashcart.runtime import metrics

__all__ = ["KILL_SWITCH_TAG_KEY", "KillSwitchReach"]

#: The tag the Aspect puts on every alarm of the stack (value: the construct's address).
KILL_SWITCH_TAG_KEY: Final = "crashcart:kill-switch"


@jsii.implements(cdk.IAspect)
class _TagAlarms:
    """Tags every alarm (metric or composite) it visits with the kill-switch tag."""

    def __init__(self, value: str) -> None:
        self._value = value

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, cloudwatch.CfnAlarm | cloudwatch.CfnCompositeAlarm):
            # aws-assumption: cloudformation-alarm-tags
            node.cdk_tag_manager.set_tag(KILL_SWITCH_TAG_KEY, self._value)


class KillSwitchReach(Construct):
    """Make alarm actions follow the kill switch (see the module docstring).

    Example::

        KillSwitchReach(
            self,
            "KillSwitchReach",
            kill_switch=remediation.kill_switch,
            topic=remediation.topic,
            encryption_key=remediation.key,
            alarm_name_prefixes=[remediation.alarm_name_prefix],
        )
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        kill_switch: ssm.IStringParameter,
        topic: sns.ITopic,
        encryption_key: kms.IKey | None = None,
        alarm_name_prefixes: Sequence[str] = (),
        reconcile_every: cdk.Duration | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
    ) -> None:
        """
        :param kill_switch: the remediation's kill-switch parameter
            (``UnresponsiveInstanceRemediation.kill_switch``).
        :param topic: where the alarms on this construct's own failures notify (this
            account's alarms are allowed to publish to it).
        :param encryption_key: the key of the log group and the failure queue; it must let
            CloudWatch Logs and EventBridge use it (the remediation's key does). Default: a
            new key with rotation whose policy allows exactly that.
        :param alarm_name_prefixes: names of alarms created at run time (outside the stack)
            that the switch also reaches, by prefix, e.g. the remediation's
            ``alarm_name_prefix``. Default: none (only the stack's alarms, by tag).
        :param reconcile_every: how often the function reconciles even without a change
            event (an event is delivered at least once, not always), whole minutes from 1
            to 60. Default: 5 minutes.
        :param log_retention: how long the function's logs are kept. Default: one year.
        """
        owner = "KillSwitchReach"
        props.check(
            owner,
            "kill_switch",
            kill_switch,
            ssm.IStringParameter,
            example="remediation.kill_switch",
        )
        props.check(owner, "topic", topic, sns.ITopic, example="remediation.topic")
        props.check(
            owner,
            "encryption_key",
            encryption_key,
            kms.IKey,
            example="remediation.key",
            optional=True,
        )
        prefixes = list(alarm_name_prefixes)
        for prefix in prefixes:
            if not isinstance(prefix, str) or (
                not cdk.Token.is_unresolved(prefix) and (not prefix or "," in prefix)
            ):
                raise ConfigurationError(
                    f"KillSwitchReach alarm_name_prefixes: {prefix!r} is not a usable prefix; "
                    "give non-empty strings without commas (an empty prefix would reach every "
                    "alarm of the account)"
                )
        every = reconcile_every or cdk.Duration.minutes(5)
        if not every.is_unresolved():
            seconds = every.to_seconds()
            if seconds % 60 or not 60 <= seconds <= 3600:
                raise ConfigurationError(
                    f"KillSwitchReach reconcile_every={every.to_human_string()}: give whole "
                    "minutes from 1 to 60 (EventBridge rates are whole minutes; a switch that "
                    "reaches its alarms an hour late is not a kill switch)"
                )
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        #: The value of the ``crashcart:kill-switch`` tag on every alarm of the stack.
        self.tag_value: str = self.node.addr
        cdk.Aspects.of(stack).add(_TagAlarms(self.tag_value))
        self.alarm_name_prefixes = tuple(prefixes)

        #: :attr:`failure_queue`: failed deliveries (both rules) and failed invocations
        #: (after Lambda's retries).
        self.encryption_key, self.failure_queue, self.log_group, self.role, self.policy = (
            managed_function_parts(
                self,
                key=encryption_key,
                what="crashcart kill-switch reach",
                queue=(
                    "FailureQueue",
                    "failure queue",
                    "this queue is itself the dead-letter store of the reach's "
                    "rules and the function's on-failure destination",
                ),
                retention=log_retention,
                rights="read the switch, set alarm actions",
            )
        )
        self.policy.add_statements(*self._statements(kill_switch))
        # cdk-nag names the ARN as the template has it: pseudo parameters, or the stack's
        # concrete partition, region and account when they are known at synth.
        shown = [
            f"<AWS::{pseudo}>" if cdk.Token.is_unresolved(value) else value
            for value, pseudo in (
                (stack.partition, "Partition"),
                (stack.region, "Region"),
                (stack.account, "AccountId"),
            )
        ]
        acknowledge(
            self.policy,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:{shown[0]}:cloudwatch:{shown[1]}:"
            f"{shown[2]}:alarm:*]",
            "the alarms the switch reaches are found at run time (by tag, and by name prefix "
            "for alarms created outside the stack, whose names are unknown at synth); the "
            "rights only read alarms and switch their actions, in this account and region",
        )
        #: The reconcile function.
        self.function = python_function(
            self,
            KILL_SWITCH,
            role=self.role.without_policy_updates(),
            description="crashcart: alarm actions follow the kill switch",
            timeout=cdk.Duration.minutes(2),
            log_group=self.log_group,
            environment={
                variables.KILL_SWITCH_PARAMETER: kill_switch.parameter_name,
                variables.ALARM_NAME_PREFIXES: ",".join(prefixes),
                variables.KILL_SWITCH_TAG_KEY: KILL_SWITCH_TAG_KEY,
                variables.KILL_SWITCH_TAG_VALUE: self.tag_value,
            },
        )
        self.function.node.add_dependency(self.policy)
        acknowledge_function_defaults(
            self.function,
            None,
            bound="every run reads the switch and sets each alarm to the same state: "
            "concurrent runs agree",
        )
        send_failures_to(self.function, self.failure_queue)
        acknowledge_outside_vpc(self.function, apis="SSM, CloudWatch")
        acknowledge_failure_destination(self.function, "FailureQueue")

        # aws-assumption: ssm-parameter-change-events
        #: The parameter's change events.
        self.change_rule = events.Rule(
            self,
            "SwitchChanged",
            description="crashcart: the kill switch changed -> reconcile alarm actions",
            event_pattern=events.EventPattern(
                source=["aws.ssm"],
                detail_type=["Parameter Store Change"],
                detail={"name": [kill_switch.parameter_name]},
            ),
        )
        #: The periodic reconcile.
        self.schedule_rule = events.Rule(
            self,
            "Reconcile",
            description="crashcart: reconcile alarm actions with the kill switch",
            schedule=events.Schedule.rate(every),
        )
        for rule in (self.change_rule, self.schedule_rule):
            rule.add_target(rule_target(self.function, self.failure_queue, retry_attempts=4))
        #: Alarms on this construct's own failures (they notify ``topic``).
        self.alarms: list[cloudwatch.Alarm] = [
            failure_queue_alarm(
                self,
                "FailureAlarm",
                self.failure_queue,
                topic,
                "kill-switch reconciles that failed (undelivered events or function errors): "
                "alarm actions may not follow the switch",
            ),
            undeliverable_events_alarm(self, "ChangeUndeliverableAlarm", self.change_rule, topic),
            undeliverable_events_alarm(
                self, "ReconcileUndeliverableAlarm", self.schedule_rule, topic
            ),
        ]

    def metric_alarm_actions_changed(self, **props: Any) -> cloudwatch.Metric:
        """Alarms whose actions a reconcile disabled or enabled (5-minute Sum)."""
        return cloudwatch.Metric(
            namespace=metrics.NAMESPACE,
            metric_name=metrics.KILL_SWITCH_OUTCOMES["alarm_actions_changed"],
            dimensions_map={metrics.DIMENSION: self.function.function_name},
            statistic=props.pop("statistic", "Sum"),
            period=props.pop("period", cdk.Duration.minutes(5)),
            **props,
        )

    def _statements(self, kill_switch: ssm.IStringParameter) -> list[iam.PolicyStatement]:
        stack = cdk.Stack.of(self)
        alarms = f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:*"
        statements = [
            iam.PolicyStatement(
                sid="Logs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            ),
            iam.PolicyStatement(
                sid="ReadSwitch",
                actions=["ssm:GetParameter"],
                resources=[kill_switch.parameter_arn],
            ),
            # aws-assumption: cloudwatch-alarm-actions-batch
            iam.PolicyStatement(
                sid="AlarmActions",
                actions=[
                    "cloudwatch:DescribeAlarms",
                    "cloudwatch:ListTagsForResource",
                    "cloudwatch:DisableAlarmActions",
                    "cloudwatch:EnableAlarmActions",
                ],
                resources=[alarms],
            ),
            iam.PolicyStatement(
                sid="FailedInvocations",
                actions=["sqs:SendMessage"],
                resources=[self.failure_queue.queue_arn],
            ),
            iam.PolicyStatement(
                sid="Key",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[self.encryption_key.key_arn],
            ),
        ]
        return statements
