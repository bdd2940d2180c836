"""Typed parsing and schema checks of the events the remediation function receives.

Two EventBridge event types are understood (shapes from the CloudWatch user guide, "Alarm
events and EventBridge"):

- ``CloudWatch Alarm State Change`` of a *single-metric* alarm on
  ``AWS/EC2 StatusCheckFailed_Instance`` with an ``InstanceId`` dimension (what the construct
  creates, one alarm per instance);
- ``CloudWatch Alarm Contributor State Change`` of a Metrics Insights alarm
  (``... FROM "AWS/EC2" ... GROUP BY InstanceId``): one event per contributor, with the
  instance id in ``alarmContributor.attributes.InstanceId``; these events have no
  ``previousState`` and a contributor is only ever ``ALARM`` or ``OK``.

Everything else is *rejected* with a reason (kept in the rejected-events queue by the
handler): not an EventBridge alarm event, a foreign alarm (name without our prefix), a
composite or metric-math alarm (no single instance to act on), a metric other than
``StatusCheckFailed_Instance``, missing or mistyped fields, an unparsable timestamp.
Unknown extra fields are ignored (AWS adds fields over time, e.g. ``muteDetail``).

A valid event that needs no action (``INSUFFICIENT_DATA``, ``ALARM -> ALARM``, an alarm muted
by a mute rule) is *ignored* with a reason; it is logged, not rejected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

STATE_CHANGE = "CloudWatch Alarm State Change"
CONTRIBUTOR_STATE_CHANGE = "CloudWatch Alarm Contributor State Change"
METRIC_NAMESPACE = "AWS/EC2"
METRIC_NAME = "StatusCheckFailed_Instance"

_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
_ACCOUNT = re.compile(r"^[0-9]{12}$")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-[0-9]+$")
_STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")


class Transition(StrEnum):
    """What an alarm event means for the remediation function."""

    NEW_ALARM = "new-alarm"  # -> ALARM from another state: the remediation path
    RECOVERED = "recovered"  # -> OK: the incident is over


@dataclass(frozen=True, kw_only=True)
class AlarmEvent:
    """An alarm event of ours that asks for an action."""

    event_id: str
    detail_type: str
    account: str
    region: str
    alarm_name: str
    alarm_arn: str
    instance_id: str
    transition: Transition
    state: str
    previous_state: str | None
    state_reason: str
    #: When the alarm (or contributor) entered its state: identifies the incident, so every
    #: duplicate delivery of the same state change maps to the same incident record.
    changed_at: datetime
    contributor_id: str | None = None

    @property
    def opened_at(self) -> str:
        """The incident key time: ``changed_at`` in ISO-8601 UTC, whole seconds, ``Z``."""
        return iso(self.changed_at)


@dataclass(frozen=True, kw_only=True)
class Ignored:
    """A well-formed event of ours that needs no action (logged with the reason)."""

    reason: str
    alarm_name: str
    instance_id: str | None


@dataclass(frozen=True, kw_only=True)
class Rejected:
    """A malformed or foreign event (logged and kept in the rejected-events queue)."""

    reason: str


ParsedEvent = AlarmEvent | Ignored | Rejected


def iso(moment: datetime) -> str:
    """``moment`` as ISO-8601 UTC with whole seconds and a ``Z`` (the incident key format)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object) -> datetime | None:
    """An aware UTC datetime from CloudWatch / EventBridge timestamps, or None if invalid.

    Accepts ``2019-10-02T17:04:40.989+0000`` (alarm states), ``2019-10-02T17:04:40Z``
    (envelopes) and other ISO-8601 forms *with* an offset; a naive time is rejected.
    """
    if not isinstance(text, str) or len(text) > 40:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


class _BadEventError(Exception):
    """Internal: the event does not have the expected shape (message = reason)."""


