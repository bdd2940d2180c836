"""The Auto Scaling hold's backstop: a native reboot when the hold function did not act.

One Metrics Insights alarm over the opted-in instances (selected by resource tag, which
needs resource tags for telemetry on the account), with a window longer than the longest
dump deadline and the EC2 reboot action, which acts per contributor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch

from crashcart.constructs._auto_scaling_hold_props import BACKSTOP_PERIOD
from crashcart.constructs._internal.remediation_alarms import STATUS_METRIC

if TYPE_CHECKING:
    from crashcart.constructs.auto_scaling_hold import AutoScalingHold

BACKSTOP_QUERY: Final = (
    'SELECT MAX({metric}) FROM SCHEMA("AWS/EC2", InstanceId) '
    "WHERE tag.\"{key}\" = '{value}' "
    "GROUP BY InstanceId ORDER BY MAX() DESC LIMIT 500"
)


def backstop_alarm(hold: AutoScalingHold, periods: int) -> cloudwatch.Alarm:
    """Reboots an opted-in instance whose instance check failed for ``periods`` x 5 minutes,
    longer than the longest dump deadline (the hold function did not act)."""
    tag = hold.remediation.tag
    alarm = cloudwatch.Alarm(
        hold,
        "BackstopAlarm",
        alarm_description=(
            "crashcart backstop: an opted-in instance failed its instance status check "
            f"for {periods * 5} minutes, longer than the longest dump deadline: the "
            "hold / escalation function did not act; each such instance is rebooted"
        ),
        metric=cloudwatch.MathExpression(
            # aws-assumption: metrics-insights-tag-filter
            expression=BACKSTOP_QUERY.format(metric=STATUS_METRIC, key=tag.key, value=tag.value),
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
    stack = cdk.Stack.of(hold)
    cfn = alarm.node.default_child
    assert isinstance(cfn, cloudwatch.CfnAlarm)
    cfn.alarm_actions = [f"arn:{stack.partition}:automate:{stack.region}:ec2:reboot"]
    return alarm
