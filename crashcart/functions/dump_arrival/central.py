"""The central account's "dump received" event: the member's own record of a dump that landed
in the organisation's central bucket (``CentralDumpReceiver``).

The central incident view puts the event on this member's default bus
(:class:`crashcart.runtime.organisation.DumpReceived`); it is checked before anything is
written (sent by the central account, for this account and Region, naming a central key of
this account's instance) and then recorded exactly as an in-account arrival: the same
decision (:func:`.decision.decide`: attach to the instance's latest incident within the
window, or open a ``spontaneous`` one) and the same writes (state ``dump-received``,
``dump_keys``, ``summary``), so the overdue sweep and the Auto Scaling hold see the dump.
``dump_keys`` holds the central ``metadata.json`` key; the dump itself stays in the central
bucket (this account cannot read it).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from crashcart.runtime.incident import Origin, parse_time
from crashcart.runtime.organisation import BadDumpReceivedError, parse_dump_received_event

from .adapter import Adapter
from .events import BadEventError
from .placement import place

LOG = logging.getLogger("crashcart.dump_arrival")


def parse(event: Any, adapter: Adapter) -> Any:
    """The checked event (:class:`BadEventError` with the reason otherwise)."""
    settings = adapter.settings
    if not (settings.central_account and settings.member_account and settings.region):
        raise BadEventError(
            "a crashcart.central event reached a dump-arrival function that takes none "
            "(CRASHCART_CENTRAL_ACCOUNT / CRASHCART_MEMBER_ACCOUNT unset)"
        )
    try:
        return parse_dump_received_event(
            event,
            central_account=settings.central_account,
            account=settings.member_account,
            region=settings.region,
        )
    except BadDumpReceivedError as error:
        raise BadEventError(str(error)) from None


def process(event: Any, adapter: Adapter, *, request_id: str) -> dict[str, Any]:
    """Record the central dump on this account's incident table, then notify."""
    received = parse(event, adapter)
    # Placed at the dump's arrival time (the central view's), not this delivery's: a retried
    # event places the dump as it would have been placed on time.
    decision = place(
        adapter,
        instance_id=received.instance_id,
        arrival_key=received.dump_key,
        keys=[received.dump_key],
        summary=received.summary,
        now=parse_time(received.received_at),
        reason="dump arrived in the central bucket",
        request_id=request_id,
    )
    if decision.action == "duplicate":
        LOG.info(json.dumps({"outcome": "duplicate", "key": received.dump_key}))
        return {"outcome": "duplicate", "incident": decision.incident_sk}
    origin = Origin.SPONTANEOUS if decision.action == "open" else Origin.REMEDIATION
    adapter.notify(
        f"crashcart: dump from {received.instance_id} received centrally",
        "\n".join(
            [
                f"crashcart: crash dump from {received.instance_id} received in the "
                f"organisation's central account {adapter.settings.central_account}",
                "",
                f"incident:  {decision.incident_sk} ({origin}; {decision.reason})",
                f"received:  {received.received_at} ({received.region})",
                f"object:    {received.dump_key} (central bucket; read it there)",
                f"summary:   {received.summary}",
            ]
        ),
    )
    result = {
        "outcome": decision.action,
        "incident": decision.incident_sk,
        "instance_id": received.instance_id,
        "central": True,
    }
    LOG.info(json.dumps(result))
    return result
