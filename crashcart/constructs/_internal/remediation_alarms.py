"""The remediation's status-check alarms: one per listed instance, or one fleet alarm.

Both watch ``StatusCheckFailed_Instance`` (Maximum of one-minute periods, missing data not
breaching) and are acted on through their EventBridge state-change events, not alarm
actions (an alarm action would bypass the function's guards).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs

from crashcart.constructs._internal.acknowledgements import acknowledge_packs
from crashcart.constructs._internal.fleet_shards import (
    AlarmManager,
    check_insights_alarm_quota,
    partial_data_watch,
)
from crashcart.constructs._internal.remediation_checks import (
    StackResourceBudget,
    check_resource_budget,
)
from crashcart.constructs.fleet_scale import ManagedAlarms
from crashcart.constructs.remediation_settings import AlarmWindow, FleetWatch, _unresolved

if TYPE_CHECKING:
    from crashcart.constructs.unresponsive_instance_remediation import (
        UnresponsiveInstanceRemediation,
    )

#: The metric every alarm watches: 1 when the instance (guest) status check failed.
# aws-assumption: ec2-status-check-metric
STATUS_METRIC: Final = "StatusCheckFailed_Instance"


def instance_alarm(
    remediation: UnresponsiveInstanceRemediation, instance: ec2.IInstance | str, window: AlarmWindow
) -> cloudwatch.Alarm:
    if isinstance(instance, str):
        instance_id = instance
        if _unresolved(instance):
            # A token (e.g. a CfnParameter): name the alarm by what it resolves to, which
            # is stable across synths (ids are a contract: a new id replaces the alarm).
            resolved = json.dumps(cdk.Stack.of(remediation).resolve(instance), sort_keys=True)
            digest = hashlib.sha256(resolved.encode()).hexdigest()[:12]
            construct_id = f"StatusAlarm-token-{digest}"
        else:
            construct_id = f"StatusAlarm-{instance}"
    else:
        instance_id = instance.instance_id
        construct_id = f"StatusAlarm-{cdk.Names.node_unique_id(instance.node)}"
        cdk.Tags.of(instance).add(remediation.tag.key, remediation.tag.value)
    return _status_alarm(
        remediation,
        construct_id,
        name=instance_id,
        description=f"crashcart: instance {instance_id} failed its instance status check; the "
        "remediation function decides whether to send a diagnostic interrupt",
        metric=cloudwatch.Metric(
            namespace="AWS/EC2",
            metric_name=STATUS_METRIC,
            dimensions_map={"InstanceId": instance_id},
            statistic="Maximum",
            period=cdk.Duration.minutes(1),
        ),
        window=window,
    )


def fleet_alarm(
    remediation: UnresponsiveInstanceRemediation, fleet: FleetWatch, window: AlarmWindow
) -> cloudwatch.Alarm:
    return _status_alarm(
        remediation,
        "FleetStatusAlarm",
        name="fleet",
        description="crashcart: every instance whose instance status check fails is a "
        "contributor; the remediation function checks the opt-in tag and its guards",
        metric=cloudwatch.MathExpression(
            expression=fleet.query,
            period=cdk.Duration.minutes(1),
            using_metrics={},
            label="StatusCheckFailed_Instance by InstanceId",
        ),
        window=window,
    )


def _status_alarm(
    remediation: UnresponsiveInstanceRemediation,
    construct_id: str,
    *,
    name: str,
    description: str,
    metric: cloudwatch.IMetric,
    window: AlarmWindow,
) -> cloudwatch.Alarm:
    """A status-check alarm of the remediation, named ``<prefix><name>``: in ALARM when
    ``metric`` is 1 or more in ``window``'s datapoints; no data is not breaching."""
    return cloudwatch.Alarm(
        remediation,
        construct_id,
        alarm_name=f"{remediation.alarm_name_prefix}{name}",
        alarm_description=description,
        metric=metric,
        threshold=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluation_periods=window.evaluation_periods,
        datapoints_to_alarm=window.datapoints_to_alarm,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )


def acknowledge_status_alarm(
    remediation: UnresponsiveInstanceRemediation, alarm: cloudwatch.Alarm
) -> None:
    acknowledge_packs(
        alarm,
        "CloudWatchAlarmAction",
        ("NIST.800.53.R5", "HIPAA.Security"),
        "acted on through its EventBridge state-change event (rule AlarmRule -> the "
        "guarded function); an alarm action would bypass the guards or notify twice",
    )


def watch_status_checks(
    remediation: UnresponsiveInstanceRemediation,
    fleet: FleetWatch | ManagedAlarms | None,
    watched: Sequence[ec2.IInstance | str],
    window: AlarmWindow,
    log_retention: logs.RetentionDays,
) -> None:
    """The status-check alarms of the watch mode, set on the remediation: the fleet alarm and
    its partial-data watch, the alarm manager, or one alarm per listed instance (last: the
    stack's resource budget is what is left)."""
    if isinstance(fleet, FleetWatch):
        check_insights_alarm_quota(remediation, fleet.alarm_quota, adding=1)
        remediation.alarms.append(fleet_alarm(remediation, fleet, window))
        remediation.partial_data_alarm = partial_data_watch(remediation)
    elif isinstance(fleet, ManagedAlarms):
        remediation.alarm_manager = AlarmManager(
            remediation,
            "AlarmManager",
            managed=fleet,
            window=window,
            log_retention=log_retention,
        )
    else:
        check_resource_budget(remediation, len(watched))
        for instance in watched:
            remediation.alarms.append(instance_alarm(remediation, instance, window))
        # Resources added to the stack after this construct count too: check again
        # when the whole stack is known, before CloudFormation would refuse it.
        remediation.node.add_validation(StackResourceBudget(remediation, len(watched)))
    for alarm in remediation.alarms:
        acknowledge_status_alarm(remediation, alarm)
