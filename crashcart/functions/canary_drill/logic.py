"""The drill's judgements: pure functions of facts the adapter gathered (no AWS calls here)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from crashcart.runtime.attestation import judge_attestation, parse_attestation
from crashcart.runtime.canary import Outcome, Poll
from crashcart.runtime.incident import State

#: EC2 error codes that say nothing about the AMI: no capacity for the type in the zone, or an
#: account limit. A canary that cannot start is "inconclusive", never "failed".
#: aws-assumption: ec2-capacity-error-codes
CAPACITY_ERRORS: Final = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
        "MaxSpotInstanceCountExceeded",
        "Unsupported",
    }
)

#: The panic the interrupt must cause on x86_64 Linux with ``kernel.unknown_nmi_panic=1``.
NMI_PANIC: Final = re.compile(r"NMI: Not continuing|Kernel panic - not syncing: NMI")

#: Incident states that end a drill type as failed, with the reason the incident gives.
_FAILED_STATES: Final = {
    State.SKIPPED: "the remediation skipped the interrupt",
    State.FAILED: "the interrupt failed",
    State.ESCALATED: "the remediation escalated instead of interrupting",
    State.DUMP_OVERDUE: "the dump was overdue",
}


def attested_at(attestation: str | None) -> datetime | None:
    """When the agent wrote its attestation (None: no parseable one)."""
    parsed = parse_attestation(attestation)
    return parsed.at if parsed else None


@dataclass(frozen=True, kw_only=True)
class Readiness:
    """The canary's state while it boots."""

    state: str
    instance_check: str | None
    system_check: str | None
    attestation: str | None


def judge_ready(
    facts: Readiness,
    *,
    now: datetime,
    deadline: datetime,
    max_age_seconds: int,
    hang_at: datetime | None = None,
) -> tuple[Poll, str]:
    """Ready when both status checks pass, the agent attests kdump armed and ``hang_at`` (the
    end of the remediation's boot grace: a younger instance is skipped by that guard) is past.
    """
    if facts.state in ("shutting-down", "terminated", "stopping", "stopped"):
        return Poll.FAILED, f"the canary is {facts.state} before it was armed"
    judgement = judge_attestation(facts.attestation, now=now, max_age_seconds=max_age_seconds)
    checks_ok = facts.instance_check == "ok" and facts.system_check == "ok"
    if facts.state == "running" and checks_ok and judgement.armed:
        if hang_at is not None and now < hang_at:
            return Poll.PENDING, "armed; waiting out the remediation's boot grace"
        return Poll.READY, "status checks passed and kdump attested armed"
    if judgement.status.value == "not-armed":
        return Poll.FAILED, f"the agent attests kdump NOT armed: {judgement.detail}"
    if now >= deadline:
        return Poll.TIMED_OUT, (
            f"not armed by the deadline: state {facts.state}, instance check "
            f"{facts.instance_check}, system check {facts.system_check}; {judgement.detail}"
        )
    return Poll.PENDING, judgement.detail


@dataclass(frozen=True, kw_only=True)
class IncidentFacts:
    """The canary's latest incident, as the remediation and dump arrival wrote it."""

    state: str
    reason: str = ""
    interrupted_at: datetime | None = None
    opened_at: datetime | None = None
    dump_keys: tuple[str, ...] = ()
    summary: str = ""
    #: The capture kernel's memory figures (kB) the dump arrival copied from metadata.json.
    capture_memory: Mapping[str, int] = field(default_factory=dict)


