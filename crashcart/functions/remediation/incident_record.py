"""The incident item of a remediation decision: what the claim transaction writes for an
alarm (the record's attributes: crashcart.runtime.incident)."""

from __future__ import annotations

from typing import Any

from crashcart.runtime.incident import Origin, State, instance_pk

from .claims import to_attributes
from .decision import Decision, Facts, Verdict
from .events import SWEEP_DETAIL_TYPE, AlarmEvent, iso


def incident_item(
    event: AlarmEvent,
    facts: Facts,
    decision: Decision,
    sk: str,
    now_iso: str,
    *,
    request_id: str,
    dry_run: bool,
) -> dict[str, Any]:
    """The incident item the claim transaction writes (its state from the verdict)."""
    state = {
        Verdict.INTERRUPT: State.CLAIMED,
        Verdict.SKIP: State.SKIPPED,
        Verdict.ESCALATE: State.ESCALATED,
    }[decision.verdict]
    instance = facts.instance
    status = facts.status
    values: dict[str, object] = {
        "instance_id": event.instance_id,
        "state": state,
        "alarm_name": event.alarm_name,
        "alarm_arn": event.alarm_arn,
        "opened_at": event.opened_at,
        "updated_at": now_iso,
        "reason": decision.reason,
        "decision": decision.verdict.value,
        "guard": decision.guard.value if decision.guard is not None else None,
        "warnings": list(decision.warnings) or None,
        "origin": (
            Origin.MISSED_ALARM_SWEEP
            if event.detail_type == SWEEP_DETAIL_TYPE
            else Origin.REMEDIATION
        ),
        "event_id": event.event_id,
        "lambda_request_id": request_id or None,
        "dry_run": dry_run,
        "availability_zone": instance.availability_zone if instance else None,
        "instance_type": instance.instance_type if instance else None,
        "impaired_since": (
            iso(status.impaired_since) if status and status.impaired_since else None
        ),
    }
    return {
        "pk": {"S": instance_pk(event.instance_id)},
        "sk": {"S": sk},
        **to_attributes(values),
    }
