"""Typed parsing and schema checks of the events the remediation function receives.

Two EventBridge event types are understood (shapes from the CloudWatch user guide, "Alarm
events and EventBridge"):

- ``CloudWatch Alarm State Change`` of a *single-metric* alarm on
  ``AWS/EC2 StatusCheckFailed_Instance`` with an ``InstanceId`` dimension (what the construct
  creates, one alarm per instance; aws-assumption: alarm-state-change-event-shape);
- ``CloudWatch Alarm Contributor State Change`` of the construct's Metrics Insights alarm
  (``SELECT MAX(StatusCheckFailed_Instance) FROM SCHEMA("AWS/EC2", InstanceId) GROUP BY
  InstanceId ...``): one event per contributor, with the instance id in
  ``alarmContributor.attributes.InstanceId`` (its only attribute); these events have no
  ``previousState`` and a contributor is only ever ``ALARM`` or ``OK``
  (aws-assumption: contributor-event-shape).

Everything else is *rejected* with a reason (kept in the rejected-events queue by the
handler, never acted on, never recorded as an incident, never counted by a breaker): not an
EventBridge alarm event; an event of another account or region than the function's own; a
foreign alarm (name without our prefix, or not a name crashcart gives); an alarm ARN in
``resources`` that is not the named alarm's; a composite or metric-math alarm (no single
instance to act on); a metric other than ``AWS/EC2 StatusCheckFailed_Instance``; a contributor
query other than the construct's; missing or mistyped fields; ids, names and timestamps
outside their grammar; a timestamp outside the clock window (more than :data:`CLOCK_SKEW`
ahead of the function's clock, or older than the oldest age the deployment's retries allow).
Unknown extra fields are ignored (AWS adds fields over time, e.g. ``muteDetail``).

A valid event that needs no action (``INSUFFICIENT_DATA``, ``ALARM -> ALARM``, an alarm muted
by a mute rule) is *ignored* with a reason; it is logged, not rejected.

:func:`parse` is total: whatever JSON (or Python value) it is given, it returns one of the
three results and never raises; a reason never quotes more than a short, cut excerpt of what
was sent.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

# The typed results live in event_types; they stay importable from here.
from .event_types import AlarmEvent as AlarmEvent
from .event_types import Expected as Expected
from .event_types import Ignored as Ignored
from .event_types import ParsedEvent as ParsedEvent
from .event_types import Rejected as Rejected
from .event_types import Transition as Transition
from .event_types import iso as iso
from .event_types import parse_time as parse_time
from .event_types import show as show

STATE_CHANGE = "CloudWatch Alarm State Change"
CONTRIBUTOR_STATE_CHANGE = "CloudWatch Alarm Contributor State Change"
#: What the missed-alarm sweep (``sweep.py``) puts in the AlarmEvent it builds: never parsed
#: from an event (``parse`` rejects this detail type), only set by the sweep.
SWEEP_DETAIL_TYPE = "crashcart missed-alarm sweep"
SWEEP_ALARM_NAME = "missed-alarm-sweep"
METRIC_NAMESPACE = "AWS/EC2"
METRIC_NAME = "StatusCheckFailed_Instance"

#: How far ahead of the function's clock a timestamp may be (clock skew between CloudWatch,
#: EventBridge and the Lambda host). A later timestamp is rejected: it would otherwise become
#: an incident key that every later OK of the instance looks older than.
#: aws-assumption: alarm-event-delivery-age
CLOCK_SKEW = timedelta(minutes=5)
#: The longest a rejection reason gets (a reason is logged, returned and kept).
MAX_REASON = 1000

# Every grammar below is matched with ``fullmatch``: ``$`` would also accept a trailing
# newline ("i-0123456789abcdef0\n").
_INSTANCE_ID = re.compile(r"i-[0-9a-f]{8}(?:[0-9a-f]{9})?")
_ACCOUNT = re.compile(r"[0-9]{12}")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}")
#: EventBridge event ids are UUIDs; a little looser (any hex-and-dash id up to 64 characters).
_EVENT_ID = re.compile(r"[0-9A-Za-z-]{1,64}")
#: CloudWatch allows 255 characters; printable ASCII only (no control characters, no newline).
_ALARM_NAME = re.compile(r"[\x20-\x7e]{1,255}")
#: What follows the prefix in the names the construct gives (an instance id, ``fleet``).
_ALARM_SUFFIX = re.compile(r"[A-Za-z0-9._-]{1,200}")
_PARTITION = r"aws(?:-[a-z]+)*"
#: Contributor ids: 1-1,024 characters (CloudWatch API reference); printable, no spaces.
_CONTRIBUTOR_ID = re.compile(r"[\x21-\x7e]{1,1024}")
#: The construct's fleet query (``FleetWatch.query``), with the whitespace and keyword case
#: Metrics Insights accepts; namespace, metric, schema and grouping are exact (identifiers are
#: case-sensitive; aws-assumption: metrics-insights-fleet-query).
_FLEET_QUERY = re.compile(
    r"\s*(?i:SELECT)\s+(?i:MAX)\(\s*StatusCheckFailed_Instance\s*\)"
    r"\s+(?i:FROM)\s+(?i:SCHEMA)\(\s*\"AWS/EC2\"\s*,\s*InstanceId\s*\)"
    r"\s+(?i:GROUP)\s+(?i:BY)\s+InstanceId"
    r"(?:\s+(?i:ORDER)\s+(?i:BY)\s+(?i:MAX)\(\s*\)\s+(?i:DESC))?"
    r"(?:\s+(?i:LIMIT)\s+[0-9]{1,3})?\s*"
)
_STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")
#: What follows the prefix in the name of the construct's fleet alarm.
FLEET_SUFFIX = "fleet"


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


def _grammar(value: str, pattern: re.Pattern[str], where: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise _BadEventError(f"{where} {show(value)} is not {what}")
    return value


def parse(
    event: object,
    *,
    alarm_name_prefix: str,
    account: str,
    region: str,
    now: datetime,
    max_age: timedelta,
) -> ParsedEvent:
    """Classify ``event``: an :class:`AlarmEvent` to act on, :class:`Ignored` or :class:`Rejected`.

    ``account`` / ``region`` are the function's own: an event of any other is rejected.
    ``now`` is the function's clock; a state change more than :data:`CLOCK_SKEW` ahead of it,
    or older than ``max_age``, is rejected. Never raises: every malformed input becomes a
    :class:`Rejected` with the reason.
    """
    expected = Expected(
        alarm_name_prefix=alarm_name_prefix,
        account=account,
        region=region,
        now=now,
        max_age=max_age,
    )
    try:
        return _parse(event, expected)
    except _BadEventError as invalid:
        return Rejected(reason=str(invalid)[:MAX_REASON])
    except Exception as error:
        # The promise is "never raises". Not expected (the tests drive _parse with arbitrary
        # JSON and see only _BadEventError): refuse, act on nothing, say what happened.
        return Rejected(
            reason=f"event could not be parsed ({type(error).__name__}): rejected, no action"
        )


def _parse(event: object, expected: Expected) -> ParsedEvent:
    if not isinstance(event, dict):
        raise _BadEventError(f"event is a {type(event).__name__}, not an EventBridge event object")
    if "alarmData" in event:
        raise _BadEventError(
            "event is a direct alarm-action invocation (alarmData); only EventBridge "
            "alarm events are accepted"
        )
    source = _field(event, "source", str, "event")
    if source != "aws.cloudwatch":
        raise _BadEventError(f"event source {show(source)} is not aws.cloudwatch")
    detail_type = _field(event, "detail-type", str, "event")
    if detail_type not in (STATE_CHANGE, CONTRIBUTOR_STATE_CHANGE):
        raise _BadEventError(f"detail-type {show(detail_type)} is not an alarm state change")
    event_id = _grammar(_field(event, "id", str, "event"), _EVENT_ID, "event.id", "an event id")
    account = _field(event, "account", str, "event")
    region = _field(event, "region", str, "event")
    _grammar(account, _ACCOUNT, "event.account", "a 12-digit account id")
    _grammar(region, _REGION, "event.region", "a region name")
    if (account, region) != (expected.account, expected.region):
        # A foreign event is rejected here, before anything is read or written: it never
        # becomes an incident and never counts in a circuit breaker. The envelope's account
        # and region are the alarm's own (aws-assumption: alarm-state-change-event-shape).
        raise _BadEventError(
            f"foreign event: alarm of account {account} in {region}, this function serves "
            f"{expected.account or 'an unknown account'} in "
            f"{expected.region or 'an unknown region'}"
        )
    _check_time(_field(event, "time", str, "event"), "event.time", expected)
    detail = _field(event, "detail", dict, "event")
    alarm_name = _grammar(
        _field(detail, "alarmName", str, "detail"), _ALARM_NAME, "detail.alarmName", "an alarm name"
    )
    prefix = expected.alarm_name_prefix
    if not alarm_name.startswith(prefix):
        raise _BadEventError(
            f"foreign alarm {show(alarm_name)}: name does not start with {prefix!r}"
        )
    if not _ALARM_SUFFIX.fullmatch(alarm_name[len(prefix) :]):
        raise _BadEventError(f"foreign alarm {show(alarm_name)}: not a name crashcart gives")
    alarm_arn = _alarm_arn(event.get("resources"), account, region, alarm_name)
    state = _field(detail, "state", dict, "detail")
    value = _field(state, "value", str, "detail.state")
    if value not in _STATES:
        raise _BadEventError(f"detail.state.value {show(value)} is not one of {', '.join(_STATES)}")
    changed_at = _check_time(
        _field(state, "timestamp", str, "detail.state"), "detail.state.timestamp", expected
    )
    reason = state.get("reason") if isinstance(state.get("reason"), str) else ""
    configuration = _field(detail, "configuration", dict, "detail")
    if "alarmRule" in configuration:
        raise _BadEventError(f"composite alarm {show(alarm_name)}: no single instance to act on")
    metrics = _field(configuration, "metrics", list, "detail.configuration")

    contributor_id: str | None = None
    previous: str | None
    suffix = alarm_name[len(prefix) :]
    if detail_type == CONTRIBUTOR_STATE_CHANGE:
        instance_id, contributor_id = _contributor_instance(detail, metrics, alarm_name)
        previous = None
        _check_suffix(alarm_name, suffix, FLEET_SUFFIX)
    else:
        instance_id = _single_metric_instance(metrics, alarm_name)
        _check_suffix(alarm_name, suffix, instance_id)
        previous_state = _field(detail, "previousState", dict, "detail")
        previous = _field(previous_state, "value", str, "detail.previousState")
        if previous not in _STATES:
            raise _BadEventError(f"detail.previousState.value {show(previous)} is not a state")

    mute = detail.get("muteDetail")
    if _muted(mute, changed_at):
        assert isinstance(mute, dict)
        return Ignored(
            reason=f"alarm muted by {mute['mutedByArn'][:300]}: no action while a mute rule "
            "applies",
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


def _check_suffix(alarm_name: str, suffix: str, head: str) -> None:
    """The name after the prefix begins with what crashcart puts there: the alarm's instance
    id (a per-instance or managed alarm) or ``fleet`` (the fleet alarm).

    A prefix check alone is not enough: another deployment whose stack name begins with ours
    and our digest has a longer prefix that starts with ours (``crashcart-a-1a2b3c4d-`` and
    ``crashcart-a-1a2b3c4d-x-5e6f7a8b-``); its alarms' suffixes, seen from ours, begin with
    its stack name instead.
    """
    if suffix != head and not suffix.startswith(f"{head}-"):
        raise _BadEventError(
            f"foreign alarm {show(alarm_name)}: not a name crashcart gives (after the prefix "
            f"it must begin with {head!r})"
        )


def _check_time(text: str, where: str, expected: Expected) -> datetime:
    """The timestamp, if it parses and lies in the window the function's clock allows."""
    moment = parse_time(text)
    if moment is None:
        raise _BadEventError(f"{where} {show(text)} is not an ISO-8601 time with an offset")
    now = expected.now
    if moment > now + CLOCK_SKEW:
        raise _BadEventError(
            f"{where} {iso(moment)} is {int((moment - now).total_seconds())} s ahead of this "
            f"function's clock ({iso(now)}); at most {int(CLOCK_SKEW.total_seconds())} s of "
            "clock skew is allowed"
        )
    if now - moment > expected.max_age:
        raise _BadEventError(
            f"{where} {iso(moment)} is {int((now - moment).total_seconds())} s old; events "
            f"older than {int(expected.max_age.total_seconds())} s (the deployment's retries "
            "of EventBridge and Lambda together) are stale"
        )
    return moment


