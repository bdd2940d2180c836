"""Scaling past one Metrics Insights alarm: the value types, the shard design's queries, and
what the remediation function accepts from the alarms the alarm manager creates."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import aws_cdk as cdk
import pytest

from crashcart import FleetWatch, ManagedAlarms
from crashcart.constructs.fleet_scale import (
    MAX_INSTANCES_PER_SHARD,
    check_query,
    shard_of,
    shard_query,
    shards_needed,
)
from crashcart.errors import ConfigurationError
from crashcart.functions.alarm_manager.alarms import alarm_spec
from crashcart.functions.alarm_manager.settings import Settings
from tests.conftest import load_event
from tests.support.remediation_runtime import PREFIX, TEST_ACCOUNT, TEST_REGION, load

E = load().events
NOW = datetime(2026, 11, 26, 5, 20, 30, tzinfo=UTC)
INSTANCE = "i-0123456789abcdef0"

# -- ManagedAlarms / FleetWatch validation ----------------------------------------------------


def test_managed_alarms_defaults_stay_under_the_default_put_quota() -> None:
    managed = ManagedAlarms()
    assert managed.puts_per_second < managed.put_quota == 3
    # 100,000 alarms at 2 a second: about 14 hours for the first fill (docs/fleet-scale.md).
    assert managed.initial_fill_hours(100_000) == pytest.approx(13.9, abs=0.1)


def test_fails_when_the_pace_exceeds_the_quota() -> None:
    with pytest.raises(ConfigurationError, match=r"puts_per_second=5 is above put_quota=3"):
        ManagedAlarms(puts_per_second=5)
    ManagedAlarms(puts_per_second=5, put_quota=10)  # after raising the quota


@pytest.mark.parametrize("value", [0, -1, 51, 2.5, True, "2"])
def test_fails_for_a_pace_that_is_not_a_whole_number_in_range(value: Any) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(f"puts_per_second={value!r}")):
        ManagedAlarms(puts_per_second=value)


@pytest.mark.parametrize(
    ("every", "words"),
    [(cdk.Duration.minutes(1), "at least 300"), (cdk.Duration.days(2), "at most 1 day")],
)
def test_fails_for_a_reconcile_interval_out_of_range(every: cdk.Duration, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        ManagedAlarms(reconcile_every=every)


@pytest.mark.parametrize("quota", [0, -5, True, "200"])
def test_fleet_watch_fails_for_a_bad_alarm_quota(quota: Any) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(f"alarm_quota={quota!r}")):
        FleetWatch(alarm_quota=quota)


# -- the shard design's queries ------------------------------------------------------------------


def test_every_shard_query_is_in_the_documented_grammar() -> None:
    shards = shards_needed(100_000)
    queries = {
        shard_query(
            opt_in_key="crashcart:diagnostic-interrupt",
            opt_in_value="enabled",
            shard=f"{n:02d}",
        )
        for n in range(shards)
    }
    assert len(queries) == shards
    for query in queries:
        check_query(query)  # raises otherwise
        assert " WHERE " in query and " AND " in query
        assert "LIKE" not in query and "*" not in query  # no prefix or wildcard match


def test_the_single_fleet_query_is_in_the_grammar_too() -> None:
    check_query(FleetWatch().query)


@pytest.mark.parametrize(
    "bad",
    [
        'SELECT MAX(StatusCheckFailed_Instance) FROM SCHEMA("AWS/EC2", InstanceId) WHERE '
        "InstanceId LIKE 'i-0%' GROUP BY InstanceId ORDER BY MAX() DESC LIMIT 500",
        'SELECT MAX(StatusCheckFailed_Instance) FROM SCHEMA("AWS/EC2", InstanceId) WHERE '
        "a = 'b' OR c = 'd' GROUP BY InstanceId ORDER BY MAX() DESC LIMIT 500",
        'SELECT MAX(StatusCheckFailed_Instance) FROM SCHEMA("AWS/EC2", InstanceId) WHERE '
        "a = 'x' GROUP BY InstanceId ORDER BY MAX() DESC LIMIT 5000",
        'SELECT MAX(StatusCheckFailed_Instance) FROM SCHEMA("AWS/EC2", InstanceId) WHERE '
        "a = 'it''s' GROUP BY InstanceId ORDER BY MAX() DESC LIMIT 500",
    ],
)
def test_queries_outside_the_grammar_are_refused(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="not in the documented grammar"):
        check_query(bad)


def test_a_quote_in_a_tag_value_cannot_reach_a_query() -> None:
    with pytest.raises(ConfigurationError):
        shard_query(opt_in_key="k", opt_in_value="x' OR 'y", shard="00")


def test_shards_keep_each_under_its_limit_with_headroom() -> None:
    for instances in (1, 1_000, 10_000, 100_000):
        shards = shards_needed(instances)
        assert instances / shards <= MAX_INSTANCES_PER_SHARD / 2
    assert shards_needed(100_000) == 400  # over 200: needs a raised Metrics Insights quota


def test_an_instance_stays_in_its_shard() -> None:
    assert shard_of(INSTANCE, 400) == shard_of(INSTANCE, 400)
    counts: dict[str, int] = {}
    for n in range(4_000):
        shard = shard_of(f"i-{n:017x}", 8)
        counts[shard] = counts.get(shard, 0) + 1
    assert len(counts) == 8 and max(counts.values()) < 4_000 / 8 * 1.25  # spread evenly


# -- the remediation function and managed alarms -------------------------------------------------


def managed_alarm_event(prefix: str, *, account: str = TEST_ACCOUNT) -> dict[str, Any]:
    """The state-change event of the alarm the manager creates, shaped like a real one."""
    settings = Settings(
        alarm_name_prefix=prefix,
        deployment=prefix.rstrip("-"),
        rejected_queue_url="https://sqs.invalid/q",
        opt_in_tag_key="crashcart:diagnostic-interrupt",
        opt_in_tag_value="enabled",
        evaluation_periods=3,
        datapoints_to_alarm=3,
        puts_per_second=2,
    )
    spec = alarm_spec(settings, INSTANCE)
    event = copy.deepcopy(load_event("remediation_alarm_ok_to_alarm"))
    name = spec["AlarmName"]
    event["account"] = account
    event["resources"] = [f"arn:aws:cloudwatch:{TEST_REGION}:{account}:alarm:{name}"]
    event["detail"]["alarmName"] = name
    metric = event["detail"]["configuration"]["metrics"][0]["metricStat"]
    metric["metric"] = {
        "dimensions": {d["Name"]: d["Value"] for d in spec["Dimensions"]},
        "name": spec["MetricName"],
        "namespace": spec["Namespace"],
    }
    metric["period"], metric["stat"] = spec["Period"], spec["Statistic"]
    return event


def parse(event: dict[str, Any]) -> Any:
    return E.parse(
        event,
        alarm_name_prefix=PREFIX,
        account=TEST_ACCOUNT,
        region=TEST_REGION,
        now=NOW,
        max_age=timedelta(hours=2),
    )


def test_the_function_accepts_its_own_deployments_managed_alarms() -> None:
    parsed = parse(managed_alarm_event(PREFIX))
    assert isinstance(parsed, E.AlarmEvent)
    assert parsed.instance_id == INSTANCE
    assert parsed.alarm_name == f"{PREFIX}{INSTANCE}"


@pytest.mark.parametrize(
    ("prefix", "account", "words"),
    [
        ("crashcart-other-1a2b3c4d-", TEST_ACCOUNT, "name does not start with"),
        ("crashcart-tes-", TEST_ACCOUNT, "name does not start with"),
        (PREFIX, "222222222222", "foreign event"),
    ],
)
def test_the_function_rejects_managed_alarms_of_another_deployment(
    prefix: str, account: str, words: str
) -> None:
    parsed = parse(managed_alarm_event(prefix, account=account))
    assert isinstance(parsed, E.Rejected)
    assert words in parsed.reason


def test_the_function_rejects_another_deployments_fleet_contributors() -> None:
    event = copy.deepcopy(load_event("remediation_contributor_alarm"))
    other = "crashcart-other-1a2b3c4d-fleet"
    event["detail"]["alarmName"] = other
    event["resources"] = [f"arn:aws:cloudwatch:{TEST_REGION}:{TEST_ACCOUNT}:alarm:{other}"]
    parsed = parse(event)
    assert isinstance(parsed, E.Rejected)
    assert "name does not start with" in parsed.reason


def test_a_deployment_whose_prefix_extends_ours_is_still_foreign() -> None:
    """Stack ``test-1a2b3c4d-x`` names its alarms ``crashcart-test-1a2b3c4d-x-<8 hex>-...``,
    which start with *our* prefix ``crashcart-test-``: the alarm is still not ours."""
    nested = f"{PREFIX}1a2b3c4d-x-5e6f7a8b-"
    parsed = parse(managed_alarm_event(nested))
    assert isinstance(parsed, E.Rejected)
    assert "not a name crashcart gives" in parsed.reason
    contributor = copy.deepcopy(load_event("remediation_contributor_alarm"))
    name = f"{nested}fleet"
    contributor["detail"]["alarmName"] = name
    contributor["resources"] = [f"arn:aws:cloudwatch:{TEST_REGION}:{TEST_ACCOUNT}:alarm:{name}"]
    parsed = parse(contributor)
    assert isinstance(parsed, E.Rejected)
    assert "not a name crashcart gives" in parsed.reason
