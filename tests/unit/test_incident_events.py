"""The incident event contract (``crashcart.runtime.incident_events``): builder and reader."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crashcart.runtime.incident_events import (
    DETAIL_TYPE,
    MAX_REASON,
    SOURCE,
    IncidentEventError,
    incident_update,
    parse_incident_event,
    put_events_entry,
)

BUS = "arn:aws:events:eu-west-1:999999999999:event-bus/crashcart-central"


def update(**overrides: Any) -> Any:
    values: dict[str, Any] = {
        "account": "111111111111",
        "region": "eu-west-1",
        "instance_id": "i-0123456789abcdef0",
        "incident": "incident#2026-12-05T22:00:00Z",
        "state": "interrupted",
        "availability_zone": "eu-west-1a",
        "updated_at": "2026-12-05T22:01:00Z",
        "reason": "instance status check impaired",
    }
    values.update(overrides)
    return incident_update(**values)


def envelope(detail: dict[str, Any], account: str = "111111111111") -> dict[str, Any]:
    return {"source": SOURCE, "detail-type": DETAIL_TYPE, "account": account, "detail": detail}


def test_the_entry_is_the_contract() -> None:
    entry = put_events_entry(update(), BUS)
    assert (entry["Source"], entry["DetailType"], entry["EventBusName"]) == (
        "crashcart.incident",
        "Crashcart Incident Update",
        BUS,
    )
    assert json.loads(entry["Detail"]) == {
        "schema": 1,
        "account": "111111111111",
        "region": "eu-west-1",
        "instance_id": "i-0123456789abcdef0",
        "incident": "incident#2026-12-05T22:00:00Z",
        "state": "interrupted",
        "availability_zone": "eu-west-1a",
        "updated_at": "2026-12-05T22:01:00Z",
        "reason": "instance status check impaired",
    }


def test_the_reader_accepts_what_the_builder_writes() -> None:
    detail = json.loads(
        put_events_entry(update(availability_zone=None, reason=None), BUS)["Detail"]
    )
    assert parse_incident_event(envelope(detail)) == update(availability_zone=None, reason=None)


def test_a_member_cannot_report_another_accounts_incident() -> None:
    detail = update(account="222222222222").detail()
    with pytest.raises(IncidentEventError, match="not the sending account"):
        parse_incident_event(envelope(detail, account="111111111111"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": 2}, "schema"),
        ({"schema": True}, "schema"),
        ({"account": "11111111111"}, "account"),
        ({"instance_id": "i-XYZ"}, "instance_id"),
        ({"incident": "limits"}, "incident"),
        ({"state": "dump-received"}, "not a state a remediation publishes"),
        ({"state": "exploded"}, "not an incident state"),
        ({"updated_at": "2026-12-05 22:01:00"}, "updated_at"),
        ({"availability_zone": ""}, "availability_zone"),
        ({"reason": 7}, "reason"),
        ({"reason": "x" * (MAX_REASON + 1)}, "reason"),
        ({"extra": 1}, "unknown detail fields"),
    ],
)
def test_the_reader_refuses_bad_details(change: dict[str, Any], message: str) -> None:
    detail = {**update().detail(), **change}
    with pytest.raises(IncidentEventError, match=message):
        parse_incident_event(envelope(detail))


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "not an object"),
        ({"source": "aws.ec2"}, "source"),
        ({"source": SOURCE, "detail-type": "Other"}, "detail-type"),
        ({"source": SOURCE, "detail-type": DETAIL_TYPE, "detail": "{}"}, "detail is not"),
    ],
)
def test_the_reader_refuses_foreign_events(event: object, message: str) -> None:
    with pytest.raises(IncidentEventError, match=message):
        parse_incident_event(event)


def test_a_long_reason_is_cut_for_the_event_and_the_entry_stays_small() -> None:
    made = update(reason="é" * 100_000)
    assert made.reason == "é" * MAX_REASON
    assert len(json.dumps(put_events_entry(made, BUS)).encode()) < 16 * 1024
