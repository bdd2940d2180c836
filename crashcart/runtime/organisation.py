"""The organisation's contract: a member account's incident update, as sent to the central bus,
and the central account's "dump received" event, sent back to the member's default bus.

A member's remediation sends each incident change with ``PutEvents`` directly to the central
account's bus (one hop: aws-assumption: org-eventbridge-one-hop); the central incident view
parses it with :func:`parse_incident_event`. Defined once here, imported by the sender and the
receiver (bundled into both function assets).

Detail (``schema`` 1)::

    {"schema": 1, "account": "<12 digits>", "region": "<region>", "instance_id": "i-...",
     "incident": "incident#<opened at>", "state": "<State value>",
     "availability_zone": "<az or null>", "updated_at": "<ISO-8601 Z>", "reason": "<or null>"}

An event is accepted only if ``detail.account`` equals the envelope's ``account`` (set by
EventBridge from the sender's credentials, so a member cannot write another account's
incidents) and the bus policy let it in (``aws:PrincipalOrgID``).

The way back (:class:`DumpReceived`, ``schema`` 1): when the central incident view links a
member's dump, it puts one event directly on that member's default bus in the same Region
(source ``crashcart.central``, detail type ``Crashcart Dump Received``)::

    {"schema": 1, "account": "<member>", "region": "<region>", "instance_id": "i-...",
     "dump_key": "dumps/<member>/<role id>:<instance id>/<dump id>/metadata.json",
     "received_at": "<ISO-8601 Z>", "summary": "<one line>"}

The member's receiver (``CentralDumpReceiver``) accepts it with
:func:`parse_dump_received_event` only if the envelope's ``account`` is the central account,
``detail.account`` / ``detail.region`` are the receiver's own, and the key is that account's
and instance's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from crashcart.runtime import untrusted
from crashcart.runtime.dumps import BadKeyError, parse_metadata_key
from crashcart.runtime.incident import INCIDENT_PREFIX, TIME_FORMAT, State, parse_time

#: The event's source and detail type (the central bus accepts only this source).
INCIDENT_SOURCE: Final = "crashcart.incident"
INCIDENT_DETAIL_TYPE: Final = "Crashcart Incident Update"
SCHEMA: Final = 1
#: The way back: the central view -> a member's default bus.
DUMP_RECEIVED_SOURCE: Final = "crashcart.central"
DUMP_RECEIVED_DETAIL_TYPE: Final = "Crashcart Dump Received"
#: The longest summary kept (one escaped line).
SUMMARY_CHARS: Final = 400
#: The longest reason kept (escaped, one line: it comes from another account).
REASON_CHARS: Final = 400

ACCOUNT_ID: Final = re.compile(r"[0-9]{12}")
REGION: Final = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}")
INSTANCE_ID: Final = re.compile(r"i-[0-9a-f]{8,17}")
AVAILABILITY_ZONE: Final = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}[a-z]")
INCIDENT_SK: Final = re.compile(re.escape(INCIDENT_PREFIX) + r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
#: An organisation id (``o-`` and 10 to 32 lower-case letters or digits).
ORGANISATION_ID: Final = re.compile(r"o-[a-z0-9]{10,32}")


class BadIncidentEventError(ValueError):
    """The event is not an incident update the central view may record; the message says why."""


@dataclass(frozen=True)
class IncidentUpdate:
    """One member incident change (the event's detail)."""

    account: str
    region: str
    instance_id: str
    incident: str
    state: State
    availability_zone: str | None
    updated_at: str
    reason: str | None

    def detail(self) -> dict[str, Any]:
        """The event detail (what the sender puts, JSON-encoded, in ``Detail``)."""
        return {
            "schema": SCHEMA,
            "account": self.account,
            "region": self.region,
            "instance_id": self.instance_id,
            "incident": self.incident,
            "state": str(self.state),
            "availability_zone": self.availability_zone,
            "updated_at": self.updated_at,
            "reason": self.reason,
        }


def _field(
    detail: dict[str, Any], name: str, pattern: re.Pattern[str], *, null: bool = False
) -> Any:
    value = detail.get(name)
    if value is None and null:
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        shown = untrusted.line(value, 60) if isinstance(value, str) else type(value).__name__
        raise BadIncidentEventError(f"detail.{name} {shown} is not {pattern.pattern}")
    return value


def parse_incident_event(event: Any) -> IncidentUpdate:
    """The incident update an EventBridge event carries, checked field by field."""
    if not isinstance(event, dict):
        raise BadIncidentEventError(f"event is a {type(event).__name__}, not an object")
    if event.get("source") != INCIDENT_SOURCE or event.get("detail-type") != INCIDENT_DETAIL_TYPE:
        raise BadIncidentEventError(
            f"not a crashcart incident update (source={untrusted.line(event.get('source'), 60)}, "
            f"detail-type={untrusted.line(event.get('detail-type'), 60)})"
        )
    sender = event.get("account")
    if not isinstance(sender, str) or not ACCOUNT_ID.fullmatch(sender):
        raise BadIncidentEventError("the envelope has no 12-digit account")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise BadIncidentEventError("event has no detail object")
    if detail.get("schema") != SCHEMA:
        raise BadIncidentEventError(
            f"detail.schema {untrusted.line(detail.get('schema'), 20)} is not {SCHEMA}"
        )
    account = _field(detail, "account", ACCOUNT_ID)
    if account != sender:
        # aws-assumption: eventbridge-envelope-account-is-the-sender
        raise BadIncidentEventError(
            f"detail.account {account} is not the sending account {sender}: a member may "
            "only report its own incidents"
        )
    state = detail.get("state")
    if state not in {str(s) for s in State}:
        raise BadIncidentEventError(
            f"detail.state {untrusted.line(state, 40)} is not one of "
            + ", ".join(str(s) for s in State)
        )
    updated_at = detail.get("updated_at")
    try:
        if not isinstance(updated_at, str):
            raise ValueError
        parse_time(updated_at)
    except ValueError:
        raise BadIncidentEventError(
            f"detail.updated_at {untrusted.line(updated_at, 40)} is not {TIME_FORMAT}"
        ) from None
    reason = detail.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise BadIncidentEventError(f"detail.reason is a {type(reason).__name__}, not text")
    return IncidentUpdate(
        account=account,
        region=_field(detail, "region", REGION),
        instance_id=_field(detail, "instance_id", INSTANCE_ID),
        incident=_field(detail, "incident", INCIDENT_SK),
        state=State(state),
        availability_zone=_field(detail, "availability_zone", AVAILABILITY_ZONE, null=True),
        updated_at=updated_at,
        reason=None if reason is None else untrusted.line(reason, REASON_CHARS),
    )


class BadDumpReceivedError(ValueError):
    """The event is not a "dump received" event this member may record; says why."""


@dataclass(frozen=True)
class DumpReceived:
    """The central view linked a member's dump (the event's detail)."""

    account: str
    region: str
    instance_id: str
    dump_key: str
    received_at: str
    summary: str

    def detail(self) -> dict[str, Any]:
        """The event detail (JSON-encoded into ``Detail`` by the central view)."""
        return {
            "schema": SCHEMA,
            "account": self.account,
            "region": self.region,
            "instance_id": self.instance_id,
            "dump_key": self.dump_key,
            "received_at": self.received_at,
            "summary": self.summary,
        }


def parse_dump_received_event(
    event: Any, *, central_account: str, account: str, region: str
) -> DumpReceived:
    """The "dump received" event a member's receiver may record, checked field by field:
    sent by ``central_account`` (the envelope, set by EventBridge), for ``account`` and
    ``region`` (the receiver's own), naming a central key of that account and instance."""
    if not isinstance(event, dict):
        raise BadDumpReceivedError(f"event is a {type(event).__name__}, not an object")
    if (
        event.get("source") != DUMP_RECEIVED_SOURCE
        or event.get("detail-type") != DUMP_RECEIVED_DETAIL_TYPE
    ):
        raise BadDumpReceivedError(
            f"not a crashcart dump-received event (source="
            f"{untrusted.line(event.get('source'), 60)}, "
            f"detail-type={untrusted.line(event.get('detail-type'), 60)})"
        )
    sender = event.get("account")
    if sender != central_account:
        # aws-assumption: eventbridge-envelope-account-is-the-sender
        raise BadDumpReceivedError(
            f"sent by account {untrusted.line(sender, 20)}, not by the central account "
            f"{central_account}: only the central account reports dumps"
        )
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise BadDumpReceivedError("event has no detail object")
    if detail.get("schema") != SCHEMA:
        raise BadDumpReceivedError(
            f"detail.schema {untrusted.line(detail.get('schema'), 20)} is not {SCHEMA}"
        )
    try:
        named = _field(detail, "account", ACCOUNT_ID)
        in_region = _field(detail, "region", REGION)
        instance_id = _field(detail, "instance_id", INSTANCE_ID)
    except BadIncidentEventError as error:
        raise BadDumpReceivedError(str(error)) from None
    if named != account:
        raise BadDumpReceivedError(
            f"detail.account {named} is not this account {account}: the event was meant "
            "for another member"
        )
    if in_region != region:
        raise BadDumpReceivedError(f"detail.region {in_region} is not this Region {region}")
    raw_key = detail.get("dump_key")
    try:
        if not isinstance(raw_key, str):
            raise BadKeyError("detail.dump_key is not text")
        dump = parse_metadata_key(raw_key)
    except BadKeyError as error:
        raise BadDumpReceivedError(str(error)) from None
    if dump.key != raw_key or dump.account != account or dump.instance_id != instance_id:
        raise BadDumpReceivedError(
            f"detail.dump_key {untrusted.line(raw_key, 200)} is not a central key of "
            f"account {account} and instance {instance_id}"
        )
    received_at = detail.get("received_at")
    try:
        if not isinstance(received_at, str):
            raise ValueError
        parse_time(received_at)
    except ValueError:
        raise BadDumpReceivedError(
            f"detail.received_at {untrusted.line(received_at, 40)} is not {TIME_FORMAT}"
        ) from None
    summary = detail.get("summary")
    if not isinstance(summary, str):
        raise BadDumpReceivedError(f"detail.summary is a {type(summary).__name__}, not text")
    return DumpReceived(
        account=account,
        region=region,
        instance_id=instance_id,
        dump_key=dump.key,
        received_at=received_at,
        summary=untrusted.line(summary, SUMMARY_CHARS),
    )
