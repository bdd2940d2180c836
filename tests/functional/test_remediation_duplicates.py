"""Duplicate deliveries are recognised first: before the kill switch and any EC2 call.

EventBridge and Lambda's asynchronous retries deliver an ALARM at least once; every copy
maps to the same incident (its key is the alarm's state timestamp). The function reads that
incident first; a copy that finds it makes no other call. Seeing no incident decides
nothing: the claim's snapshot reads it again and the claim's put requires its absence, so a
copy that loses the race between the two reads is still a duplicate and never interrupts.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.support.remediation_runtime import (
    Clock,
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
    return after_launch_clock()


def record_calls(clients: dict[str, Any]) -> list[str]:
    """Every API call made on ``clients``, in order (``service.Operation``), answered by moto
    or by the test layer alike."""
    calls: list[str] = []
    seen: set[int] = set()
    for client in clients.values():
        meta = getattr(client, "meta", None)
        if meta is None or id(client) in seen:
            continue
        seen.add(id(client))

        def on_call(model: Any, **_: Any) -> None:
            calls.append(f"{model.service_model.service_name}.{model.name}")

        meta.events.register_first("before-parameter-build", on_call)
    return calls


def test_a_duplicate_makes_one_table_read_and_no_ec2_or_ssm_call(
    world: World, clock: Clock
) -> None:
    (instance,) = world.instances(clock=clock)
    event = alarm_event(instance, at=clock() - timedelta(seconds=60))
    clients = world.clients()
    calls = record_calls(clients)
    assert build(world, clock, clients=clients).handle(event)["outcome"] == "interrupted"
    # The first copy: the incident check first, then the kill switch and the EC2 facts.
    assert calls[:3] == ["dynamodb.GetItem", "ssm.GetParameter", "ec2.DescribeInstances"]
    calls.clear()
    again = build(world, clock, clients=clients).handle(event)
    assert again["outcome"] == "duplicate"
    assert "already exists (interrupted)" in again["reason"]
    assert calls == ["dynamodb.GetItem"]
    assert len(world.script.sent()) == 1
    assert world.item("breaker#fleet", "state")["count"] == 1


def test_a_duplicate_of_a_skipped_alarm_makes_no_ec2_call_either(
    world: World, clock: Clock
) -> None:
    world.client("ssm").put_parameter(
        Name=world.env["CRASHCART_KILL_SWITCH_PARAMETER"], Value="on", Overwrite=True
    )
    (instance,) = world.instances(clock=clock)
    event = alarm_event(instance, at=clock() - timedelta(seconds=60))
    clients = world.clients()
    first = build(world, clock, clients=clients).handle(event)
    assert (first["outcome"], first["guard"]) == ("skipped", "kill-switch")
    calls = record_calls(clients)
    again = build(world, clock, clients=clients).handle(event)
    assert again["outcome"] == "duplicate" and "(skipped)" in again["reason"]
    assert calls == ["dynamodb.GetItem"]
    assert world.script.interrupts == []


def test_a_new_alarm_of_the_same_instance_is_not_a_duplicate(world: World, clock: Clock) -> None:
    world.env.update(CRASHCART_COOLDOWN_SECONDS="1800", CRASHCART_DAILY_BUDGET="5")
    (instance,) = world.instances(clock=clock)
    first = alarm_event(instance, at=clock() - timedelta(seconds=60))
    assert build(world, clock).handle(first)["outcome"] == "interrupted"
    clock.advance(3600)
    second = alarm_event(instance, at=clock() - timedelta(seconds=60))
    assert build(world, clock).handle(second)["outcome"] == "interrupted"
    assert len(world.incidents(instance)) == 2
    assert len(world.script.sent()) == 2


def test_a_copy_that_misses_the_incident_in_the_first_read_is_still_a_duplicate(
    world: World, clock: Clock
) -> None:
    """Another copy commits its claim between this copy's first read and its snapshot: the
    snapshot sees the incident (and, were it missed too, the put's condition would cancel)."""
    (instance,) = world.instances(clock=clock)
    event = alarm_event(instance, at=clock() - timedelta(seconds=60))
    clients = world.clients()
    real = clients["dynamodb"]
    other = build(world, clock)  # the concurrent copy, on its own clients

    class OtherCopyWinsAfterTheFirstRead:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def get_item(self, **kwargs: Any) -> Any:
            answer = real.get_item(**kwargs)
            assert "Item" not in answer
            assert other.handle(event)["outcome"] == "interrupted"
            return answer

    clients["dynamodb"] = OtherCopyWinsAfterTheFirstRead()
    late = build(world, clock, clients=clients).handle(event)
    assert late["outcome"] == "duplicate"
    assert "already exists (interrupted)" in late["reason"]
    assert len(world.script.sent()) == 1
    (incident,) = world.incidents(instance)
    assert incident["state"] == "interrupted"


def test_the_incident_check_failing_blocks_before_any_other_call(
    world: World, clock: Clock
) -> None:
    (instance,) = world.instances(clock=clock)
    clients = world.clients()
    real = clients["dynamodb"]

    class GetItemFails:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def get_item(self, **_: Any) -> Any:
            from botocore.exceptions import ClientError

            raise ClientError(
                {"Error": {"Code": "InternalServerError", "Message": "no"}}, "GetItem"
            )

    clients["dynamodb"] = GetItemFails()
    calls = record_calls(clients)
    with pytest.raises(R.claims.StoreUnavailableError, match="reading the claim state"):
        build(world, clock, clients=clients).handle(alarm_event(instance, at=clock()))
    assert calls == []
    assert world.script.interrupts == []
    assert world.incidents(instance) == []
