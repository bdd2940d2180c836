"""Faults: which dependencies block (fail closed, raise) and which degrade (logged, recorded)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config

from tests.support.remediation_runtime import (
    Clock,
    MemoryLog,
    World,
    after_launch_clock,
    alarm_event,
    build,
    load,
)

R = load()
#: Nothing listens on port 1 of the loopback interface: every call fails to connect, quickly.
DEAD = "http://127.0.0.1:1"
NO_RETRY = Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=1)


@pytest.fixture
def world(moto_server: str) -> Iterator[World]:
    made = World(url=moto_server).setup()
    yield made
    made.teardown()


@pytest.fixture
def clock() -> Clock:
    return after_launch_clock()


def dead(service: str) -> object:
    return boto3.client(service, endpoint_url=DEAD, region_name="eu-west-1", config=NO_RETRY)


def test_table_unreachable_blocks_and_raises(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    clients = world.clients()
    clients["dynamodb"] = dead("dynamodb")
    with pytest.raises(R.claims.StoreUnavailableError, match="reading the claim state"):
        build(world, clock, clients=clients).handle(alarm_event(instance, at=clock()))
    assert world.script.interrupts == []
    assert world.evidence() == {}
    assert world.notifications() == []


def test_missing_table_blocks_and_raises(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    world.env["CRASHCART_TABLE_NAME"] = "no-such-table"
    with pytest.raises(R.claims.StoreUnavailableError, match="ResourceNotFoundException"):
        build(world, clock).handle(alarm_event(instance, at=clock()))
    assert world.script.interrupts == []


def test_table_unreachable_on_recovery_raises(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    clients = world.clients()
    clients["dynamodb"] = dead("dynamodb")
    ok = alarm_event(instance, at=clock(), state="OK", previous="ALARM")
    with pytest.raises(R.claims.StoreUnavailableError):
        build(world, clock, clients=clients).handle(ok)


def test_ec2_unreachable_blocks_and_raises(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    clients = world.clients()
    clients["ec2"] = dead("ec2")
    with pytest.raises(R.adapter.FactUnavailableError, match="DescribeInstances"):
        build(world, clock, clients=clients).handle(alarm_event(instance, at=clock()))
    assert world.script.interrupts == []
    assert world.incidents(instance) == []


def test_ssm_unreachable_blocks_and_raises(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    clients = world.clients()
    clients["ssm"] = dead("ssm")
    with pytest.raises(R.adapter.FactUnavailableError, match="GetParameter"):
        build(world, clock, clients=clients).handle(alarm_event(instance, at=clock()))
    assert world.script.interrupts == []


def test_sns_failing_degrades_interrupt_still_recorded_and_message_logged(
    world: World, clock: Clock
) -> None:
    (instance,) = world.instances(clock=clock)
    world.env["CRASHCART_TOPIC_ARN"] = "arn:aws:sns:eu-west-1:123456789012:no-such-topic"
    memory = MemoryLog(clock)
    result = build(world, clock, log=memory.log).handle(alarm_event(instance, at=clock()))
    assert result["outcome"] == "interrupted"
    assert len(world.script.sent()) == 1
    (incident,) = world.incidents(instance)
    assert incident["state"] == "interrupted"
    (failure,) = [
        r for r in memory.records() if r["message"] == "notification not sent (continuing)"
    ]
    assert failure["level"] == "ERROR" and "no-such-topic" in failure["error"]
    assert instance in failure["notification"] and "What to expect next" in failure["notification"]


def test_sns_unreachable_degrades(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    clients = world.clients()
    clients["sns"] = dead("sns")
    result = build(world, clock, clients=clients).handle(alarm_event(instance, at=clock()))
    assert result["outcome"] == "interrupted"


def test_s3_evidence_failing_degrades_interrupt_still_sent(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    world.env["CRASHCART_EVIDENCE_BUCKET"] = "no-such-bucket-crashcart"
    memory = MemoryLog(clock)
    result = build(world, clock, log=memory.log).handle(alarm_event(instance, at=clock()))
    assert result["outcome"] == "interrupted"
    assert len(world.script.sent()) == 1
    (incident,) = world.incidents(instance)
    assert "evidence_key" not in incident
    assert "PutObject s3://no-such-bucket-crashcart/" in incident["evidence_error"]
    assert any(r["message"] == "evidence not saved (continuing)" for r in memory.records())
    (note,) = world.notifications()
    assert "not saved (PutObject" in note["message"]


def test_console_output_failing_degrades(world: World, clock: Clock) -> None:
    (instance,) = world.instances(clock=clock)
    clients = world.clients()

    def refuse(**_: object) -> None:
        from botocore.exceptions import ClientError

        raise ClientError(
            {"Error": {"Code": "UnauthorizedOperation", "Message": "no"}}, "GetConsoleOutput"
        )

    clients["ec2"].meta.events.register("before-call.ec2.GetConsoleOutput", refuse)
    result = build(world, clock, clients=clients).handle(alarm_event(instance, at=clock()))
    assert result["outcome"] == "interrupted"
    (incident,) = world.incidents(instance)
    assert incident["evidence_error"] == "GetConsoleOutput failed: UnauthorizedOperation"


def test_rejected_queue_unreachable_raises_so_the_event_is_not_lost(
    world: World, clock: Clock
) -> None:
    from tests.conftest import load_event

    clients = world.clients()
    clients["sqs"] = dead("sqs")
    with pytest.raises(R.adapter.FactUnavailableError, match="rejected queue"):
        build(world, clock, clients=clients).handle(load_event("remediation_garbage"))


def test_incident_update_failing_after_the_interrupt_raises_but_keeps_the_claim(
    world: World, clock: Clock
) -> None:
    """The table goes away between the claim and the record: raise (visible error, retried);
    the retry sees the claimed incident and does not interrupt again."""
    (instance,) = world.instances(clock=clock)
    clients = world.clients()
    table = world.env["CRASHCART_TABLE_NAME"]
    real_ddb = clients["dynamodb"]

    class BreaksAfterClaim:
        def __getattr__(self, name: str) -> object:
            if name == "update_item":
                return dead("dynamodb").update_item  # type: ignore[attr-defined]
            return getattr(real_ddb, name)

    clients["dynamodb"] = BreaksAfterClaim()
    event = alarm_event(instance, at=clock())
    with pytest.raises(R.claims.StoreUnavailableError, match="updating the incident"):
        build(world, clock, clients=clients).handle(event)
    assert len(world.script.sent()) == 1
    (incident,) = world.incidents(instance)
    assert incident["state"] == "claimed"
    clients["dynamodb"] = real_ddb
    retry = build(world, clock, clients=clients).handle(event)
    assert retry["outcome"] == "duplicate"
    assert len(world.script.sent()) == 1
    assert table
