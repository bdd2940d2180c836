"""The way back (issue 23): a member's dump linked in the central account reaches the member.

A member account (moto's account of the test credentials) runs the real remediation, the
real lifecycle hold and the real overdue sweep on its own incident table; the central
account (a role session in 999999999999 on the same moto server) runs the real incident
view. The view's one ``PutEvents`` to the member's default bus goes through
:class:`tests.support.eventbridge_hop.EventBridgeHop` (moto cannot put to another account's
bus, nor stamp the sender's account on the event), and the delivered event is handed to the
member's receiver: the real dump-arrival function with its central event type.

Then: the member's incident is ``dump-received`` with the central key, the member's overdue
sweep does not flag it (an instance whose dump did not arrive is flagged, in the same sweep),
and the Auto Scaling hold on the terminating instance is released (``dump shipped``). A
forged event is refused, nothing written; a failed PutEvents keeps the central record, is
counted, raised (Lambda retries, then the dead-letter queue) and sent on the retry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest

from crashcart.functions.dump_arrival import handler as arrival_handler
from crashcart.functions.dump_arrival.events import BadEventError
from crashcart.functions.dump_arrival.settings import Settings as ArrivalSettings
from crashcart.functions.incident_view import handler as view_handler
from crashcart.functions.incident_view import service as view_service
from crashcart.functions.incident_view.adapter import MemberEventError
from crashcart.functions.incident_view.settings import Settings as ViewSettings
from crashcart.runtime.incident import iso
from tests.conftest import TEST_REGION
from tests.support.dumps import object_created_event
from tests.support.eventbridge_hop import EventBridgeHop
from tests.support.incidents import create_incident_table
from tests.support.lifecycle_hold import (
    Lifecycle,
    build_hold,
    holds,
    incident_items,
    lifecycle_event,
    tick_event,
)
from tests.support.remediation_runtime import (
    Clock,
    World,
    after_launch_clock,
    alarm_event,
    build,
)
from tests.support.sweep import load_sweep

CENTRAL = "999999999999"
OTHER_MEMBER = "222222222222"
CENTRAL_BUCKET = "crashcart-central-dumps"


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


@pytest.fixture(scope="module")
def sweep_mod() -> Any:
    return load_sweep()


def member_account(world: World) -> str:
    return str(world.client("sts").get_caller_identity()["Account"])


class Central:
    """The central account's incident view on the same moto server (its own account)."""

    def __init__(self, world: World) -> None:
        sts = world.client("sts")
        credentials = sts.assume_role(
            RoleArn=f"arn:aws:iam::{CENTRAL}:role/crashcart-central", RoleSessionName="view"
        )["Credentials"]

        def client(name: str) -> Any:
            return boto3.client(
                name,
                endpoint_url=world.url,
                region_name=TEST_REGION,
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
            )

        self.ddb = client("dynamodb")
        assert client("sts").get_caller_identity()["Account"] == CENTRAL
        self.table = f"central-{world.tag}"
        create_incident_table(self.ddb, self.table)
        topic = client("sns").create_topic(Name=f"central-{world.tag}")["TopicArn"]
        self.hop = EventBridgeHop(CENTRAL)
        settings = ViewSettings(self.table, topic, CENTRAL_BUCKET, timedelta(hours=6), TEST_REGION)
        self.view = view_handler.build(
            settings, clients={"dynamodb": self.ddb, "sns": client("sns"), "events": self.hop}
        )

    def link(self, account: str, instance: str, clock: Clock) -> dict[str, Any]:
        """A dump of ``instance`` of ``account`` lands in the central bucket: the view runs."""
        key = f"dumps/{account}/AROAEXAMPLEROLEID1234:{instance}/202612052205/metadata.json"
        event = object_created_event(CENTRAL_BUCKET, key)
        result: dict[str, Any] = view_service.process(
            event, self.view, now=clock(), request_id="r-view", function_name="view"
        )
        return result

    def items(self) -> list[dict[str, Any]]:
        return list(self.ddb.scan(TableName=self.table)["Items"])


