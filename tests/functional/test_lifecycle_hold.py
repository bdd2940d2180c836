"""The lifecycle-hold function against moto's server, with the Auto Scaling lifecycle calls
answered by botocore's Stubber (moto does not keep lifecycle actions)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import load_event
from tests.support.dumps import NMI_PANIC_DMESG, load_arrival_handler, metadata_document
from tests.support.lifecycle_hold import (
    Lifecycle,
    Reboots,
    build_hold,
    holds,
    incident_items,
    lifecycle_event,
    tick_event,
)
from tests.support.remediation_runtime import (
    FIXTURE_INSTANCE,
    Clock,
    World,
    after_launch_clock,
    alarm_event,
    build,
)

DUMP_BUCKET = "crashcart-dumps"


@pytest.fixture
def world(moto_server: str) -> Iterator[World]:
    made = World(url=moto_server).setup()
    yield made
    made.teardown()


@pytest.fixture
def clock() -> Clock:
    return after_launch_clock()


@pytest.fixture
def lifecycle() -> Iterator[Lifecycle]:
    stubbed = Lifecycle()
    yield stubbed
    stubbed.done()


def interrupt(world: World, clock: Clock, instance: str) -> str:
    """The remediation interrupts ``instance`` for a real alarm event; its incident sk."""
    result = build(world, clock).handle(alarm_event(instance, at=clock() - timedelta(seconds=60)))
    assert result["outcome"] == "interrupted", result
    return str(result["incident"])


def incident(world: World, instance: str, sk: str) -> dict[str, Any]:
    (item,) = [i for i in incident_items(world, instance) if i["sk"]["S"] == sk]
    return item


def ship_dump(world: World, clock: Clock, instance: str) -> dict[str, Any]:
    """The drill's dump-arrival event (tests/events), fed to the dump-arrival function."""
    s3 = world.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):  # shared moto server
        s3.create_bucket(
            Bucket=DUMP_BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
    event = json.loads(
        json.dumps(load_event("dump_arrival_object_created")).replace(FIXTURE_INSTANCE, instance)
    )
    key = event["detail"]["object"]["key"]
    prefix = key.removesuffix("metadata.json")
    s3.put_object(Bucket=DUMP_BUCKET, Key=prefix + "vmcore", Body=b"KDUMP   ")
    s3.put_object(Bucket=DUMP_BUCKET, Key=prefix + "dmesg.txt", Body=NMI_PANIC_DMESG.encode())
    s3.put_object(Bucket=DUMP_BUCKET, Key=key, Body=metadata_document(instance))
    arrival = load_arrival_handler()
    settings = arrival.Settings(
        world.env["CRASHCART_TABLE_NAME"], world.env["CRASHCART_TOPIC_ARN"], timedelta(hours=6)
    )
    adapter = arrival.Adapter(settings, s3, world.client("dynamodb"), world.client("sns"))
    result: dict[str, Any] = arrival.process(event, adapter, now=clock(), request_id="r-1")
    return result


# -- the hold ------------------------------------------------------------------------------


def test_heartbeats_until_the_dump_ships_then_continues(
    world: World, clock: Clock, lifecycle: Lifecycle
) -> None:
    (instance,) = world.instances(clock=clock)
    sk = interrupt(world, clock, instance)
    clock.advance(120)
    result = build_hold(world, clock, lifecycle).handle(lifecycle_event(instance, clock()))
    assert result["outcome"] == "held" and result["incident"] == sk
    item = incident(world, instance, sk)
    assert item["hold_state"]["S"] == "held" and item["hold_group"]["S"] == "web"
    (hold,) = holds(world)
    assert hold["token"]["S"] == "87654321-4321-4321-4321-210987654321"

    # a tick a minute later renews nothing (heartbeat recent); four minutes later it does
    clock.advance(60)
    assert build_hold(world, clock, lifecycle).handle(tick_event(clock()))["waiting"] == [instance]
    clock.advance(180)
    lifecycle.expect_heartbeat(instance)
    assert build_hold(world, clock, lifecycle).handle(tick_event(clock()))["heartbeat"] == [
        instance
    ]

    arrived = ship_dump(world, clock, instance)
    assert arrived["outcome"] == "attach" and arrived["incident"] == sk
    clock.advance(60)
    lifecycle.expect_continue(instance)
    assert build_hold(world, clock, lifecycle).handle(tick_event(clock()))["released"] == [instance]
    item = incident(world, instance, sk)
    assert item["hold_state"]["S"] == "released"
    assert item["hold_reason"]["S"] == f"incident {sk}: dump shipped"
    assert holds(world) == []


def test_continues_at_the_memory_sized_deadline(
    world: World, clock: Clock, lifecycle: Lifecycle
) -> None:
    (instance,) = world.instances(clock=clock, instance_type="m5.large")  # 8 GiB
    sk = interrupt(world, clock, instance)
    interrupted = datetime.strptime(
        incident(world, instance, sk)["interrupted_at"]["S"], "%Y-%m-%dT%H:%M:%SZ"
    ).replace(tzinfo=UTC)
    result = build_hold(world, clock, lifecycle).handle(lifecycle_event(instance, clock()))
    deadline = interrupted + timedelta(seconds=900 + 8 * 30)
    assert result["deadline"] == deadline.strftime("%Y-%m-%dT%H:%M:%SZ")

    clock.now = deadline - timedelta(seconds=1)
    lifecycle.expect_heartbeat(instance)
    build_hold(world, clock, lifecycle).handle(tick_event(clock()))
    clock.now = deadline
    lifecycle.expect_continue(instance)
    assert build_hold(world, clock, lifecycle).handle(tick_event(clock()))["released"] == [instance]
    assert "passed without a dump" in incident(world, instance, sk)["hold_reason"]["S"]


def test_a_healthy_termination_continues_at_once(
    world: World, clock: Clock, lifecycle: Lifecycle
) -> None:
    (instance,) = world.instances(clock=clock, status="ok")
    lifecycle.expect_continue(instance)
    result = build_hold(world, clock, lifecycle).handle(lifecycle_event(instance, clock()))
    assert result["outcome"] == "continued"
    assert incident_items(world, instance) == [] and holds(world) == []
    assert world.script.interrupts == []


def test_an_impaired_termination_is_interrupted_through_the_guards_and_held(
    world: World, clock: Clock, lifecycle: Lifecycle
) -> None:
    (instance,) = world.instances(clock=clock)
    result = build_hold(world, clock, lifecycle).handle(lifecycle_event(instance, clock()))
    assert result["outcome"] == "held"
    assert [c["InstanceId"] for c in world.script.sent()] == [instance]
    (item,) = [i for i in incident_items(world, instance) if i["sk"]["S"].startswith("incident#")]
    assert item["state"]["S"] == "interrupted"
    assert item["alarm_name"]["S"].endswith("lifecycle-hook/web")
    assert item["hold_state"]["S"] == "held"


@pytest.mark.parametrize(
    ("instance_kwargs", "guard"),
    [
        ({"attestation": None}, "kdump-attestation"),
        ({"opted_in": False}, "opt-in-tag"),
        ({"status": "system-impaired"}, "system-check"),
    ],
)
def test_the_guards_still_apply_to_the_holds_own_interrupt(
    world: World,
    clock: Clock,
    lifecycle: Lifecycle,
    instance_kwargs: dict[str, Any],
    guard: str,
) -> None:
    (instance,) = world.instances(clock=clock, **instance_kwargs)
    if guard == "system-check":
        # impaired for the hold's first look; the remediation's guard sees the system check
        world.script.statuses[instance]["InstanceStatus"]["Status"] = "impaired"
    lifecycle.expect_continue(instance)
    result = build_hold(world, clock, lifecycle).handle(lifecycle_event(instance, clock()))
    assert result["outcome"] == "continued"
    assert world.script.sent() == [] and holds(world) == []
    (item,) = [i for i in incident_items(world, instance) if i["sk"]["S"].startswith("incident#")]
    assert item["state"]["S"] == "skipped" and item["guard"]["S"] == guard


def test_the_cooldown_stops_a_second_interrupt_by_the_hold(
    world: World, clock: Clock, lifecycle: Lifecycle
) -> None:
    (instance,) = world.instances(clock=clock)
    sk = interrupt(world, clock, instance)
    # the dump shipped already: the incident no longer waits, the instance is impaired again
    ship_dump(world, clock, instance)
    lifecycle.expect_continue(instance)
    result = build_hold(world, clock, lifecycle).handle(lifecycle_event(instance, clock()))
    assert result["outcome"] == "continued"
    assert "already shipped" in result["reason"] and sk in result["reason"]
    assert len(world.script.sent()) == 1


def test_the_kill_switch_continues_a_new_termination_and_ends_every_hold(
    world: World, clock: Clock, lifecycle: Lifecycle
) -> None:
    first, second = world.instances(2, clock=clock)
    interrupt(world, clock, first)
    build_hold(world, clock, lifecycle).handle(lifecycle_event(first, clock()))
    assert len(holds(world)) == 1
    world.client("ssm").put_parameter(
        Name=world.env["CRASHCART_KILL_SWITCH_PARAMETER"], Value="on", Overwrite=True
    )
    # a new termination of an impaired instance: no interrupt, no hold
    lifecycle.expect_continue(second)
    result = build_hold(world, clock, lifecycle).handle(lifecycle_event(second, clock()))
    assert result["outcome"] == "continued" and "kill switch" in result["reason"]
    # the next tick ends the existing hold
    clock.advance(60)
    lifecycle.expect_continue(first)
    assert build_hold(world, clock, lifecycle).handle(tick_event(clock()))["released"] == [first]
    assert holds(world) == []
    assert len(world.script.sent()) == 1


def test_after_the_post_dump_reboot_the_node_stays_held_out_of_service(
    world: World, clock: Clock, lifecycle: Lifecycle
) -> None:
    """The kdump reboot brings the machine back (checks pass, the alarm goes OK) before the
    dump ships: the hold does not end, and nothing is called that would return the instance
    to service (only heartbeats: the Stubber refuses any other lifecycle call)."""
    (instance,) = world.instances(clock=clock)
    sk = interrupt(world, clock, instance)
    build_hold(world, clock, lifecycle).handle(lifecycle_event(instance, clock()))
    world.script.statuses.pop(instance)
    world.script.default_status = "ok"
    ok = alarm_event(instance, at=clock(), state="OK", previous="ALARM")
    assert build(world, clock).handle(ok)["outcome"] == "recovered"
    clock.advance(300)
    lifecycle.expect_heartbeat(instance)
    result = build_hold(world, clock, lifecycle).handle(tick_event(clock()))
    assert result["heartbeat"] == [instance]
    assert incident(world, instance, sk)["hold_state"]["S"] == "held"
    assert len(holds(world)) == 1


def test_a_lifecycle_action_that_already_ended_releases_the_hold(
    world: World, clock: Clock, lifecycle: Lifecycle
) -> None:
    (instance,) = world.instances(clock=clock)
    interrupt(world, clock, instance)
    build_hold(world, clock, lifecycle).handle(lifecycle_event(instance, clock()))
    clock.advance(300)
    lifecycle.expect_gone("record_lifecycle_action_heartbeat", instance)
    assert build_hold(world, clock, lifecycle).handle(tick_event(clock()))["released"] == [instance]
    assert holds(world) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e["detail"].update(AutoScalingGroupName="someone-elses-group"),
        lambda e: e["detail"].update(LifecycleHookName="other-hook"),
        lambda e: e["detail"].update(LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING"),
        lambda e: e["detail"].update(EC2InstanceId="i-zz"),
        lambda e: e.update(source="aws.ec2"),
    ],
)
def test_foreign_or_malformed_events_are_kept_and_nothing_is_done(
    world: World, clock: Clock, lifecycle: Lifecycle, mutate: Any
) -> None:
    (instance,) = world.instances(clock=clock)
    event = lifecycle_event(instance, clock())
    mutate(event)
    result = build_hold(world, clock, lifecycle).handle(event)
    assert result["outcome"] == "rejected"
    (kept,) = world.rejected()
    assert kept["reason"] == result["reason"]
    assert world.script.interrupts == []


