"""Event parsing and schema checks against fixtures in the documented shapes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import load_event
from tests.support.remediation_runtime import PREFIX, load

E = load().events

INSTANCE = "i-0123456789abcdef0"


def parse(event: Any) -> Any:
    return E.parse(event, alarm_name_prefix=PREFIX)


def test_ok_to_alarm_is_a_new_alarm_with_the_incident_key() -> None:
    parsed = parse(load_event("remediation_alarm_ok_to_alarm"))
    assert isinstance(parsed, E.AlarmEvent)
    assert parsed.transition is E.Transition.NEW_ALARM
    assert parsed.instance_id == INSTANCE
    assert parsed.account == "111111111111" and parsed.region == "eu-west-1"
    assert parsed.changed_at == datetime(2026, 11, 26, 5, 19, 49, 783000, tzinfo=UTC)
    assert parsed.opened_at == "2026-11-26T05:19:49Z"
    assert parsed.previous_state == "OK"
    assert parsed.alarm_arn.endswith(f":alarm:{PREFIX}{INSTANCE}-instance-check")


def test_alarm_to_ok_is_a_recovery() -> None:
    parsed = parse(load_event("remediation_alarm_alarm_to_ok"))
    assert isinstance(parsed, E.AlarmEvent)
    assert parsed.transition is E.Transition.RECOVERED
    assert parsed.opened_at == "2026-11-26T05:49:49Z"


def test_contributor_events_carry_the_instance_in_their_attributes() -> None:
    alarm = parse(load_event("remediation_contributor_alarm"))
    assert isinstance(alarm, E.AlarmEvent)
    assert alarm.transition is E.Transition.NEW_ALARM
    assert (alarm.instance_id, alarm.contributor_id, alarm.previous_state) == (
        INSTANCE,
        "6d442278dba546f6",
        None,
    )
    ok = parse(load_event("remediation_contributor_ok"))
    assert isinstance(ok, E.AlarmEvent) and ok.transition is E.Transition.RECOVERED


def test_extra_fields_are_ignored() -> None:
    parsed = parse(load_event("remediation_alarm_extra_fields"))
    assert isinstance(parsed, E.AlarmEvent)
    assert parsed.instance_id == INSTANCE


@pytest.mark.parametrize(
    ("fixture", "words"),
    [
        ("remediation_alarm_insufficient_data", "insufficient data"),
        ("remediation_alarm_muted", "muted by arn:aws:cloudwatch"),
    ],
)
def test_valid_events_that_need_no_action_are_ignored(fixture: str, words: str) -> None:
    parsed = parse(load_event(fixture))
    assert isinstance(parsed, E.Ignored)
    assert words in parsed.reason
    assert parsed.instance_id == INSTANCE


def test_alarm_to_alarm_is_not_new() -> None:
    event = load_event("remediation_alarm_ok_to_alarm")
    event["detail"]["previousState"]["value"] = "ALARM"
    parsed = parse(event)
    assert isinstance(parsed, E.Ignored) and "not a new transition" in parsed.reason


def test_mute_window_in_the_past_does_not_mute() -> None:
    event = load_event("remediation_alarm_muted")
    event["detail"]["muteDetail"]["muteWindowEnd"] = "2026-11-26T05:00:01.000+0000"
    assert isinstance(parse(event), E.AlarmEvent)


@pytest.mark.parametrize(
    ("fixture", "words"),
    [
        ("remediation_alarm_foreign", "foreign alarm 'ServerStatusCheckFailed'"),
        ("remediation_alarm_metric_math", "3 metric entries"),
        ("remediation_alarm_composite", "composite alarm"),
        ("remediation_alarm_missing_fields", "detail.state.timestamp is missing"),
        ("remediation_garbage", "event.source is not a non-empty str"),
        ("remediation_alarm_other_metric", "AWS/EC2 CPUUtilization"),
        ("remediation_direct_alarm_action", "direct alarm-action invocation"),
    ],
)
def test_malformed_or_foreign_events_are_rejected_with_a_reason(fixture: str, words: str) -> None:
    parsed = parse(load_event(fixture))
    assert isinstance(parsed, E.Rejected)
    assert words in parsed.reason


def mutated(path: list[Any], value: Any) -> dict[str, Any]:
    event = copy.deepcopy(load_event("remediation_alarm_ok_to_alarm"))
    target: Any = event
    for step in path[:-1]:
        target = target[step]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return event


DIMS = ["detail", "configuration", "metrics", 0, "metricStat", "metric", "dimensions"]


@pytest.mark.parametrize(
    ("event", "words"),
    [
        (None, "NoneType"),
        ([], "list"),
        ("ALARM", "str"),
        (mutated(["source"], "aws.ec2"), "aws.ec2"),
        (mutated(["detail-type"], "EC2 Instance State-change Notification"), "not an alarm state"),
        (mutated(["account"], "12345"), "12-digit"),
        (mutated(["region"], "mars"), "region name"),
        (mutated(["detail"], KeyError), "event.detail is missing"),
        (mutated(["detail", "state", "value"], "PANIC"), "PANIC"),
        (mutated(["detail", "state", "timestamp"], "yesterday"), "not ISO-8601"),
        (mutated(["detail", "state", "timestamp"], "2026-11-26T05:19:49"), "not ISO-8601"),
        (mutated(["detail", "previousState"], KeyError), "previousState is missing"),
        (mutated([*DIMS, "InstanceId"], "not-an-instance"), "not an EC2 instance id"),
        (mutated(DIMS, {"InstanceId": "i-0123456789abcdef0", "ImageId": "ami-1"}), "not exactly"),
        (mutated(["detail", "configuration", "metrics"], []), "0 metric entries"),
        (mutated(["detail", "alarmName"], 7), "alarmName"),
    ],
    ids=lambda v: str(v)[:40] if not isinstance(v, dict) else "event",
)
def test_schema_checks(event: Any, words: str) -> None:
    parsed = parse(event)
    assert isinstance(parsed, E.Rejected)
    assert words in parsed.reason


def test_parse_never_raises_on_random_shapes() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=20,
    )

    @settings(max_examples=100, deadline=None)
    @given(json_values)
    def check(value: Any) -> None:
        assert isinstance(parse(value), E.Rejected)

    check()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-10-02T17:04:40.989+0000", datetime(2019, 10, 2, 17, 4, 40, 989000, tzinfo=UTC)),
        ("2019-10-02T17:04:40Z", datetime(2019, 10, 2, 17, 4, 40, tzinfo=UTC)),
        ("2019-10-02T19:04:40+02:00", datetime(2019, 10, 2, 17, 4, 40, tzinfo=UTC)),
        ("2019-10-02T17:04:40", None),
        (12, None),
    ],
)
def test_parse_time(text: Any, expected: datetime | None) -> None:
    assert E.parse_time(text) == expected
