"""The remediation decision: pure functions over gathered facts (no I/O, no clock reads).

Two steps, because the last two guards need an atomic write to be safe under concurrency:

1. :func:`decide` walks guards 2-5b in the documented order over :class:`Facts` and returns
   the first refusal (with its guard and reason) or "go".
2. :func:`plan_claim` takes that verdict and the *read* state of the per-instance limits item
   and the fleet / AZ circuit-breaker items and computes guards 6 (cooldown, daily budget)
   and 7 (breaker) plus the new state of every item. The caller writes that new state in one
   DynamoDB transaction conditioned on the state it read (see ``claims.py``); if another
   invocation changed anything in between, the transaction is cancelled and the caller
   reads again and re-plans. So a plan is only ever applied to the state it was computed
   from, and the properties proven here (never two interrupts within the cooldown, never
   past the budget, never while the breaker is open) hold for the table.

Guard 1 (the event parses and is ours) lives in ``events.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from crashcart.runtime.attestation import ATTESTATION_TAG_KEY, Status, judge_attestation

from .breakers import BreakerState as BreakerState
from .breakers import BreakerStep as BreakerStep
from .breakers import step_breaker as step_breaker
from .settings import AttestationPolicy, Settings

VERIFIED_ARCHITECTURES = frozenset({"x86_64"})
UNVERIFIED_ARCHITECTURES = frozenset({"arm64"})
#: Families that are Nitro but documented as unable to take a diagnostic interrupt.
UNSUPPORTED_FAMILIES = frozenset({"a1"})


class Guard(StrEnum):
    """The guards, in evaluation order (the value is what logs and records show)."""

    KILL_SWITCH = "kill-switch"
    ACCOUNT_REGION = "account-region"
    OPT_IN = "opt-in-tag"
    INSTANCE_STATE = "instance-state"
    BOOT_GRACE = "boot-grace"
    INSTANCE_CHECK = "instance-check"
    SYSTEM_CHECK = "system-check"
    EBS_CHECK = "ebs-check"
    SCHEDULED_EVENTS = "scheduled-events"
    CAPABILITY = "capability"
    ATTESTATION = "kdump-attestation"
    COOLDOWN = "cooldown"
    BUDGET = "daily-budget"
    BREAKER = "circuit-breaker"
    ORGANISATION_BREAKER = "organisation-breaker"


GUARD_ORDER: tuple[Guard, ...] = tuple(Guard)


class Verdict(StrEnum):
    INTERRUPT = "interrupt"
    SKIP = "skip"  # incident state "skipped"
    ESCALATE = "escalate"  # incident state "escalated": a human must look (budget exhausted)


@dataclass(frozen=True, kw_only=True)
class Decision:
    verdict: Verdict
    reason: str
    guard: Guard | None = None  # the guard that said no (None when the verdict is INTERRUPT)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class InstanceFacts:
    """What DescribeInstances says about the instance (``None`` in :class:`Facts`: not found)."""

    instance_id: str
    state: str  # pending | running | stopping | stopped | shutting-down | terminated
    launch_time: datetime
    instance_type: str
    architecture: str
    availability_zone: str
    tags: Mapping[str, str]


@dataclass(frozen=True, kw_only=True)
class StatusFacts:
    """DescribeInstanceStatus for the instance (``IncludeAllInstances=True``)."""

    instance_status: str  # ok | impaired | initializing | insufficient-data | not-applicable
    system_status: str
    ebs_status: str | None  # AttachedEbsStatus; None: the API did not say
    impaired_since: datetime | None
    scheduled_events: tuple[str, ...]  # descriptions of events not completed / cancelled


@dataclass(frozen=True, kw_only=True)
class TypeFacts:
    """DescribeInstanceTypes for the instance type, plus what the interrupt API answered."""

    instance_type: str
    hypervisor: str | None  # "nitro" | "xen" | None (bare metal)
    bare_metal: bool
    architectures: tuple[str, ...]
    #: The reason from an earlier ``UnsupportedOperation`` answer for this type (the authority).
    unsupported_reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class Facts:
    """Everything the pre-claim guards look at. ``None`` fields were not (or could not be) read
    because an earlier guard already decides, or the instance does not exist."""

    kill_switch: str
    location_matches: bool
    location_detail: str
    instance: InstanceFacts | None
    status: StatusFacts | None
    type_facts: TypeFacts | None


def _skip(guard: Guard, reason: str, warnings: tuple[str, ...] = ()) -> Decision:
    return Decision(verdict=Verdict.SKIP, guard=guard, reason=reason, warnings=warnings)


def decide(facts: Facts, settings: Settings, now: datetime) -> Decision:
    """Guards 2-5b in order; the first that says no decides. ``now``: aware UTC."""
    if facts.kill_switch != "off":
        return _skip(
            Guard.KILL_SWITCH,
            f"kill switch {settings.kill_switch_parameter} is {facts.kill_switch!r} "
            "(only 'off' allows interrupts)",
        )
    if not facts.location_matches:
        return _skip(Guard.ACCOUNT_REGION, facts.location_detail)
    instance = facts.instance
    if instance is None:
        return _skip(Guard.OPT_IN, "instance not found (terminated or not in this account)")
    tag_value = instance.tags.get(settings.opt_in_tag_key)
    if tag_value != settings.opt_in_tag_value:
        shown = "absent" if tag_value is None else repr(tag_value)
        return _skip(
            Guard.OPT_IN,
            f"instance is not opted in now: tag {settings.opt_in_tag_key} is {shown}, "
            f"not {settings.opt_in_tag_value!r}",
        )
    if instance.state != "running":
        return _skip(Guard.INSTANCE_STATE, f"instance is {instance.state}, not running")
    status = facts.status
    if status is None:
        return _skip(Guard.INSTANCE_STATE, "no instance status reported for a running instance")
    up_for = (now - instance.launch_time).total_seconds()
    if up_for < settings.boot_grace_seconds:
        return _skip(
            Guard.BOOT_GRACE,
            f"instance started {int(up_for)} s ago, within the boot grace of "
            f"{settings.boot_grace_seconds} s",
        )
    # aws-assumption: describe-instance-status-semantics
    if status.instance_status == "initializing":
        return _skip(Guard.BOOT_GRACE, "instance status checks are still initializing")
    if status.instance_status != "impaired":
        return _skip(
            Guard.INSTANCE_CHECK,
            f"instance status check is {status.instance_status!r} now, not impaired",
        )
    if status.system_status != "ok":
        return _skip(
            Guard.SYSTEM_CHECK,
            f"system status check is {status.system_status!r}: a system-check problem is on "
            "the AWS side (leave it to EC2 recovery); an NMI would not help",
        )
    if status.ebs_status not in ("ok", "not-applicable"):
        shown = "unknown" if status.ebs_status is None else repr(status.ebs_status)
        return _skip(
            Guard.EBS_CHECK,
            f"attached-EBS status check is {shown}: the dump could not be written",
        )
    if status.scheduled_events:
        return _skip(
            Guard.SCHEDULED_EVENTS,
            "instance has scheduled events: " + "; ".join(status.scheduled_events)[:300],
        )
    capability = _capability(instance, facts.type_facts, settings)
    if capability.verdict is not Verdict.INTERRUPT:
        return capability
    warnings = capability.warnings
    attestation = _attestation(instance, settings, now)
    if attestation is not None:
        if settings.attestation_policy is AttestationPolicy.REQUIRE:
            return _skip(Guard.ATTESTATION, attestation, warnings)
        warnings = (*warnings, f"{attestation} (policy warn: interrupting anyway)")
    return Decision(
        verdict=Verdict.INTERRUPT,
        reason=_go_reason(status),
        warnings=warnings,
    )


def _go_reason(status: StatusFacts) -> str:
    since = ""
    if status.impaired_since is not None:
        since = f" since {status.impaired_since.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    return f"instance status check impaired{since}; system and EBS checks ok; all guards passed"


# aws-assumption: diagnostic-interrupt-instance-types
def _capability(instance: InstanceFacts, types: TypeFacts | None, settings: Settings) -> Decision:
    if types is None:
        return _skip(Guard.CAPABILITY, f"instance type {instance.instance_type} is unknown")
    if types.unsupported_reason:
        return _skip(
            Guard.CAPABILITY,
            f"EC2 answered UnsupportedOperation for {instance.instance_type}: "
            f"{types.unsupported_reason}",
        )
    family = instance.instance_type.split(".", 1)[0]
    if family in UNSUPPORTED_FAMILIES:
        return _skip(
            Guard.CAPABILITY, f"{instance.instance_type}: the A1 family cannot take the interrupt"
        )
    if types.hypervisor == "xen":
        return _skip(
            Guard.CAPABILITY,
            f"{instance.instance_type} is Xen-based: diagnostic interrupts need Nitro",
        )
    if types.hypervisor != "nitro" and not types.bare_metal:
        return _skip(
            Guard.CAPABILITY,
            f"{instance.instance_type}: hypervisor {types.hypervisor!r} is not Nitro",
        )
    arch = instance.architecture
    if arch in VERIFIED_ARCHITECTURES:
        return Decision(verdict=Verdict.INTERRUPT, reason="verified path")
    if arch in UNVERIFIED_ARCHITECTURES:
        if settings.allow_unverified_arch:
            return Decision(
                verdict=Verdict.INTERRUPT,
                reason="unverified path allowed",
                warnings=(
                    f"{arch} is an unverified path: the panic-on-NMI behaviour is not proven there",
                ),
            )
        return _skip(
            Guard.CAPABILITY,
            f"architecture {arch} is unverified for diagnostic interrupts "
            "(allow it with CRASHCART_ALLOW_UNVERIFIED_ARCH=true)",
        )
    return _skip(Guard.CAPABILITY, f"architecture {arch!r} cannot take the interrupt")


def _attestation(instance: InstanceFacts, settings: Settings, now: datetime) -> str | None:
    """None when the attestation is fine (or ignored); otherwise what is wrong with it."""
    if settings.attestation_policy is AttestationPolicy.IGNORE:
        return None
    raw = instance.tags.get(ATTESTATION_TAG_KEY)
    judgement = judge_attestation(
        raw, now=now, max_age_seconds=settings.attestation_max_age_seconds
    )
    at = judgement.attested_at
    match judgement.status:
        case Status.ARMED:
            return None
        case Status.NOT_ARMED:
            assert at is not None
            return f"kdump attested NOT armed at {at.isoformat()}: {judgement.reasons}"
        case Status.STALE:
            assert at is not None
            age = (now - at).total_seconds()
            return (
                f"kdump attestation is {int(age)} s old, older than "
                f"{settings.attestation_max_age_seconds} s: counts as missing"
            )
        case Status.UNPARSEABLE if at is not None:
            return f"kdump attestation time {at.isoformat()} is in the future"
        case _:
            shown = "absent" if raw is None else f"unreadable ({raw[:60]!r})"
            return f"kdump attestation {shown}: kdump may not be armed"


# ----------------------------------------------------------------------------------------------
# Guards 6 and 7: the claim.


@dataclass(frozen=True, kw_only=True)
class LimitsState:
    """The per-instance limits item (``pk=instance#<id>``, ``sk=limits``) as read."""

    exists: bool = False
    version: int = 0
    last_interrupt_epoch: int | None = None
    budget_day: str | None = None  # UTC day "YYYY-MM-DD" the count belongs to
    budget_count: int = 0
    claim_incident: str | None = None  # sk of the incident holding the latest claim
    prev_last_interrupt_epoch: int | None = None  # restored if that claim is released


@dataclass(frozen=True, kw_only=True)
class ClaimPlan:
    decision: Decision
    limits_after: LimitsState | None  # None: the limits item is not written
    fleet: BreakerStep
    az: BreakerStep | None  # None when the AZ is unknown

    @property
    def opened_scopes(self) -> tuple[str, ...]:
        scopes = ["fleet"] if self.fleet.just_opened else []
        if self.az is not None and self.az.just_opened:
            scopes.append("az")
        return tuple(scopes)


def plan_claim(
    pre: Decision,
    *,
    limits: LimitsState,
    fleet: BreakerState,
    az: BreakerState | None,
    settings: Settings,
    now_epoch: int,
    incident_sk: str,
) -> ClaimPlan:
    """Guards 6 (cooldown, budget) and 7 (breaker) over the read state, plus the new state.

    Every new ALARM counts in the breakers, whatever the verdict (``pre`` may already be a
    refusal). The limits item is only written when the verdict stays INTERRUPT.
    """
    timing = {
        "window_seconds": settings.breaker_window_seconds,
        "quiet_seconds": settings.breaker_quiet_seconds,
        "now_epoch": now_epoch,
    }
    fleet_step = step_breaker(fleet, threshold=settings.breaker_fleet_threshold, **timing)
    az_step = (
        None if az is None else step_breaker(az, threshold=settings.breaker_az_threshold, **timing)
    )
    if pre.verdict is not Verdict.INTERRUPT:
        return ClaimPlan(decision=pre, limits_after=None, fleet=fleet_step, az=az_step)
    today = _day(now_epoch)
    last = limits.last_interrupt_epoch
    if last is not None and now_epoch - last < settings.cooldown_seconds:
        decision = _skip(
            Guard.COOLDOWN,
            f"instance was interrupted {now_epoch - last} s ago, within the cooldown of "
            f"{settings.cooldown_seconds} s",
            pre.warnings,
        )
        return ClaimPlan(decision=decision, limits_after=None, fleet=fleet_step, az=az_step)
    used = limits.budget_count if limits.budget_day == today else 0
    if used >= settings.daily_budget:
        decision = Decision(
            verdict=Verdict.ESCALATE,
            guard=Guard.BUDGET,
            reason=(
                f"daily budget of {settings.daily_budget} interrupt(s) for this instance is "
                f"used up ({today} UTC): a human must look, crashcart will not interrupt it "
                "again today"
            ),
            warnings=pre.warnings,
        )
        return ClaimPlan(decision=decision, limits_after=None, fleet=fleet_step, az=az_step)
    open_scopes = [
        name for name, step in (("fleet", fleet_step), ("az", az_step)) if step and step.is_open
    ]
    if open_scopes:
        decision = _skip(
            Guard.BREAKER,
            f"circuit breaker open ({', '.join(open_scopes)}): many instances failed their "
            "checks at once, likely an infrastructure event; not interrupting",
            pre.warnings,
        )
        return ClaimPlan(decision=decision, limits_after=None, fleet=fleet_step, az=az_step)
    limits_after = LimitsState(
        exists=True,
        version=limits.version + 1,
        last_interrupt_epoch=now_epoch,
        budget_day=today,
        budget_count=used + 1,
        claim_incident=incident_sk,
        prev_last_interrupt_epoch=last,
    )
    return ClaimPlan(decision=pre, limits_after=limits_after, fleet=fleet_step, az=az_step)


def _day(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d")
