"""The hold and the escalation, applied: parse -> gather -> decide -> act -> record.

A termination lifecycle action of a configured group:

- kill switch not ``off``: CONTINUE at once;
- the instance's latest incident waits for its dump: HOLD (a hold item, the incident shows
  ``hold_state=held``) until the dump ships or the memory-sized deadline passes;
- no such incident, and the instance status check is impaired: the remediation's own
  service decides (guards, claim, cooldown, budget, breakers, evidence, interrupt); an
  interrupt sent means HOLD, anything else CONTINUE;
- otherwise: CONTINUE at once.

A tick (the schedule): every hold is renewed with a heartbeat or ended (kill switch, dump
shipped, deadline); every interrupted incident past its dump deadline that is still hung is
rebooted once (recorded and notified), unless the kill switch is on.

What raises: settings, the kill switch or a fact that cannot be read, the table; Lambda
retries. A lifecycle action nobody answers ends at the hook's default result, CONTINUE.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from crashcart.functions.remediation.adapter import Ec2Facts, KillSwitch, Notifier, RejectedQueue
from crashcart.functions.remediation.claims import IncidentStore
from crashcart.functions.remediation.events import AlarmEvent, Transition, iso
from crashcart.functions.remediation.rejected import rejected_message
from crashcart.functions.remediation.service import Remediation
from crashcart.functions.remediation.telemetry import Log
from crashcart.runtime.incident import Attribute, HoldState, parse_time

from .adapter import HoldStore, Lifecycle, Machines
from .decision import (
    Decision,
    HoldView,
    IncidentView,
    Verdict,
    dump_deadline_seconds,
    escalate,
    hold_deadline,
    on_lifecycle_action,
    on_tick,
)
from .events import LifecycleAction, Rejected, Tick, parse
from .settings import Settings


def _s(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name, {})
    return str(value["S"]) if isinstance(value, dict) and "S" in value else None


def _time(item: dict[str, Any], name: str) -> datetime | None:
    value = _s(item, name)
    if not value:
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def view(item: dict[str, Any] | None) -> IncidentView | None:
    """The incident as the hold reads it."""
    if not item:
        return None
    return IncidentView(
        sk=_s(item, Attribute.SK) or "",
        state=_s(item, Attribute.STATE) or "",
        interrupted_at=_time(item, Attribute.INTERRUPTED_AT),
        dump_received=Attribute.DUMP_KEYS.value in item,
        instance_type=_s(item, Attribute.INSTANCE_TYPE),
    )


@dataclass(frozen=True, kw_only=True)
class Clients:
    """The adapters the service acts through."""

    lifecycle: Lifecycle
    machines: Machines
    ec2: Ec2Facts
    kill_switch: KillSwitch
    notifier: Notifier
    rejected: RejectedQueue
    incidents: IncidentStore
    holds: HoldStore


class Hold:
    """One invocation of the lifecycle-hold function, every dependency injected."""

    def __init__(
        self,
        *,
        settings: Settings,
        clients: Clients,
        remediation: Remediation,
        clock: Callable[[], datetime],
        log: Log,
        request_id: str = "",
    ) -> None:
        self.settings = settings
        self.hold = settings.hold
        self.aws = clients
        self.remediation = remediation
        self.clock = clock
        self.log = log
        self.request_id = request_id

    def handle(self, event: object) -> dict[str, Any]:
        parsed = parse(event, self.hold)
        if isinstance(parsed, Rejected):
            body, _cut = rejected_message(
                event,
                reason=parsed.reason,
                received_at=iso(self.clock()),
                request_id=self.request_id,
            )
            self.aws.rejected.keep(body)
            self.log.warning(
                "event rejected", metric="rejected", outcome="rejected", reason=parsed.reason
            )
            return {"outcome": "rejected", "reason": parsed.reason}
        if isinstance(parsed, Tick):
            return self.tick()
        return self.lifecycle_action(parsed)

    # -- a terminating instance ---------------------------------------------------------

    def lifecycle_action(self, action: LifecycleAction) -> dict[str, Any]:
        now = self.clock()
        kill = self.aws.kill_switch.value()
        incident = view(self.aws.incidents.latest_incident(action.instance_id))
        deadline = self._deadline(incident, now)
        decision = on_lifecycle_action(
            kill_switch=kill, incident=incident, deadline=deadline, now=now
        )
        if decision.verdict is Verdict.CHECK:
            status = self.aws.ec2.status(action.instance_id)
            if status is None or status.instance_status != "impaired":
                shown = "unknown" if status is None else repr(status.instance_status)
                return self._continue(
                    action, None, f"no incident waiting for a dump; instance status check {shown}"
                )
            outcome = self.remediation.remediate(self._as_alarm(action))
            if outcome.outcome != "interrupted":
                return self._continue(
                    action,
                    None,
                    f"impaired, not interrupted ({outcome.outcome}: {outcome.reason})",
                )
            incident = view(self.aws.incidents.latest_incident(action.instance_id))
            now = self.clock()
            deadline = self._deadline(incident, now)
            if incident is None or deadline is None:
                return self._continue(action, None, "interrupt sent but its incident is missing")
            decision = Decision(verdict=Verdict.HOLD, reason=f"interrupted it: {outcome.reason}")
        if decision.verdict is Verdict.CONTINUE:
            return self._continue(action, incident, decision.reason)
        assert incident is not None and deadline is not None
        return self._hold(action, incident, deadline, decision.reason, now)

    def _deadline(self, incident: IncidentView | None, now: datetime) -> datetime | None:
        if incident is None or not incident.waiting_for_dump:
            return None
        memory = self.aws.machines.memory_mib(incident.instance_type)
        return hold_deadline(incident, memory, self.hold, now)

    def _as_alarm(self, action: LifecycleAction) -> AlarmEvent:
        """The termination of an impaired instance, as the ALARM the remediation decides on."""
        where = self.remediation.where
        return AlarmEvent(
            event_id=action.event_id,
            detail_type="EC2 Instance-terminate Lifecycle Action",
            account=where.account,
            region=where.region,
            alarm_name=f"{self.settings.remediation.alarm_name_prefix}lifecycle-hook/"
            f"{action.group}",
            alarm_arn=action.group_arn,
            instance_id=action.instance_id,
            transition=Transition.NEW_ALARM,
            state="ALARM",
            previous_state="OK",
            state_reason=f"terminating in Auto Scaling group {action.group} while impaired",
            changed_at=action.at,
        )

    def _hold(
        self,
        action: LifecycleAction,
        incident: IncidentView,
        deadline: datetime,
        reason: str,
        now: datetime,
    ) -> dict[str, Any]:
        now_iso = iso(now)
        self.aws.holds.put_hold(
            action.instance_id,
            {
                "instance_id": action.instance_id,
                "group": action.group,
                "hook": action.hook,
                "token": action.token,
                "incident": incident.sk,
                "held_at": now_iso,
                "hold_deadline": iso(deadline),
                "last_heartbeat_at": now_iso,
            },
        )
        self.aws.incidents.update_incident(
            action.instance_id,
            incident.sk,
            {
                Attribute.HOLD_STATE: HoldState.HELD,
                Attribute.HOLD_GROUP: action.group,
                Attribute.HOLD_HOOK: action.hook,
                Attribute.HELD_AT: now_iso,
                Attribute.HOLD_DEADLINE: iso(deadline),
                Attribute.UPDATED_AT: now_iso,
            },
        )
        self._notify(
            f"crashcart: holding {action.instance_id} for its crash dump",
            f"Auto Scaling group {action.group} is terminating {action.instance_id}. "
            f"crashcart holds it in Terminating:Wait ({reason}) until its dump ships or "
            f"{iso(deadline)}, then lets the termination continue. Set the kill switch to "
            "'on' to release every hold at once.",
        )
        self.log.info(
            "termination held",
            metric="held",
            outcome="held",
            reason=reason,
            instance_id=action.instance_id,
            group=action.group,
            incident=incident.sk,
            deadline=iso(deadline),
        )
        return {
            "outcome": "held",
            "reason": reason,
            "instance_id": action.instance_id,
            "incident": incident.sk,
            "deadline": iso(deadline),
        }

    def _continue(
        self, action: LifecycleAction, incident: IncidentView | None, reason: str
    ) -> dict[str, Any]:
        done = self.aws.lifecycle.complete(
            group=action.group, hook=action.hook, token=action.token, instance_id=action.instance_id
        )
        self.log.info(
            "termination continues",
            metric="continued",
            outcome="continued",
            reason=reason,
            instance_id=action.instance_id,
            group=action.group,
            action_found=done,
        )
        return {"outcome": "continued", "reason": reason, "instance_id": action.instance_id}

    # -- the schedule -------------------------------------------------------------------

    def tick(self) -> dict[str, Any]:
        now = self.clock()
        kill = self.aws.kill_switch.value()
        results: dict[str, list[str]] = {}
        held: set[str] = set()
        for item in self.aws.holds.holds():
            instance_id, verdict = self._tick_hold(item, kill, now)
            held.add(instance_id)
            results.setdefault(verdict, []).append(instance_id)
        for item in self.aws.holds.escalation_candidates():
            outcome = self._escalate(item, kill, now, held)
            if outcome is not None:
                results.setdefault(outcome, []).append(_s(item, "instance_id") or "?")
        return {"outcome": "tick", **results}

    def _tick_hold(self, item: dict[str, Any], kill: str, now: datetime) -> tuple[str, str]:
        instance_id = _s(item, "instance_id") or ""
        group, hook, token = _s(item, "group") or "", _s(item, "hook") or "", _s(item, "token")
        sk = _s(item, "incident") or ""
        deadline = _time(item, "hold_deadline") or now
        hold = HoldView(
            instance_id=instance_id,
            incident_sk=sk,
            deadline=deadline,
            last_heartbeat=_time(item, "last_heartbeat_at") or deadline - timedelta(days=1),
        )
        incident = view(self.aws.incidents.incident(instance_id, sk))
        decision = on_tick(
            kill_switch=kill,
            hold=hold,
            incident=incident,
            heartbeat_seconds=self.hold.heartbeat_seconds,
            now=now,
        )
        arguments = {"group": group, "hook": hook, "token": token or "", "instance_id": instance_id}
        if decision.verdict is Verdict.WAIT:
            return instance_id, "waiting"
        if decision.verdict is Verdict.HEARTBEAT:
            if self.aws.lifecycle.heartbeat(**arguments):
                self.aws.holds.touch_hold(instance_id, iso(now))
                self.log.info(
                    "hold renewed", metric="heartbeat", outcome="heartbeat", instance_id=instance_id
                )
                return instance_id, "heartbeat"
            return instance_id, self._released(
                instance_id, sk, "the lifecycle action had already ended", now
            )
        found = self.aws.lifecycle.complete(**arguments)
        reason = decision.reason if found else f"{decision.reason} (action had already ended)"
        return instance_id, self._released(instance_id, sk, reason, now)

    def _released(self, instance_id: str, sk: str, reason: str, now: datetime) -> str:
        now_iso = iso(now)
        if sk:
            self.aws.incidents.update_incident(
                instance_id,
                sk,
                {
                    Attribute.HOLD_STATE: HoldState.RELEASED,
                    Attribute.HOLD_RELEASED_AT: now_iso,
                    Attribute.HOLD_RESULT: "CONTINUE",
                    Attribute.HOLD_REASON: reason,
                    Attribute.UPDATED_AT: now_iso,
                },
            )
        self.aws.holds.delete_hold(instance_id)
        self.log.info(
            "hold released",
            metric="continued",
            outcome="continued",
            reason=reason,
            instance_id=instance_id,
            incident=sk,
        )
        return "released"

    def _escalate(
        self, item: dict[str, Any], kill: str, now: datetime, held: set[str]
    ) -> str | None:
        incident = view(item)
        instance_id = _s(item, "instance_id")
        if incident is None or incident.interrupted_at is None or not instance_id:
            return None
        memory = self.aws.machines.memory_mib(incident.instance_type)
        deadline = incident.interrupted_at + timedelta(
            seconds=dump_deadline_seconds(memory, self.hold)
        )
        state = status = None
        if now >= deadline and kill == "off" and instance_id not in held:
            facts = self.aws.ec2.instance(instance_id)
            state = facts.state if facts is not None else None
            if state == "running":
                status = self.aws.ec2.status(instance_id)
        decision = escalate(
            kill_switch=kill,
            reboot_enabled=self.hold.escalation_reboot,
            incident=incident,
            deadline=deadline,
            instance_state=state,
            held=instance_id in held,
            status=status,
            now=now,
        )
        if decision.verdict is Verdict.WAIT:
            return None
        now_iso = iso(now)
        values: dict[str, object] = {
            Attribute.ESCALATION_DEADLINE: iso(deadline),
            Attribute.ESCALATION_OUTCOME: decision.verdict.value,
            Attribute.ESCALATION_REASON: decision.reason,
            Attribute.UPDATED_AT: now_iso,
        }
        if decision.verdict is Verdict.REBOOT:
            values[Attribute.ESCALATED_AT] = now_iso
        # Recorded first, conditionally: of two overlapping ticks only one reboots.
        recorded = self.aws.holds.record_escalation(
            instance_id, incident.sk, values, incident.state
        )
        if not recorded:
            return None
        if decision.verdict is Verdict.NOT_NEEDED:
            self.log.info(
                "no escalation needed",
                metric="escalation_recovered",
                outcome="escalation-not-needed",
                reason=decision.reason,
                instance_id=instance_id,
                incident=incident.sk,
            )
            return "escalation-not-needed"
        problem = None
        if decision.verdict is Verdict.REBOOT:
            problem = self.aws.machines.reboot(instance_id)
            if problem is not None:
                self.aws.incidents.update_incident(
                    instance_id,
                    incident.sk,
                    {
                        Attribute.ESCALATION_OUTCOME: "reboot-failed",
                        Attribute.ESCALATION_REASON: problem,
                    },
                )
        rebooted = decision.verdict is Verdict.REBOOT and problem is None
        what = "rebooted" if rebooted else "NOT rebooted"
        self._notify(
            f"crashcart: {instance_id} still hung at its dump deadline: {what}",
            f"{decision.reason}. Incident {incident.sk}: {what}"
            + (f" ({problem})" if problem else "")
            + ". The dump, if any, was lost or never started; look at the console output "
            "evidence and the instance.",
        )
        self.log.warning(
            "escalation",
            metric="escalation_reboot",
            outcome=f"escalation-{decision.verdict.value}",
            reason=decision.reason,
            problem=problem,
            instance_id=instance_id,
            incident=incident.sk,
        )
        return f"escalation-{decision.verdict.value}" + ("-failed" if problem else "")

    def _notify(self, subject: str, message: str) -> None:
        problem = self.aws.notifier.publish(subject, message)
        if problem is not None:
            self.log.error(
                "notification not sent (continuing)", error=problem, notification=message
            )
