"""Concurrency and burst: the atomic claim against moto's server on 127.0.0.1.

moto's DynamoDB honours condition expressions and cancels transactions, but it is no proof of
behaviour under real DynamoDB concurrency (and its server does not isolate concurrent
transactions: the test layer serializes its DynamoDB requests, as the real service
isolates transactions). What these tests prove is that the handler's read -> plan ->
conditional-write loop lets exactly one writer win and every other delivery sees it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.remediation_runtime import (
    MemoryLog,
    World,
    after_launch_clock,
    alarm_event,
    build,
    moto_backs_up_each_table_once,
    moto_dynamodb_serialized,
    recorded_interrupts,
    spawn_deliveries,
)


@pytest.fixture
def world(moto_server: str) -> Iterator[World]:
    made = World(url=moto_server).setup()
    yield made
    made.teardown()


#: 50 deliveries from 10 spawned processes (5 threads each), all released at once. Set
#: PROCESSES = DELIVERIES for one process per delivery (~1 s of CPU per spawned process: on
#: a 2-core machine that alone takes longer than the whole remediation suite should).
DELIVERIES = 50
PROCESSES = 10


@pytest.mark.slow
def test_fifty_deliveries_from_separate_processes_interrupt_exactly_once(
    world: World, tmp_path: Path
) -> None:
    clock = after_launch_clock()
    (instance,) = world.instances(clock=clock)
    event = alarm_event(instance, at=clock() - timedelta(seconds=60))
    record = tmp_path / "interrupts.jsonl"

    with moto_dynamodb_serialized():
        results = spawn_deliveries(
            DELIVERIES,
            processes=PROCESSES,
            url=world.url,
            environment=world.env,
            event=event,
            record_path=record,
            clock_iso=clock().isoformat(),
        )

    assert len(results) == DELIVERIES
    assert all(r["ok"] for r in results), [r for r in results if not r["ok"]]
    assert len({r["pid"] for r in results}) == PROCESSES
    outcomes = Counter(r["outcome"] for r in results)
    assert outcomes == {"interrupted": 1, "duplicate": 49}
    calls = recorded_interrupts(record)
    assert [c["InstanceId"] for c in calls] == [instance]
    assert len({r["outcome"] + str(r.get("incident")) for r in results}) == 2
    (incident,) = world.incidents(instance)
    assert incident["state"] == "interrupted"
    limits = world.item(f"instance#{instance}", "limits")
    assert limits is not None and limits["budget_count"] == 1
    assert world.item("breaker#fleet", "state")["count"] == 1
    assert len(world.notifications()) == 1


@pytest.mark.slow
def test_burst_of_200_instances_stops_at_the_breaker_with_one_notification(world: World) -> None:
    world.env.update(
        CRASHCART_BREAKER_FLEET_THRESHOLD="10",
        CRASHCART_BREAKER_AZ_THRESHOLD="1000",
        CRASHCART_BREAKER_WINDOW_SECONDS="900",
    )
    clock = after_launch_clock()
    ids = world.instances(200, clock=clock)
    memory = MemoryLog(clock)
    service = build(world, clock, log=memory.log)
    outcomes = []
    with moto_backs_up_each_table_once():
        for instance in ids:
            clock.advance(2)  # 200 alarms in 400 s: all inside one 900 s window
            outcomes.append(service.handle(alarm_event(instance, at=clock()))["outcome"])

    counts = Counter(outcomes)
    assert counts == {"interrupted": 9, "skipped": 191}  # threshold 10: the 10th opens it
    assert outcomes[:9] == ["interrupted"] * 9
    assert len(world.script.sent()) == 9
    notes = world.notifications()
    breaker_notes = [n for n in notes if "circuit breaker OPEN" in n["subject"]]
    assert len(breaker_notes) == 1
    assert len(notes) == 10  # 9 interrupts + 1 breaker, no per-instance noise for skips
    fleet = world.item("breaker#fleet", "state")
    assert fleet is not None and fleet["count"] == 200 and "opened_epoch" in fleet
    skipped = [r for r in memory.records() if r.get("outcome") == "skipped"]
    assert {r["guard"] for r in skipped} == {"circuit-breaker"}
    assert sum(1 for r in memory.records() if r.get("outcome") == "breaker-opened") == 1
