"""The rejection path: bounded, recursion-free, and it never touches incident state.

Issue 14, defect 5. The service is built over in-memory stand-ins: a queue that records what
it is given, and a store, kill switch and EC2 facts that fail the test if anything reaches
them (a rejected event must take no action and read nothing).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import load_event
from tests.support.remediation_runtime import (
    TEST_ACCOUNT,
    TEST_REGION,
    Clock,
    MemoryLog,
    load,
    settings,
)

R = load()
T = R.telemetry
LIMIT = R.service.MAX_REJECTED_BYTES
NOW = datetime(2026, 11, 26, 5, 20, 30, tzinfo=UTC)


class Untouchable:
    """Stands in for the store, the kill switch and EC2: any use fails the test."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attribute: str) -> Any:
        raise AssertionError(f"a rejected event reached {self.name}.{attribute}")


class Queue:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    def keep(self, body: str) -> None:
        self.bodies.append(body)


def service(queue: Queue, log: Any) -> Any:
    clock = Clock(NOW)
    return R.service.Remediation(
        settings=settings(),
        where=R.service.Where(account=TEST_ACCOUNT, region=TEST_REGION),
        ec2=Untouchable("ec2"),
        interrupter=Untouchable("interrupter"),
        evidence=Untouchable("evidence"),
        kill_switch=Untouchable("kill_switch"),
        notifier=Untouchable("notifier"),
        rejected=queue,
        store=Untouchable("store"),
        clock=clock,
        sleep=lambda _s: None,
        log=log,
        request_id="req-1",
    )


def reject(event: Any) -> tuple[dict[str, Any], str, dict[str, Any]]:
    queue = Queue()
    memory = MemoryLog(Clock(NOW))
    outcome = service(queue, memory.log).handle(event)
    assert outcome["outcome"] == "rejected", outcome
    (body,) = queue.bodies
    (record,) = [r for r in memory.records() if r["message"] == "event rejected"]
    return outcome, body, record


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"a": [value]}
    return value


# -- the encoder ---------------------------------------------------------------------------


def json_values() -> Any:
    from hypothesis import strategies as st

    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**100), max_value=2**100)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda children: (
            st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
        ),
        max_leaves=40,
    )


def test_the_bounded_encoding_is_json_dumps_cut_and_hashed_whole() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(json_values(), st.integers(min_value=0, max_value=400))
    def check(value: Any, limit: int) -> None:
        reference = json.dumps(value)
        encoded = T.encode_bounded(value, limit=limit)
        assert encoded.total == len(reference)
        assert encoded.sha256 == hashlib.sha256(reference.encode("ascii")).hexdigest()
        assert encoded.cut is (len(reference) > limit)
        assert encoded.text == reference[:limit]
        assert encoded.text.isascii()

    check()


def test_the_bounded_encoding_survives_any_depth_and_cycles() -> None:
    encoded = T.encode_bounded(nested(50_000), limit=100)
    assert encoded.depth == 100_000 and encoded.cut and len(encoded.text) == 100
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    assert T.encode_bounded(cyclic, limit=100).text == '{"self": "<cycle>"}'
    odd = {"n": float("nan"), "big": 10**5000, "obj": object(), 7: "seven"}
    assert json.loads(T.encode_bounded(odd, limit=1000).text) == {
        "n": "nan",
        "big": "<int of 16610 bits>",
        "obj": "<object>",
        "7": "seven",
    }


# -- the rejected-queue message -------------------------------------------------------------


def test_a_small_rejected_event_is_kept_whole() -> None:
    event = load_event("remediation_garbage")
    _, body, record = reject(event)
    kept = json.loads(body)
    assert kept["event"] == event and "event_cut" not in kept
    assert kept["reason"] == record["reason"] and kept["request_id"] == "req-1"
    assert record["kept"] == "whole" and record["EventsRejected"] == 1


