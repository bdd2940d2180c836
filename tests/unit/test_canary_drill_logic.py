"""The drill's pure judgements: readiness (and the boot grace), the dump, the verdict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crashcart.functions.canary_drill.logic import (
    IncidentFacts,
    Readiness,
    conclude,
    judge_dump,
    judge_ready,
    skip_reason,
)
from crashcart.runtime.canary import Outcome, Poll

NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
ARMED = Readiness(
    state="running",
    instance_check="ok",
    system_check="ok",
    attestation=f"armed {(NOW - timedelta(minutes=1)).isoformat()}",
)


def test_armed_inside_the_boot_grace_waits_even_past_the_boot_deadline() -> None:
    # The remediation skips instances younger than its boot grace: hanging now would fail.
    poll, reason = judge_ready(
        ARMED,
        now=NOW,
        deadline=NOW - timedelta(minutes=1),
        max_age_seconds=3600,
        hang_at=NOW + timedelta(minutes=5),
    )
    assert poll is Poll.PENDING and "boot grace" in reason
    poll, _ = judge_ready(
        ARMED, now=NOW, deadline=NOW, max_age_seconds=3600, hang_at=NOW - timedelta(seconds=1)
    )
    assert poll is Poll.READY


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (
            Readiness(state="pending", instance_check=None, system_check=None, attestation=None),
            Poll.PENDING,
        ),
        (
            Readiness(
                state="running",
                instance_check="initializing",
                system_check="ok",
                attestation=ARMED.attestation,
            ),
            Poll.PENDING,
        ),
        (
            Readiness(state="terminated", instance_check=None, system_check=None, attestation=None),
            Poll.FAILED,
        ),
        (
            Readiness(
                state="running",
                instance_check="ok",
                system_check="ok",
                attestation=f"not-armed {NOW.isoformat()} kexec_crash_loaded=0",
            ),
            Poll.FAILED,
        ),
    ],
)
def test_readiness(facts: Readiness, expected: Poll) -> None:
    assert (
        judge_ready(facts, now=NOW, deadline=NOW + timedelta(minutes=5), max_age_seconds=3600)[0]
        is expected
    )


def test_not_armed_by_the_deadline_times_out() -> None:
    facts = Readiness(state="running", instance_check="ok", system_check="ok", attestation=None)
    poll, reason = judge_ready(facts, now=NOW, deadline=NOW, max_age_seconds=3600)
    assert poll is Poll.TIMED_OUT and "deadline" in reason


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ("NMI: Not continuing | nmi | cpu 1: crashcart_hang_spin", Poll.READY),
        ("Kernel panic - not syncing: NMI: Not continuing", Poll.READY),
        ("Kernel panic - not syncing: Fatal exception | oops", Poll.FAILED),
        ("", Poll.FAILED),
    ],
)
def test_the_dump_must_show_the_nmi_panic(summary: str, expected: Poll) -> None:
    incident = IncidentFacts(
        state="dump-received",
        dump_keys=("dumps/A:i-0123456789abcdef0/d/metadata.json",),
        summary=summary,
    )
    assert judge_dump(incident, now=NOW, deadline=NOW + timedelta(hours=1))[0] is expected


def test_a_dump_without_metadata_fails() -> None:
    incident = IncidentFacts(
        state="dump-received", dump_keys=("dumps/x/vmcore",), summary="NMI: Not continuing"
    )
    assert judge_dump(incident, now=NOW, deadline=NOW + timedelta(hours=1))[0] is Poll.FAILED


def test_the_verdict() -> None:
    passed = {"instance_type": "a", "outcome": "passed"}
    failed = {"instance_type": "b", "outcome": "failed", "step": "dump", "reason": "x"}
    inconclusive = {"instance_type": "c", "outcome": "inconclusive", "reason": "capacity"}
    assert conclude([passed, passed], skip_reason=None, from_candidate=True).promote
    assert not conclude([passed], skip_reason=None, from_candidate=False).promote
    assert (
        conclude([passed, failed, inconclusive], skip_reason=None, from_candidate=True).outcome
        is Outcome.FAILED
    )
    assert (
        conclude([passed, inconclusive], skip_reason=None, from_candidate=True).outcome
        is Outcome.INCONCLUSIVE
    )
    assert conclude([], skip_reason=None, from_candidate=True).outcome is Outcome.INCONCLUSIVE
    assert conclude([], skip_reason="arm64", from_candidate=True).outcome is Outcome.SKIPPED


def test_windows_and_arm64_are_skipped_with_a_reason() -> None:
    assert "Graviton" in (skip_reason(family="amazon-linux-2023", architecture="arm64") or "")
    assert "Windows" in (skip_reason(family="windows-server-2022", architecture="x86_64") or "")
    assert skip_reason(family="amazon-linux-2023", architecture="x86_64") is None


def test_a_dump_counts_after_the_alarm_recovered_the_incident() -> None:
    # The alarm goes back to OK after the kdump reboot: the remediation sets the incident to
    # "recovered" (before or after the dump arrives); the dump keys and summary stay.
    incident = IncidentFacts(
        state="recovered",
        dump_keys=("dumps/A:i-0123456789abcdef0/d/metadata.json",),
        summary="NMI: Not continuing | nmi",
    )
    assert judge_dump(incident, now=NOW, deadline=NOW + timedelta(hours=1))[0] is Poll.READY