def _alarm_arn(resources: object, account: str, region: str, alarm_name: str) -> str:
    """The alarm's ARN: ``resources`` must name exactly the alarm of the event."""
    if not isinstance(resources, list) or len(resources) != 1:
        raise _BadEventError("event.resources is not a list of one alarm ARN")
    arn = resources[0]
    pattern = (
        f"arn:{_PARTITION}:cloudwatch:{re.escape(region)}:{re.escape(account)}:alarm:"
        f"{re.escape(alarm_name)}"
    )
    if not isinstance(arn, str) or not re.fullmatch(pattern, arn):
        raise _BadEventError(
            f"event.resources[0] {show(arn)} is not the ARN of alarm {show(alarm_name)} in "
            f"{account} {region}"
        )
    return arn


def _muted(mute: object, changed_at: datetime) -> bool:
    """True when an alarm mute rule covers this state change (its window, if given, holds it)."""
    if not isinstance(mute, dict):
        return False
    by = mute.get("mutedByArn")
    if not isinstance(by, str) or not by:
        return False
    start = parse_time(mute.get("muteWindowStart"))
    end = parse_time(mute.get("muteWindowEnd"))
    if start is not None and changed_at < start:
        return False
    return not (end is not None and changed_at >= end)


def _check_instance_id(value: object, where: str) -> str:
    if not isinstance(value, str) or not _INSTANCE_ID.fullmatch(value):
        raise _BadEventError(f"{where} {show(value)} is not an EC2 instance id")
    return value


