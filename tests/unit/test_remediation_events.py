"""Event parsing and schema checks against fixtures in the documented shapes."""

from __future__ import annotations

import contextlib
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import load_event
from tests.support.remediation_runtime import PREFIX, TEST_ACCOUNT, TEST_REGION, load

E = load().events

INSTANCE = "i-0123456789abcdef0"
#: The fixtures' alarms changed state at 2026-11-26T05:19:49Z; the function's clock is a
#: little later, and the deployment keeps events for up to two hours.
FIXTURE_NOW = datetime(2026, 11, 26, 5, 20, 30, tzinfo=UTC)
MAX_AGE = timedelta(hours=2)
#: The OK fixtures are 30 minutes later.
LATER = FIXTURE_NOW + timedelta(minutes=30)


def parse(event: Any, *, now: datetime = FIXTURE_NOW, max_age: timedelta = MAX_AGE) -> Any:
    return E.parse(
        event,
        alarm_name_prefix=PREFIX,
        account=TEST_ACCOUNT,
        region=TEST_REGION,
        now=now,
        max_age=max_age,
    )


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
    parsed = parse(load_event("remediation_alarm_alarm_to_ok"), now=LATER)
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
    ok = parse(load_event("remediation_contributor_ok"), now=LATER)
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
        (mutated(["detail", "state", "timestamp"], "yesterday"), "not an ISO-8601"),
        (mutated(["detail", "state", "timestamp"], "2026-11-26T05:19:49"), "not an ISO-8601"),
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


# ----------------------------------------------------------------------------------------------
# Hostile input (issue 14, defect 5): an attacker who can invoke the function directly.


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:59:59-23:59",  # in range locally, past year 9999 in UTC
        "0001-01-01T00:00:00+23:59",  # before year 1 in UTC
        "9999-12-31T23:59:59.000-2359",
    ],
)
def test_parse_time_never_raises_on_out_of_range_offsets(text: str) -> None:
    assert E.parse_time(text) is None


@pytest.mark.parametrize(
    ("fixture", "words"),
    [
        ("remediation_hostile_time_overflow", "not an ISO-8601 time"),
        ("remediation_hostile_time_future", "ahead of this function's clock"),
        ("remediation_hostile_instance_newline", "is not an EC2 instance id"),
        ("remediation_hostile_other_region", "foreign event: alarm of account 111111111111 in us-"),
        ("remediation_alarm_other_account", "foreign event: alarm of account 222222222222"),
        ("remediation_hostile_resources_mismatch", "is not the ARN of alarm"),
        ("remediation_hostile_contributor_namespace", "is not crashcart's fleet query"),
        ("remediation_hostile_contributor_attributes", "are not exactly InstanceId"),
    ],
)
def test_hostile_fixtures_are_rejected_with_a_reason(fixture: str, words: str) -> None:
    parsed = parse(load_event(fixture))
    assert isinstance(parsed, E.Rejected), parsed
    assert words in parsed.reason


def test_an_event_of_an_unknown_own_account_is_rejected() -> None:
    # No function ARN (account unknown): nothing can be shown to be ours.
    parsed = E.parse(
        load_event("remediation_alarm_ok_to_alarm"),
        alarm_name_prefix=PREFIX,
        account="",
        region=TEST_REGION,
        now=FIXTURE_NOW,
        max_age=MAX_AGE,
    )
    assert isinstance(parsed, E.Rejected) and "unknown account" in parsed.reason


@pytest.mark.parametrize(
    ("ahead", "accepted"),
    [
        (timedelta(0), True),
        (E.CLOCK_SKEW, True),
        (E.CLOCK_SKEW + timedelta(seconds=1), False),
        (-MAX_AGE, True),
        (-MAX_AGE - timedelta(seconds=1), False),
        (timedelta(days=-3650), False),
    ],
)
def test_timestamps_are_bounded_by_the_clock(ahead: timedelta, accepted: bool) -> None:
    event = load_event("remediation_alarm_ok_to_alarm")
    state_time = datetime(2026, 11, 26, 5, 19, 49, 783000, tzinfo=UTC)
    now = state_time - ahead
    # the envelope's time is cut to the second in the fixture: make it the state's exactly
    event["time"] = state_time.isoformat()
    parsed = parse(event, now=now)
    assert isinstance(parsed, E.AlarmEvent) is accepted, parsed
    if not accepted:
        assert "ahead of this function's clock" in parsed.reason or "stale" in parsed.reason


def test_a_stale_envelope_time_is_rejected_too() -> None:
    event = load_event("remediation_alarm_ok_to_alarm")
    event["time"] = "2026-11-20T05:19:49Z"
    parsed = parse(event)
    assert isinstance(parsed, E.Rejected) and parsed.reason.startswith("event.time")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["account"], "111111111111\n"),
        (["region"], "eu-west-1\n"),
        (["id"], "7bf73129-1428-4cd3-a780-95db273d1602\n"),
        (["detail", "alarmName"], f"{PREFIX}i-0123456789abcdef0\n"),
        ([*DIMS, "InstanceId"], "i-0123456789abcdef0\n"),
        ([*DIMS, "InstanceId"], "i-01234567\n"),
    ],
)
def test_a_trailing_newline_never_passes_a_grammar(path: list[Any], value: str) -> None:
    parsed = parse(mutated(path, value))
    assert isinstance(parsed, E.Rejected), parsed


