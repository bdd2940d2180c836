"""The interrupt step of the remediation and what it tells people: evidence, the interrupt,
the incident record after it, and the notifications (breaker opened, first unattested skip,
interrupted / dry run / failed).

A mixin of :class:`~.service.Remediation` (the service's seam between deciding and acting):
the attributes below are the service's injected dependencies.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from crashcart.runtime.dumps import EVIDENCE_PREFIX
from crashcart.runtime.incident import FLEET_BREAKER_PK, State, az_breaker_pk

from . import notify
from .adapter import Ec2Facts, Evidence, Interrupter, InterruptOutcome, Notifier
from .claims import IncidentStore, StoreUnavailableError
from .decision import ClaimPlan, Decision, Facts
from .event_types import Outcome
from .events import AlarmEvent, iso
from .settings import Settings
from .telemetry import Log


class InterruptStep:
    """Evidence -> SendDiagnosticInterrupt -> the record -> the notification."""

    settings: Settings
    ec2: Ec2Facts
    interrupter: Interrupter
    evidence: Evidence
    notifier: Notifier
    store: IncidentStore
    clock: Callable[[], datetime]
    log: Log

    def _announce_breaker(self, plan: ClaimPlan, az: str | None) -> None:
        for scope in plan.opened_scopes:
            step = plan.fleet if scope == "fleet" else plan.az
            assert step is not None
            name = "fleet" if scope == "fleet" else f"availability zone {az}"
            pk = FLEET_BREAKER_PK if scope == "fleet" else az_breaker_pk(az or "")
            subject, message = notify.breaker_opened(
                scope=name,
                count=step.after.count,
                window_seconds=self.settings.breaker_window_seconds,
                quiet_seconds=self.settings.breaker_quiet_seconds,
                reset=(f"delete the item pk={pk}, sk=state from table {self.store.table}"),
            )
            self._notify(subject, message, breaker=pk)
            self.log.warning(
                "circuit breaker opened",
                metric="breaker_opened",
                outcome="breaker-opened",
                breaker=pk,
                count=step.after.count,
            )

    def _announce_unattested(
        self, event: AlarmEvent, decision: Decision, sk: str, now_iso: str
    ) -> None:
        """The first skip of an instance for its attestation is notified and counted.

        Attestation rests on an IAM condition (docs/aws-assumptions.md, attestation-self-tag);
        if it never held, every real alarm would be skipped without a word. When the table
        cannot tell whether this is the first skip, the notification goes out anyway.
        """
        try:
            first = self.store.note_attestation_skip(
                event.instance_id, incident=sk, reason=decision.reason, now_iso=now_iso
            )
        except StoreUnavailableError as error:
            self.log.error(
                "attestation skip not recorded (notifying anyway)",
                instance_id=event.instance_id,
                incident=sk,
                error=str(error),
            )
            first = True
        if not first:
            return
        self._notify_decision(
            notify.unattested,
            event,
            decision,
            sk,
            log="first skip of this instance for its kdump attestation",
            counted=("unattested_first_skip", "skipped"),
        )

    def _notify_decision(
        self,
        notice: Callable[..., tuple[str, str]],
        event: AlarmEvent,
        decision: Decision,
        sk: str,
        *,
        log: str,
        counted: tuple[str, str],
    ) -> None:
        """Notify a human of a guard's decision (``notice``: the :mod:`notify` builder of its
        subject and message) and log it as a warning (``log``) with its guard and reason,
        counted (``counted``: the metric and the outcome)."""
        subject, message = notice(
            instance_id=event.instance_id, alarm_name=event.alarm_name, reason=decision.reason
        )
        self._notify(subject, message, instance_id=event.instance_id)
        self.log.warning(
            log,
            metric=counted[0],
            outcome=counted[1],
            guard=decision.guard,
            reason=decision.reason,
            instance_id=event.instance_id,
            incident=sk,
        )

    def _interrupt(
        self, event: AlarmEvent, facts: Facts, plan: ClaimPlan, sk: str, now: datetime
    ) -> Outcome:
        instance_id = event.instance_id
        decision = plan.decision
        key = f"{EVIDENCE_PREFIX}{instance_id}/{event.opened_at}/console-output.txt"
        evidence_key, evidence_error = self.evidence.capture(instance_id, key)
        if evidence_error is not None:
            self.log.warning(
                "evidence not saved (continuing)", instance_id=instance_id, error=evidence_error
            )
        result = self.interrupter.send(instance_id, dry_run=self.settings.dry_run)
        done_iso = iso(self.clock())
        common: dict[str, object] = {
            "updated_at": done_iso,
            "evidence_key": evidence_key,
            "evidence_error": evidence_error,
            "interrupt_outcome": result.outcome.value,
            "interrupt_code": result.code or None,
            "interrupt_attempts": result.attempts,
            "request_id": result.request_id or None,
        }
        if result.outcome in (InterruptOutcome.SENT, InterruptOutcome.UNKNOWN):
            deadline = iso(now + timedelta(seconds=self.settings.dump_deadline_seconds))
            values = {
                **common,
                "state": State.INTERRUPTED,
                "interrupted_at": done_iso,
                "dump_deadline": deadline,
            }
            self._record(instance_id, sk, values)
            subject, message = notify.interrupted(
                instance_id=instance_id,
                alarm_name=event.alarm_name,
                reason=decision.reason,
                outcome=result.outcome.value,
                dump_deadline=deadline,
                evidence=(
                    f"s3://{self.evidence.bucket}/{evidence_key}"
                    if evidence_key
                    else f"not saved ({evidence_error})"
                ),
                warnings=decision.warnings,
            )
            self._notify(subject, message, instance_id=instance_id)
            self.log.info(
                "diagnostic interrupt sent",
                metric="interrupted",
                outcome="interrupted",
                interrupt_outcome=result.outcome.value,
                reason=decision.reason,
                instance_id=instance_id,
                incident=sk,
                ec2_request_id=result.request_id,
                warnings=list(decision.warnings),
            )
            return Outcome(
                outcome="interrupted", reason=decision.reason, instance_id=instance_id, incident=sk
            )
        if result.outcome is InterruptOutcome.DRY_RUN_OK:
            reason = (
                "dry run: EC2 answered DryRunOperation, the interrupt was not sent "
                f"({decision.reason})"
            )
            self._record(instance_id, sk, {**common, "state": State.SKIPPED, "reason": reason})
            subject, message = notify.dry_run(
                instance_id=instance_id, alarm_name=event.alarm_name, reason=decision.reason
            )
            self._notify(subject, message, instance_id=instance_id)
            self.log.info(
                "dry run: interrupt not sent",
                metric="dry_run",
                outcome="dry-run",
                reason=reason,
                instance_id=instance_id,
                incident=sk,
            )
            return Outcome(outcome="dry-run", reason=reason, instance_id=instance_id, incident=sk)
        # A definite refusal: nothing happened, so the claim is given back.
        reason = f"SendDiagnosticInterrupt refused: {result.code} {result.message}".strip()
        # aws-assumption: diagnostic-interrupt-error-codes
        if result.code == "UnsupportedOperation" and facts.instance is not None:
            self.ec2.mark_unsupported(
                facts.type_facts, facts.instance.instance_type, result.message or result.code
            )
        self._record(instance_id, sk, {**common, "state": State.FAILED, "reason": reason})
        if plan.limits_after is not None and not self.store.release(instance_id, plan.limits_after):
            self.log.warning("claim was not released (changed meanwhile)", instance_id=instance_id)
        subject, message = notify.failed(
            instance_id=instance_id,
            alarm_name=event.alarm_name,
            code=result.code,
            message=result.message,
        )
        self._notify(subject, message, instance_id=instance_id)
        self.log.error(
            "diagnostic interrupt failed",
            metric="failed",
            outcome="failed",
            reason=reason,
            code=result.code,
            instance_id=instance_id,
            incident=sk,
        )
        return Outcome(outcome="failed", reason=reason, instance_id=instance_id, incident=sk)

    def _record(self, instance_id: str, sk: str, values: dict[str, object]) -> None:
        """Move the incident on from ``claimed``; if an OK got there first, keep its state."""
        try:
            if self.store.update_incident(instance_id, sk, values, expected_state=State.CLAIMED):
                return
            rest = {k: v for k, v in values.items() if k != "state"}
            self.store.update_incident(instance_id, sk, {**rest, "final_state": values["state"]})
        except StoreUnavailableError:
            self.log.error(
                "incident record not written after the interrupt decision",
                instance_id=instance_id,
                incident=sk,
                values=values,
            )
            raise

    def _notify(
        self,
        subject: str,
        message: str,
        *,
        instance_id: str | None = None,
        breaker: str | None = None,
    ) -> None:
        problem = self.notifier.publish(subject, message)
        if problem is not None:
            self.log.error(
                "notification not sent (continuing)",
                error=problem,
                subject=subject,
                notification=message,
                instance_id=instance_id,
                breaker=breaker,
            )