# -- escalation ------------------------------------------------------------------------------


def _deadline(world: World, instance: str, sk: str) -> datetime:
    interrupted = datetime.strptime(
        incident(world, instance, sk)["interrupted_at"]["S"], "%Y-%m-%dT%H:%M:%SZ"
    ).replace(tzinfo=UTC)
    return interrupted + timedelta(seconds=900 + 8 * 30)  # m5.large: 8 GiB


def test_no_reboot_before_the_deadline_then_one_reboot_if_still_impaired(
    world: World, clock: Clock, lifecycle: Lifecycle
) -> None:
    (instance,) = world.instances(clock=clock, instance_type="m5.large")
    sk = interrupt(world, clock, instance)
    deadline = _deadline(world, instance, sk)
    reboots = Reboots()
    clock.now = deadline - timedelta(seconds=1)
    build_hold(world, clock, lifecycle, reboots).handle(tick_event(clock()))
    assert reboots.calls == []
    assert "escalation_outcome" not in incident(world, instance, sk)

    clock.now = deadline
    result = build_hold(world, clock, lifecycle, reboots).handle(tick_event(clock()))
    assert result["escalation-reboot"] == [instance]
    assert reboots.calls == [[instance]]
    item = incident(world, instance, sk)
    assert item["escalation_outcome"]["S"] == "reboot"
    assert "still impaired" in item["escalation_reason"]["S"]
    assert any("still hung" in n["subject"] for n in world.notifications())
    # recorded once: the next tick does not reboot again
    clock.advance(60)
    build_hold(world, clock, lifecycle, reboots).handle(tick_event(clock()))
    assert reboots.calls == [[instance]]


