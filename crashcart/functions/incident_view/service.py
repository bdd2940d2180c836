"""The central incident view: one table and one topic for every member account.

Flow: an EventBridge event -> parse (:mod:`.events`; bad event: reason logged, raised, so the
event ends in the function's dead-letter queue after Lambda's retries; nothing is written)
-> either

- a member's incident update (central bus): written under ``instance#<account>:<instance>``
  and the incident's sort key unless a newer update is already there, then announced; or
- a dump's ``metadata.json`` in the central bucket (default bus): linked to the account's
  instance's latest incident without a dump (within the attach window), or a new
  ``spontaneous`` incident is opened (the same decision as an account's own dump arrival,
  :func:`crashcart.functions.dump_arrival.decision.decide`), then announced.

Once a dump is linked (or found already linked: a retry), the view puts one "dump received"
event (:class:`crashcart.runtime.organisation.DumpReceived`) directly on the member's default
bus in this Region, so the member's own incident, overdue sweep and Auto Scaling hold learn
that the dump arrived (``CentralDumpReceiver`` in the member). If that fails, the central
record stays; the failure is logged, counted (metric ``MemberDumpEventsFailed``) and raised:
Lambda retries the event (the retry finds the dump linked and only sends again), then keeps
it in the dead-letter queue.

The view reads nothing from the dump: the triage job (``DumpTriageJob`` on the central
bucket) reads it and adds its report to the incident this function linked.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from crashcart.functions.dump_arrival.decision import decide
from crashcart.runtime import metrics
from crashcart.runtime.dumps import incident_pk_of
from crashcart.runtime.incident import iso
from crashcart.runtime.organisation import DumpReceived, IncidentUpdate

from .adapter import Adapter, MemberEventError
from .events import DumpArrived, parse_event

LOG = logging.getLogger("crashcart.incident_view")
LOG.setLevel(logging.INFO)


def process(
    event: Any,
    adapter: Adapter,
    *,
    now: datetime,
    request_id: str,
    function_name: str = "unknown",
) -> dict[str, Any]:
    report = parse_event(event, dump_bucket=adapter.settings.dump_bucket)
    if isinstance(report, IncidentUpdate):
        result = record_update(report, adapter, event_id=str(event.get("id", "")))
    else:
        result = record_dump(report, adapter, now=now, request_id=request_id)
        result = tell_member(report, result, adapter, now=now, function_name=function_name)
    LOG.info(json.dumps(result))
    return result


def tell_member(
    arrival: DumpArrived,
    result: dict[str, Any],
    adapter: Adapter,
    *,
    now: datetime,
    function_name: str,
) -> dict[str, Any]:
    """Send the member its "dump received" event (also for a duplicate: a retry after a
    failed send finds the dump linked, and the member ignores a repeat)."""
    received = DumpReceived(
        account=arrival.account,
        region=adapter.settings.region,
        instance_id=arrival.dump.instance_id,
        dump_key=arrival.dump.key,
        received_at=iso(now),
        summary=(
            f"shipped to the central dump bucket {arrival.bucket}: the central incident "
            "view and triage job have it"
        ),
    )
    try:
        event_id = adapter.send_dump_received(received)
    except MemberEventError as error:
        failed = {**result, "member_event": "failed", "reason": str(error)}
        LOG.error(json.dumps({"outcome": "member_event_failed", **failed}))
        metrics.write_stdout(member_event_failed_record(function_name=function_name, now=now))
        raise
    return {**result, "member_event": event_id}


def member_event_failed_record(*, function_name: str, now: datetime) -> str:
    """One embedded-metric line counting a "dump received" event that did not reach the
    member (aws-assumption: emf-lambda-stdout)."""
    return metrics.emf_line(
        metrics.INCIDENT_VIEW_OUTCOMES["member_event_failed"],
        1,
        function_name=function_name,
        now=now,
        fields={
            "message": "dump received event not delivered to the member's bus",
            "service": "crashcart-incident-view",
        },
    )


def record_update(update: IncidentUpdate, adapter: Adapter, *, event_id: str) -> dict[str, Any]:
    pk = incident_pk_of(update.instance_id, update.account)
    result = {
        "outcome": "recorded",
        "account": update.account,
        "instance_id": update.instance_id,
        "incident": update.incident,
        "state": str(update.state),
    }
    if not adapter.record_update(pk, update, event_id):
        return {**result, "outcome": "stale"}
    adapter.notify(
        f"crashcart: {update.account} {update.instance_id} {update.state}",
        "\n".join(
            [
                f"crashcart: incident update from account {update.account} ({update.region})",
                "",
                f"instance:  {update.instance_id} ({update.availability_zone or 'zone unknown'})",
                f"incident:  {update.incident}",
                f"state:     {update.state} at {update.updated_at}",
                f"reason:    {update.reason or '-'}",
            ]
        ),
    )
    return result


def record_dump(
    arrival: DumpArrived, adapter: Adapter, *, now: datetime, request_id: str
) -> dict[str, Any]:
    dump = arrival.dump
    pk = dump.incident_pk
    keys = [dump.key]
    for _attempt in range(3):
        decision = decide(
            adapter.latest_incident(pk), dump.key, now, adapter.settings.attach_window
        )
        if decision.action == "duplicate":
            return {"outcome": "duplicate", "account": arrival.account, "key": dump.key}
        if decision.action == "attach":
            done = adapter.attach_dump(pk, decision.incident_sk, keys, iso(now))
        else:
            done = adapter.open_spontaneous(
                pk,
                decision.incident_sk,
                account=arrival.account,
                instance_id=dump.instance_id,
                keys=keys,
                reason=f"dump arrived: {decision.reason}",
                request_id=request_id,
            )
        if done:
            break
        now = now + timedelta(seconds=1)  # lost a race: decide again on fresh facts
    else:
        raise RuntimeError(f"could not record the dump {dump.key} after 3 attempts")
    adapter.notify(
        f"crashcart: dump from {arrival.account} {dump.instance_id}",
        "\n".join(
            [
                f"crashcart: crash dump received from account {arrival.account}",
                "",
                f"instance:  {dump.instance_id}",
                f"incident:  {decision.incident_sk} ({decision.reason})",
                f"object:    s3://{arrival.bucket}/{dump.key}",
                "",
                "the triage job (if deployed) adds its report to this incident",
            ]
        ),
    )
    return {
        "outcome": decision.action,
        "account": arrival.account,
        "instance_id": dump.instance_id,
        "incident": decision.incident_sk,
    }