@pytest.mark.parametrize(
    "expression",
    [
        'SELECT MAX(StatusCheckFailed_Instance) FROM SCHEMA("AWS/EC2", InstanceId) '
        "GROUP BY InstanceId ORDER BY MAX() DESC LIMIT 500",
        'select max(StatusCheckFailed_Instance) from schema("AWS/EC2", InstanceId) '
        "group by InstanceId order by max() desc",
        'SELECT MAX(StatusCheckFailed_Instance)\n FROM SCHEMA("AWS/EC2",InstanceId) '
        "GROUP BY InstanceId",
    ],
)
def test_the_construct_fleet_query_is_accepted(expression: str) -> None:
    event = load_event("remediation_contributor_alarm")
    event["detail"]["configuration"]["metrics"][0]["expression"] = expression
    assert isinstance(parse(event), E.AlarmEvent)


def test_the_query_the_construct_writes_is_accepted() -> None:
    from crashcart.constructs.unresponsive_instance_remediation import FleetWatch

    event = load_event("remediation_contributor_alarm")
    for limit in (1, 100, 500):
        query = FleetWatch(max_contributors=limit).query
        event["detail"]["configuration"]["metrics"][0]["expression"] = query
        assert isinstance(parse(event), E.AlarmEvent), query


@pytest.mark.parametrize(
    "expression",
    [
        'SELECT MAX(StatusCheckFailed_Instance) FROM SCHEMA("Acme/EC2", InstanceId) '
        "GROUP BY InstanceId",
        'SELECT MAX(StatusCheckFailed_Instance) FROM "Acme/Forged" GROUP BY InstanceId',
        'SELECT MAX(StatusCheckFailed_System) FROM SCHEMA("AWS/EC2", InstanceId) '
        "GROUP BY InstanceId",
        'SELECT MAX(StatusCheckFailed_Instance) FROM SCHEMA("AWS/EC2", InstanceId) '
        "WHERE InstanceId = 'i-0123456789abcdef0' GROUP BY InstanceId",
        'SELECT MAX(StatusCheckFailed_Instance) FROM SCHEMA("AWS/EC2", InstanceId) '
        "GROUP BY InstanceId -- StatusCheckFailed_Instance InstanceId",
        'SELECT MAX(statuscheckfailed_instance) FROM SCHEMA("AWS/EC2", InstanceId) '
        "GROUP BY InstanceId",
        'SELECT AVG(ConsumedWriteCapacityUnits) FROM "AWS/DynamoDB" GROUP BY TableName',
    ],
)
def test_contributors_of_any_other_query_are_rejected(expression: str) -> None:
    event = load_event("remediation_contributor_alarm")
    event["detail"]["configuration"]["metrics"][0]["expression"] = expression
    parsed = parse(event)
    assert isinstance(parsed, E.Rejected) and "fleet query" in parsed.reason


def test_reasons_stay_short_whatever_was_sent() -> None:
    huge = "\u2028" * 300_000
    for path in (["source"], ["detail-type"], ["account"], ["detail", "alarmName"], ["id"]):
        parsed = parse(mutated(path, huge))
        assert isinstance(parsed, E.Rejected)
        assert len(parsed.reason) <= E.MAX_REASON, path


def _json_values() -> Any:
    from hypothesis import strategies as st

    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=40),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=12), children, max_size=4)
        ),
        max_leaves=30,
    )


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, sub in value.items():
            found += _paths(sub, (*prefix, key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            found += _paths(sub, (*prefix, index))
    return found


FIXTURES_OF_OURS = [
    "remediation_alarm_ok_to_alarm",
    "remediation_alarm_alarm_to_ok",
    "remediation_contributor_alarm",
    "remediation_alarm_muted",
    "remediation_alarm_insufficient_data",
]


def test_parsing_is_total_on_mutations_of_valid_events() -> None:
    """Any field of a valid event replaced by any JSON value (or deleted): the internal
    parser raises nothing but its own schema error, and parse() returns a verdict."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    events = [load_event(name) for name in FIXTURES_OF_OURS]

    @settings(max_examples=400, deadline=None)
    @given(st.sampled_from(events), st.data(), _json_values(), st.booleans())
    def check(original: Any, data: Any, value: Any, delete: bool) -> None:
        event = copy.deepcopy(original)
        path = data.draw(st.sampled_from(_paths(event)))
        if not path:
            event = value
        else:
            target = event
            for step in path[:-1]:
                target = target[step]
            if delete and isinstance(target, dict):
                del target[path[-1]]
            else:
                target[path[-1]] = value
        expected = E.Expected(
            alarm_name_prefix=PREFIX,
            account=TEST_ACCOUNT,
            region=TEST_REGION,
            now=LATER,
            max_age=MAX_AGE,
        )
        with contextlib.suppress(E._BadEventError):
            E._parse(event, expected)
        verdict = parse(event, now=LATER)
        assert isinstance(verdict, E.AlarmEvent | E.Ignored | E.Rejected)
        if isinstance(verdict, E.Rejected):
            assert "could not be parsed" not in verdict.reason
            assert len(verdict.reason) <= E.MAX_REASON

    check()


def test_parse_time_is_total() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(
        st.text(max_size=40)
        | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
        | st.builds(
            lambda d, minutes: (
                d.isoformat() + f"{'+' if minutes >= 0 else '-'}"
                f"{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
            ),
            st.datetimes(),
            st.integers(-1439, 1439),
        )
    )
    def check(text: str) -> None:
        moment = E.parse_time(text)
        assert moment is None or moment.tzinfo is not None

    check()


def test_deep_nesting_does_not_reach_the_parser_stack() -> None:
    deep: Any = "bottom"
    for _ in range(100_000):
        deep = {"a": [deep]}
    for event in (deep, {"source": "aws.cloudwatch", "detail": deep}):
        assert isinstance(parse(event), E.Rejected)
