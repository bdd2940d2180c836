"""The exact DynamoDB condition / transaction expressions of the claim (pure builders)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.support.remediation_runtime import load, settings

R = load()
C = R.claims
D = R.decision

TABLE = "crashcart-incidents"
NOW = datetime(2026, 11, 26, 5, 20, 30, tzinfo=UTC)
NOW_EPOCH = int(NOW.timestamp())
SK = "incident#2026-11-26T05:19:49Z"
GO = D.Decision(verdict=D.Verdict.INTERRUPT, reason="ok")


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def transaction(
    snapshot: Any, pre: Any = GO, az: str | None = "eu-west-1a"
) -> list[dict[str, Any]]:
    plan = D.plan_claim(
        pre,
        limits=snapshot.limits,
        fleet=snapshot.fleet,
        az=snapshot.az,
        settings=settings(),
        now_epoch=NOW_EPOCH,
        incident_sk=SK,
    )
    return C.claim_transaction(
        table=TABLE,
        instance_id="i-0123456789abcdef0",
        availability_zone=az,
        incident_item={"pk": {"S": "instance#i-0123456789abcdef0"}, "sk": {"S": SK}},
        snapshot=snapshot,
        plan=plan,
        cooldown_seconds=21600,
        daily_budget=1,
        now_epoch=NOW_EPOCH,
        now_iso=iso(NOW_EPOCH),
        iso=iso,
    )


def test_first_claim_on_an_empty_table_is_four_puts_that_require_absence() -> None:
    snap = C.Snapshot(
        incident=None, limits=D.LimitsState(), fleet=D.BreakerState(), az=D.BreakerState()
    )
    items = transaction(snap)
    assert [list(i) for i in items] == [["Put"]] * 4
    puts = [i["Put"] for i in items]
    assert [p["Item"]["pk"]["S"] for p in puts] == [
        "instance#i-0123456789abcdef0",
        "breaker#fleet",
        "breaker#az#eu-west-1a",
        "instance#i-0123456789abcdef0",
    ]
    assert [p["Item"]["sk"]["S"] for p in puts] == [SK, "state", "state", "limits"]
    assert all(p["ConditionExpression"] == "attribute_not_exists(pk)" for p in puts)
    assert all(p["TableName"] == TABLE for p in puts)
    limits = puts[3]["Item"]
    assert limits["last_interrupt_epoch"] == {"N": str(NOW_EPOCH)}
    assert limits["budget_day"] == {"S": "2026-11-26"}
    assert limits["budget_count"] == {"N": "1"}
    assert limits["claim_incident"] == {"S": SK}
    assert "ttl" not in limits and "expires_at" not in limits  # never TTL


def test_claim_over_existing_items_conditions_on_versions_and_timestamps() -> None:
    snap = C.Snapshot(
        incident=None,
        limits=D.LimitsState(
            exists=True,
            version=7,
            last_interrupt_epoch=NOW_EPOCH - 90000,
            budget_day="2026-11-25",
            budget_count=1,
        ),
        fleet=D.BreakerState(
            exists=True,
            version=3,
            window_start_epoch=NOW_EPOCH - 100,
            count=1,
            last_alarm_epoch=NOW_EPOCH - 100,
        ),
        az=D.BreakerState(
            exists=True,
            version=5,
            window_start_epoch=NOW_EPOCH - 5000,
            count=1,
            last_alarm_epoch=NOW_EPOCH - 5000,
        ),
    )
    incident, fleet, az, limits = (i["Put"] for i in transaction(snap))
    assert incident["ConditionExpression"] == "attribute_not_exists(pk)"
    assert fleet["ConditionExpression"] == "#version = :expected_version"
    assert fleet["ExpressionAttributeNames"] == {"#version": "version"}
    assert fleet["ExpressionAttributeValues"] == {":expected_version": {"N": "3"}}
    assert fleet["Item"]["version"] == {"N": "4"} and fleet["Item"]["count"] == {"N": "2"}
    assert az["ExpressionAttributeValues"] == {":expected_version": {"N": "5"}}
    assert az["Item"]["count"] == {"N": "1"}  # window rolled over
    assert limits["ConditionExpression"] == (
        "#version = :expected_version"
        " AND (attribute_not_exists(last_interrupt_epoch)"
        " OR last_interrupt_epoch <= :cooldown_cutoff)"
        " AND (attribute_not_exists(budget_day) OR budget_day <> :today"
        " OR budget_count < :budget)"
    )
    assert limits["ExpressionAttributeNames"] == {"#version": "version"}
    assert limits["ExpressionAttributeValues"] == {
        ":expected_version": {"N": "7"},
        ":cooldown_cutoff": {"N": str(NOW_EPOCH - 21600)},
        ":today": {"S": "2026-11-26"},
        ":budget": {"N": "1"},
    }
    assert limits["Item"]["version"] == {"N": "8"}
    assert limits["Item"]["prev_last_interrupt_epoch"] == {"N": str(NOW_EPOCH - 90000)}


def test_refused_alarm_writes_incident_and_breakers_but_never_the_limits() -> None:
    snap = C.Snapshot(incident=None, limits=D.LimitsState(), fleet=D.BreakerState(), az=None)
    skip = D.Decision(verdict=D.Verdict.SKIP, guard=D.Guard.KILL_SWITCH, reason="on")
    items = transaction(snap, pre=skip, az=None)
    assert [i["Put"]["Item"]["pk"]["S"] for i in items] == [
        "instance#i-0123456789abcdef0",
        "breaker#fleet",
    ]


def test_breaker_item_records_when_it_opened() -> None:
    snap = C.Snapshot(
        incident=None,
        limits=D.LimitsState(),
        fleet=D.BreakerState(
            exists=True,
            version=1,
            window_start_epoch=NOW_EPOCH - 10,
            count=4,
            last_alarm_epoch=NOW_EPOCH - 1,
        ),
        az=None,
    )
    fleet = transaction(snap, az=None)[1]["Put"]["Item"]
    assert fleet["opened_epoch"] == {"N": str(NOW_EPOCH)}
    assert fleet["opened_at"] == {"S": "2026-11-26T05:20:30Z"}
    assert len(transaction(snap, az=None)) == 2  # the threshold alarm does not claim


def test_release_restores_the_previous_interrupt_time() -> None:
    claim = D.LimitsState(
        exists=True,
        version=8,
        last_interrupt_epoch=NOW_EPOCH,
        budget_day="2026-11-26",
        budget_count=1,
        claim_incident=SK,
        prev_last_interrupt_epoch=NOW_EPOCH - 90000,
    )
    update = C.release_update(TABLE, "i-0123456789abcdef0", claim)
    assert update["Key"] == {"pk": {"S": "instance#i-0123456789abcdef0"}, "sk": {"S": "limits"}}
    assert update["ConditionExpression"] == "claim_incident = :incident"
    assert update["UpdateExpression"] == (
        "SET #version = #version + :one, budget_count = budget_count - :one, "
        "last_interrupt_epoch = :previous REMOVE claim_incident, prev_last_interrupt_epoch"
    )
    assert update["ExpressionAttributeValues"] == {
        ":one": {"N": "1"},
        ":incident": {"S": SK},
        ":previous": {"N": str(NOW_EPOCH - 90000)},
    }


def test_release_of_a_first_claim_removes_the_interrupt_time() -> None:
    claim = D.LimitsState(
        exists=True,
        version=1,
        last_interrupt_epoch=NOW_EPOCH,
        budget_day="2026-11-26",
        budget_count=1,
        claim_incident=SK,
    )
    update = C.release_update(TABLE, "i-0123456789abcdef0", claim)
    assert update["UpdateExpression"] == (
        "SET #version = #version + :one, budget_count = budget_count - :one "
        "REMOVE claim_incident, prev_last_interrupt_epoch, last_interrupt_epoch, last_interrupt_at"
    )
    assert ":previous" not in update["ExpressionAttributeValues"]


def test_items_round_trip_through_the_readers() -> None:
    item = {
        "version": {"N": "4"},
        "window_start_epoch": {"N": "10"},
        "count": {"N": "3"},
        "opened_epoch": {"N": "12"},
        "last_alarm_epoch": {"N": "13"},
    }
    assert C.breaker_from_item(item) == D.BreakerState(
        exists=True, version=4, window_start_epoch=10, count=3, opened_epoch=12, last_alarm_epoch=13
    )
    assert C.breaker_from_item(None) == D.BreakerState()
    assert C.limits_from_item({}) == D.LimitsState()
