"""Applies the remediation decision: duplicate check -> gather facts -> decide -> claim ->
evidence -> interrupt.

What raises and what returns (the handler does not catch anything):

- returns normally: rejected events (after they are kept in the rejected queue), ignored
  events, duplicates, every recorded decision (skipped / escalated / interrupted / dry run /
  failed), recoveries;
- raises (Lambda retries, then the event lands in the on-failure queue; nothing interrupted):
  invalid settings, a missing kill-switch parameter, SSM / EC2 describe calls failing, the
  incident table unreachable, the rejected queue unreachable, a claim still contended after
  :data:`CLAIM_ATTEMPTS` tries, or the incident record that cannot be written after an
  interrupt (the claim then stays in place: the cooldown holds).
- degrades (logged with everything needed to act, still recorded): console-output evidence
  (EC2 or S3), SNS notifications, and the first-attestation-skip marker (then notified
  anyway).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crashcart.runtime.incident import (
    NOTIFY_RECOVERY_FROM,
    State,
    incident_sk,
)

from . import notify, sweep
from .adapter import (
    Ec2Facts,
    Evidence,
    Interrupter,
    KillSwitch,
    Notifier,
    RejectedQueue,
)
from .claims import (
    IncidentStore,
    claim_transaction,
)
from .decision import ClaimPlan, Facts, Guard, Verdict, decide, plan_claim
from .event_types import Outcome as Outcome
from .events import (
    SWEEP_ALARM_NAME,
    SWEEP_DETAIL_TYPE,
    AlarmEvent,
    Ignored,
    Rejected,
    Transition,
    iso,
    parse,
    show,
)
from .incident_record import incident_item
from .interrupt_step import InterruptStep
from .org_breaker import OrganisationGate
from .rejected import MAX_KEPT_DEPTH as MAX_KEPT_DEPTH
from .rejected import MAX_REJECTED_BYTES as MAX_REJECTED_BYTES
from .rejected import rejected_message as rejected_message
from .settings import Settings
from .telemetry import Log

CLAIM_ATTEMPTS = 12


class ClaimContentionError(Exception):
    """The claim transaction kept being cancelled by concurrent writers: retry later."""


@dataclass(frozen=True, kw_only=True)
class Where:
    """The function's own account and region (guard 3 compares the alarm's with these)."""

    account: str
    region: str


class Remediation(InterruptStep):
    """One invocation's worth of remediation, with every dependency injected."""

    def __init__(
        self,
        *,
        settings: Settings,
        where: Where,
        ec2: Ec2Facts,
        interrupter: Interrupter,
        evidence: Evidence,
        kill_switch: KillSwitch,
        notifier: Notifier,
        rejected: RejectedQueue,
        store: IncidentStore,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None],
        log: Log,
        request_id: str = "",
        remaining_ms: Callable[[], int] = lambda: 60_000,
        organisation: OrganisationGate | None = None,
    ) -> None:
        self.settings = settings
        self.organisation = organisation
        self.remaining_ms = remaining_ms
        self.where = where
        self.ec2 = ec2
        self.interrupter = interrupter
        self.evidence = evidence
        self.kill_switch = kill_switch
        self.notifier = notifier
        self.rejected = rejected
        self.store = store
        self.clock = clock
        self.sleep = sleep
        self.log = log
        self.request_id = request_id

    # -- entry point -----------------------------------------------------------------------

    def handle(self, event: object) -> dict[str, Any]:
        if sweep.is_trigger(event):
            lister = sweep.ImpairedInstances(self.ec2.client, self.sleep)
            return sweep.run_pass(self, lister, remaining_ms=self.remaining_ms).as_dict()
        parsed = parse(
            event,
            alarm_name_prefix=self.settings.alarm_name_prefix,
            account=self.where.account,
            region=self.where.region,
            now=self.clock(),
            max_age=self.settings.oldest_event_age,
        )
        if isinstance(parsed, Rejected):
            return self._reject(event, parsed).as_dict()
        if isinstance(parsed, Ignored):
            self.log.info(
                "event ignored",
                outcome="ignored",
                reason=parsed.reason,
                alarm_name=parsed.alarm_name,
                instance_id=parsed.instance_id,
            )
            return Outcome(
                outcome="ignored", reason=parsed.reason, instance_id=parsed.instance_id
            ).as_dict()
        if parsed.transition is Transition.RECOVERED:
            return self._recover(parsed).as_dict()
        return self._remediate(parsed).as_dict()

    def remediate(self, event: AlarmEvent) -> Outcome:
        """Guards 2-8, the claim and the interrupt for an ALARM that was already parsed.

        For callers that establish the ALARM themselves, such as the lifecycle-hold function
        (a terminating Auto Scaling instance that is impaired): the same decision, claim,
        cooldown, budget, breakers, evidence and records as an alarm event gets.
        """
        return self._remediate(event)

    # -- guard 1 ---------------------------------------------------------------------------

    def _reject(self, event: object, rejected: Rejected) -> Outcome:
        """Keep the event in the rejected queue (bounded), log why; nothing else is touched.

        A rejected event never reaches the incident table, a breaker, EC2 or the kill switch.
        See :func:`rejected_message` for what is kept. Raises when the queue cannot be written
        (Lambda retries; the event is not lost).
        """
        body, cut = rejected_message(
            event,
            reason=rejected.reason,
            received_at=iso(self.clock()),
            request_id=self.request_id,
        )
        self.rejected.keep(body)
        event_id = event.get("id") if isinstance(event, dict) else None
        self.log.warning(
            "event rejected",
            metric="rejected",
            outcome="rejected",
            reason=rejected.reason,
            event_id=show(event_id) if event_id is not None else None,
            kept="whole" if cut is None else "cut",
            event_cut=cut,
        )
        return Outcome(outcome="rejected", reason=rejected.reason)

    # -- the missed-alarm sweep's entry into the same decision --------------------------------

    def remediate_missed(self, instance_id: str, *, opened_at: str, reason: str) -> Outcome:
        """Decide an impaired instance the sweep found (see ``sweep.py``), exactly as an ALARM.

        The incident is keyed by ``opened_at`` (chosen by the sweep so that overlapping
        passes agree) and recorded with origin ``missed-alarm-sweep``.
        """
        changed_at = datetime.strptime(opened_at, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=self.clock().tzinfo
        )
        event = AlarmEvent(
            event_id=f"sweep-{self.request_id}" if self.request_id else "sweep",
            detail_type=SWEEP_DETAIL_TYPE,
            account=self.where.account,
            region=self.where.region,
            alarm_name=SWEEP_ALARM_NAME,
            alarm_arn="",
            instance_id=instance_id,
            transition=Transition.NEW_ALARM,
            state="ALARM",
            previous_state=None,
            state_reason=reason,
            changed_at=changed_at,
        )
        return self._remediate(event)

    # -- guards 2-8 ------------------------------------------------------------------------

    def _gather(self, event: AlarmEvent) -> Facts:
        kill = self.kill_switch.value()
        # Guard 1 already rejected events of another account or region (they never reach
        # the table); this second check keeps decide() safe on its own.
        location_matches = (event.account, event.region) == (
            self.where.account,
            self.where.region,
        )
        detail = (
            ""
            if location_matches
            else (
                f"alarm is in {event.account}/{event.region}, this function in "
                f"{self.where.account}/{self.where.region}"
            )
        )
        instance = status = types = None
        if location_matches:
            instance = self.ec2.instance(event.instance_id)
            if instance is not None and instance.state == "running":
                status = self.ec2.status(event.instance_id)
                types = self.ec2.instance_type(instance.instance_type)
        return Facts(
            kill_switch=kill,
            location_matches=location_matches,
            location_detail=detail,
            instance=instance,
            status=status,
            type_facts=types,
        )

    def _duplicate(self, event: AlarmEvent, sk: str, incident: dict[str, Any]) -> Outcome:
        state = incident.get("state", {}).get("S", "?")
        reason = f"duplicate delivery: incident {sk} already exists ({state})"
        self.log.info(
            "duplicate event",
            outcome="duplicate",
            reason=reason,
            instance_id=event.instance_id,
            incident=sk,
        )
        return Outcome(
            outcome="duplicate", reason=reason, instance_id=event.instance_id, incident=sk
        )

    def _remediate(self, event: AlarmEvent) -> Outcome:
        now = self.clock()
        now_epoch = int(now.timestamp())
        now_iso = iso(now)
        sk = incident_sk(event.opened_at)
        # A copy of an ALARM that already has its incident is answered before any other
        # call (kill switch, EC2 describes): it can only ever be a duplicate. Seeing no
        # incident here decides nothing: the snapshot below reads it again, and the
        # claim's put requires its absence.
        existing = self.store.incident(event.instance_id, sk)
        if existing is not None:
            return self._duplicate(event, sk, existing)
        facts = self._gather(event)
        pre = decide(facts, self.settings, now)
        instance = facts.instance
        az = (
            instance.availability_zone
            if instance is not None and instance.availability_zone
            else None
        )
        plan: ClaimPlan | None = None
        for attempt in range(1, CLAIM_ATTEMPTS + 1):
            snapshot = self.store.snapshot(event.instance_id, sk, az)
            if snapshot.incident is not None:
                return self._duplicate(event, sk, snapshot.incident)
            plan = plan_claim(
                pre,
                limits=snapshot.limits,
                fleet=snapshot.fleet,
                az=snapshot.az,
                settings=self.settings,
                now_epoch=now_epoch,
                incident_sk=sk,
            )
            if self.organisation is not None:  # the last guard: one slot of the organisation's
                plan = self.organisation.gate(
                    plan, instance_id=event.instance_id, incident=sk, now=(now_epoch, now_iso)
                )
            item = incident_item(
                event,
                facts,
                plan.decision,
                sk,
                now_iso,
                request_id=self.request_id,
                dry_run=self.settings.dry_run,
            )
            transaction = claim_transaction(
                table=self.store.table,
                instance_id=event.instance_id,
                availability_zone=az,
                incident_item=item,
                snapshot=snapshot,
                plan=plan,
                cooldown_seconds=self.settings.cooldown_seconds,
                daily_budget=self.settings.daily_budget,
                now_epoch=now_epoch,
                now_iso=now_iso,
                iso=lambda epoch: iso(datetime.fromtimestamp(epoch, tz=now.tzinfo)),
            )
            if self.store.commit(transaction):
                break
            self.sleep(random.uniform(0.01, 0.05) * attempt)  # noqa: S311 - jitter, not crypto
        else:
            raise ClaimContentionError(
                f"claim for {event.instance_id} cancelled {CLAIM_ATTEMPTS} times by concurrent "
                "writers"
            )
        assert plan is not None
        self._announce_breaker(plan, az)
        decision = plan.decision
        if decision.verdict is Verdict.SKIP:
            self.log.info(
                "not interrupting",
                metric="skipped",
                outcome="skipped",
                guard=decision.guard,
                reason=decision.reason,
                instance_id=event.instance_id,
                alarm_name=event.alarm_name,
                incident=sk,
                warnings=list(decision.warnings),
            )
            if decision.guard is Guard.ATTESTATION:
                self._announce_unattested(event, decision, sk, now_iso)
            return Outcome(
                outcome="skipped",
                reason=decision.reason,
                instance_id=event.instance_id,
                incident=sk,
                guard=decision.guard,
            )
        if decision.verdict is Verdict.ESCALATE:
            self._notify_decision(
                notify.escalated,
                event,
                decision,
                sk,
                log="escalated to a human",
                counted=("escalated", "escalated"),
            )
            return Outcome(
                outcome="escalated",
                reason=decision.reason,
                instance_id=event.instance_id,
                incident=sk,
                guard=decision.guard,
            )
        return self._interrupt(event, facts, plan, sk, now)

    # -- ALARM -> OK -----------------------------------------------------------------------

    def _recover(self, event: AlarmEvent) -> Outcome:
        now_iso = iso(self.clock())
        latest = self.store.latest_incident(event.instance_id)
        if latest is None:
            reason = "alarm is OK and the instance has no incident"
            self.log.info(
                "nothing to recover",
                outcome="ignored",
                reason=reason,
                instance_id=event.instance_id,
            )
            return Outcome(outcome="ignored", reason=reason, instance_id=event.instance_id)
        sk = str(latest["sk"]["S"])
        state = str(latest.get("state", {}).get("S", ""))
        opened_at = str(latest.get("opened_at", {}).get("S", ""))
        if state == State.RECOVERED or (opened_at and opened_at > event.opened_at):
            reason = (
                f"latest incident {sk} is already recovered"
                if state == State.RECOVERED
                else f"latest incident {sk} opened after this OK: an out-of-order delivery"
            )
            self.log.info(
                "nothing to recover",
                outcome="ignored",
                reason=reason,
                instance_id=event.instance_id,
            )
            return Outcome(
                outcome="ignored", reason=reason, instance_id=event.instance_id, incident=sk
            )
        if not self.store.mark_recovered(event.instance_id, sk, now_iso):
            reason = f"incident {sk} changed meanwhile (already recovered)"
            return Outcome(
                outcome="ignored", reason=reason, instance_id=event.instance_id, incident=sk
            )
        if state in NOTIFY_RECOVERY_FROM:
            subject, message = notify.recovered(
                instance_id=event.instance_id, alarm_name=event.alarm_name, previous_state=state
            )
            self._notify(subject, message, instance_id=event.instance_id)
        reason = f"alarm is OK: incident was {state}, now recovered"
        self.log.info(
            "incident recovered",
            metric="recovered",
            outcome="recovered",
            reason=reason,
            instance_id=event.instance_id,
            incident=sk,
        )
        return Outcome(
            outcome="recovered", reason=reason, instance_id=event.instance_id, incident=sk
        )
