"""The central account's "dump received" event (the way back to a member): what a member's
receiver accepts, and what it refuses with the reason (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from crashcart.runtime.organisation import (
    BadDumpReceivedError,
    DumpReceived,
    parse_dump_received_event,
)
from tests.conftest import load_event

CENTRAL, ACCOUNT_A, ACCOUNT_B = "999999999999", "111111111111", "222222222222"
REGION = "eu-west-1"
KEY_A = "dumps/111111111111/AROAEXAMPLEROLEID1234:i-0123456789abcdef0/202612052205/metadata.json"


def parse(event: Any, *, account: str = ACCOUNT_A, region: str = REGION) -> DumpReceived:
    return parse_dump_received_event(event, central_account=CENTRAL, account=account, region=region)


def _event(**detail: Any) -> dict[str, Any]:
    event = load_event("central_dump_received_account_a")
    event["detail"].update(detail)
    return event


def test_the_event_round_trips_through_the_contract() -> None:
    event = load_event("central_dump_received_account_a")
    received = parse(event)
    assert (received.account, received.instance_id, received.dump_key) == (
        ACCOUNT_A,
        "i-0123456789abcdef0",
        KEY_A,
    )
    assert received.detail() == event["detail"]
    assert parse({**event, "detail": received.detail()}) == received


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        # the envelope account is the sender (EventBridge sets it): only the central account
        (
            {**load_event("central_dump_received_account_a"), "account": ACCOUNT_B},
            f"sent by account {ACCOUNT_B}, not by the central account {CENTRAL}",
        ),
        (
            {**load_event("central_dump_received_account_a"), "source": "crashcart.incident"},
            "not a crashcart dump-received event",
        ),
        (
            {**load_event("central_dump_received_account_a"), "detail-type": "Other"},
            "not a crashcart dump-received event",
        ),
        (_event(schema=2), "detail.schema 2 is not 1"),
        # meant for another member (B's dump sent to A's bus, or a forged account)
        (_event(account=ACCOUNT_B), f"detail.account {ACCOUNT_B} is not this account"),
        (_event(region="us-east-1"), "detail.region us-east-1 is not this Region"),
        (_event(instance_id="i-0fedcba9876543210"), "is not a central key of account"),
        (_event(dump_key=KEY_A.replace(ACCOUNT_A, ACCOUNT_B)), "is not a central key of account"),
        (
            _event(dump_key="dumps/AROAEXAMPLEROLEID1234:i-0123456789abcdef0/d/metadata.json"),
            "is not a central key of account",
        ),
        (_event(dump_key="dumps/../secret"), "is not dumps/"),
        (_event(dump_key=None), "not text"),
        (_event(received_at="yesterday"), "detail.received_at yesterday is not"),
        (_event(summary={"x": 1}), "detail.summary is a dict"),
        ({**load_event("central_dump_received_account_a"), "detail": "x"}, "no detail object"),
        ("not an event", "event is a str"),
    ],
)
def test_a_forged_or_malformed_event_is_refused_with_the_reason(event: Any, reason: str) -> None:
    with pytest.raises(BadDumpReceivedError, match=reason.replace(".", r"\.")):
        parse(event)


def test_an_event_for_this_account_in_another_region_is_refused() -> None:
    with pytest.raises(BadDumpReceivedError, match="not this Region eu-central-1"):
        parse(load_event("central_dump_received_account_a"), region="eu-central-1")


def test_the_summary_is_one_bounded_escaped_line() -> None:
    received = parse(_event(summary="a\nforged line " + "x" * 1000))
    assert "\n" not in received.summary and len(received.summary) <= 400