def _single_metric_instance(metrics: list[Any], alarm_name: str) -> str:
    if len(metrics) != 1:
        raise _BadEventError(
            f"alarm {show(alarm_name)} has {len(metrics)} metric entries (metric math or "
            f"anomaly band): only a single {METRIC_NAME} metric alarm is acted on"
        )
    entry = metrics[0]
    stat = _field(entry, "metricStat", dict, "detail.configuration.metrics[0]")
    metric = _field(stat, "metric", dict, "metricStat")
    namespace = _field(metric, "namespace", str, "metricStat.metric")
    name = _field(metric, "name", str, "metricStat.metric")
    if (namespace, name) != (METRIC_NAMESPACE, METRIC_NAME):
        raise _BadEventError(
            f"alarm {show(alarm_name)} watches {namespace[:100]} {name[:100]}, not "
            f"{METRIC_NAMESPACE} {METRIC_NAME}"
        )
    dimensions = _field(metric, "dimensions", dict, "metricStat.metric")
    if set(dimensions) != {"InstanceId"}:
        names = ", ".join(show(k) for k in list(dimensions)[:5])
        raise _BadEventError(
            f"alarm {show(alarm_name)} dimensions [{names}] are not exactly InstanceId"
        )
    return _check_instance_id(dimensions["InstanceId"], "dimension InstanceId")


