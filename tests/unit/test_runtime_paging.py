"""The shared NextToken step (crashcart.runtime.paging) and the listings that take it: the
opted-in census of the incident sweep and the kill switch's alarm listing read every page,
and stop with an error past their page bound."""

from __future__ import annotations

from typing import Any

import pytest

from crashcart.functions.incident_sweep.adapter import CensusFailedError, Fleet
from crashcart.functions.kill_switch.adapter import Alarms, ReachUnavailableError
from crashcart.runtime.paging import next_page


class _Paged:
    """A client method that answers ``pages`` in turn, chained by NextToken; records calls."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **arguments: Any) -> dict[str, Any]:
        self.calls.append(dict(arguments))
        index = len(self.calls) - 1
        page = dict(self.pages[index])
        if index + 1 < len(self.pages):
            page["NextToken"] = f"token-{index + 1}"
        return page


def test_next_page_carries_the_token_and_says_when_the_last_page_was_read() -> None:
    arguments: dict[str, Any] = {"MaxResults": 5}
    assert next_page({"NextToken": "abc"}, arguments) is True
    assert arguments == {"MaxResults": 5, "NextToken": "abc"}
    assert next_page({"NextToken": ""}, arguments) is False
    assert next_page({}, arguments) is False
    assert arguments["NextToken"] == "abc"


def _instances(*ids: str) -> dict[str, Any]:
    return {"Reservations": [{"Instances": [{"InstanceId": i, "Tags": []} for i in ids]}]}


class _Ec2:
    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.describe_instances = _Paged(pages)


def test_the_census_reads_every_page() -> None:
    client = _Ec2([_instances("i-1", "i-2"), _instances("i-3")])
    fleet = Fleet(client, max_pages=5)  # type: ignore[arg-type]
    assert [i for i, _tags in fleet.running("k", "v")] == ["i-1", "i-2", "i-3"]
    assert "NextToken" not in client.describe_instances.calls[0]
    assert client.describe_instances.calls[1]["NextToken"] == "token-1"


def test_the_census_stops_past_its_page_bound() -> None:
    client = _Ec2([_instances("i-1"), _instances("i-2"), _instances("i-3")])
    fleet = Fleet(client, max_pages=2)  # type: ignore[arg-type]
    with pytest.raises(CensusFailedError, match="more than 2 pages"):
        list(fleet.running("k", "v"))


def _alarms(*names: str) -> dict[str, Any]:
    return {"MetricAlarms": [{"AlarmName": n, "AlarmArn": f"arn:{n}"} for n in names]}


class _CloudWatch:
    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.describe_alarms = _Paged(pages)


def test_the_alarm_listing_reads_every_page() -> None:
    client = _CloudWatch([_alarms("a", "b"), _alarms("c")])
    listed = Alarms(client, max_pages=5).listed()  # type: ignore[arg-type]
    assert [alarm.name for alarm in listed] == ["a", "b", "c"]
    assert client.describe_alarms.calls[1]["NextToken"] == "token-1"


def test_the_alarm_listing_stops_past_its_page_bound() -> None:
    client = _CloudWatch([_alarms("a"), _alarms("b")])
    with pytest.raises(ReachUnavailableError, match="more than 1 pages"):
        list(Alarms(client, max_pages=1).listed())  # type: ignore[arg-type]
