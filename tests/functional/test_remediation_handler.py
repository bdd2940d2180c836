"""The remediation handler end to end against moto's server on 127.0.0.1.

SendDiagnosticInterrupt and the DescribeInstanceStatus states are the test layer's
(``tests/support/remediation_runtime.Ec2Script``); every other call is moto's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from tests.conftest import FakeLambdaContext, load_event
from tests.support.remediation_runtime import (
    FIXTURE_INSTANCE,
    Clock,
    MemoryLog,
    World,
    after_launch_clock,
    alarm_event,
    build,
    load,
)

R = load()


@pytest.fixture
def world(moto_server: str) -> Iterator[World]:
    made = World(url=moto_server).setup()
    yield made
    made.teardown()


@pytest.fixture
def clock() -> Clock:
    # moto launches instances "now": two hours later they are past any boot grace.
    return after_launch_clock()


def deliver(world: World, clock: Clock, event: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = build(world, clock, **kwargs).handle(event)
    return result


def test_impaired_opted_in_instance_is_interrupted_end_to_end(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    opened = clock() - timedelta(seconds=60)
    memory = MemoryLog(clock)
    result = deliver(world, clock, alarm_event(instance, at=opened), log=memory.log)

    opened_at = opened.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert result == {
        "outcome": "interrupted",
        "instance_id": instance,
        "incident": f"incident#{opened_at}",
        "reason": "instance status check impaired since 2026-11-26T05:15:00Z; system and EBS "
        "checks ok; all guards passed",
    }
    assert world.script.interrupts == [
        {
            "InstanceId": instance,
            "DryRun": False,
            "answer": "ok",
            "pid": world.script.interrupts[0]["pid"],
        }
    ]
    incident = world.item(f"instance#{instance}", f"incident#{opened_at}")
    assert incident is not None
    assert incident["state"] == "interrupted"
    assert incident["origin"] == "remediation"
    assert incident["opened_at"] == opened_at
    assert incident["request_id"] == f"req-{instance}"
    assert incident["interrupt_outcome"] == "sent"
    deadline = datetime.fromisoformat(incident["dump_deadline"])
    assert deadline == clock().replace(microsecond=0) + timedelta(seconds=1800)
    assert incident["evidence_key"] == f"evidence/{instance}/{opened_at}/console-output.txt"
    assert incident["alarm_name"].startswith("crashcart-test-")
    assert list(world.evidence()) == [incident["evidence_key"]]

    limits = world.item(f"instance#{instance}", "limits")
    assert limits is not None
    assert limits["last_interrupt_epoch"] == int(clock().timestamp())
    assert (limits["budget_count"], limits["claim_incident"]) == (1, f"incident#{opened_at}")
    fleet = world.item("breaker#fleet", "state")
    az = world.item("breaker#az#eu-west-1a", "state")
    assert fleet is not None and az is not None
    assert (fleet["count"], az["count"]) == (1, 1)
    assert "opened_epoch" not in fleet

    (note,) = world.notifications()
    assert note["subject"] == f"crashcart: diagnostic interrupt sent to {instance}"
    for words in (
        "What happened",
        instance,
        "What to expect next",
        f"dumps/{instance}/",
        "reboots",
    ):
        assert words in note["message"]

    records = memory.records()
    final = records[-1]
    assert final["outcome"] == "interrupted" and final["instance_id"] == instance
    assert final["InterruptsSent"] == 1
    assert final["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "crashcart"
    assert final["FunctionName"] == "crashcart-test"


def test_duplicate_delivery_does_not_interrupt_twice(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    event = alarm_event(instance, at=clock() - timedelta(seconds=60))
    assert deliver(world, clock, event)["outcome"] == "interrupted"
    clock.advance(30)
    again = deliver(world, clock, event)
    assert again["outcome"] == "duplicate"
    assert "already exists (interrupted)" in again["reason"]
    assert len(world.script.sent()) == 1
    assert world.item("breaker#fleet", "state")["count"] == 1  # a duplicate is not a new ALARM


def test_alarm_back_to_ok_marks_the_incident_recovered(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    opened = clock() - timedelta(seconds=60)
    deliver(world, clock, alarm_event(instance, at=opened))
    world.notifications()
    clock.advance(600)
    ok = alarm_event(
        instance,
        at=clock() - timedelta(seconds=5),
        state="OK",
        previous="ALARM",
        fixture="remediation_alarm_alarm_to_ok",
    )
    result = deliver(world, clock, ok)
    assert result["outcome"] == "recovered"
    (incident,) = world.incidents(instance)
    assert incident["state"] == "recovered"
    assert incident["recovered_at"] == clock().strftime("%Y-%m-%dT%H:%M:%SZ")
    (note,) = world.notifications()
    assert note["subject"] == f"crashcart: {instance} recovered"
    # a second OK delivery changes nothing
    assert deliver(world, clock, ok)["outcome"] == "ignored"


def test_ok_without_any_incident_is_ignored(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    ok = alarm_event(instance, at=clock(), state="OK", previous="ALARM")
    assert deliver(world, clock, ok)["outcome"] == "ignored"
    assert world.incidents(instance) == []


@pytest.mark.parametrize(
    ("status", "guard"),
    [
        ("initializing", "boot-grace"),
        ("insufficient-data", "instance-check"),
        ("ok", "instance-check"),
        ("system-impaired", "system-check"),
        ("ebs-impaired", "ebs-check"),
        ("no-ebs-status", "ebs-check"),
        ("scheduled-event", "scheduled-events"),
    ],
)
def test_scripted_status_states_are_skipped_and_recorded(
    world: World, clock: Clock, status: str, guard: str
) -> None:
    (instance,) = world.instances(clock=clock, status=status)
    result = deliver(world, clock, alarm_event(instance, at=clock() - timedelta(seconds=60)))
    assert (result["outcome"], result["guard"]) == ("skipped", guard)
    (incident,) = world.incidents(instance)
    assert (incident["state"], incident["guard"]) == ("skipped", guard)
    assert incident["reason"] == result["reason"]
    assert world.script.interrupts == []
    assert world.item(f"instance#{instance}", "limits") is None
    assert world.item("breaker#fleet", "state")["count"] == 1  # still counted
    assert world.notifications() == []  # skips are recorded, not paged


def test_moto_own_status_says_ok_so_nothing_happens(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock, status=None)
    result = deliver(world, clock, alarm_event(instance, at=clock()))
    assert result["guard"] == "instance-check"


def test_completed_scheduled_events_do_not_block(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock, status="completed-event-only")
    assert deliver(world, clock, alarm_event(instance, at=clock()))["outcome"] == "interrupted"


def test_recently_launched_instance_is_within_boot_grace(world: World) -> None:
    clock = Clock(datetime.now(UTC) + timedelta(seconds=60))
    (instance,) = world.instances(clock=clock)
    result = deliver(world, clock, alarm_event(instance, at=clock()))
    assert result["guard"] == "boot-grace"


def test_instance_without_the_opt_in_tag_is_skipped(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock, opted_in=False)
    result = deliver(world, clock, alarm_event(instance, at=clock()))
    assert result["guard"] == "opt-in-tag"
    assert world.script.interrupts == []


def test_opt_in_tag_removed_after_the_alarm_is_honoured(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    world.client("ec2").delete_tags(
        Resources=[instance], Tags=[{"Key": "crashcart:diagnostic-interrupt"}]
    )
    assert deliver(world, clock, alarm_event(instance, at=clock()))["guard"] == "opt-in-tag"


def test_terminated_instance_is_skipped(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    world.client("ec2").terminate_instances(InstanceIds=[instance])
    result = deliver(world, clock, alarm_event(instance, at=clock()))
    assert result["guard"] == "instance-state"
    assert "terminated" in result["reason"]


def test_unknown_instance_is_skipped(world: World, clock: Clock) -> None:
    result = deliver(world, clock, alarm_event("i-0fedcba9876543210", at=clock()))
    assert (result["outcome"], result["guard"]) == ("skipped", "opt-in-tag")
    assert "not found" in result["reason"]


def test_instance_without_attestation_is_skipped_under_require(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock, attestation=None)
    assert deliver(world, clock, alarm_event(instance, at=clock()))["guard"] == "kdump-attestation"


def _first_skip_metrics(memory: MemoryLog) -> list[dict[str, Any]]:
    return [r for r in memory.records() if "FirstUnattestedSkips" in r]


def test_first_attestation_skip_of_an_instance_is_notified_and_counted_once(
    world: World, clock: Clock
) -> None:
    """If instances cannot attest (aws-assumption: attestation-self-tag), every real alarm is
    skipped: the first skip of each instance must say so, loudly but once."""
    unattested, stale = world.instances(2, clock=clock, attestation=None)
    world.client("ec2").create_tags(
        Resources=[stale],
        Tags=[{"Key": "crashcart:kdump-attestation", "Value": "armed 2020-01-01T00:00:00Z"}],
    )
    memory = MemoryLog(clock)
    first_event = alarm_event(unattested, at=clock() - timedelta(seconds=60))
    first = deliver(world, clock, first_event, log=memory.log)
    assert (first["outcome"], first["guard"]) == ("skipped", "kdump-attestation")
    (note,) = world.notifications()
    assert note["subject"] == f"crashcart: {unattested} NOT interrupted: kdump not attested"
    for words in ("kdump attestation absent", "crashcart attestation", "attestation-self-tag"):
        assert words in note["message"]
    (metric,) = _first_skip_metrics(memory)
    assert metric["instance_id"] == unattested and metric["FirstUnattestedSkips"] == 1
    assert metric["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "FirstUnattestedSkips", "Unit": "Count"}
    ]
    marker = world.item(f"instance#{unattested}", "attestation-skip")
    assert marker is not None and marker["skips"] == 1
    assert marker["last_incident"] == first["incident"]

    # the same ALARM delivered again, and a later ALARM of the same instance: recorded, quiet
    clock.advance(30)
    assert deliver(world, clock, first_event, log=memory.log)["outcome"] == "duplicate"
    clock.advance(3600)
    later = deliver(world, clock, alarm_event(unattested, at=clock()), log=memory.log)
    assert (later["outcome"], later["guard"]) == ("skipped", "kdump-attestation")
    assert world.notifications() == []
    assert len(_first_skip_metrics(memory)) == 1
    marker = world.item(f"instance#{unattested}", "attestation-skip")
    assert marker is not None and marker["skips"] == 2
    assert marker["first_skipped_at"] < marker["last_skipped_at"]

    # another instance (here: a stale attestation) gets its own first notification
    clock.advance(5)
    deliver(world, clock, alarm_event(stale, at=clock()), log=memory.log)
    (note,) = world.notifications()
    assert stale in note["subject"] and "counts as missing" in note["message"]
    assert [m["instance_id"] for m in _first_skip_metrics(memory)] == [unattested, stale]


def test_other_skips_are_not_announced_as_attestation_skips(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock, attestation=None, status="system-impaired")
    memory = MemoryLog(clock)
    assert deliver(world, clock, alarm_event(instance, at=clock()), log=memory.log)["guard"] == (
        "system-check"
    )
    assert world.notifications() == []
    assert _first_skip_metrics(memory) == []
    assert world.item(f"instance#{instance}", "attestation-skip") is None


def test_xen_and_arm_types_are_refused_by_capability(world: World, clock: Clock) -> None:
    (xen,) = world.instances(clock=clock, instance_type="t2.micro")
    assert deliver(world, clock, alarm_event(xen, at=clock()))["guard"] == "capability"
    (a1,) = world.instances(clock=clock, instance_type="a1.large")
    clock.advance(1)
    assert deliver(world, clock, alarm_event(a1, at=clock()))["guard"] == "capability"


def test_kill_switch_on_stops_everything(world: World, clock: Clock) -> None:
    world.client("ssm").put_parameter(
        Name=world.env["CRASHCART_KILL_SWITCH_PARAMETER"], Value="on", Type="String", Overwrite=True
    )
    (instance,) = world.instances(clock=clock)
    result = deliver(world, clock, alarm_event(instance, at=clock()))
    assert result["guard"] == "kill-switch"
    assert world.script.interrupts == []


def test_missing_kill_switch_parameter_fails_closed_and_raises(world: World, clock: Clock) -> None:
    world.client("ssm").delete_parameter(Name=world.env["CRASHCART_KILL_SWITCH_PARAMETER"])
    (instance,) = world.instances(clock=clock)
    with pytest.raises(R.adapter.ConfigurationMissingError, match="does not exist"):
        deliver(world, clock, alarm_event(instance, at=clock()))
    assert world.script.interrupts == []
    assert world.incidents(instance) == []


def test_alarm_from_another_account_is_rejected_and_recorded_nowhere(
    world: World, clock: Clock
) -> None:
    (instance,) = world.instances(clock=clock)
    event = alarm_event(instance, at=clock(), fixture="remediation_alarm_other_account")
    result = deliver(world, clock, event)
    assert result["outcome"] == "rejected"
    assert "foreign event: alarm of account 222222222222" in result["reason"]
    assert world.incidents(instance) == []
    assert world.item("breaker#fleet", "state") is None
    (kept,) = world.rejected()
    assert kept["event"] == event


def test_dry_run_calls_with_dryrun_and_sends_nothing(world: World, clock: Clock) -> None:
    world.env["CRASHCART_DRY_RUN"] = "true"
    (instance,) = world.instances(clock=clock)
    result = deliver(world, clock, alarm_event(instance, at=clock()))
    assert result["outcome"] == "dry-run"
    assert [c["DryRun"] for c in world.script.interrupts] == [True]
    assert world.script.sent() == []
    (incident,) = world.incidents(instance)
    assert incident["state"] == "skipped" and incident["dry_run"] is True
    assert "DryRunOperation" in incident["reason"]
    (note,) = world.notifications()
    assert "dry run" in note["subject"] and "did NOT send" in note["message"]


def test_cooldown_then_budget_then_next_day(world: World, clock: Clock) -> None:
    world.env["CRASHCART_COOLDOWN_SECONDS"] = "3600"
    (instance,) = world.instances(clock=clock)
    # Pin the clock to 01:00 UTC of a day, so the whole sequence stays on that day.
    clock.now = clock.now.replace(hour=1, minute=0, second=0) + timedelta(days=1)
    first = deliver(world, clock, alarm_event(instance, at=clock()))
    assert first["outcome"] == "interrupted"
    clock.advance(1200)
    second = deliver(world, clock, alarm_event(instance, at=clock()))
    assert second["guard"] == "cooldown"
    clock.advance(3600)
    world.notifications()
    third = deliver(world, clock, alarm_event(instance, at=clock()))
    assert (third["outcome"], third["guard"]) == ("escalated", "daily-budget")
    (note,) = world.notifications()
    assert note["subject"] == f"crashcart: {instance} needs a human"
    clock.now = clock.now.replace(hour=0, minute=30) + timedelta(days=1)
    fourth = deliver(world, clock, alarm_event(instance, at=clock()))
    assert fourth["outcome"] == "interrupted"
    assert len(world.script.sent()) == 2
    states = sorted(i["state"] for i in world.incidents(instance))
    assert states == ["escalated", "interrupted", "interrupted", "skipped"]


def test_breaker_opens_notifies_once_and_operator_reset_closes_it(
    world: World, clock: Clock
) -> None:
    world.env["CRASHCART_BREAKER_AZ_THRESHOLD"] = "100"
    ids = world.instances(6, clock=clock)
    outcomes = []
    for instance in ids:
        clock.advance(5)
        outcomes.append(deliver(world, clock, alarm_event(instance, at=clock()))["outcome"])
    assert outcomes == ["interrupted"] * 4 + ["skipped", "skipped"]
    notes = [n for n in world.notifications() if "circuit breaker" in n["subject"]]
    assert [n["subject"] for n in notes] == ["crashcart: circuit breaker OPEN (fleet)"]
    assert "infrastructure-wide" in notes[0]["message"] and "breaker#fleet" in notes[0]["message"]
    fleet = world.item("breaker#fleet", "state")
    assert fleet["count"] == 6 and "opened_epoch" in fleet
    # Operator reset: delete the breaker item (documented in claims.py).
    R.claims.reset_breaker(world.client("dynamodb"), world.env["CRASHCART_TABLE_NAME"], "fleet")
    (fresh,) = world.instances(clock=clock)
    clock.advance(5)
    assert deliver(world, clock, alarm_event(fresh, at=clock()))["outcome"] == "interrupted"


def test_breaker_closes_by_itself_after_the_quiet_period(world: World, clock: Clock) -> None:
    world.env.update(
        CRASHCART_BREAKER_FLEET_THRESHOLD="2",
        CRASHCART_BREAKER_AZ_THRESHOLD="100",
        CRASHCART_BREAKER_QUIET_SECONDS="600",
    )
    a, b, c = world.instances(3, clock=clock)
    assert deliver(world, clock, alarm_event(a, at=clock()))["outcome"] == "interrupted"
    clock.advance(10)
    assert deliver(world, clock, alarm_event(b, at=clock()))["guard"] == "circuit-breaker"
    clock.advance(600)
    assert deliver(world, clock, alarm_event(c, at=clock()))["outcome"] == "interrupted"


def test_az_breaker_counts_per_zone(world: World, clock: Clock) -> None:
    in_a = world.instances(3, clock=clock, az="eu-west-1a")
    (in_b,) = world.instances(1, clock=clock, az="eu-west-1b")
    results = []
    for instance in [*in_a, in_b]:
        clock.advance(2)
        results.append(deliver(world, clock, alarm_event(instance, at=clock())))
    assert [r["outcome"] for r in results] == [
        "interrupted",
        "interrupted",
        "skipped",
        "interrupted",
    ]
    assert results[2]["guard"] == "circuit-breaker"
    subjects = [n["subject"] for n in world.notifications() if "breaker" in n["subject"]]
    assert subjects == ["crashcart: circuit breaker OPEN (availability zone eu-west-1a)"]


def test_unsupported_operation_fails_releases_the_claim_and_is_remembered(
    world: World, clock: Clock
) -> None:
    world.env["CRASHCART_DAILY_BUDGET"] = "2"
    (instance,) = world.instances(clock=clock)
    world.script.interrupt_answers[instance] = ["UnsupportedOperation"]
    clients = world.clients()
    result = deliver(world, clock, alarm_event(instance, at=clock()), clients=clients)
    assert result["outcome"] == "failed"
    assert "UnsupportedOperation" in result["reason"]
    (incident,) = world.incidents(instance)
    assert incident["state"] == "failed" and incident["interrupt_code"] == "UnsupportedOperation"
    limits = world.item(f"instance#{instance}", "limits")
    assert limits["budget_count"] == 0 and "last_interrupt_epoch" not in limits
    assert "claim_incident" not in limits
    (note,) = world.notifications()
    assert "could not interrupt" in note["subject"]
    # The API's answer is the authority: the next alarm stops at the capability guard.
    clock.advance(60)
    again = deliver(world, clock, alarm_event(instance, at=clock()), clients=clients)
    assert again["guard"] == "capability" and "UnsupportedOperation" in again["reason"]
    assert len(world.script.interrupts) == 1


def test_timeout_after_sending_counts_as_sent_and_is_not_retried(
    world: World, clock: Clock
) -> None:
    (instance,) = world.instances(clock=clock)
    world.script.interrupt_answers[instance] = ["timeout", "ok"]
    result = deliver(world, clock, alarm_event(instance, at=clock()))
    assert result["outcome"] == "interrupted"
    assert len(world.script.interrupts) == 1  # botocore did not resend it
    (incident,) = world.incidents(instance)
    assert (incident["state"], incident["interrupt_outcome"]) == ("interrupted", "unknown")
    assert world.item(f"instance#{instance}", "limits")["budget_count"] == 1
    (note,) = world.notifications()
    assert "counts it as sent" in note["message"]


def test_connection_never_made_is_a_definite_failure(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    world.script.interrupt_answers[instance] = ["connect"]
    result = deliver(world, clock, alarm_event(instance, at=clock()))
    assert result["outcome"] == "failed"
    assert world.item(f"instance#{instance}", "limits")["budget_count"] == 0


def test_throttling_is_retried_with_backoff(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    world.script.interrupt_answers[instance] = [
        "RequestLimitExceeded",
        "RequestLimitExceeded",
        "ok",
    ]
    sleeps: list[float] = []
    result = deliver(world, clock, alarm_event(instance, at=clock()), sleeps=sleeps)
    assert result["outcome"] == "interrupted"
    assert sleeps[-2:] == [0.5, 1.0]
    (incident,) = world.incidents(instance)
    assert incident["interrupt_attempts"] == 3


def test_server_error_is_an_unknown_outcome_counted_as_sent(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    world.script.interrupt_answers[instance] = ["InternalError"]
    assert deliver(world, clock, alarm_event(instance, at=clock()))["outcome"] == "interrupted"
    (incident,) = world.incidents(instance)
    assert incident["interrupt_outcome"] == "unknown"


def test_contributor_alarm_of_a_metrics_insights_alarm_is_acted_on(
    world: World, clock: Clock
) -> None:
    (instance,) = world.instances(clock=clock)
    event = alarm_event(instance, at=clock(), fixture="remediation_contributor_alarm")
    assert deliver(world, clock, event)["outcome"] == "interrupted"
    ok = alarm_event(
        instance,
        at=clock() + timedelta(seconds=300),
        state="OK",
        fixture="remediation_contributor_ok",
    )
    clock.advance(400)
    assert deliver(world, clock, ok)["outcome"] == "recovered"


REJECTED_FIXTURES = [
    "remediation_alarm_foreign",
    "remediation_alarm_metric_math",
    "remediation_alarm_composite",
    "remediation_alarm_missing_fields",
    "remediation_alarm_other_metric",
    "remediation_garbage",
    "remediation_direct_alarm_action",
    "remediation_alarm_other_account",
    "remediation_hostile_time_overflow",
    "remediation_hostile_time_future",
    "remediation_hostile_instance_newline",
    "remediation_hostile_other_region",
    "remediation_hostile_resources_mismatch",
    "remediation_hostile_contributor_namespace",
    "remediation_hostile_contributor_attributes",
]


def test_malformed_and_foreign_events_are_kept_in_the_rejected_queue(
    world: World, clock: Clock
) -> None:
    for name in REJECTED_FIXTURES:
        result = deliver(world, clock, load_event(name))
        assert result["outcome"] == "rejected", name
    kept = world.rejected()
    assert sorted(k["event"].get("id", "") or "" for k in kept) == sorted(
        load_event(n).get("id", "") or "" for n in REJECTED_FIXTURES
    )
    assert all(k["reason"] and k["received_at"] for k in kept)
    assert world.script.interrupts == []
    assert world.notifications() == []


@pytest.mark.parametrize(
    "fixture", ["remediation_alarm_insufficient_data", "remediation_alarm_muted"]
)
def test_events_needing_no_action_are_ignored_not_rejected(
    world: World, clock: Clock, fixture: str
) -> None:
    state = "INSUFFICIENT_DATA" if "insufficient" in fixture else "ALARM"
    event = alarm_event(FIXTURE_INSTANCE, at=clock(), state=state, fixture=fixture)
    result = deliver(world, clock, event)
    assert result["outcome"] == "ignored"
    assert world.rejected() == []
    assert world.incidents(FIXTURE_INSTANCE) == []


def test_fixtures_with_extra_fields_go_through(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    event = alarm_event(instance, at=clock(), fixture="remediation_alarm_extra_fields")
    assert deliver(world, clock, event)["outcome"] == "interrupted"


def test_the_lambda_entry_point_with_environment_and_default_clients(
    world: World, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``handler.handler`` as Lambda calls it: settings from the environment, clients made by
    the handler (endpoint from the standard AWS_ENDPOINT_URL, the EC2 test layer registered
    on boto3's default session), real clock."""
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", world.url)
    real = Clock(datetime.now(UTC))
    (instance,) = world.instances(clock=real)
    world.script.statuses[instance]["InstanceStatus"]["Status"] = "impaired"
    # The instance was launched a moment ago: within the boot grace. Make the grace 0.
    monkeypatch.setenv("CRASHCART_BOOT_GRACE_SECONDS", "0")
    session = boto3.Session(region_name="eu-west-1")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    for event_name, hook in (
        ("before-parameter-build.ec2.SendDiagnosticInterrupt", world.script._remember),
        ("before-parameter-build.ec2.DescribeInstanceStatus", world.script._remember),
        ("before-call.ec2.SendDiagnosticInterrupt", world.script._interrupt),
        ("before-call.ec2.DescribeInstanceStatus", world.script._status),
    ):
        session.events.register(event_name, hook)
    monkeypatch.setattr(R.handler, "_CONTAINER", {})
    event = alarm_event(instance, at=datetime.now(UTC) - timedelta(seconds=5))
    result = R.handler.handler(event, FakeLambdaContext())
    assert result["outcome"] == "interrupted"
    assert len(world.script.sent()) == 1
    assert set(R.handler._CONTAINER) >= {"ec2", "ec2_interrupt", "dynamodb", "type_cache"}
    monkeypatch.setenv("CRASHCART_DAILY_BUDGET", "zero")
    with pytest.raises(R.settings.SettingsError, match="CRASHCART_DAILY_BUDGET"):
        R.handler.handler(event, FakeLambdaContext())


