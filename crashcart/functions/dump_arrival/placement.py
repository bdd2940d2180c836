"""Place a dump on its instance's incident: decide, then write (conditional), deciding again
on fresh facts when a concurrent write won. Shared by the in-account arrival (:mod:`.service`)
and the central account's "dump received" event (:mod:`.central`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from crashcart.runtime.incident import iso

from .adapter import Adapter
from .decision import Decision, decide


def place(
    adapter: Adapter,
    *,
    instance_id: str,
    arrival_key: str,
    keys: list[str],
    summary: str,
    now: datetime,
    reason: str,
    request_id: str,
    capture_memory: dict[str, int] | None = None,
) -> Decision:
    """The decision carried out (``duplicate``: nothing written). ``reason`` prefixes the
    reason of a new ``spontaneous`` incident; ``capture_memory`` (the capture kernel's
    figures from the dump's metadata) is recorded with the dump."""
    for _attempt in range(3):
        latest = adapter.latest_incident(instance_id)
        decision = decide(latest, arrival_key, now, adapter.settings.attach_window)
        if decision.action == "duplicate":
            return decision
        if decision.action == "attach":
            done = adapter.attach(
                instance_id, decision.incident_sk, keys, summary, iso(now), capture_memory
            )
        else:
            done = adapter.open(
                instance_id,
                decision.incident_sk,
                keys,
                summary,
                f"{reason}: {decision.reason}",
                request_id,
                capture_memory,
            )
        if done:
            return decision
        now = now + timedelta(seconds=1)  # lost a race: decide again on fresh facts
    raise RuntimeError(f"could not record the dump {arrival_key} after 3 attempts")