def _field(mapping: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(mapping, dict):
        raise _BadEventError(f"{where} is not an object")
    if key not in mapping:
        raise _BadEventError(f"{where}.{key} is missing")
    value = mapping[key]
    if not isinstance(value, kind) or (kind is str and not value):
        raise _BadEventError(f"{where}.{key} is not a non-empty {kind.__name__}")
    return value


def parse(event: object, *, alarm_name_prefix: str) -> ParsedEvent:
    """Classify ``event``: an :class:`AlarmEvent` to act on, :class:`Ignored` or :class:`Rejected`.

    Never raises: every malformed input becomes a :class:`Rejected` with the reason.
    """
    try:
        return _parse(event, alarm_name_prefix)
    except _BadEventError as invalid:
        return Rejected(reason=str(invalid))


def _parse(event: object, prefix: str) -> ParsedEvent:
    if not isinstance(event, dict):
        raise _BadEventError(f"event is a {type(event).__name__}, not an EventBridge event object")
    if "alarmData" in event:
        raise _BadEventError(
            "event is a direct alarm-action invocation (alarmData); only EventBridge "
            "alarm events are accepted"
        )
    source = _field(event, "source", str, "event")
    if source != "aws.cloudwatch":
        raise _BadEventError(f"event source {source!r} is not aws.cloudwatch")
    detail_type = _field(event, "detail-type", str, "event")
    if detail_type not in (STATE_CHANGE, CONTRIBUTOR_STATE_CHANGE):
        raise _BadEventError(f"detail-type {detail_type!r} is not an alarm state change")
    event_id = _field(event, "id", str, "event")
    account = _field(event, "account", str, "event")
    region = _field(event, "region", str, "event")
    if not _ACCOUNT.match(account):
        raise _BadEventError(f"event.account {account!r} is not a 12-digit account id")
    if not _REGION.match(region):
        raise _BadEventError(f"event.region {region!r} is not a region name")
    detail = _field(event, "detail", dict, "event")
    alarm_name = _field(detail, "alarmName", str, "detail")
    if not alarm_name.startswith(prefix):
        raise _BadEventError(f"foreign alarm {alarm_name!r}: name does not start with {prefix!r}")
    resources = event.get("resources")
    alarm_arn = f"arn:aws:cloudwatch:{region}:{account}:alarm:{alarm_name}"
    if isinstance(resources, list) and resources and isinstance(resources[0], str):
        alarm_arn = resources[0]
    state = _field(detail, "state", dict, "detail")
    value = _field(state, "value", str, "detail.state")
    if value not in _STATES:
        raise _BadEventError(f"detail.state.value {value!r} is not one of {', '.join(_STATES)}")
    changed_at = parse_time(_field(state, "timestamp", str, "detail.state"))
    if changed_at is None:
        raise _BadEventError(f"detail.state.timestamp {state['timestamp']!r} is not ISO-8601")
    reason = state.get("reason") if isinstance(state.get("reason"), str) else ""
    configuration = _field(detail, "configuration", dict, "detail")
    if "alarmRule" in configuration:
        raise _BadEventError(f"composite alarm {alarm_name!r}: no single instance to act on")
    metrics = _field(configuration, "metrics", list, "detail.configuration")

    contributor_id: str | None = None
    previous: str | None
    if detail_type == CONTRIBUTOR_STATE_CHANGE:
        instance_id, contributor_id = _contributor_instance(detail, metrics, alarm_name)
        previous = None
    else:
        instance_id = _single_metric_instance(metrics, alarm_name)
        previous_state = _field(detail, "previousState", dict, "detail")
        previous = _field(previous_state, "value", str, "detail.previousState")
        if previous not in _STATES:
            raise _BadEventError(f"detail.previousState.value {previous!r} is not a state")

    if _muted(detail.get("muteDetail"), changed_at):
        mute = detail["muteDetail"]
        return Ignored(
            reason=f"alarm muted by {mute['mutedByArn']}: no action while a mute rule applies",
            alarm_name=alarm_name,
            instance_id=instance_id,
        )
    if value == "INSUFFICIENT_DATA":
        return Ignored(
            reason="alarm has insufficient data: nothing is known about the instance",
            alarm_name=alarm_name,
            instance_id=instance_id,
        )
    if value == previous:
        return Ignored(
            reason=f"state stays {value}: not a new transition",
            alarm_name=alarm_name,
            instance_id=instance_id,
        )
    transition = Transition.NEW_ALARM if value == "ALARM" else Transition.RECOVERED
    return AlarmEvent(
        event_id=event_id,
        detail_type=detail_type,
        account=account,
        region=region,
        alarm_name=alarm_name,
        alarm_arn=alarm_arn,
        instance_id=instance_id,
        transition=transition,
        state=value,
        previous_state=previous,
        state_reason=str(reason)[:1000],
        changed_at=changed_at,
        contributor_id=contributor_id,
    )


def _muted(mute: object, changed_at: datetime) -> bool:
    """True when an alarm mute rule covers this state change (its window, if given, holds it)."""
    if not isinstance(mute, dict) or not mute.get("mutedByArn"):
        return False
    start = parse_time(mute.get("muteWindowStart"))
    end = parse_time(mute.get("muteWindowEnd"))
    if start is not None and changed_at < start:
        return False
    return not (end is not None and changed_at >= end)


def _check_instance_id(value: object, where: str) -> str:
    if not isinstance(value, str) or not _INSTANCE_ID.match(value):
        raise _BadEventError(f"{where} {value!r} is not an EC2 instance id")
    return value


def _single_metric_instance(metrics: list[Any], alarm_name: str) -> str:
    if len(metrics) != 1:
        raise _BadEventError(
            f"alarm {alarm_name!r} has {len(metrics)} metric entries (metric math or "
            f"anomaly band): only a single {METRIC_NAME} metric alarm is acted on"
        )
    entry = metrics[0]
    stat = _field(entry, "metricStat", dict, "detail.configuration.metrics[0]")
    metric = _field(stat, "metric", dict, "metricStat")
    namespace = _field(metric, "namespace", str, "metricStat.metric")
    name = _field(metric, "name", str, "metricStat.metric")
    if (namespace, name) != (METRIC_NAMESPACE, METRIC_NAME):
        raise _BadEventError(
            f"alarm {alarm_name!r} watches {namespace} {name}, not {METRIC_NAMESPACE} {METRIC_NAME}"
        )
    dimensions = _field(metric, "dimensions", dict, "metricStat.metric")
    if set(dimensions) != {"InstanceId"}:
        raise _BadEventError(
            f"alarm {alarm_name!r} dimensions {sorted(dimensions)} are not exactly InstanceId"
        )
    return _check_instance_id(dimensions["InstanceId"], "dimension InstanceId")


def _contributor_instance(
    detail: dict[str, Any], metrics: list[Any], alarm_name: str
) -> tuple[str, str]:
    contributor = _field(detail, "alarmContributor", dict, "detail")
    contributor_id = _field(contributor, "id", str, "detail.alarmContributor")
    attributes = _field(contributor, "attributes", dict, "detail.alarmContributor")
    if len(metrics) != 1:
        raise _BadEventError(f"contributor alarm {alarm_name!r} has {len(metrics)} metric entries")
    expression = _field(metrics[0], "expression", str, "detail.configuration.metrics[0]")
    if METRIC_NAME not in expression or "InstanceId" not in expression:
        raise _BadEventError(
            f"contributor alarm {alarm_name!r} query does not group {METRIC_NAME} by InstanceId"
        )
    if "InstanceId" not in attributes:
        raise _BadEventError("detail.alarmContributor.attributes.InstanceId is missing")
    instance_id = _check_instance_id(attributes["InstanceId"], "contributor InstanceId")
    return instance_id, contributor_id
