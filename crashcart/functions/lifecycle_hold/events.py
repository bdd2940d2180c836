"""The lifecycle-hold function's input: a termination lifecycle action, or its schedule's tick.

- ``aws.autoscaling`` / ``EC2 Instance-terminate Lifecycle Action`` (EventBridge): a group
  of ours put an instance in ``Terminating:Wait`` (aws-assumption: lifecycle-hook-events);
- ``aws.events`` / ``Scheduled Event``: the tick that renews holds with heartbeats, ends
  them, and escalates interrupted instances past their dump deadline.

Anything else, a lifecycle action of a group or hook not configured, or a field that is not
what Auto Scaling sends, is :class:`Rejected` (the service keeps it in the rejected queue).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from crashcart.functions.remediation.events import show

from .settings import HoldSettings

TERMINATE_ACTION = "EC2 Instance-terminate Lifecycle Action"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
SCHEDULED = "Scheduled Event"
_INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,17}")
_TOKEN = re.compile(r"[0-9a-fA-F-]{36}")
_TIME = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True, kw_only=True)
class LifecycleAction:
    """A terminating instance held by one of our hooks."""

    event_id: str
    account: str
    region: str
    group: str
    group_arn: str
    hook: str
    token: str
    instance_id: str
    at: datetime


@dataclass(frozen=True, kw_only=True)
class Tick:
    """The schedule: renew, end and escalate."""

    at: datetime


@dataclass(frozen=True, kw_only=True)
class Rejected:
    reason: str


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, _TIME).replace(tzinfo=UTC)
    except ValueError:
        return None


def parse(event: object, settings: HoldSettings) -> LifecycleAction | Tick | Rejected:
    """The event as one of ours, or why it is not."""
    if not isinstance(event, dict):
        return Rejected(reason=f"event is a {type(event).__name__}, not an object")
    source, kind = event.get("source"), event.get("detail-type")
    at = _time(event.get("time"))
    if at is None:
        return Rejected(reason=f"event time {show(event.get('time'))} is not {_TIME}")
    if source == "aws.events" and kind == SCHEDULED:
        return Tick(at=at)
    if source != "aws.autoscaling" or kind != TERMINATE_ACTION:
        return Rejected(reason=f"not ours: source {show(source)}, detail-type {show(kind)}")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        return Rejected(reason="lifecycle action without a detail object")
    group = detail.get("AutoScalingGroupName")
    hook = detail.get("LifecycleHookName")
    token = detail.get("LifecycleActionToken")
    instance_id = detail.get("EC2InstanceId")
    transition = detail.get("LifecycleTransition")
    if transition != TERMINATING:
        return Rejected(reason=f"lifecycle transition {show(transition)} is not {TERMINATING}")
    if not isinstance(group, str) or group not in settings.groups:
        return Rejected(
            reason=f"Auto Scaling group {show(group)} is not one this function holds for"
        )
    if hook != settings.hook_name:
        return Rejected(reason=f"lifecycle hook {show(hook)} is not {settings.hook_name!r}")
    if not isinstance(instance_id, str) or not _INSTANCE_ID.fullmatch(instance_id):
        return Rejected(reason=f"instance id {show(instance_id)} is malformed")
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        return Rejected(reason=f"lifecycle action token {show(token)} is malformed")
    resources = event.get("resources")
    group_arn = resources[0] if isinstance(resources, list) and resources else ""
    return LifecycleAction(
        event_id=str(event.get("id", "")),
        account=str(event.get("account", "")),
        region=str(event.get("region", "")),
        group=group,
        group_arn=str(group_arn),
        hook=hook,
        token=token,
        instance_id=instance_id,
        at=at,
    )