def receiver(world: World, account: str) -> Any:
    """The member's receiver: the dump-arrival function as CentralDumpReceiver configures it."""
    settings = ArrivalSettings(
        world.env["CRASHCART_TABLE_NAME"],
        world.env["CRASHCART_TOPIC_ARN"],
        timedelta(hours=6),
        central_account=CENTRAL,
        member_account=account,
        region=TEST_REGION,
    )
    return arrival_handler.build(
        settings,
        clients={
            "s3": world.client("s3"),
            "dynamodb": world.client("dynamodb"),
            "sns": world.client("sns"),
        },
    )


def interrupt(world: World, clock: Clock, instance: str) -> str:
    result = build(world, clock).handle(alarm_event(instance, at=clock() - timedelta(seconds=60)))
    assert result["outcome"] == "interrupted", result
    return str(result["incident"])


def incident(world: World, instance: str, sk: str) -> dict[str, Any]:
    (item,) = [i for i in incident_items(world, instance) if i["sk"]["S"] == sk]
    return item


def sweep(sweep_mod: Any, world: World, clock: Clock) -> Any:
    store = sweep_mod.Store(
        world.client("dynamodb"), world.env["CRASHCART_TABLE_NAME"], max_pages=10
    )
    sent: list[tuple[str, str]] = []
    return sweep_mod.sweep(store, lambda s, b: sent.append((s, b)), now=clock()), sent


def test_a_centrally_linked_dump_reaches_the_member_its_sweep_and_its_hold(
    world: World, clock: Clock, lifecycle: Lifecycle, sweep_mod: Any
) -> None:
    member = member_account(world)
    shipped, silent = world.instances(clock=clock, count=2)
    sk = interrupt(world, clock, shipped)
    silent_sk = interrupt(world, clock, silent)
    clock.advance(60)
    held = build_hold(world, clock, lifecycle).handle(lifecycle_event(shipped, clock()))
    assert held["outcome"] == "held" and held["incident"] == sk

    # The dump lands in the central bucket; the central view links it and tells the member.
    clock.advance(120)
    central = Central(world)
    linked = central.link(member, shipped, clock)
    assert linked["account"] == member and linked["member_event"]
    (central_item,) = central.items()
    assert central_item["pk"]["S"] == f"instance#{member}:{shipped}"
    member_bus = f"arn:aws:events:{TEST_REGION}:{member}:event-bus/default"
    (event,) = central.hop.delivered(member_bus)
    assert (event["source"], event["detail-type"], event["account"]) == (
        "crashcart.central",
        "Crashcart Dump Received",
        CENTRAL,
    )
    assert (
        central.hop.delivered(f"arn:aws:events:{TEST_REGION}:{OTHER_MEMBER}:event-bus/default")
        == []
    )

    # The member's receiver records it on the member's own incident, as a local arrival would.
    recorded = arrival_handler.process(event, receiver(world, member), now=clock(), request_id="r")
    assert (recorded["outcome"], recorded["incident"]) == ("attach", sk)
    item = incident(world, shipped, sk)
    assert item["state"]["S"] == "dump-received"
    assert [v["S"] for v in item["dump_keys"]["L"]] == [event["detail"]["dump_key"]]
    assert item["summary"]["S"].startswith("shipped to the central dump bucket")
    assert item["updated_at"]["S"] == event["detail"]["received_at"]
    # a repeated delivery changes nothing
    again = arrival_handler.process(event, receiver(world, member), now=clock(), request_id="r2")
    assert again["outcome"] == "duplicate"

    # The overdue sweep, past both dump deadlines: the shipped one is not overdue, the silent
    # one is (the sweep does run).
    clock.advance(3600)
    result, sent = sweep(sweep_mod, world, clock)
    assert result.flagged == [f"{silent} {silent_sk}"]
    assert incident(world, shipped, sk)["state"]["S"] == "dump-received"
    assert [subject for subject, _ in sent] == [f"crashcart: dump overdue from {silent}"]

    # The hold releases the terminating instance: the dump shipped.
    lifecycle.expect_continue(shipped)
    ticked = build_hold(world, clock, lifecycle).handle(tick_event(clock()))
    assert ticked["released"] == [shipped]
    assert incident(world, shipped, sk)["hold_reason"]["S"] == f"incident {sk}: dump shipped"
    assert holds(world) == []


