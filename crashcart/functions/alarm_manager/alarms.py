"""The alarm each opted-in instance should have, and how to tell the manager's alarms apart.

A managed alarm is named ``<deployment prefix><instance-id>`` and is exactly the alarm the
construct would declare for a listed instance: ``AWS/EC2 StatusCheckFailed_Instance`` for that
``InstanceId``, Maximum of one-minute periods, ``>= 1`` for N of M periods, missing data not
breaching, no actions (the remediation function acts on its EventBridge state-change event,
behind its guards). So the remediation function accepts its events exactly as it accepts
those of a declared per-instance alarm (aws-assumption: alarm-state-change-event-shape).
Every managed alarm carries the tags ``crashcart:deployment`` and ``crashcart:managed-by``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .settings import Settings

METRIC_NAMESPACE: Final = "AWS/EC2"
# aws-assumption: ec2-status-check-metric
METRIC_NAME: Final = "StatusCheckFailed_Instance"
DEPLOYMENT_TAG: Final = "crashcart:deployment"
MANAGED_BY_TAG: Final = "crashcart:managed-by"
MANAGED_BY: Final = "crashcart-alarm-manager"
_INSTANCE_ID = re.compile(r"i-[0-9a-f]{8}(?:[0-9a-f]{9})?")
#: Instance states in which an instance keeps its alarm (a stopped instance publishes no
#: metric, so its alarm stays OK; it is kept for when the instance starts again).
LIVE_STATES: Final = frozenset({"pending", "running", "stopping", "stopped"})


@dataclass(frozen=True, kw_only=True)
class Instance:
    """What the manager needs to know of an instance (from ``DescribeInstances``)."""

    instance_id: str
    state: str
    tags: Mapping[str, str]


def alarm_name(settings: Settings, instance_id: str) -> str:
    return f"{settings.alarm_name_prefix}{instance_id}"


def managed_instance(settings: Settings, name: str) -> str | None:
    """The instance id of a managed alarm's name, or None when the name is not one of ours."""
    prefix = settings.alarm_name_prefix
    if not name.startswith(prefix):
        return None
    suffix = name[len(prefix) :]
    return suffix if _INSTANCE_ID.fullmatch(suffix) else None


def wants_alarm(settings: Settings, instance: Instance | None) -> bool:
    """An instance has an alarm while it exists, is not terminating and carries the opt-in tag."""
    return (
        instance is not None
        and instance.state in LIVE_STATES
        and instance.tags.get(settings.opt_in_tag_key) == settings.opt_in_tag_value
    )


def alarm_spec(settings: Settings, instance_id: str) -> dict[str, Any]:
    """The ``PutMetricAlarm`` parameters of ``instance_id``'s alarm."""
    return {
        "AlarmName": alarm_name(settings, instance_id),
        "AlarmDescription": (
            f"crashcart (managed): instance {instance_id} failed its instance status check; "
            "the remediation function decides whether to send a diagnostic interrupt"
        ),
        "ActionsEnabled": True,
        "Namespace": METRIC_NAMESPACE,
        "MetricName": METRIC_NAME,
        "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
        "Statistic": "Maximum",
        "Period": 60,
        "EvaluationPeriods": settings.evaluation_periods,
        "DatapointsToAlarm": settings.datapoints_to_alarm,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
        "Tags": [
            {"Key": DEPLOYMENT_TAG, "Value": settings.deployment},
            {"Key": MANAGED_BY_TAG, "Value": MANAGED_BY},
        ],
    }


_COMPARED = (
    "Namespace",
    "MetricName",
    "Dimensions",
    "Statistic",
    "Period",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
)

#: DescribeAlarms leaves these out when they are unset (and some emulators always do):
#: compared only when present.
_OPTIONAL_IN_ANSWER = frozenset({"DatapointsToAlarm", "TreatMissingData"})


def drifted(settings: Settings, existing: Mapping[str, Any]) -> bool:
    """True when an existing managed alarm (``DescribeAlarms`` shape) differs from its spec.

    Someone edited it, or the deployment's window changed: the reconcile pass puts it again.
    Alarm actions count too: a managed alarm has none (a kill switch that *disables* actions
    leaves ``ActionsEnabled`` to its owner and is not undone here).
    """
    instance_id = managed_instance(settings, str(existing.get("AlarmName", "")))
    if instance_id is None:
        return False
    spec = alarm_spec(settings, instance_id)
    for key in _COMPARED:
        if key in _OPTIONAL_IN_ANSWER and key not in existing:
            continue
        have = existing.get(key)
        want = spec[key]
        if key == "Threshold":
            have = float(have) if isinstance(have, int | float) else have
        if have != want:
            return True
    actions = ("AlarmActions", "OKActions", "InsufficientDataActions")
    return any(existing.get(key) for key in actions)
