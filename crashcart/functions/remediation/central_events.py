"""Incident events to the organisation's central bus, sent where incident states are written.

When the function is given ``CRASHCART_ORG_EVENT_BUS_ARN``, its incident store is a
:class:`ReportingIncidentStore`: every incident state it writes (the claim transaction's
``claimed`` / ``skipped`` / ``escalated``, then ``interrupted`` / ``skipped`` (dry run) /
``failed``, and ``recovered``) is followed by ONE ``PutEvents`` entry to the central bus, in
the format of :mod:`crashcart.runtime.incident_events`. The service does not know: it
writes its records as always.

The local table is the record. The event is sent after the write succeeded; a failed
``PutEvents`` (an exception, or a ``FailedEntryCount`` answer) is logged with the whole
event and counted (``IncidentEventsFailed``), and never raised: the interrupt goes ahead
and the incident stays recorded in the member account.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from crashcart.runtime.incident import INSTANCE_PREFIX, State
from crashcart.runtime.incident_events import (
    PUBLISHED_STATES,
    IncidentEventError,
    IncidentUpdate,
    incident_update,
    put_events_entry,
)

from .claims import IncidentStore, Item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from .telemetry import Log


class CentralBus:
    """``events:PutEvents`` of one incident update to the central bus (by its ARN).

    ``client``: a boto3 EventBridge client (typed ``Any``: no typing package for it is installed).
    """

    def __init__(self, client: Any, bus_arn: str, *, account: str, region: str, log: Log) -> None:
        self._client = client
        self.bus_arn = bus_arn
        self.account = account
        self.region = region
        self._log = log

    def send(
        self,
        *,
        instance_id: str,
        incident: str,
        state: str,
        availability_zone: str | None,
        updated_at: str,
        reason: str | None,
    ) -> bool:
        """True when the bus took the event; False (logged, counted) otherwise. Never raises."""
        update: IncidentUpdate | None = None
        try:
            update = incident_update(
                account=self.account,
                region=self.region,
                instance_id=instance_id,
                incident=incident,
                state=state,
                availability_zone=availability_zone,
                updated_at=updated_at,
                reason=reason,
            )
            # aws-assumption: eventbridge-put-events-cross-account
            response = self._client.put_events(Entries=[put_events_entry(update, self.bus_arn)])
            failed = int(response.get("FailedEntryCount", 0) or 0)
            if failed:
                first = (response.get("Entries") or [{}])[0]
                problem = f"{first.get('ErrorCode', '?')}: {first.get('ErrorMessage', '')}"
            else:
                return True
        except IncidentEventError as error:
            problem = f"not a valid incident event: {error}"
        except Exception as error:  # an event never stops the remediation
            problem = f"{type(error).__name__}: {error}"
        self._log.error(
            "incident event not sent to the central bus (the local record stands)",
            metric="incident_event_failed",
            error=problem[:500],
            bus=self.bus_arn,
            instance_id=instance_id,
            incident=incident,
            state=state,
            event=update.detail() if update is not None else None,
        )
        return False


def _text(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    if isinstance(value, dict) and "S" in value:
        return str(value["S"])
    return None


class ReportingIncidentStore(IncidentStore):
    """The incident store, plus one central-bus event after each incident state written."""

    def __init__(self, client: DynamoDBClient, table: str, bus: CentralBus) -> None:
        super().__init__(client, table)
        self.bus = bus
        #: (instance id, incident) -> availability zone, from the claim's incident item.
        self._zones: dict[tuple[str, str], str | None] = {}

    def commit(self, items: Sequence[Item]) -> bool:
        applied = super().commit(items)
        if applied and items:
            incident = items[0].get("Put", {}).get("Item", {})
            pk, sk = _text(incident, "pk"), _text(incident, "sk")
            state = _text(incident, "state")
            if pk and sk and state and pk.startswith(INSTANCE_PREFIX):
                instance_id = pk[len(INSTANCE_PREFIX) :]
                zone = _text(incident, "availability_zone")
                self._zones[(instance_id, sk)] = zone
                self.bus.send(
                    instance_id=instance_id,
                    incident=sk,
                    state=state,
                    availability_zone=zone,
                    updated_at=_text(incident, "updated_at") or "",
                    reason=_text(incident, "reason"),
                )
        return applied

    def update_incident(
        self,
        instance_id: str,
        sk: str,
        values: Mapping[str, object],
        *,
        expected_state: str | None = None,
    ) -> bool:
        written = super().update_incident(instance_id, sk, values, expected_state=expected_state)
        state = values.get("state")
        if written and isinstance(state, str) and state in PUBLISHED_STATES:
            reason = values.get("reason")
            self.bus.send(
                instance_id=instance_id,
                incident=sk,
                state=state,
                availability_zone=self._zones.get((instance_id, sk)),
                updated_at=str(values.get("updated_at", "")),
                reason=reason if isinstance(reason, str) else None,
            )
        return written

    def latest_incident(self, instance_id: str) -> Item | None:
        """As the store's; remembers the incident's zone for the ``recovered`` event after it."""
        latest = super().latest_incident(instance_id)
        sk = _text(latest or {}, "sk")
        if latest is not None and sk is not None:
            self._zones[(instance_id, sk)] = _text(latest, "availability_zone")
        return latest

    def mark_recovered(self, instance_id: str, sk: str, now_iso: str) -> bool:
        changed = super().mark_recovered(instance_id, sk, now_iso)
        if changed:
            self.bus.send(
                instance_id=instance_id,
                incident=sk,
                state=State.RECOVERED,
                availability_zone=self._zones.get((instance_id, sk)),
                updated_at=now_iso,
                reason="the alarm is OK again",
            )
        return changed
