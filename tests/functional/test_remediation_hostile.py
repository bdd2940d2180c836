"""Hostile input, delivered the way an attacker who can invoke the function would (issue 14,
defect 5), end to end against moto's server.

The rule each test holds: a rejected event is logged with its reason and kept in the
rejected queue; it takes no action, and it never touches incident state or a breaker.
The rejected queue here has SQS's classic 256 KiB limit (moto's default is 1 MiB).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import load_event
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
SQS_CLASSIC_LIMIT = 262_144


@pytest.fixture
def world(moto_server: str) -> Iterator[World]:
    made = World(url=moto_server).setup()
    made.client("sqs").set_queue_attributes(
        QueueUrl=made.env["CRASHCART_REJECTED_QUEUE_URL"],
        Attributes={"MaximumMessageSize": str(SQS_CLASSIC_LIMIT)},
    )
    yield made
    made.teardown()


@pytest.fixture
def clock() -> Clock:
    # moto launches instances "now": two hours later they are past any boot grace.
    return after_launch_clock()


def deliver(world: World, clock: Clock, event: Any, **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = build(world, clock, **kwargs).handle(event)
    return result


def assert_untouched(world: World, *instances: str) -> None:
    """Nothing of the incident state exists: no incident, no claim, no breaker."""
    for instance in instances:
        assert world.incidents(instance) == []
        assert world.item(f"instance#{instance}", "limits") is None
    assert world.item("breaker#fleet", "state") is None
    assert world.script.interrupts == []


def test_an_out_of_range_timestamp_is_rejected_not_raised(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    event = alarm_event(instance, at=clock())
    event["detail"]["state"]["timestamp"] = "9999-12-31T23:59:59-23:59"
    memory = MemoryLog(clock)
    result = deliver(world, clock, event, log=memory.log)
    assert result["outcome"] == "rejected"
    assert "detail.state.timestamp '9999-12-31T23:59:59-23:59'" in result["reason"]
    (kept,) = world.rejected()
    assert kept["event"] == event and kept["reason"] == result["reason"]
    (record,) = [r for r in memory.records() if r["outcome"] == "rejected"]
    assert record["reason"] == result["reason"] and record["EventsRejected"] == 1
    assert_untouched(world, instance)


def test_a_deeply_nested_event_is_rejected_and_kept(world: World, clock: Clock) -> None:
    deep: Any = "bottom"
    for _ in range(50_000):
        deep = [{"x": deep}]
    event = {"source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change", "a": deep}
    memory = MemoryLog(clock)
    result = deliver(world, clock, event, log=memory.log)
    assert result["outcome"] == "rejected"
    (kept,) = world.rejected()
    assert kept["event_cut"]["depth"] == 100_001
    assert kept["event_text"].startswith('{"source": "aws.cloudwatch"')
    (record,) = [r for r in memory.records() if r["outcome"] == "rejected"]
    assert record["kept"] == "cut" and record["event_cut"] == kept["event_cut"]
    assert_untouched(world)


@pytest.mark.parametrize(
    "field",
    [["source"], ["detail-type"], ["detail", "alarmName"], ["region"]],
    ids=lambda path: ".".join(path),
)
def test_a_rejected_event_stays_under_the_queue_limit_after_json_encoding(
    world: World, clock: Clock, field: list[str]
) -> None:
    """A field quoted in the reason, full of characters JSON writes as six bytes each."""
    (instance,) = world.instances(clock=clock)
    event = alarm_event(instance, at=clock())
    target: Any = event
    for step in field[:-1]:
        target = target[step]
    target[field[-1]] = "\u2028" * 60_000  # 180 KB of UTF-8, 360 KB as JSON
    result = deliver(world, clock, event)
    assert result["outcome"] == "rejected"
    (kept,) = world.rejected()
    assert len(json.dumps(kept)) <= SQS_CLASSIC_LIMIT
    assert kept["event_cut"]["bytes"] == len(json.dumps(event))
    assert "(60000 characters)" in kept["reason"]
    assert_untouched(world, instance)


def test_foreign_events_never_open_the_breaker_or_shadow_a_real_alarm(
    world: World, clock: Clock
) -> None:
    world.env["CRASHCART_BREAKER_AZ_THRESHOLD"] = "100"
    ids = world.instances(5, clock=clock)
    opened = clock() - timedelta(seconds=30)
    for instance in ids:  # five forged ALARMs from another account, one per real instance
        forged = alarm_event(instance, at=opened, fixture="remediation_alarm_other_account")
        assert deliver(world, clock, forged)["outcome"] == "rejected"
    other_region = alarm_event(ids[0], at=opened, fixture="remediation_hostile_other_region")
    assert deliver(world, clock, other_region)["outcome"] == "rejected"
    assert len(world.rejected()) == 6
    assert_untouched(world, *ids)
    assert world.notifications() == []
    # The real alarm of the same instance and the same second is acted on, not a duplicate.
    real = deliver(world, clock, alarm_event(ids[0], at=opened))
    assert real["outcome"] == "interrupted"
    assert world.item("breaker#fleet", "state")["count"] == 1


def test_a_future_timestamp_is_rejected_and_later_recoveries_still_count(
    world: World, clock: Clock
) -> None:
    (instance,) = world.instances(clock=clock)
    future = alarm_event(instance, at=clock() + timedelta(days=365))
    result = deliver(world, clock, future)
    assert result["outcome"] == "rejected"
    assert "ahead of this function's clock" in result["reason"]
    assert_untouched(world, instance)
    # the real sequence: ALARM, then OK, in order
    assert deliver(world, clock, alarm_event(instance, at=clock()))["outcome"] == "interrupted"
    clock.advance(600)
    ok = alarm_event(instance, at=clock(), state="OK", previous="ALARM")
    assert deliver(world, clock, ok)["outcome"] == "recovered"


def test_a_stale_timestamp_is_rejected(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    stale = alarm_event(instance, at=clock() - timedelta(hours=2, seconds=1))
    result = deliver(world, clock, stale)
    assert result["outcome"] == "rejected" and "are stale" in result["reason"]
    assert_untouched(world, instance)


def test_an_instance_id_with_a_trailing_newline_is_rejected(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    event = alarm_event(instance, at=clock())
    metric = event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]
    metric["dimensions"]["InstanceId"] = instance + "\n"
    result = deliver(world, clock, event)
    assert result["outcome"] == "rejected"
    assert "is not an EC2 instance id" in result["reason"]
    assert_untouched(world, instance, instance + "\n")


@pytest.mark.parametrize(
    "fixture",
    ["remediation_hostile_contributor_namespace", "remediation_hostile_contributor_attributes"],
)
def test_contributors_of_other_queries_are_rejected(
    world: World, clock: Clock, fixture: str
) -> None:
    (instance,) = world.instances(clock=clock)
    result = deliver(world, clock, alarm_event(instance, at=clock(), fixture=fixture))
    assert result["outcome"] == "rejected"
    assert_untouched(world, instance)


def test_the_hostile_fixtures_are_rejected_as_delivered(world: World, clock: Clock) -> None:
    for name in (
        "remediation_hostile_time_overflow",
        "remediation_hostile_time_future",
        "remediation_hostile_instance_newline",
        "remediation_hostile_resources_mismatch",
    ):
        assert deliver(world, clock, load_event(name))["outcome"] == "rejected", name
    assert_untouched(world, FIXTURE_INSTANCE)
