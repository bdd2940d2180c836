"""The missed-alarm sweep (a pass of the remediation function) against moto on 127.0.0.1.

Scripted, honestly: moto 5.2.5 never reports an instance as impaired and ignores the
``instance-status.status`` filter, so the test layer (``Ec2Script``) answers every
``DescribeInstanceStatus`` call: the sweep's filtered listing (paged, ``MaxResults`` at a
time, with a ``NextToken``) and the decision's per-instance check; it also answers
``SendDiagnosticInterrupt``, which moto lacks. The instances, their tags, the incident
table, the kill switch, the topic and the queues are moto's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import FakeLambdaContext
from tests.support.remediation_runtime import (
    Clock,
    MemoryLog,
    World,
    after_launch_clock,
    alarm_event,
    build,
    load,
    moto_dynamodb_serialized,
)

R = load()
TRIGGER = {"crashcart-action": "missed-alarm-sweep", "scheduled-at": "2026-12-05T10:00:00Z"}
#: Ec2Script's ImpairedSince for every scripted impaired instance.
SINCE = "2026-11-26T05:15:00Z"


@pytest.fixture
def world(moto_server: str) -> Iterator[World]:
    made = World(url=moto_server).setup()
    yield made
    made.teardown()


@pytest.fixture
def clock() -> Clock:
    # moto launches instances "now": two hours later they are past any boot grace.
    return after_launch_clock()


def sweep(world: World, clock: Clock, **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = build(world, clock, **kwargs).handle(dict(TRIGGER))
    return result


def test_a_stuck_impaired_instance_is_handled_once_per_pass_and_only_once(
    world: World, clock: Clock
) -> None:
    (instance,) = world.instances(clock=clock)
    memory = MemoryLog(clock)

    first = sweep(world, clock, log=memory.log)

    assert first["outcome"] == "swept"
    assert first["fed"] == [
        {"instance_id": instance, "outcome": "interrupted", "reason": first["fed"][0]["reason"]}
    ]
    assert [c["InstanceId"] for c in world.script.sent()] == [instance]
    (incident,) = world.incidents(instance)
    assert incident["sk"] == f"incident#{SINCE}"
    assert incident["origin"] == "missed-alarm-sweep"
    assert incident["state"] == "interrupted"
    found = [r for r in memory.records() if r.get("outcome") == "sweep-found"]
    assert len(found) == 1 and found[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "SweepFoundWork", "Unit": "Count"}
    ]

    clock.advance(300)  # the next pass, five minutes later: the incident is open and fresh
    second = sweep(world, clock)
    assert second["fed"] == []
    assert "not stale" in second["left"][instance]
    assert len(world.script.sent()) == 1
    assert len(world.incidents(instance)) == 1


def test_a_stale_incident_is_decided_again_and_obeys_cooldown_then_budget(
    world: World, clock: Clock
) -> None:
    world.env.update(
        CRASHCART_COOLDOWN_SECONDS="3600",
        CRASHCART_DUMP_DEADLINE_SECONDS="1800",
        CRASHCART_MISSED_SWEEP_STALE_SECONDS="1800",
        CRASHCART_DAILY_BUDGET="1",
    )
    (instance,) = world.instances(clock=clock)
    assert sweep(world, clock)["fed"][0]["outcome"] == "interrupted"

    clock.advance(1800)  # stale, still within the cooldown
    again = sweep(world, clock)
    assert again["fed"][0]["outcome"] == "skipped"
    assert "cooldown" in again["fed"][0]["reason"]

    clock.advance(3600)  # past the cooldown: the day's budget of one is spent
    later = sweep(world, clock)
    assert later["fed"][0]["outcome"] == "escalated"
    assert "daily budget" in later["fed"][0]["reason"]

    assert len(world.script.sent()) == 1
    states = sorted(i["state"] for i in world.incidents(instance))
    assert states == ["escalated", "interrupted", "skipped"]


def test_an_instance_the_alarm_path_already_handles_is_left_alone(
    world: World, clock: Clock
) -> None:
    (instance,) = world.instances(clock=clock)
    event = alarm_event(instance, at=clock() - timedelta(seconds=60))
    assert build(world, clock).handle(event)["outcome"] == "interrupted"

    result = sweep(world, clock)

    assert result["fed"] == []
    assert "not stale" in result["left"][instance]
    assert len(world.script.sent()) == 1


def test_overlapping_passes_make_one_interrupt(world: World, clock: Clock) -> None:
    """Pass A has listed the instance and read "no incident" when pass B runs to its end;
    then A goes on. B interrupts; A's decision finds B's incident (same key): a duplicate."""
    (instance,) = world.instances(clock=clock)
    service_a = build(world, clock)
    real_latest = service_a.store.latest_incident
    inner: list[dict[str, Any]] = []

    def latest_then_overlap(instance_id: str) -> Any:
        seen = real_latest(instance_id)
        later = Clock(clock() + timedelta(seconds=90))  # B started a minute and a half later
        inner.append(sweep(world, later))  # pass B, start to end
        return seen

    service_a.store.latest_incident = latest_then_overlap
    outer = service_a.handle(dict(TRIGGER))

    assert inner[0]["fed"][0]["outcome"] == "interrupted"
    assert outer["fed"][0]["outcome"] == "duplicate"
    assert len(world.script.sent()) == 1
    assert len(world.incidents(instance)) == 1


def test_concurrent_passes_in_threads_make_one_interrupt(world: World, clock: Clock) -> None:
    # three instances in one zone would open its breaker at the default threshold of 3
    world.env.update(CRASHCART_BREAKER_AZ_THRESHOLD="10", CRASHCART_BREAKER_FLEET_THRESHOLD="10")
    instances = world.instances(3, clock=clock)
    services = [build(world, clock, clients=world.clients()) for _ in range(4)]
    start = threading.Barrier(len(services))
    results: list[dict[str, Any]] = []

    def run(service: Any) -> None:
        start.wait()
        results.append(service.handle(dict(TRIGGER)))

    with moto_dynamodb_serialized():
        threads = [threading.Thread(target=run, args=(s,)) for s in services]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert sorted(c["InstanceId"] for c in world.script.sent()) == sorted(instances)
    for instance in instances:
        assert len(world.incidents(instance)) == 1
    interrupted = [f for r in results for f in r["fed"] if f["outcome"] == "interrupted"]
    assert len(interrupted) == 3


def test_the_listing_is_paginated_over_more_than_a_thousand_instances(
    world: World, clock: Clock
) -> None:
    # 1,500 impaired instances EC2 lists (moto holds none of them) come first; the three
    # opted-in instances that exist come after them, on the second page.
    world.script.phantom_impaired = [f"i-{n:017x}" for n in range(1, 1501)]
    real = world.instances(3, clock=clock)
    world.script.statuses = {}
    world.script.phantom_impaired += real
    sleeps: list[float] = []

    result = sweep(world, clock, sleeps=sleeps)

    listings = world.script.listings
    assert [c.get("NextToken") for c in listings] == [None, "1000"]
    assert all(c["MaxResults"] == 1000 for c in listings)
    assert listings[0]["Filters"] == [
        {"Name": "instance-status.status", "Values": ["impaired"]},
        {"Name": "instance-state-name", "Values": ["running"]},
    ]
    assert result["impaired"] == 1503
    assert result["opted_in"] == 3
    assert sorted(f["instance_id"] for f in result["fed"]) == sorted(real)
    assert result["truncated"] is None
    assert R.sweep.PAGE_INTERVAL_SECONDS in sleeps  # paced between pages


def test_the_page_bound_stops_the_listing_and_says_so(world: World, clock: Clock) -> None:
    world.env["CRASHCART_MISSED_SWEEP_MAX_PAGES"] = "1"
    world.script.phantom_impaired = [f"i-{n:017x}" for n in range(1, 1201)]
    memory = MemoryLog(clock)

    result = sweep(world, clock, log=memory.log)

    assert len(world.script.listings) == 1
    assert result["truncated"] == "more than 1 pages of impaired instances"
    assert [r["outcome"] for r in memory.records() if r.get("outcome") == "truncated"] == [
        "truncated"
    ]


def test_the_per_pass_bound_feeds_at_most_that_many(world: World, clock: Clock) -> None:
    world.env["CRASHCART_MISSED_SWEEP_MAX_PER_PASS"] = "2"
    world.instances(3, clock=clock)

    result = sweep(world, clock)

    assert len(result["fed"]) == 2
    assert list(result["left"].values()) == ["per-pass bound reached"]
    assert result["truncated"] == "more than 2 instances to feed"
    assert len(world.script.sent()) == 2


def test_no_instance_is_fed_when_the_invocation_is_nearly_over(world: World, clock: Clock) -> None:
    world.instances(clock=clock)
    service = R.handler.build(
        world.settings(),
        FakeLambdaContext(remaining_ms=5_000),
        clients=world.clients(),
        clock=clock,
        sleep=lambda _s: None,
    )
    result = service.handle(dict(TRIGGER))
    assert result["fed"] == []
    assert result["truncated"] == "the invocation's time is nearly up"
    assert world.script.sent() == []


def test_the_kill_switch_stops_the_sweep_before_any_ec2_call(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    world.client("ssm").put_parameter(
        Name=world.env["CRASHCART_KILL_SWITCH_PARAMETER"], Value="on", Overwrite=True
    )

    result = sweep(world, clock)

    assert result["outcome"] == "stopped"
    assert "kill switch" in result["reason"]
    assert world.script.listings == []
    assert world.incidents(instance) == []
    assert world.script.interrupts == []

    # ...and it comes back when the switch is off again.
    world.client("ssm").put_parameter(
        Name=world.env["CRASHCART_KILL_SWITCH_PARAMETER"], Value="off", Overwrite=True
    )
    assert sweep(world, clock)["fed"][0]["outcome"] == "interrupted"


def test_an_open_fleet_breaker_stops_the_sweep(world: World, clock: Clock) -> None:
    world.instances(clock=clock)
    now = int(clock().timestamp())
    world.client("dynamodb").put_item(
        TableName=world.env["CRASHCART_TABLE_NAME"],
        Item={
            "pk": {"S": "breaker#fleet"},
            "sk": {"S": "state"},
            "version": {"N": "1"},
            "count": {"N": "5"},
            "window_start_epoch": {"N": str(now - 60)},
            "opened_epoch": {"N": str(now - 60)},
            "last_alarm_epoch": {"N": str(now - 60)},
        },
    )

    result = sweep(world, clock)

    assert result["outcome"] == "stopped"
    assert "circuit breaker" in result["reason"]
    assert world.script.listings == []


def test_impaired_instances_that_are_not_opted_in_are_not_fed(world: World, clock: Clock) -> None:
    (outsider,) = world.instances(clock=clock, opted_in=False)

    result = sweep(world, clock)

    assert result["impaired"] == 1
    assert result["opted_in"] == 0
    assert result["fed"] == []
    assert world.incidents(outsider) == []


def test_guards_still_apply_to_what_the_sweep_feeds(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock, attestation=None)

    result = sweep(world, clock)

    assert result["fed"][0]["outcome"] == "skipped"
    assert "attestation" in result["fed"][0]["reason"]
    assert world.script.interrupts == []

    # A hung guest cannot attest: the stale skip is not decided again (and not counted again
    # in the breakers), pass after pass.
    clock.advance(3600)
    later = sweep(world, clock)
    assert later["fed"] == []
    assert "cannot change while the instance stays hung" in later["left"][instance]
    assert len(world.incidents(instance)) == 1


def test_a_skip_by_a_guard_that_clears_is_decided_again(world: World, clock: Clock) -> None:
    """The kill switch was on when the alarm came; it is off now: the sweep catches up."""
    (instance,) = world.instances(clock=clock)
    world.client("ssm").put_parameter(
        Name=world.env["CRASHCART_KILL_SWITCH_PARAMETER"], Value="on", Overwrite=True
    )
    event = alarm_event(instance, at=clock() - timedelta(seconds=60))
    assert build(world, clock).handle(event)["outcome"] == "skipped"
    world.client("ssm").put_parameter(
        Name=world.env["CRASHCART_KILL_SWITCH_PARAMETER"], Value="off", Overwrite=True
    )

    assert sweep(world, clock)["fed"] == []  # the skip is fresh
    clock.advance(1800)
    result = sweep(world, clock)

    assert result["fed"][0]["outcome"] == "interrupted"
    assert [c["InstanceId"] for c in world.script.sent()] == [instance]


def test_any_other_event_is_still_parsed_and_rejected(world: World, clock: Clock) -> None:
    result = build(world, clock).handle({"crashcart-action": "something-else"})
    assert result["outcome"] == "rejected"