def _forged(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    forged = json.loads(json.dumps(event))
    for name, value in changes.items():
        if name == "envelope_account":
            forged["account"] = value
        else:
            forged["detail"][name] = value
    return forged


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"envelope_account": OTHER_MEMBER}, f"sent by account {OTHER_MEMBER}, not by the central"),
        ({"account": OTHER_MEMBER}, f"detail.account {OTHER_MEMBER} is not this account"),
    ],
)
def test_a_forged_event_is_refused_logged_and_kept(
    world: World,
    clock: Clock,
    changes: dict[str, Any],
    reason: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    member = member_account(world)
    (instance,) = world.instances(clock=clock)
    sk = interrupt(world, clock, instance)
    central = Central(world)
    central.link(member, instance, clock)
    (event,) = central.hop.delivered(f"arn:aws:events:{TEST_REGION}:{member}:event-bus/default")
    before = incident(world, instance, sk)

    # Through the Lambda handler, configured as CentralDumpReceiver configures it: the
    # refusal is logged with its reason and raised (Lambda retries, then its DLQ keeps it).
    for name, value in {
        "CRASHCART_TABLE_NAME": world.env["CRASHCART_TABLE_NAME"],
        "CRASHCART_TOPIC_ARN": world.env["CRASHCART_TOPIC_ARN"],
        "CRASHCART_CENTRAL_ACCOUNT": CENTRAL,
        "CRASHCART_MEMBER_ACCOUNT": member,
        "AWS_REGION": TEST_REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(
        arrival_handler,
        "_CONTAINER",
        {
            "s3": world.client("s3"),
            "dynamodb": world.client("dynamodb"),
            "sns": world.client("sns"),
        },
    )
    with pytest.raises(BadEventError, match=reason):
        arrival_handler.handler(_forged(event, **changes), None)
    (record,) = [r for r in caplog.records if r.name == "crashcart.dump_arrival"]
    logged = json.loads(record.getMessage())
    assert logged["outcome"] == "rejected" and reason in logged["reason"]
    assert incident(world, instance, sk) == before  # nothing written


def test_a_function_without_a_central_account_refuses_central_events(world: World) -> None:
    member = member_account(world)
    plain = arrival_handler.build(
        ArrivalSettings(
            world.env["CRASHCART_TABLE_NAME"], world.env["CRASHCART_TOPIC_ARN"], timedelta(hours=6)
        ),
        clients={"s3": None, "dynamodb": world.client("dynamodb"), "sns": None},
    )
    event = {
        "source": "crashcart.central",
        "detail-type": "Crashcart Dump Received",
        "account": CENTRAL,
        "detail": {"account": member},
    }
    with pytest.raises(BadEventError, match="takes none"):
        arrival_handler.process(event, plain, now=after_launch_clock()(), request_id="r")


@pytest.mark.parametrize("failure", ["entry", "call"])
def test_a_failed_put_events_keeps_the_central_record_counts_and_raises(
    world: World, clock: Clock, failure: str, capsys: pytest.CaptureFixture[str]
) -> None:
    member = member_account(world)
    (instance,) = world.instances(clock=clock)
    interrupt(world, clock, instance)
    central = Central(world)
    central.hop.fail = failure
    with pytest.raises(MemberEventError, match=f"arn:aws:events:{TEST_REGION}:{member}"):
        central.link(member, instance, clock)
    (item,) = central.items()
    assert "dump_keys" in item  # the central record stays
    metric_lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    (metric,) = [m for m in metric_lines if "MemberDumpEventsFailed" in m]
    assert metric["MemberDumpEventsFailed"] == 1 and metric["FunctionName"] == "view"
    assert metric["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "crashcart"
    assert central.hop.sent == []

    # Lambda's retry: the dump is already linked (duplicate), the event is sent this time.
    central.hop.fail = None
    clock.advance(60)
    retried = central.link(member, instance, clock)
    assert retried["outcome"] == "duplicate" and retried["member_event"]
    (sent,) = central.hop.sent
    assert json.loads(sent["Detail"])["received_at"] == iso(clock())