@pytest.mark.parametrize(("status", "why"), [("ok", "'ok'"), ("system-impaired", "left to EC2")])
def test_no_reboot_when_recovered_or_when_the_system_check_fails(
    world: World, clock: Clock, lifecycle: Lifecycle, status: str, why: str
) -> None:
    (instance,) = world.instances(clock=clock, instance_type="m5.large")
    sk = interrupt(world, clock, instance)
    world.script.statuses.pop(instance)
    world.script.default_status = status
    reboots = Reboots()
    clock.now = _deadline(world, instance, sk)
    build_hold(world, clock, lifecycle, reboots).handle(tick_event(clock()))
    assert reboots.calls == []
    item = incident(world, instance, sk)
    assert item["escalation_outcome"]["S"] == "not-needed"
    assert why in item["escalation_reason"]["S"]


def test_the_kill_switch_stops_escalation_reboots_until_it_is_off(
    world: World, clock: Clock, lifecycle: Lifecycle
) -> None:
    (instance,) = world.instances(clock=clock, instance_type="m5.large")
    sk = interrupt(world, clock, instance)
    ssm, name = world.client("ssm"), world.env["CRASHCART_KILL_SWITCH_PARAMETER"]
    ssm.put_parameter(Name=name, Value="on", Overwrite=True)
    reboots = Reboots()
    clock.now = _deadline(world, instance, sk) + timedelta(minutes=5)
    build_hold(world, clock, lifecycle, reboots).handle(tick_event(clock()))
    assert reboots.calls == [] and "escalation_outcome" not in incident(world, instance, sk)
    ssm.put_parameter(Name=name, Value="off", Overwrite=True)
    build_hold(world, clock, lifecycle, reboots).handle(tick_event(clock()))
    assert reboots.calls == [[instance]]