def judge_dump(
    incident: IncidentFacts | None, *, now: datetime, deadline: datetime
) -> tuple[Poll, str]:
    """Passed when the dump, its metadata and a summary showing the NMI panic arrived.

    The dump is judged by its keys and summary, whatever the state: the alarm returns to OK
    after the kdump reboot and the remediation then marks the incident ``recovered``, before
    or after the dump arrives.
    """
    if incident is not None:
        metadata = [k for k in incident.dump_keys if k.endswith("/metadata.json")]
        if incident.dump_keys and not metadata:
            return Poll.FAILED, "the incident has a dump but no metadata.json key"
        if metadata:
            if not incident.summary:
                return Poll.FAILED, "the dump arrived without a triage summary"
            if not NMI_PANIC.search(incident.summary):
                return Poll.FAILED, (
                    f"the kernel did not panic on the NMI: summary {incident.summary[:300]!r}"
                )
            return Poll.READY, incident.summary
        if incident.state in _FAILED_STATES:
            why = _FAILED_STATES[State(incident.state)]
            return Poll.FAILED, f"{why}: {incident.reason or 'no reason recorded'}"
    if now >= deadline:
        state = incident.state if incident else "no incident"
        return Poll.TIMED_OUT, f"no dump with its summary by the deadline ({state})"
    return Poll.PENDING, incident.state if incident else "no incident yet"


def seconds_between(start: datetime | None, end: datetime | None) -> int | None:
    """Whole seconds from ``start`` to ``end`` (None if either is unknown)."""
    if start is None or end is None:
        return None
    return max(0, int((end - start).total_seconds()))


@dataclass(frozen=True, kw_only=True)
class Conclusion:
    """The whole drill's outcome."""

    outcome: Outcome
    reason: str
    promote: bool
    results: list[Mapping[str, Any]] = field(default_factory=list)


def conclude(
    results: Sequence[Mapping[str, Any]], *, skip_reason: str | None, from_candidate: bool
) -> Conclusion:
    """Passed only when every type passed; any failure fails; otherwise inconclusive.

    A verified AMI re-drilled on the schedule is not promoted again (it already is).
    """
    if skip_reason:
        return Conclusion(outcome=Outcome.SKIPPED, reason=skip_reason, promote=False)
    if not results:
        return Conclusion(
            outcome=Outcome.INCONCLUSIVE, reason="no instance type was drilled", promote=False
        )
    outcomes = [str(r.get("outcome", Outcome.FAILED)) for r in results]
    failed = [r for r in results if r.get("outcome") == Outcome.FAILED]
    if failed:
        reasons = "; ".join(
            f"{r.get('instance_type')}: {r.get('step')}: {r.get('reason')}" for r in failed
        )
        return Conclusion(outcome=Outcome.FAILED, reason=reasons, promote=False, results=[*results])
    if all(o == Outcome.PASSED for o in outcomes):
        return Conclusion(
            outcome=Outcome.PASSED,
            reason=f"all {len(results)} instance types passed",
            promote=from_candidate,
            results=[*results],
        )
    reasons = "; ".join(
        f"{r.get('instance_type')}: {r.get('reason')}"
        for r in results
        if r.get("outcome") != Outcome.PASSED
    )
    return Conclusion(
        outcome=Outcome.INCONCLUSIVE, reason=reasons, promote=False, results=[*results]
    )


def skip_reason(*, family: str | None, architecture: str | None) -> str | None:
    """Why an AMI gets no drill (None: it gets one)."""
    if family and family.startswith("windows"):
        return (
            f"{family}: Windows bug-checks on the interrupt but crashcart has no Windows dump "
            "shipper or triage yet, so the drill cannot see the dump; promote after a manual "
            "check"
        )
    if architecture and architecture != "x86_64":
        return (
            f"{architecture}: the EC2 user guide excludes Graviton from "
            "SendDiagnosticInterrupt, so the interrupt path cannot be drilled; promote after "
            "a manual SysRq check through the serial console"
        )
    return None


def capture_memory_mib(figures: Mapping[str, int]) -> dict[str, float | None]:
    """Reserved against used for one type, in MiB (None where the dump did not say):
    ``capture_reserved_mib``, ``capture_used_mib`` (the most the capture kernel held while
    saving the dump), ``capture_margin_mib`` (reserved less used) and
    ``makedumpfile_peak_mib``."""

    def mib(name: str) -> float | None:
        value = figures.get(name)
        return None if value is None else round(value / 1024, 1)

    return {
        "capture_reserved_mib": mib("reserved_kb"),
        "capture_used_mib": mib("used_kb"),
        "capture_margin_mib": mib("margin_kb"),
        "makedumpfile_peak_mib": mib("makedumpfile_vmhwm_kb"),
    }
