"""The central incident view's input checks (pure): what a member may report, and what not."""

from __future__ import annotations

from typing import Any

import pytest

from crashcart.functions.incident_view.events import BadEventError, DumpArrived, parse_event
from crashcart.runtime.organisation import IncidentUpdate, parse_incident_event
from tests.conftest import load_event

BUCKET = "crashcart-central-dumps"


def test_a_members_update_round_trips_through_the_contract() -> None:
    update = parse_event(load_event("incident_view_update_account_a"), dump_bucket=BUCKET)
    assert isinstance(update, IncidentUpdate)
    assert (update.account, update.instance_id, update.state) == (
        "111111111111",
        "i-0123456789abcdef0",
        "interrupted",
    )
    event = load_event("incident_view_update_account_a")
    assert update.detail() == event["detail"]
    assert parse_incident_event({**event, "detail": update.detail()}) == update


def test_a_central_dump_arrival_names_its_account() -> None:
    arrival = parse_event(load_event("incident_view_dump_arrived"), dump_bucket=BUCKET)
    assert isinstance(arrival, DumpArrived)
    assert arrival.account == "111111111111"
    assert arrival.dump.incident_pk == "instance#111111111111:i-0123456789abcdef0"


def _update(**detail: Any) -> dict[str, Any]:
    event = load_event("incident_view_update_account_a")
    event["detail"].update(detail)
    return event


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            load_event("incident_view_update_b_claims_a"),
            "is not the sending account '222222222222'",
        ),
        (load_event("incident_view_update_bad_state"), "state='exploded': not an incident state"),
        (_update(schema=2), "schema=2: this reader understands 1"),
        (_update(account="11111111111"), "account='11111111111': does not match"),
        (_update(instance_id="i-XYZ\nforged"), "instance_id="),
        (_update(incident="incident#yesterday"), "incident='incident#yesterday': must be"),
        (_update(updated_at="2026-12-05 22:01"), "updated_at='2026-12-05 22:01': does not match"),
        (_update(availability_zone=7), "availability_zone=7"),
        (_update(reason=["x"]), "reason: must be null or text"),
        (
            {**load_event("incident_view_update_account_a"), "account": None},
            "is not the sending account None",
        ),
        ({**load_event("incident_view_update_account_a"), "source": "aws.s3"}, "Object Created"),
        (
            {**load_event("incident_view_update_account_a"), "detail-type": "Other"},
            "detail-type 'Other' is not",
        ),
        (load_event("incident_view_dump_without_account"), "no account segment"),
        ([], "not an object"),
    ],
)
def test_bad_events_are_refused_with_the_reason(event: Any, reason: str) -> None:
    with pytest.raises(BadEventError, match=reason.replace("(", r"\(")):
        parse_event(event, dump_bucket=BUCKET)


def test_an_object_in_another_bucket_is_refused() -> None:
    with pytest.raises(BadEventError, match="not in the central dump bucket"):
        parse_event(load_event("incident_view_dump_arrived"), dump_bucket="some-other-bucket")


def test_a_hostile_reason_is_kept_as_one_escaped_bounded_line() -> None:
    update = parse_event(_update(reason="x\n" * 900 + "https://evil"), dump_bucket=BUCKET)
    assert isinstance(update, IncidentUpdate)
    assert update.reason is not None
    assert "\n" not in update.reason and len(update.reason) <= 400
