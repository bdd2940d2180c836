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
from dataclasses import dataclass, replace
from typing import Any, Final

from crashcart.runtime import incident_events, untrusted
from crashcart.runtime.dumps import BadKeyError, parse_metadata_key
from crashcart.runtime.incident import TIME_FORMAT, parse_time

#: The event's source and detail type (the central bus accepts only this source).
INCIDENT_SOURCE: Final = incident_events.SOURCE
INCIDENT_DETAIL_TYPE: Final = incident_events.DETAIL_TYPE
SCHEMA: Final = incident_events.SCHEMA
#: The way back: the central view -> a member's default bus.
DUMP_RECEIVED_SOURCE: Final = "crashcart.central"
DUMP_RECEIVED_DETAIL_TYPE: Final = "Crashcart Dump Received"
#: The longest summary kept (one escaped line).
SUMMARY_CHARS: Final = 400
#: The longest reason kept (escaped, one line: it comes from another account).
REASON_CHARS: Final = 400

ACCOUNT_ID: Final = incident_events.ACCOUNT_ID
REGION: Final = incident_events.REGION
INSTANCE_ID: Final = incident_events.INSTANCE_ID
#: An organisation id (``o-`` and 10 to 32 lower-case letters or digits).
ORGANISATION_ID: Final = re.compile(r"o-[a-z0-9]{10,32}")


#: The incident update's error, type and reader: one definition, in
#: :mod:`crashcart.runtime.incident_events` (the sender's module); named here too for the view.
BadIncidentEventError = incident_events.IncidentEventError
IncidentUpdate = incident_events.IncidentUpdate


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
    """The incident update an EventBridge event carries (checked field by field, and
    ``detail.account`` against the sending account, by
    :func:`crashcart.runtime.incident_events.parse_incident_event`), its reason made one
    printable line: it was written in another account."""
    update = incident_events.parse_incident_event(event)
    if update.reason is None:
        return update
    return replace(update, reason=untrusted.line(update.reason, REASON_CHARS))


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
