"""The hold and escalation decisions: pure functions over gathered facts (no I/O, no clock).

- :func:`dump_deadline_seconds`: how long a dump may take, from the instance's memory.
- :func:`on_lifecycle_action`: hold a terminating instance, continue it, or look closer
  (impaired without an incident: the remediation's guards decide an interrupt).
- :func:`on_tick`: renew a hold with a heartbeat, or end it.
- :func:`escalate`: at an interrupted instance's dump deadline, reboot it if still hung.

Only the kill-switch value ``off`` lets anything be held or rebooted, as for interrupts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from crashcart.functions.remediation.decision import StatusFacts
from crashcart.runtime.incident import WAITING_FOR_DUMP, State

from .settings import HoldSettings

MIB_PER_GIB = 1024


class Verdict(StrEnum):
    HOLD = "hold"  # keep the instance in Terminating:Wait
    CONTINUE = "continue"  # complete the lifecycle action: the termination goes on
    CHECK = "check"  # no open incident: impaired ones go through the remediation's guards
    HEARTBEAT = "heartbeat"  # renew the hold's timeout
    WAIT = "wait"  # nothing to do yet
    REBOOT = "reboot"  # escalation: RebootInstances
    NOT_NEEDED = "not-needed"  # escalation: the instance is not hung (any more)
    NOTIFY = "notify"  # escalation: hung at its deadline, reboot switched off: tell a human


@dataclass(frozen=True, kw_only=True)
class Decision:
    verdict: Verdict
    reason: str


@dataclass(frozen=True, kw_only=True)
class IncidentView:
    """What the hold and the escalation read of an incident item."""

    sk: str
    state: str
    interrupted_at: datetime | None
    dump_received: bool
    instance_type: str | None = None

    @property
    def waiting_for_dump(self) -> bool:
        """Interrupted, and no dump yet (``recovered`` counts: the kdump reboot clears the
        check before the dump ships; so does ``dump-overdue``: the sweep's fixed deadline can
        pass before the memory-sized one, and a late dump is still attached)."""
        return (
            self.interrupted_at is not None
            and not self.dump_received
            and (self.state in WAITING_FOR_DUMP or self.state == State.DUMP_OVERDUE)
        )


@dataclass(frozen=True, kw_only=True)
class HoldView:
    """An active hold (its item in the holds partition)."""

    instance_id: str
    incident_sk: str
    deadline: datetime
    last_heartbeat: datetime


def dump_deadline_seconds(memory_mib: int | None, hold: HoldSettings) -> int:
    """Base + rate x GiB of memory, capped; unknown memory: the cap (never cut a dump short)."""
    if memory_mib is None or memory_mib <= 0:
        return hold.dump_max_seconds
    gib = math.ceil(memory_mib / MIB_PER_GIB)
    return min(hold.dump_max_seconds, hold.dump_base_seconds + gib * hold.dump_seconds_per_gib)


def hold_deadline(
    incident: IncidentView, memory_mib: int | None, hold: HoldSettings, held_at: datetime
) -> datetime:
    """When a hold ends without a dump: the dump deadline from the interrupt, and never later
    than Auto Scaling would hold the action (less one heartbeat, to end it ourselves)."""
    assert incident.interrupted_at is not None
    dump = incident.interrupted_at + timedelta(seconds=dump_deadline_seconds(memory_mib, hold))
    limit = held_at + timedelta(seconds=hold.longest_hold_seconds - hold.heartbeat_seconds)
    return min(dump, limit)


def _kill(kill_switch: str) -> str | None:
    if kill_switch == "off":
        return None
    return f"kill switch is {kill_switch!r} (only 'off' allows holds and escalation reboots)"


def on_lifecycle_action(
    *, kill_switch: str, incident: IncidentView | None, deadline: datetime | None, now: datetime
) -> Decision:
    """A terminating instance: hold it while its dump may still come, else continue."""
    stopped = _kill(kill_switch)
    if stopped is not None:
        return Decision(verdict=Verdict.CONTINUE, reason=stopped)
    if incident is not None and incident.dump_received:
        return Decision(
            verdict=Verdict.CONTINUE, reason=f"incident {incident.sk}: the dump already shipped"
        )
    if incident is not None and incident.waiting_for_dump:
        assert deadline is not None
        if now >= deadline:
            return Decision(
                verdict=Verdict.CONTINUE,
                reason=f"incident {incident.sk}: its dump deadline passed without a dump",
            )
        return Decision(
            verdict=Verdict.HOLD,
            reason=f"incident {incident.sk} waits for its dump until {deadline:%Y-%m-%dT%H:%M:%SZ}",
        )
    return Decision(verdict=Verdict.CHECK, reason="no incident waiting for a dump")


def on_tick(
    *,
    kill_switch: str,
    hold: HoldView,
    incident: IncidentView | None,
    heartbeat_seconds: int,
    now: datetime,
) -> Decision:
    """An active hold at a tick: end it (kill switch, dump shipped, deadline) or renew it."""
    stopped = _kill(kill_switch)
    if stopped is not None:
        return Decision(verdict=Verdict.CONTINUE, reason=stopped)
    if incident is None:
        return Decision(
            verdict=Verdict.CONTINUE, reason=f"incident {hold.incident_sk} no longer exists"
        )
    if incident.dump_received:
        return Decision(verdict=Verdict.CONTINUE, reason=f"incident {incident.sk}: dump shipped")
    if now >= hold.deadline:
        return Decision(
            verdict=Verdict.CONTINUE,
            reason=f"incident {incident.sk}: dump deadline "
            f"{hold.deadline:%Y-%m-%dT%H:%M:%SZ} passed without a dump",
        )
    # Renew well before the timeout: a third of it, so two missed ticks still leave time.
    if (now - hold.last_heartbeat).total_seconds() >= heartbeat_seconds / 3:
        return Decision(verdict=Verdict.HEARTBEAT, reason="dump not shipped yet")
    return Decision(verdict=Verdict.WAIT, reason="heartbeat recent")


def escalate(
    *,
    kill_switch: str,
    reboot_enabled: bool,
    incident: IncidentView,
    deadline: datetime,
    instance_state: str | None,
    held: bool,
    status: StatusFacts | None,
    now: datetime,
) -> Decision:
    """An interrupted incident without a dump or an OK: reboot at its deadline if still hung.

    Only an instance-check failure with the system check ok is rebooted: a system-check
    failure is AWS's (simplified automatic recovery), so the two never act on one instance
    (aws-assumption: ec2-simplified-automatic-recovery).
    """
    if now < deadline:
        return Decision(verdict=Verdict.WAIT, reason="dump deadline not reached")
    stopped = _kill(kill_switch)
    if stopped is not None:
        return Decision(verdict=Verdict.WAIT, reason=stopped)
    if held:
        return Decision(
            verdict=Verdict.NOT_NEEDED,
            reason="its Auto Scaling group terminates it (the hold ends at the same deadline)",
        )
    if instance_state != "running":
        shown = "gone" if instance_state is None else instance_state
        return Decision(verdict=Verdict.NOT_NEEDED, reason=f"instance is {shown}")
    if status is None or status.instance_status != "impaired":
        shown = "unknown" if status is None else repr(status.instance_status)
        return Decision(verdict=Verdict.NOT_NEEDED, reason=f"instance status check is {shown}")
    if status.system_status != "ok":
        return Decision(
            verdict=Verdict.NOT_NEEDED,
            reason=f"system status check is {status.system_status!r}: left to EC2 "
            "(simplified automatic recovery), never rebooted by crashcart",
        )
    reason = (
        f"instance status check still impaired at the dump deadline "
        f"{deadline:%Y-%m-%dT%H:%M:%SZ} (no dump, no recovery)"
    )
    if not reboot_enabled:
        return Decision(verdict=Verdict.NOTIFY, reason=f"{reason}; reboot switched off")
    return Decision(verdict=Verdict.REBOOT, reason=reason)