def _contributor_instance(
    detail: dict[str, Any], metrics: list[Any], alarm_name: str
) -> tuple[str, str]:
    """The instance of a contributor of the construct's fleet alarm (and the contributor id).

    Only the construct's own query is accepted: ``MAX(StatusCheckFailed_Instance)`` from
    ``SCHEMA("AWS/EC2", InstanceId)`` grouped by ``InstanceId``; then the contributor's
    attributes are exactly ``{"InstanceId": ...}`` (aws-assumption: contributor-event-shape).
    """
    contributor = _field(detail, "alarmContributor", dict, "detail")
    contributor_id = _grammar(
        _field(contributor, "id", str, "detail.alarmContributor"),
        _CONTRIBUTOR_ID,
        "detail.alarmContributor.id",
        "a contributor id",
    )
    attributes = _field(contributor, "attributes", dict, "detail.alarmContributor")
    if len(metrics) != 1:
        raise _BadEventError(
            f"contributor alarm {show(alarm_name)} has {len(metrics)} metric entries"
        )
    expression = _field(metrics[0], "expression", str, "detail.configuration.metrics[0]")
    if len(expression) > 1000 or not _FLEET_QUERY.fullmatch(expression):
        raise _BadEventError(
            f"contributor alarm {show(alarm_name)} query {show(expression)} is not crashcart's "
            f'fleet query (MAX({METRIC_NAME}) FROM SCHEMA("{METRIC_NAMESPACE}", InstanceId) '
            "GROUP BY InstanceId)"
        )
    if set(attributes) != {"InstanceId"}:
        names = ", ".join(show(k) for k in list(attributes)[:5])
        raise _BadEventError(
            f"detail.alarmContributor.attributes [{names}] are not exactly InstanceId"
        )
    instance_id = _check_instance_id(attributes["InstanceId"], "contributor InstanceId")
    return instance_id, contributor_id