def test_an_oversized_rejected_event_is_kept_truncated(world: World, clock: Clock) -> None:
    huge = {"source": "aws.cloudwatch", "junk": "x" * 300_000}
    assert deliver(world, clock, huge)["outcome"] == "rejected"
    (kept,) = world.rejected()
    assert kept["reason"] == "event.detail-type is missing"
    assert kept["event_text"].startswith('{"source": "aws.cloudwatch", "junk": "xxx')
    assert kept["event_cut"]["bytes"] == len(json.dumps(huge))
    assert "event" not in kept


def test_attestation_skip_is_notified_when_the_table_cannot_say_it_is_the_first(
    world: World, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(*args: Any, **kwargs: Any) -> bool:
        raise R.claims.StoreUnavailableError("recording the attestation skip failed: boom")

    monkeypatch.setattr(R.claims.IncidentStore, "note_attestation_skip", unavailable)
    (instance,) = world.instances(clock=clock, attestation=None)
    memory = MemoryLog(clock)
    result = deliver(world, clock, alarm_event(instance, at=clock()), log=memory.log)
    assert result["guard"] == "kdump-attestation"  # the skip itself is recorded as ever
    (note,) = world.notifications()
    assert "kdump not attested" in note["subject"]
    assert any("notifying anyway" in r["message"] for r in memory.records())
    assert len(_first_skip_metrics(memory)) == 1
