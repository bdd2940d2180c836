"""Incident events: what a member account's remediation tells the organisation's central bus.

Each time the remediation writes an incident state (``claimed``, ``interrupted``,
``skipped``, ``escalated``, ``failed``, ``recovered``) it sends ONE event with
``events:PutEvents`` directly to the central bus ARN (one hop: EventBridge does not forward
an event a second time; aws-assumption: eventbridge-put-events-cross-account):

- ``Source``: :data:`SOURCE` (``crashcart.incident``);
- ``DetailType``: :data:`DETAIL_TYPE` (``Crashcart Incident Update``);
- ``Detail`` (JSON, :data:`SCHEMA` 1)::

    {"schema": 1, "account": "<12 digits>", "region": "<region>", "instance_id": "i-...",
     "incident": "incident#<opened_at>", "state": "<State value>",
     "availability_zone": "<az or null>", "updated_at": "<ISO-8601 Z>",
     "reason": "<text or null>"}

The local incident table stays the record; the event is a copy for the central view, and
a failed ``PutEvents`` never stops an interrupt (the remediation logs and counts it).

The central view imports :func:`parse_incident_event` to accept an event: a well-formed
detail whose ``account`` equals the envelope's ``account`` (EventBridge sets the envelope
account to the sender's; a member can name only itself). Anything else raises
:class:`IncidentEventError` with the reason, for the view to log and keep in its DLQ.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from crashcart.runtime.incident import INCIDENT_PREFIX, State

#: ``Source`` of every incident event.
SOURCE: Final = "crashcart.incident"
#: ``DetailType`` of every incident event.
DETAIL_TYPE: Final = "Crashcart Incident Update"
#: The detail's ``schema``; a reader refuses others.
SCHEMA: Final = 1
#: States a member's remediation publishes (the dump states are written in the central
#: account by the central bucket's own dump arrival).
PUBLISHED_STATES: Final = frozenset(
    {
        State.CLAIMED,
        State.INTERRUPTED,
        State.SKIPPED,
        State.ESCALATED,
        State.FAILED,
        State.RECOVERED,
    }
)
#: The longest ``reason`` an event carries (the record keeps the whole reason): keeps every
#: entry far below PutEvents' 256 KB entry limit (aws-assumption: eventbridge-put-events-size).
MAX_REASON: Final = 2_000
#: The most one entry may be (PutEvents counts Source, DetailType, Detail, Resources and the
#: bus name, UTF-8); the builder refuses more rather than have EventBridge drop the entry.
# aws-assumption: eventbridge-put-events-size
MAX_ENTRY_BYTES: Final = 256 * 1024

#: The identifiers an event names (the central view's "dump received" reader uses them too).
ACCOUNT_ID: Final = re.compile(r"[0-9]{12}")
REGION: Final = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}")
INSTANCE_ID: Final = re.compile(r"i-[0-9a-f]{8,17}")
_ZONE = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}[a-z]{1,2}|[a-z]{3,4}[0-9]-az[0-9]{1,2}")
#: ``crashcart.runtime.incident.TIME_FORMAT`` (UTC, to the second).
_ISO_Z = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
#: An incident's sort key: ``incident#`` and the time it opened.
_INCIDENT_SK = re.compile(re.escape(INCIDENT_PREFIX) + _ISO_Z.pattern)
_FIELDS: Final = frozenset(
    {
        "schema",
        "account",
        "region",
        "instance_id",
        "incident",
        "state",
        "availability_zone",
        "updated_at",
        "reason",
    }
)


class IncidentEventError(ValueError):
    """An incident event that is not ours or not well formed (names the field and why)."""


@dataclass(frozen=True, kw_only=True)
class IncidentUpdate:
    """One incident state, as an event carries it (validated)."""

    account: str
    region: str
    instance_id: str
    incident: str
    state: State
    availability_zone: str | None
    updated_at: str
    reason: str | None

    def detail(self) -> dict[str, Any]:
        """The event's ``Detail`` object (keys in the contract's order)."""
        return {
            "schema": SCHEMA,
            "account": self.account,
            "region": self.region,
            "instance_id": self.instance_id,
            "incident": self.incident,
            "state": self.state.value,
            "availability_zone": self.availability_zone,
            "updated_at": self.updated_at,
            "reason": self.reason,
        }


def incident_update(
    *,
    account: str,
    region: str,
    instance_id: str,
    incident: str,
    state: str,
    availability_zone: str | None,
    updated_at: str,
    reason: str | None,
) -> IncidentUpdate:
    """A validated update (``reason`` cut to :data:`MAX_REASON` characters)."""
    detail = {
        "schema": SCHEMA,
        "account": account,
        "region": region,
        "instance_id": instance_id,
        "incident": incident,
        "state": state,
        "availability_zone": availability_zone or None,
        "updated_at": updated_at,
        "reason": reason[:MAX_REASON] if reason is not None else None,
    }
    return _update_from_detail(detail)


def put_events_entry(update: IncidentUpdate, bus_arn: str) -> dict[str, Any]:
    """The one ``PutEvents`` entry for ``update`` on the bus ``bus_arn`` (an ARN: the
    central bus is in another account)."""
    entry = {
        "Source": SOURCE,
        "DetailType": DETAIL_TYPE,
        "Detail": json.dumps(update.detail(), separators=(",", ":")),
        "EventBusName": bus_arn,
    }
    size = sum(len(str(v).encode("utf-8")) for v in entry.values())
    if size > MAX_ENTRY_BYTES:  # cannot happen with MAX_REASON; refuse rather than be dropped
        raise IncidentEventError(f"entry is {size} bytes, PutEvents takes {MAX_ENTRY_BYTES}")
    return entry


def parse_incident_event(event: object) -> IncidentUpdate:
    """Validate an EventBridge event from the central bus; raise :class:`IncidentEventError`.

    Checks ``source``, ``detail-type``, the detail's schema and every field, and that
    ``detail.account`` equals the envelope's ``account`` (the sender's account).
    """
    if not isinstance(event, Mapping):
        raise IncidentEventError(f"event is a {type(event).__name__}, not an object")
    if event.get("source") != SOURCE:
        raise IncidentEventError(f"source {event.get('source')!r} is not {SOURCE!r}")
    if event.get("detail-type") != DETAIL_TYPE:
        raise IncidentEventError(f"detail-type {event.get('detail-type')!r} is not {DETAIL_TYPE!r}")
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise IncidentEventError("detail is not an object")
    update = _update_from_detail(detail)
    envelope = event.get("account")
    if envelope != update.account:
        raise IncidentEventError(
            f"detail.account {update.account} is not the sending account {envelope!r}: a "
            "member may report only its own incidents"
        )
    return update


def _text(detail: Mapping[str, Any], name: str, pattern: re.Pattern[str] | None) -> str:
    value = detail.get(name)
    if not isinstance(value, str) or not value:
        raise IncidentEventError(f"{name}={value!r}: must be a non-empty string")
    if pattern is not None and not pattern.fullmatch(value):
        raise IncidentEventError(f"{name}={value[:80]!r}: does not match {pattern.pattern}")
    return value


def _update_from_detail(detail: Mapping[str, Any]) -> IncidentUpdate:
    extra = set(detail) - _FIELDS
    if extra:
        raise IncidentEventError(f"unknown detail fields {sorted(extra)[:5]}")
    schema = detail.get("schema")
    if schema != SCHEMA or isinstance(schema, bool):
        raise IncidentEventError(f"schema={schema!r}: this reader understands {SCHEMA}")
    incident = _text(detail, "incident", None)
    if not _INCIDENT_SK.fullmatch(incident):
        raise IncidentEventError(
            f"incident={incident[:80]!r}: must be {INCIDENT_PREFIX}<opened at, ISO-8601 Z>"
        )
    state_text = _text(detail, "state", None)
    try:
        state = State(state_text)
    except ValueError:
        raise IncidentEventError(f"state={state_text[:40]!r}: not an incident state") from None
    if state not in PUBLISHED_STATES:
        raise IncidentEventError(f"state={state.value!r}: not a state a remediation publishes")
    zone = detail.get("availability_zone")
    if zone is not None:
        zone = _text(detail, "availability_zone", _ZONE)
    reason = detail.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise IncidentEventError(f"reason: must be null or text of at most {MAX_REASON} chars")
    updated_at = _text(detail, "updated_at", _ISO_Z)
    return IncidentUpdate(
        account=_text(detail, "account", ACCOUNT_ID),
        region=_text(detail, "region", REGION),
        instance_id=_text(detail, "instance_id", INSTANCE_ID),
        incident=incident,
        state=state,
        availability_zone=zone,
        updated_at=updated_at,
        reason=reason,
    )
