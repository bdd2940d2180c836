"""Reconcile: make the actions of this deployment's *acting* alarms follow the kill switch.

Every invocation (a change of the kill-switch parameter, or the periodic reconcile) does the
same, whatever the event says (the event only wakes the function; the switch is read):

1. read the switch: ``off`` -> acting alarms' actions must be enabled; anything else ->
   disabled;
2. list the account's alarms in this region (``DescribeAlarms``, 100 a page, paginated);
3. keep the *acting* ones: an alarm with any action that is not an SNS notification (an EC2
   reboot / stop / terminate / recover action, a Lambda function, a Systems Manager action,
   an Auto Scaling policy). Notification-only alarms are never touched: with the switch on,
   the operator still hears about everything;
4. of those, keep this deployment's: the name starts with one of ``alarm_name_prefixes``
   (alarms created at run time carry the prefix), or the alarm carries the tag
   ``tag_key=tag_value`` (every alarm of the stack, tagged at synth);
5. change only those whose ``ActionsEnabled`` differs (Enable/DisableAlarmActions, 100 a
   call); each change is logged and counted (``AlarmActionsChanged``).

Idempotent: a second run changes nothing. crashcart owns ``ActionsEnabled`` of its acting
alarms: an alarm whose actions someone disabled by hand is enabled again while the switch is
off (docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crashcart.runtime import metrics

from .adapter import AlarmFacts, Alarms
from .settings import Settings

#: The one action kind that only notifies (``arn:<partition>:sns:...``).
# aws-assumption: cloudwatch-alarm-action-arns
NOTIFY_SERVICE = "sns"


def acting(alarm: AlarmFacts) -> bool:
    """True when the alarm has an action other than an SNS notification."""
    for action in alarm.actions:
        parts = action.split(":")
        if len(parts) < 3 or parts[2] != NOTIFY_SERVICE:
            return True
    return False


@dataclass
class Reconciled:
    switch: str = ""
    desired_enabled: bool = True
    examined: int = 0
    ours: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "switch": self.switch,
            "actions": "enabled" if self.desired_enabled else "disabled",
            "examined": self.examined,
            "ours": self.ours,
            "changed": self.changed,
        }


def reconcile(
    alarms: Alarms,
    switch: str,
    settings: Settings,
    *,
    now: datetime,
    function_name: str,
    write: Callable[[str], object] | None = None,
) -> Reconciled:
    result = Reconciled(switch=switch, desired_enabled=switch == "off")
    out = write or metrics.write_stdout
    to_change: list[str] = []
    for alarm in alarms.listed():
        result.examined += 1
        if not acting(alarm):
            continue
        mine = (
            alarm.name.startswith(settings.alarm_name_prefixes)
            if settings.alarm_name_prefixes
            else False
        )
        if not mine:
            mine = alarms.tags(alarm.arn).get(settings.tag_key) == settings.tag_value
        if not mine:
            continue
        result.ours.append(alarm.name)
        if alarm.actions_enabled != result.desired_enabled:
            to_change.append(alarm.name)
    if to_change:
        alarms.set_actions(to_change, enabled=result.desired_enabled)
    result.changed = to_change
    out(_record(result, now=now, function_name=function_name))
    return result


def _record(result: Reconciled, *, now: datetime, function_name: str) -> str:
    """One log line with the outcome and, as an embedded metric, how many alarms changed.

    aws-assumption: emf-lambda-stdout
    """
    return metrics.emf_line(
        metrics.KILL_SWITCH_OUTCOMES["alarm_actions_changed"],
        len(result.changed),
        function_name=function_name,
        now=now,
        fields={
            "message": "kill switch reconciled with alarm actions",
            "service": "crashcart-kill-switch",
            **result.as_dict(),
        },
    )
