"""The pure decision: every guard each way, their order, and properties over the claim."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from crashcart.runtime.attestation import parse_attestation
from tests.support.remediation_runtime import load, settings

R = load()
D = R.decision
Guard = D.Guard
Verdict = D.Verdict

NOW = datetime(2026, 11, 26, 5, 20, 30, tzinfo=UTC)
NOW_EPOCH = int(NOW.timestamp())
SK = "incident#2026-11-26T05:19:49Z"


def good_instance(**changes: Any) -> Any:
    base = D.InstanceFacts(
        instance_id="i-0123456789abcdef0",
        state="running",
        launch_time=NOW - timedelta(days=3),
        instance_type="m5.large",
        architecture="x86_64",
        availability_zone="eu-west-1a",
        tags={
            "crashcart:diagnostic-interrupt": "enabled",
            "crashcart:kdump-attestation": "armed 2026-11-26T04:00:00Z",
        },
    )
    return replace(base, **changes)


def good_status(**changes: Any) -> Any:
    base = D.StatusFacts(
        instance_status="impaired",
        system_status="ok",
        ebs_status="ok",
        impaired_since=NOW - timedelta(minutes=5),
        scheduled_events=(),
    )
    return replace(base, **changes)


def good_types(**changes: Any) -> Any:
    base = D.TypeFacts(
        instance_type="m5.large", hypervisor="nitro", bare_metal=False, architectures=("x86_64",)
    )
    return replace(base, **changes)


def good_facts(**changes: Any) -> Any:
    base = D.Facts(
        kill_switch="off",
        location_matches=True,
        location_detail="",
        instance=good_instance(),
        status=good_status(),
        type_facts=good_types(),
    )
    return replace(base, **changes)


def with_tags(**tags: str | None) -> Any:
    current = dict(good_instance().tags)
    for k, v in tags.items():
        key = k.replace("__", ":").replace("_", "-")
        if v is None:
            current.pop(key, None)
        else:
            current[key] = v
    return good_instance(tags=current)


def test_all_guards_pass_interrupts() -> None:
    decision = D.decide(good_facts(), settings(), NOW)
    assert decision.verdict is Verdict.INTERRUPT
    assert decision.guard is None
    assert "impaired since 2026-11-26T05:15:30Z" in decision.reason
    assert decision.warnings == ()


# One row per guard, the failing fact first; every row also proves the guard passes in
# test_all_guards_pass_interrupts (same baseline, only this fact changed).
REFUSALS: list[tuple[str, Any, Any, str]] = [
    ("kill switch on", good_facts(kill_switch="on"), Guard.KILL_SWITCH, "'on'"),
    ("kill switch garbage", good_facts(kill_switch="maybe"), Guard.KILL_SWITCH, "only 'off'"),
    ("kill switch empty", good_facts(kill_switch=""), Guard.KILL_SWITCH, "''"),
    (
        "other account",
        good_facts(location_matches=False, location_detail="alarm is in 2222/eu-west-1"),
        Guard.ACCOUNT_REGION,
        "2222",
    ),
    ("instance gone", good_facts(instance=None), Guard.OPT_IN, "not found"),
    (
        "no opt-in tag",
        good_facts(instance=with_tags(crashcart__diagnostic_interrupt=None)),
        Guard.OPT_IN,
        "absent",
    ),
    (
        "opt-in tag other value",
        good_facts(instance=with_tags(crashcart__diagnostic_interrupt="disabled")),
        Guard.OPT_IN,
        "'disabled'",
    ),
    (
        "opt-in tag key other case",
        good_facts(
            instance=good_instance(
                tags={
                    "Crashcart:Diagnostic-Interrupt": "enabled",
                    "crashcart:kdump-attestation": "armed 2026-11-26T04:00:00Z",
                }
            )
        ),
        Guard.OPT_IN,
        "absent",
    ),
    (
        "stopped",
        good_facts(instance=good_instance(state="stopped")),
        Guard.INSTANCE_STATE,
        "stopped",
    ),
    (
        "pending",
        good_facts(instance=good_instance(state="pending")),
        Guard.INSTANCE_STATE,
        "pending",
    ),
    ("no status", good_facts(status=None), Guard.INSTANCE_STATE, "no instance status"),
    (
        "just launched",
        good_facts(instance=good_instance(launch_time=NOW - timedelta(seconds=899))),
        Guard.BOOT_GRACE,
        "899 s ago",
    ),
    (
        "initializing",
        good_facts(status=good_status(instance_status="initializing")),
        Guard.BOOT_GRACE,
        "initializing",
    ),
    (
        "check ok now",
        good_facts(status=good_status(instance_status="ok")),
        Guard.INSTANCE_CHECK,
        "'ok'",
    ),
    (
        "insufficient data",
        good_facts(status=good_status(instance_status="insufficient-data")),
        Guard.INSTANCE_CHECK,
        "insufficient-data",
    ),
    (
        "system impaired",
        good_facts(status=good_status(system_status="impaired")),
        Guard.SYSTEM_CHECK,
        "AWS side",
    ),
    (
        "system initializing",
        good_facts(status=good_status(system_status="initializing")),
        Guard.SYSTEM_CHECK,
        "initializing",
    ),
    (
        "ebs impaired",
        good_facts(status=good_status(ebs_status="impaired")),
        Guard.EBS_CHECK,
        "dump",
    ),
    ("ebs unknown", good_facts(status=good_status(ebs_status=None)), Guard.EBS_CHECK, "unknown"),
    (
        "scheduled event",
        good_facts(status=good_status(scheduled_events=("system-reboot soon",))),
        Guard.SCHEDULED_EVENTS,
        "system-reboot",
    ),
    ("type unknown", good_facts(type_facts=None), Guard.CAPABILITY, "unknown"),
    (
        "xen",
        good_facts(
            instance=good_instance(instance_type="t2.micro"),
            type_facts=good_types(instance_type="t2.micro", hypervisor="xen"),
        ),
        Guard.CAPABILITY,
        "Xen",
    ),
    (
        "a1",
        good_facts(
            instance=good_instance(instance_type="a1.large", architecture="arm64"),
            type_facts=good_types(instance_type="a1.large", architectures=("arm64",)),
        ),
        Guard.CAPABILITY,
        "A1",
    ),
    (
        "arm64 not allowed",
        good_facts(
            instance=good_instance(instance_type="m6g.large", architecture="arm64"),
            type_facts=good_types(instance_type="m6g.large", architectures=("arm64",)),
        ),
        Guard.CAPABILITY,
        "unverified",
    ),
    (
        "mac",
        good_facts(instance=good_instance(architecture="x86_64_mac")),
        Guard.CAPABILITY,
        "x86_64_mac",
    ),
    (
        "unknown hypervisor",
        good_facts(type_facts=good_types(hypervisor=None)),
        Guard.CAPABILITY,
        "not Nitro",
    ),
    (
        "api said unsupported",
        good_facts(type_facts=good_types(unsupported_reason="not supported on this type")),
        Guard.CAPABILITY,
        "UnsupportedOperation",
    ),
    (
        "attestation missing",
        good_facts(instance=with_tags(crashcart__kdump_attestation=None)),
        Guard.ATTESTATION,
        "absent",
    ),
    (
        "attestation not armed",
        good_facts(
            instance=with_tags(
                crashcart__kdump_attestation="not-armed 2026-11-26T04:00:00Z crashkernel missing"
            )
        ),
        Guard.ATTESTATION,
        "crashkernel missing",
    ),
    (
        "attestation garbage",
        good_facts(instance=with_tags(crashcart__kdump_attestation="yes please")),
        Guard.ATTESTATION,
        "unreadable",
    ),
    (
        "attestation stale",
        good_facts(instance=with_tags(crashcart__kdump_attestation="armed 2026-11-01T00:00:00Z")),
        Guard.ATTESTATION,
        "counts as missing",
    ),
    (
        "attestation from the future",
        good_facts(instance=with_tags(crashcart__kdump_attestation="armed 2026-11-27T00:00:00Z")),
        Guard.ATTESTATION,
        "future",
    ),
]


@pytest.mark.parametrize(
    ("facts", "guard", "words"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_each_guard_refuses_with_its_reason(facts: Any, guard: Any, words: str) -> None:
    decision = D.decide(facts, settings(), NOW)
    assert decision.verdict is Verdict.SKIP
    assert decision.guard is guard
    assert words in decision.reason


def test_boot_grace_boundary_passes() -> None:
    facts = good_facts(instance=good_instance(launch_time=NOW - timedelta(seconds=900)))
    assert D.decide(facts, settings(), NOW).verdict is Verdict.INTERRUPT


def test_bare_metal_nitro_passes_and_completed_events_do_not_count() -> None:
    facts = good_facts(type_facts=good_types(hypervisor=None, bare_metal=True))
    assert D.decide(facts, settings(), NOW).verdict is Verdict.INTERRUPT


def test_arm64_allowed_goes_with_a_warning() -> None:
    facts = good_facts(
        instance=good_instance(instance_type="m6g.large", architecture="arm64"),
        type_facts=good_types(instance_type="m6g.large", architectures=("arm64",)),
    )
    decision = D.decide(facts, settings(allow_unverified_arch=True), NOW)
    assert decision.verdict is Verdict.INTERRUPT
    assert any("unverified" in w for w in decision.warnings)


def test_attestation_policy_warn_goes_with_warning_and_ignore_goes_silently() -> None:
    facts = good_facts(instance=with_tags(crashcart__kdump_attestation=None))
    warn = D.decide(facts, settings(attestation_policy=R.settings.AttestationPolicy.WARN), NOW)
    assert warn.verdict is Verdict.INTERRUPT
    assert any("attestation absent" in w for w in warn.warnings)
    ignore = D.decide(facts, settings(attestation_policy=R.settings.AttestationPolicy.IGNORE), NOW)
    assert ignore.verdict is Verdict.INTERRUPT
    assert ignore.warnings == ()


def test_guard_order_is_the_documented_order() -> None:
    assert [g.value for g in D.GUARD_ORDER] == [
        "kill-switch",
        "account-region",
        "opt-in-tag",
        "instance-state",
        "boot-grace",
        "instance-check",
        "system-check",
        "ebs-check",
        "scheduled-events",
        "capability",
        "kdump-attestation",
        "cooldown",
        "daily-budget",
        "circuit-breaker",
        # last: asked only for a candidate every local guard let through (org_breaker.py)
        "organisation-breaker",
    ]


def test_first_failing_guard_wins() -> None:
    """Facts failing every pre-claim guard at once: removing failures one by one (earliest
    first) moves the reported guard along the documented order."""
    failing: list[tuple[Any, dict[str, Any]]] = [
        (Guard.KILL_SWITCH, {"kill_switch": "on"}),
        (Guard.ACCOUNT_REGION, {"location_matches": False, "location_detail": "elsewhere"}),
    ]
    instance_changes: list[tuple[Any, dict[str, Any]]] = [
        (Guard.OPT_IN, {"tags": {}}),
    ]
    facts = good_facts(kill_switch="on", location_matches=False, location_detail="elsewhere")
    facts = replace(facts, instance=good_instance(tags={}, launch_time=NOW))
    facts = replace(
        facts,
        status=good_status(
            instance_status="ok",
            system_status="impaired",
            ebs_status="impaired",
            scheduled_events=("x",),
        ),
        type_facts=good_types(hypervisor="xen"),
    )
    seen = []
    for guard, fix in failing:
        decision = D.decide(facts, settings(), NOW)
        seen.append(decision.guard)
        assert decision.guard is guard
        facts = replace(facts, **{k: v for k, v in good_facts().__dict__.items() if k in fix})
    for guard, _fix in instance_changes:
        assert D.decide(facts, settings(), NOW).guard is guard
        facts = replace(facts, instance=replace(facts.instance, tags=dict(good_instance().tags)))
    assert D.decide(facts, settings(), NOW).guard is Guard.BOOT_GRACE
    facts = replace(facts, instance=good_instance())
    assert D.decide(facts, settings(), NOW).guard is Guard.INSTANCE_CHECK
    facts = replace(facts, status=replace(facts.status, instance_status="impaired"))
    assert D.decide(facts, settings(), NOW).guard is Guard.SYSTEM_CHECK
    facts = replace(facts, status=replace(facts.status, system_status="ok"))
    assert D.decide(facts, settings(), NOW).guard is Guard.EBS_CHECK
    facts = replace(facts, status=replace(facts.status, ebs_status="ok"))
    assert D.decide(facts, settings(), NOW).guard is Guard.SCHEDULED_EVENTS
    facts = replace(facts, status=replace(facts.status, scheduled_events=()))
    assert D.decide(facts, settings(), NOW).guard is Guard.CAPABILITY
    facts = replace(facts, type_facts=good_types())
    assert D.decide(facts, settings(), NOW).verdict is Verdict.INTERRUPT
    assert seen == [Guard.KILL_SWITCH, Guard.ACCOUNT_REGION]


@pytest.mark.parametrize(
    ("value", "armed"),
    [
        ("armed 2026-11-26T04:00:00Z", True),
        ("not-armed 2026-11-26T04:00:00Z kexec_load_disabled is 1", False),
        ("armed 2026-11-26T04:00:00Z extra", None),
        ("armed yesterday", None),
        ("armed 2026-11-26T04:00:00", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_attestation(value: str | None, armed: bool | None) -> None:
    parsed = parse_attestation(value)
    if armed is None:
        assert parsed is None
    else:
        assert parsed is not None and parsed.armed is armed


# ----------------------------------------------------------------------------------------
# Guards 6 and 7 (plan_claim)

GO = D.Decision(verdict=Verdict.INTERRUPT, reason="all guards passed")


def plan(
    limits: Any = None,
    fleet: Any = None,
    az: Any = None,
    pre: Any = GO,
    now: int = NOW_EPOCH,
    **s: Any,
) -> Any:
    return D.plan_claim(
        pre,
        limits=limits or D.LimitsState(),
        fleet=fleet or D.BreakerState(),
        az=az if az is not None else D.BreakerState(),
        settings=settings(**s),
        now_epoch=now,
        incident_sk=SK,
    )


def test_first_claim_interrupts_and_takes_the_budget() -> None:
    result = plan()
    assert result.decision.verdict is Verdict.INTERRUPT
    after = result.limits_after
    assert after.last_interrupt_epoch == NOW_EPOCH
    assert (after.budget_day, after.budget_count, after.claim_incident) == ("2026-11-26", 1, SK)
    assert after.version == 1
    assert result.fleet.after.count == 1 and result.az.after.count == 1
    assert result.opened_scopes == ()


def test_cooldown_refuses_inside_and_allows_at_the_boundary() -> None:
    inside = plan(
        D.LimitsState(exists=True, version=3, last_interrupt_epoch=NOW_EPOCH - 100), daily_budget=5
    )
    assert inside.decision.guard is Guard.COOLDOWN
    assert inside.limits_after is None
    assert "100 s ago" in inside.decision.reason
    boundary = plan(
        D.LimitsState(
            exists=True,
            version=3,
            last_interrupt_epoch=NOW_EPOCH - 21600,
            budget_day="2026-11-26",
            budget_count=1,
        ),
        daily_budget=5,
    )
    assert boundary.decision.verdict is Verdict.INTERRUPT
    assert boundary.limits_after.budget_count == 2
    assert boundary.limits_after.prev_last_interrupt_epoch == NOW_EPOCH - 21600


def test_budget_escalates_today_and_resets_on_a_new_utc_day() -> None:
    used = D.LimitsState(
        exists=True,
        version=1,
        last_interrupt_epoch=NOW_EPOCH - 30000,
        budget_day="2026-11-26",
        budget_count=1,
    )
    today = plan(used)
    assert today.decision.verdict is Verdict.ESCALATE
    assert today.decision.guard is Guard.BUDGET
    yesterday = plan(replace(used, budget_day="2026-11-25"))
    assert yesterday.decision.verdict is Verdict.INTERRUPT
    assert yesterday.limits_after.budget_count == 1


def test_breaker_opens_on_the_threshold_alarm_which_is_not_interrupted() -> None:
    fleet = D.BreakerState(
        exists=True,
        version=4,
        window_start_epoch=NOW_EPOCH - 60,
        count=4,
        last_alarm_epoch=NOW_EPOCH - 10,
    )
    result = plan(fleet=fleet)
    assert result.decision.guard is Guard.BREAKER
    assert result.opened_scopes == ("fleet",)
    assert result.fleet.after.opened_epoch == NOW_EPOCH
    assert result.limits_after is None
    # one below the threshold still goes
    assert plan(fleet=replace(fleet, count=3)).decision.verdict is Verdict.INTERRUPT


def test_az_breaker_opens_independently() -> None:
    az = D.BreakerState(
        exists=True,
        version=2,
        window_start_epoch=NOW_EPOCH - 60,
        count=2,
        last_alarm_epoch=NOW_EPOCH - 5,
    )
    result = plan(az=az)
    assert result.opened_scopes == ("az",)
    assert result.decision.guard is Guard.BREAKER


def test_open_breaker_stays_open_counts_and_does_not_reannounce() -> None:
    fleet = D.BreakerState(
        exists=True,
        version=9,
        window_start_epoch=NOW_EPOCH - 600,
        count=7,
        opened_epoch=NOW_EPOCH - 500,
        last_alarm_epoch=NOW_EPOCH - 100,
    )
    result = plan(fleet=fleet)
    assert result.decision.guard is Guard.BREAKER
    assert result.opened_scopes == ()
    assert result.fleet.after.count == 8
    assert result.fleet.after.last_alarm_epoch == NOW_EPOCH


def test_open_breaker_closes_after_the_quiet_period() -> None:
    fleet = D.BreakerState(
        exists=True,
        version=9,
        window_start_epoch=NOW_EPOCH - 9000,
        count=7,
        opened_epoch=NOW_EPOCH - 8000,
        last_alarm_epoch=NOW_EPOCH - 3600,
    )
    result = plan(fleet=fleet)
    assert result.fleet.closed_by_quiet
    assert result.decision.verdict is Verdict.INTERRUPT
    assert result.fleet.after.opened_epoch is None and result.fleet.after.count == 1
    not_yet = plan(fleet=replace(fleet, last_alarm_epoch=NOW_EPOCH - 3599))
    assert not_yet.decision.guard is Guard.BREAKER


def test_window_rolls_over() -> None:
    fleet = D.BreakerState(
        exists=True,
        version=4,
        window_start_epoch=NOW_EPOCH - 900,
        count=4,
        last_alarm_epoch=NOW_EPOCH - 400,
    )
    result = plan(fleet=fleet)
    assert result.decision.verdict is Verdict.INTERRUPT
    assert result.fleet.after.window_start_epoch == NOW_EPOCH
    assert result.fleet.after.count == 1


def test_refused_alarms_still_count_in_the_breaker() -> None:
    refused = D.Decision(verdict=Verdict.SKIP, guard=Guard.OPT_IN, reason="not opted in")
    result = plan(pre=refused)
    assert result.decision is refused
    assert result.fleet.after.count == 1
    assert result.limits_after is None


def test_no_az_known_counts_the_fleet_only() -> None:
    result = D.plan_claim(
        GO,
        limits=D.LimitsState(),
        fleet=D.BreakerState(),
        az=None,
        settings=settings(),
        now_epoch=NOW_EPOCH,
        incident_sk=SK,
    )
    assert result.az is None
    assert result.fleet.after.count == 1


# ----------------------------------------------------------------------------------------
# Properties: a sequence of alarms (random instances, random gaps) applied to a model table
# exactly the way the handler applies plans (each plan on the state it was computed from).

INSTANCES = ["i-00000000000000001", "i-00000000000000002", "i-00000000000000003"]


@st.composite
def alarm_sequences(draw: Any) -> list[tuple[int, int, bool, bool]]:
    n = draw(st.integers(min_value=1, max_value=30))
    return [
        (
            draw(st.integers(min_value=0, max_value=len(INSTANCES) - 1)),
            draw(st.integers(min_value=0, max_value=20_000)),  # seconds since the last alarm
            draw(st.booleans()),  # opted in now?
            draw(st.booleans()),  # does EC2 refuse the interrupt (claim released)?
        )
        for _ in range(n)
    ]


def run_model(seq: list[tuple[int, int, bool, bool]], **s: Any) -> list[dict[str, Any]]:
    cfg = settings(**s)
    limits: dict[str, Any] = {i: D.LimitsState() for i in INSTANCES}
    fleet = D.BreakerState()
    azs = {"a": D.BreakerState()}
    now = NOW_EPOCH
    log = []
    for idx, gap, opted_in, refused in seq:
        now += gap
        instance = INSTANCES[idx]
        tags = {"crashcart:kdump-attestation": "armed 2026-11-26T04:00:00Z"}
        if opted_in:
            tags["crashcart:diagnostic-interrupt"] = "enabled"
        facts = good_facts(instance=good_instance(instance_id=instance, tags=tags))
        moment = datetime.fromtimestamp(NOW_EPOCH, tz=UTC)  # facts are time-independent here
        pre = D.decide(facts, cfg, moment)
        p = D.plan_claim(
            pre,
            limits=limits[instance],
            fleet=fleet,
            az=azs["a"],
            settings=cfg,
            now_epoch=now,
            incident_sk=f"incident#{now}",
        )
        fleet = p.fleet.after
        azs["a"] = p.az.after
        was_open = p.fleet.before.opened_epoch is not None and not p.fleet.closed_by_quiet
        interrupted = p.decision.verdict is Verdict.INTERRUPT
        if interrupted:
            assert p.limits_after is not None
            if refused:
                limits[instance] = replace(
                    p.limits_after,
                    last_interrupt_epoch=p.limits_after.prev_last_interrupt_epoch,
                    budget_count=p.limits_after.budget_count - 1,
                    claim_incident=None,
                )
            else:
                limits[instance] = p.limits_after
        log.append(
            {
                "instance": instance,
                "now": now,
                "opted_in": opted_in,
                "sent": interrupted and not refused,
                "interrupted": interrupted,
                "breaker_was_open": was_open or p.fleet.is_open or p.az.is_open,
                "opened": p.opened_scopes,
            }
        )
    return log


@hsettings(max_examples=60, deadline=None)
@given(alarm_sequences())
def test_property_never_interrupt_without_the_tag(seq: list[tuple[int, int, bool, bool]]) -> None:
    for entry in run_model(seq):
        if not entry["opted_in"]:
            assert not entry["interrupted"]


@hsettings(max_examples=60, deadline=None)
@given(alarm_sequences(), st.integers(min_value=1800, max_value=30_000))
def test_property_never_two_within_the_cooldown(
    seq: list[tuple[int, int, bool, bool]], cooldown: int
) -> None:
    last: dict[str, int] = {}
    for entry in run_model(seq, cooldown_seconds=cooldown, daily_budget=24):
        if entry["sent"]:
            previous = last.get(entry["instance"])
            assert previous is None or entry["now"] - previous >= cooldown
            last[entry["instance"]] = entry["now"]


@hsettings(max_examples=60, deadline=None)
@given(alarm_sequences(), st.integers(min_value=1, max_value=3))
def test_property_never_past_the_daily_budget(
    seq: list[tuple[int, int, bool, bool]], budget: int
) -> None:
    per_day: dict[tuple[str, str], int] = {}
    for entry in run_model(seq, cooldown_seconds=1800, daily_budget=budget):
        if entry["sent"]:
            day = datetime.fromtimestamp(entry["now"], tz=UTC).strftime("%Y-%m-%d")
            per_day[(entry["instance"], day)] = per_day.get((entry["instance"], day), 0) + 1
            assert per_day[(entry["instance"], day)] <= budget


@hsettings(max_examples=60, deadline=None)
@given(alarm_sequences(), st.integers(min_value=2, max_value=6))
def test_property_never_while_the_breaker_is_open(
    seq: list[tuple[int, int, bool, bool]], threshold: int
) -> None:
    log = run_model(
        seq,
        breaker_fleet_threshold=threshold,
        breaker_az_threshold=threshold,
        cooldown_seconds=1800,
        daily_budget=24,
    )
    for entry in log:
        if entry["breaker_was_open"]:
            assert not entry["interrupted"]