def test_escalation_can_notify_without_rebooting(
    world: World, clock: Clock, lifecycle: Lifecycle
) -> None:
    (instance,) = world.instances(clock=clock, instance_type="m5.large")
    sk = interrupt(world, clock, instance)
    reboots = Reboots()
    clock.now = _deadline(world, instance, sk)
    build_hold(world, clock, lifecycle, reboots, CRASHCART_ESCALATION_REBOOT="false").handle(
        tick_event(clock())
    )
    assert reboots.calls == []
    assert incident(world, instance, sk)["escalation_outcome"]["S"] == "notify"


def test_a_large_instance_flagged_overdue_by_the_sweep_is_still_held_and_escalated(
    world: World, clock: Clock, lifecycle: Lifecycle
) -> None:
    """The sweep's fixed 30-minute deadline passes before the memory-sized one of a 128 GiB
    instance (15 min + 128 x 30 s): the incident is ``dump-overdue``, and still waits."""
    (instance,) = world.instances(clock=clock, instance_type="m5.8xlarge")  # 128 GiB
    sk = interrupt(world, clock, instance)
    world.client("dynamodb").update_item(
        TableName=world.env["CRASHCART_TABLE_NAME"],
        Key={"pk": {"S": f"instance#{instance}"}, "sk": {"S": sk}},
        UpdateExpression="SET #s = :overdue, state_before_overdue = :interrupted",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={
            ":overdue": {"S": "dump-overdue"},
            ":interrupted": {"S": "interrupted"},
        },
    )
    interrupted = datetime.strptime(
        incident(world, instance, sk)["interrupted_at"]["S"], "%Y-%m-%dT%H:%M:%SZ"
    ).replace(tzinfo=UTC)
    deadline = interrupted + timedelta(seconds=900 + 128 * 30)
    clock.now = interrupted + timedelta(minutes=31)
    result = build_hold(world, clock, lifecycle).handle(lifecycle_event(instance, clock()))
    assert result["outcome"] == "held" and result["deadline"] == deadline.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    holds_before = len(holds(world))
    # an instance outside any group: the same incident escalates at the same deadline
    world.client("dynamodb").delete_item(
        TableName=world.env["CRASHCART_TABLE_NAME"],
        Key={"pk": {"S": "hold#active"}, "sk": {"S": f"instance#{instance}"}},
    )
    reboots = Reboots()
    clock.now = deadline - timedelta(seconds=1)
    build_hold(world, clock, lifecycle, reboots).handle(tick_event(clock()))
    assert reboots.calls == []
    clock.now = deadline
    build_hold(world, clock, lifecycle, reboots).handle(tick_event(clock()))
    assert reboots.calls == [[instance]] and holds_before == 1
