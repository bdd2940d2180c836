"""Where a dump belongs: attach it to the instance's latest incident, or open a new one (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from crashcart.runtime.incident import incident_sk, iso


@dataclass(frozen=True)
class Incident:
    sk: str
    opened_at: datetime
    state: str
    dump_keys: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    action: str  # "attach" | "open" | "duplicate"
    incident_sk: str
    reason: str


def decide(latest: Incident | None, arrival_key: str, now: datetime, window: timedelta) -> Decision:
    """Attach the dump to the latest incident, or open a spontaneous one."""
    new_sk = incident_sk(iso(now))
    if latest is None:
        return Decision("open", new_sk, "no incident for this instance")
    if arrival_key in latest.dump_keys:
        return Decision("duplicate", latest.sk, "this dump is already linked (event repeated)")
    if latest.dump_keys:
        return Decision("open", new_sk, "the latest incident already has a dump")
    if now - latest.opened_at > window:
        return Decision(
            "open",
            new_sk,
            f"the latest incident was opened {iso(latest.opened_at)}, before the "
            f"{int(window.total_seconds())} s window",
        )
    return Decision("attach", latest.sk, f"dump for incident opened {iso(latest.opened_at)}")
