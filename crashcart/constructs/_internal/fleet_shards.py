"""Fleet modes past one Metrics Insights alarm: the alarm manager, the partial-data watch, quotas.

Building blocks of ``UnresponsiveInstanceRemediation``:

- :class:`AlarmManager` (``fleet=ManagedAlarms()``): the function that keeps one status-check
  alarm per opted-in instance (runtime ``crashcart/functions/alarm_manager/``), the rules that
  wake it (instance state changes, opt-in tag changes, a reconcile schedule) and a custom
  resource whose deletion removes every managed alarm with the stack. A constant number of
  resources, whatever the fleet.
- :func:`partial_data_watch` (``fleet=FleetWatch()``): every "partial data" evaluation of the
  deployment's Metrics Insights alarm lands in a queue whose alarm notifies the topic.
- :func:`check_insights_alarm_quota`: the stack's Metrics Insights alarms against the
  account's quota (200 per Region by default), at construction and again at synth.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

import aws_cdk as cdk
import jsii
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct, IValidation

from crashcart.constructs._internal.acknowledgements import acknowledge_packs
from crashcart.constructs._internal.function_code import FunctionPackage
from crashcart.constructs._internal.lambda_functions import (
    acknowledge_function_defaults,
)
from crashcart.constructs._internal.queues import encrypted_queue
from crashcart.constructs._internal.remediation_iam import acknowledge_wildcards
from crashcart.constructs._internal.secure_function import (
    function_log_group,
    function_role,
    python_function,
    rule_target,
    send_failures_to,
)
from crashcart.constructs._internal.service_access import (
    QueueTarget,
    failure_queue_alarm,
    undeliverable_events_alarm,
)
from crashcart.constructs.fleet_scale import ManagedAlarms
from crashcart.constructs.remediation_settings import AlarmWindow
from crashcart.errors import ConfigurationError
from crashcart.runtime import environment as variables

if TYPE_CHECKING:
    from crashcart.constructs.unresponsive_instance_remediation import (
        UnresponsiveInstanceRemediation,
    )

#: The alarm manager's function package.
ALARM_MANAGER: Final = FunctionPackage("alarm_manager")
#: What the manager may do to the deployment's alarms (and only to them: the resource is the
#: deployment's alarm-name prefix). TagResource: PutMetricAlarm with Tags needs it.
ALARM_ACTIONS: Final = (
    "cloudwatch:DeleteAlarms",
    "cloudwatch:DescribeAlarms",
    "cloudwatch:PutMetricAlarm",
    "cloudwatch:TagResource",
)
#: EC2 instance states that make the manager look at an instance again.
WATCHED_STATES: Final = ("running", "shutting-down", "terminated")
#: The documented default quota of Metrics Insights alarms per account and Region.
DEFAULT_INSIGHTS_ALARM_QUOTA: Final = 200
_PACKS: Final = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")


class AlarmManager(Construct):
    """The alarm manager of ``fleet=ManagedAlarms()`` (see :mod:`crashcart.constructs.fleet_scale`).

    Attributes: ``function``, ``role``, ``policy``, ``log_group``, ``rules`` (state change,
    tag change, schedule), ``cleanup`` (the custom resource), ``alarms`` (events EventBridge
    could not deliver, one per rule).
    """

    def __init__(
        self,
        remediation: UnresponsiveInstanceRemediation,
        construct_id: str,
        *,
        managed: ManagedAlarms,
        window: AlarmWindow,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(remediation, construct_id)
        stack = cdk.Stack.of(self)
        prefix = remediation.alarm_name_prefix
        alarm_arn = (
            f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:{prefix}*"
        )
        self.log_group = function_log_group(
            self, "Logs", key=remediation.key, retention=log_retention
        )
        self.role = function_role(
            self, "Role", description="crashcart alarm manager: the deployment's managed alarms"
        )
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            description="crashcart alarm manager: put and delete the deployment's alarms",
            statements=[
                iam.PolicyStatement(
                    sid="Logs",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[self.log_group.log_group_arn],
                ),
                iam.PolicyStatement(
                    sid="DescribeInstances", actions=["ec2:DescribeInstances"], resources=["*"]
                ),
                iam.PolicyStatement(
                    # aws-assumption: cloudwatch-alarm-api-rates
                    sid="DeploymentAlarms",
                    actions=list(ALARM_ACTIONS),
                    resources=[alarm_arn],
                ),
                iam.PolicyStatement(
                    sid="Queues",
                    actions=["sqs:SendMessage"],
                    resources=[
                        remediation.rejected_queue.queue_arn,
                        remediation.failure_queue.queue_arn,
                    ],
                ),
                iam.PolicyStatement(
                    sid="DeploymentKey",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[remediation.key.key_arn],
                ),
            ],
            roles=[self.role],
        )
        self.function = python_function(
            self,
            ALARM_MANAGER,
            description="crashcart: one status-check alarm per opted-in instance, kept at run time",
            role=self.role.without_policy_updates(),
            # A reconcile pass of a large fleet is paced by the PutMetricAlarm rate: it gets
            # Lambda's longest run and leaves the rest to the next pass.
            timeout=cdk.Duration.minutes(15),
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.TEXT,
            environment={
                variables.ALARM_NAME_PREFIX: prefix,
                variables.MANAGED_DEPLOYMENT: prefix.rstrip("-"),
                variables.REJECTED_QUEUE_URL: remediation.rejected_queue.queue_url,
                variables.OPT_IN_TAG_KEY: remediation.tag.key,
                variables.OPT_IN_TAG_VALUE: remediation.tag.value,
                variables.MANAGED_EVALUATION_PERIODS: str(window.evaluation_periods),
                variables.MANAGED_DATAPOINTS_TO_ALARM: str(window.datapoints_to_alarm),
                variables.MANAGED_PUTS_PER_SECOND: str(managed.puts_per_second),
            },
        )
        self.function.node.add_dependency(self.policy)
        send_failures_to(self.function, remediation.failure_queue)
        self._acknowledge(stack, alarm_arn)

        def rule(construct_id: str, description: str, **kwargs: Any) -> events.Rule:
            return events.Rule(
                self,
                construct_id,
                description=description,
                targets=[
                    rule_target(self.function, remediation.dead_letter_queue, retry_attempts=8)
                ],
                **kwargs,
            )

        # aws-assumption: ec2-state-change-event
        state = rule(
            "InstanceStateRule",
            "crashcart: EC2 instance launches and terminations to the alarm manager",
            event_pattern=events.EventPattern(
                source=["aws.ec2"],
                detail_type=["EC2 Instance State-change Notification"],
                account=[stack.account],
                region=[stack.region],
                detail={"state": list(WATCHED_STATES)},
            ),
        )
        # aws-assumption: tag-change-event
        tags = rule(
            "TagChangeRule",
            f"crashcart: changes of the {remediation.tag.key} tag of EC2 instances to the "
            "alarm manager",
            event_pattern=events.EventPattern(
                source=["aws.tag"],
                detail_type=["Tag Change on Resource"],
                account=[stack.account],
                region=[stack.region],
                detail={
                    "service": ["ec2"],
                    "resource-type": ["instance"],
                    "changed-tag-keys": [remediation.tag.key],
                },
            ),
        )
        schedule = rule(
            "ReconcileSchedule",
            "crashcart: the alarm manager's reconcile pass",
            schedule=events.Schedule.rate(managed.reconcile_every),
        )
        self.rules = [state, tags, schedule]
        self.alarms: list[cloudwatch.Alarm] = [
            undeliverable_events_alarm(r, "UndeliverableEventsAlarm", r, remediation.topic)
            for r in self.rules
        ]

        # aws-assumption: cloudformation-custom-resource-protocol
        self.cleanup = cdk.CustomResource(
            self,
            "Cleanup",
            service_token=self.function.function_arn,
            resource_type="Custom::CrashcartManagedAlarms",
            # A change of the alarm window is an Update: the manager reconciles, which puts
            # every alarm whose configuration differs.
            properties={
                "AlarmNamePrefix": prefix,
                "EvaluationPeriods": str(window.evaluation_periods),
                "DatapointsToAlarm": str(window.datapoints_to_alarm),
            },
        )
        # Deletion order: the rules go first (no new alarm after the cleanup), then the
        # cleanup runs, while the function, its policy and its log group still exist.
        self.cleanup.node.add_dependency(self.function, self.policy, self.log_group)
        for each in self.rules:
            each.node.add_dependency(self.cleanup)

    def _acknowledge(self, stack: cdk.Stack, alarm_arn: str) -> None:
        reasons = {
            "*": "ec2:DescribeInstances supports no resource-level permissions: AWS requires "
            "Resource '*' (read-only: the manager reads instance states and tags)",
            alarm_arn: "alarms are created per instance at run time, so their names are "
            "unknown at deploy time; the resource is limited to this deployment's alarm-name "
            "prefix in this account and Region",
        }
        acknowledge_wildcards(self.policy, reasons)
        acknowledge_function_defaults(
            self.function,
            None,
            bound="every pass is idempotent and paced per copy; overlapping copies at worst "
            "put the same alarm twice",
        )
        acknowledge_packs(
            self.function,
            "LambdaDLQ",
            ("NIST.800.53.R5", "HIPAA.Security"),
            "function errors go to the EventInvokeConfig on-failure destination (the "
            "remediation's FailureQueue), which keeps the event with the error",
        )
        acknowledge_packs(
            self.function,
            "LambdaInsideVPC",
            _PACKS,
            "the manager only calls AWS APIs (EC2, CloudWatch, SQS) and CloudFormation's "
            "response URL; a VPC would add endpoints without reducing its reach",
        )


def partial_data_watch(remediation: UnresponsiveInstanceRemediation) -> cloudwatch.Alarm:
    """Every partial-data evaluation of the deployment's Metrics Insights alarms -> topic.

    The event (kept 14 days in ``PartialDataQueue``) names the alarm; the alarm on the queue
    notifies the topic on every new one. aws-assumption: metrics-insights-partial-data-event
    """
    stack = cdk.Stack.of(remediation)
    queue = encrypted_queue(
        remediation,
        "PartialDataQueue",
        key=remediation.key,
        dead_letter_store="this queue keeps the partial-data events of the fleet alarm for "
        "the operator; an alarm notifies the topic on every message sent to it",
    )
    rule = events.Rule(
        remediation,
        "PartialDataRule",
        description=(
            f"crashcart: Metrics Insights alarms named {remediation.alarm_name_prefix}* that "
            "evaluate partial data (instances unwatched)"
        ),
        event_pattern=events.EventPattern(
            source=["aws.cloudwatch"],
            detail_type=["CloudWatch Alarm State Change"],
            account=[stack.account],
            region=[stack.region],
            detail={
                "alarmName": [{"prefix": remediation.alarm_name_prefix}],
                "state": {"evaluationState": ["PARTIAL_DATA"]},
            },
        ),
        targets=[QueueTarget(queue, dead_letter_queue=remediation.dead_letter_queue)],
    )
    remediation.partial_data_queue = queue
    remediation.partial_data_rule = rule
    undeliverable_events_alarm(rule, "UndeliverableEventsAlarm", rule, remediation.topic)
    return failure_queue_alarm(
        queue,
        "DepthAlarm",
        queue,
        remediation.topic,
        "a fleet alarm evaluated partial data: its query matched more than 10,000 metrics "
        "or 500 series and some instances are not watched (docs/operations.md, 'Fleet alarm "
        "reports partial data')",
    )


_INSIGHTS = re.compile(r"\s*select\s", re.IGNORECASE)


def insights_alarms(stack: cdk.Stack) -> int:
    """How many alarms of ``stack`` evaluate a Metrics Insights query."""
    count = 0
    for child in stack.node.find_all():
        if isinstance(child, cloudwatch.CfnAlarm):
            metrics = stack.resolve(child.metrics) or []
            if any(
                isinstance(m, dict) and _INSIGHTS.match(str(m.get("expression", "")))
                for m in metrics
            ):
                count += 1
    return count


def check_insights_alarm_quota(scope: Construct, quota: int, adding: int) -> None:
    """Raise when ``adding`` more Metrics Insights alarms take the stack past ``quota``;
    check again when the whole stack is known."""
    stack = cdk.Stack.of(scope)
    have = insights_alarms(stack)
    if have + adding > quota:
        raise ConfigurationError(_quota_message(stack, have + adding, quota))
    scope.node.add_validation(_InsightsAlarmQuota(stack, quota))


def _quota_message(stack: cdk.Stack, total: int, quota: int) -> str:
    return (
        f"stack {stack.stack_name!r} would have {total} Metrics Insights alarms, more than "
        f"FleetWatch alarm_quota={quota} (AWS's default is {DEFAULT_INSIGHTS_ALARM_QUOTA} per "
        "account and Region, and other stacks in the Region count too). Use "
        "fleet=ManagedAlarms() (ordinary alarms, no such quota), raise the quota in Service "
        "Quotas and pass alarm_quota, or deploy fewer fleet remediations per Region"
    )


@jsii.implements(IValidation)
class _InsightsAlarmQuota:
    def __init__(self, stack: cdk.Stack, quota: int) -> None:
        self._stack = stack
        self._quota = quota

    def validate(self) -> list[str]:
        total = insights_alarms(self._stack)
        return [] if total <= self._quota else [_quota_message(self._stack, total, self._quota)]