def test_a_deeply_nested_event_is_rejected_kept_as_text_and_logged() -> None:
    event = {"source": "aws.cloudwatch", "junk": nested(100_000)}
    _, body, record = reject(event)
    assert len(body) <= LIMIT
    kept = json.loads(body)  # the message itself is shallow
    cut = kept["event_cut"]
    whole = T.encode_bounded(event, limit=0)
    assert (cut["bytes"], cut["sha256"], cut["depth"]) == (whole.total, whole.sha256, 200_001)
    assert kept["event_text"].startswith('{"source": "aws.cloudwatch", "junk": {"a": [{"a"')
    assert cut["kept_bytes"] == len(kept["event_text"])
    assert record["kept"] == "cut" and record["event_cut"] == cut


def test_a_moderately_deep_event_that_fits_is_kept_as_text() -> None:
    event = {"source": "aws.cloudwatch", "junk": nested(100)}
    _, body, _ = reject(event)
    kept = json.loads(body)
    assert "event" not in kept
    assert kept["event_text"] == json.dumps(event)
    assert "nested 201 levels deep" in kept["event_cut"]["why"]


@pytest.mark.parametrize(
    "event",
    [
        {"source": "aws.cloudwatch", "junk": "x" * 300_000},
        {"source": "aws.cloudwatch", "junk": "\u2028" * 100_000},  # 6 bytes each in JSON
        {"source": "aws.cloudwatch", "junk": "\x00" * 100_000},
        {"source": "aws.cloudwatch", "junk": "\U0001f4a5" * 50_000},  # 12 bytes each
        {"source": "\u2028" * 300_000},  # the reason quotes the source
        {"source": "aws.cloudwatch", "detail-type": "\\" * 300_000},
        {"source": "aws.cloudwatch", "junk": ['"\\'] * 200_000},
    ],
    ids=["ascii", "u2028", "nul", "astral", "source", "backslashes", "quotes"],
)
def test_an_oversized_event_is_cut_with_a_digest_and_the_message_fits(event: Any) -> None:
    _, body, record = reject(event)
    assert len(body.encode("utf-8")) <= LIMIT
    kept = json.loads(body)
    whole = json.dumps(event)
    cut = kept["event_cut"]
    assert cut["bytes"] == len(whole)
    assert cut["sha256"] == hashlib.sha256(whole.encode("ascii")).hexdigest()
    assert whole.startswith(kept["event_text"])
    assert cut["kept_bytes"] == len(kept["event_text"]) > 100_000
    assert str(len(whole)) in cut["why"]
    assert record["event_cut"] == cut
    assert len(kept["reason"]) <= R.events.MAX_REASON


def test_every_rejection_is_bounded_and_touches_nothing_but_the_queue() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=150, deadline=None)
    @given(
        json_values()
        | st.dictionaries(
            st.sampled_from(["source", "detail-type", "id", "account", "region", "detail"]),
            json_values() | st.text(min_size=1000, max_size=5000),
        )
    )
    def check(event: Any) -> None:
        _, body, _ = reject(event)  # Untouchable stand-ins fail on any other use
        assert len(body) <= LIMIT
        kept = json.loads(body)
        assert kept["reason"]

    check()


def test_a_foreign_event_is_rejected_before_anything_is_read() -> None:
    event = load_event("remediation_alarm_other_account")
    event["time"] = NOW.isoformat()
    event["detail"]["state"]["timestamp"] = (NOW - timedelta(seconds=5)).isoformat()
    outcome, body, _ = reject(event)
    assert "foreign event" in outcome["reason"]
    assert json.loads(body)["event"] == event


def test_a_notification_subject_is_made_acceptable_to_sns() -> None:
    """SNS refuses subjects with control or non-ASCII characters, or of 100 or more."""

    class Client:
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        def publish(self, **kwargs: Any) -> None:
            self.calls.append(kwargs)

    client = Client()
    notifier = R.adapter.Notifier(client, "arn:aws:sns:eu-west-1:111111111111:t")
    assert (
        notifier.publish("crashcart: \x1b[31mi-0123\n\u2028 caf\u00e9" + "x" * 200, "body") is None
    )
    (call,) = client.calls
    assert call["Subject"].isascii() and call["Subject"].isprintable()
    assert call["Subject"].startswith("crashcart:  [31mi-0123  caf ") and len(call["Subject"]) == 99
