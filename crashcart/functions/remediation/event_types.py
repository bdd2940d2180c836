"""The typed results of the remediation function's event parsing, and their small helpers.

What :func:`.events.parse` returns (an :class:`AlarmEvent` that asks for an action, an
:class:`Ignored` or a :class:`Rejected` event, with a reason), what makes an event ours
(:class:`Expected`), and the time and rendering helpers the parser, the service, the sweep
and the lifecycle hold share (:func:`iso`, :func:`parse_time`, :func:`show`). Standard
library only; every name is also importable from :mod:`.events`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

#: How many characters of a string value a reason quotes.
_SHOWN = 80


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


@dataclass(frozen=True, kw_only=True)
class Expected:
    """What makes an event ours, and the clock window its timestamps must fall in.

    ``account`` / ``region``: the function's own (from its ARN); ``now``: the function's
    clock (aware); ``max_age``: the oldest a state change may be when it is handled.
    """

    alarm_name_prefix: str
    account: str
    region: str
    now: datetime
    max_age: timedelta


def iso(moment: datetime) -> str:
    """``moment`` as ISO-8601 UTC with whole seconds and a ``Z`` (the incident key format)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object) -> datetime | None:
    """An aware UTC datetime from CloudWatch / EventBridge timestamps, or None if invalid.

    Accepts ``2019-10-02T17:04:40.989+0000`` (alarm states), ``2019-10-02T17:04:40Z``
    (envelopes) and other ISO-8601 forms *with* an offset; a naive time is rejected, and so is
    one that cannot be expressed in UTC (``9999-12-31T23:59:59-23:59`` overflows). Never raises.
    """
    if not isinstance(text, str) or len(text) > 40:
        return None
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            return None
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def show(value: object) -> str:
    """A short, safe rendering of a value from an event, for reasons and logs.

    Strings are quoted and cut to a few dozen characters (with their length); containers and
    other objects are named by type only; nothing here can raise or grow with the input.
    """
    if isinstance(value, str):
        if len(value) <= _SHOWN:
            return repr(value)
        return f"{value[:_SHOWN]!r}... ({len(value)} characters)"
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return repr(value) if value.bit_length() <= 64 else f"<int of {value.bit_length()} bits>"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict | list | tuple):
        return f"<{type(value).__name__} of {len(value)}>"
    return f"<{type(value).__name__}>"


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What one event came to (the handler's answer, and the tests')."""

    outcome: str
    reason: str
    instance_id: str | None = None
    incident: str | None = None
    guard: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}
