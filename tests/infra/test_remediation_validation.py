"""Every invalid prop of the remediation construct fails at synth with a clear message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from crashcart.constructs.existing_dump_bucket import ExistingDumpBucket
from crashcart.constructs.unresponsive_instance_remediation import (
    AlarmWindow,
    CircuitBreaker,
    FleetWatch,
    InterruptGuards,
    UnresponsiveInstanceRemediation,
)
from crashcart.errors import ConfigurationError
from tests.support.remediation import INSTANCE_IDS, env, evidence_bucket, new_app


@pytest.fixture(scope="module")
def app() -> cdk.App:
    return new_app()


_counter = iter(range(10_000))


def build(app: cdk.App, **props: Any) -> UnresponsiveInstanceRemediation:
    stack = cdk.Stack(app, f"V{next(_counter)}", env=env())
    bucket, _ = evidence_bucket(stack)
    props.setdefault("dumps", ExistingDumpBucket(bucket=bucket))
    if "instances" not in props and "fleet" not in props:
        props["instances"] = list(INSTANCE_IDS)
    return UnresponsiveInstanceRemediation(stack, "Remediation", **props)


def fails(match: str, make: Callable[[], Any]) -> None:
    with pytest.raises(ConfigurationError, match=match):
        make()


# -- AlarmWindow -----------------------------------------------------------------------


def test_fails_datapoints_greater_than_evaluation_periods() -> None:
    fails(
        r"datapoints_to_alarm=4 is greater than evaluation_periods=3",
        lambda: AlarmWindow(evaluation_periods=3, datapoints_to_alarm=4),
    )


def test_fails_evaluation_periods_below_one() -> None:
    fails(
        r"evaluation_periods=0: must be a whole number of at least 1",
        lambda: AlarmWindow(evaluation_periods=0, datapoints_to_alarm=0),
    )


def test_fails_datapoints_below_one() -> None:
    fails(r"datapoints_to_alarm=0", lambda: AlarmWindow(datapoints_to_alarm=0))


def test_fails_evaluation_longer_than_a_day() -> None:
    fails(
        r"evaluation_periods=1441: CloudWatch allows at most one day",
        lambda: AlarmWindow(evaluation_periods=1441, datapoints_to_alarm=1),
    )


def test_fails_fleet_window_longer_than_metrics_insights_evaluates(app: cdk.App) -> None:
    fails(
        r"evaluation_periods=181 with fleet mode: .* at most the last 180 minutes",
        lambda: build(
            app,
            fleet=FleetWatch(),
            alarm_window=AlarmWindow(evaluation_periods=181, datapoints_to_alarm=3),
        ),
    )


# -- FleetWatch ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 501])
def test_fails_max_contributors_out_of_range(value: int) -> None:
    fails(
        rf"max_contributors={value}: must be a whole number from 1 to 500",
        lambda: FleetWatch(max_contributors=value),
    )


# -- InterruptGuards -------------------------------------------------------------------


def test_fails_daily_budget_below_one() -> None:
    fails(r"daily_budget=0: .* at least 1 .*kill-switch", lambda: InterruptGuards(daily_budget=0))


def test_fails_cooldown_shorter_than_dump_deadline() -> None:
    fails(
        r"cooldown=1200s is shorter than dump_deadline=1800s",
        lambda: InterruptGuards(cooldown=cdk.Duration.minutes(20)),
    )


def test_fails_budget_the_cooldown_can_never_reach() -> None:
    fails(
        r"daily_budget=4 can never be reached with cooldown=43200s",
        lambda: InterruptGuards(cooldown=cdk.Duration.hours(12), daily_budget=4),
    )


def test_fails_dump_deadline_below_a_minute() -> None:
    fails(
        r"dump_deadline=30 seconds: .* at least 60",
        lambda: InterruptGuards(dump_deadline=cdk.Duration.seconds(30)),
    )


def test_fails_duration_that_is_not_a_duration() -> None:
    fails(r"boot_grace=900: must be a cdk.Duration", lambda: InterruptGuards(boot_grace=900))  # type: ignore[arg-type]


def test_fails_duration_with_fractional_seconds() -> None:
    fails(
        r"boot_grace=.*whole number of seconds",
        lambda: InterruptGuards(boot_grace=cdk.Duration.millis(1500)),
    )


def test_fails_attestation_policy_given_as_text() -> None:
    fails(
        r"attestation='require': must be one of AttestationPolicy.REQUIRE",
        lambda: InterruptGuards(attestation="require"),
    )  # type: ignore[arg-type]


def test_fails_allow_unverified_arch_not_a_bool() -> None:
    fails(r"allow_unverified_arch='yes'", lambda: InterruptGuards(allow_unverified_arch="yes"))  # type: ignore[arg-type]


def test_fails_attestation_max_age_below_a_minute() -> None:
    fails(
        r"attestation_max_age=0 seconds",
        lambda: InterruptGuards(attestation_max_age=cdk.Duration.seconds(0)),
    )


def test_fails_attestation_max_age_within_the_agents_interval() -> None:
    # The agent re-attests hourly: an hour's maximum age would skip healthy instances.
    fails(
        r"attestation_max_age=3600s: must be at least 10800s .* re-attests hourly",
        lambda: InterruptGuards(attestation_max_age=cdk.Duration.hours(1)),
    )
    assert InterruptGuards(attestation_max_age=cdk.Duration.hours(3)).attestation_max_age


def test_minimum_attestation_max_age_covers_the_agents_timer() -> None:
    """The minimum follows the agent's timer: one failed re-attestation is tolerated."""
    import re
    from pathlib import Path

    from crashcart.runtime import attestation as judge

    timer = Path("crashcart/components/agent/crashcart-agent.timer").read_text()
    units = {"h": 3600, "min": 60, "s": 1}

    def seconds(setting: str) -> int:
        match = re.search(rf"^{setting}=(\d+)(h|min|s)$", timer, re.MULTILINE)
        assert match, f"{setting} not found in the agent's timer"
        return int(match[1]) * units[match[2]]

    assert seconds("OnUnitActiveSec") == judge.AGENT_REATTEST_SECONDS
    assert seconds("RandomizedDelaySec") == judge.AGENT_REATTEST_JITTER_SECONDS
    interval = judge.AGENT_REATTEST_SECONDS + judge.AGENT_REATTEST_JITTER_SECONDS
    assert 2 * interval < judge.MIN_MAX_AGE_SECONDS


# -- CircuitBreaker --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fleet_threshold", "az_threshold"])
def test_fails_breaker_threshold_below_two(name: str) -> None:
    fails(rf"{name}=1: must be a whole number of at least 2", lambda: CircuitBreaker(**{name: 1}))


def test_fails_az_threshold_above_fleet_threshold() -> None:
    fails(
        r"az_threshold=6 is greater than fleet_threshold=5", lambda: CircuitBreaker(az_threshold=6)
    )


@pytest.mark.parametrize("name", ["window", "quiet"])
def test_fails_breaker_duration_below_a_minute(name: str) -> None:
    fails(
        rf"CircuitBreaker {name}=30 seconds",
        lambda: CircuitBreaker(**{name: cdk.Duration.seconds(30)}),
    )


# -- the construct ---------------------------------------------------------------------


def test_fails_both_instances_and_fleet(app: cdk.App) -> None:
    fails(
        r"both instances and fleet were given: choose one",
        lambda: build(app, instances=list(INSTANCE_IDS), fleet=FleetWatch()),
    )


def test_fails_neither_instances_nor_fleet(app: cdk.App) -> None:
    fails(r"instances=None: give a non-empty list", lambda: build(app, instances=None))


def test_fails_empty_instance_list(app: cdk.App) -> None:
    fails(r"instances=\[\]: give a non-empty list", lambda: build(app, instances=[]))


def test_fails_instance_list_given_as_one_string(app: cdk.App) -> None:
    fails(
        r"instances='i-0123456789abcdef0': give a non-empty list",
        lambda: build(app, instances="i-0123456789abcdef0"),
    )


@pytest.mark.parametrize("bad", ["i-123", "I-0123456789ABCDEF0", "vol-0123456789abcdef0", ""])
def test_fails_malformed_instance_id(app: cdk.App, bad: str) -> None:
    fails(r"is not an EC2 instance id", lambda: build(app, instances=[bad]))


def test_fails_duplicate_instance(app: cdk.App) -> None:
    fails(r"listed twice", lambda: build(app, instances=[INSTANCE_IDS[0], INSTANCE_IDS[0]]))


def test_fails_instance_entry_of_wrong_type(app: cdk.App) -> None:
    fails(r"must be an ec2.IInstance or an instance id", lambda: build(app, instances=[42]))


def test_fails_fleet_of_wrong_type(app: cdk.App) -> None:
    fails(r"fleet=.*must be a FleetWatch", lambda: build(app, instances=None, fleet=500))


@pytest.mark.parametrize(
    ("prop", "value", "message"),
    [
        ("retry_attempts", 3, r"retry_attempts=3: must be a whole number from 0 to 2"),
        ("reserved_concurrency", 0, r"reserved_concurrency=0: .* from 1 to 1000"),
        ("memory_size", 64, r"memory_size=64: .* from 128 to 10240"),
        ("timeout", cdk.Duration.minutes(16), r"timeout=960s: Lambda allows at most 900 s"),
        ("timeout", cdk.Duration.seconds(5), r"timeout=5 seconds: .* at least 10"),
        ("max_event_age", cdk.Duration.hours(7), r"max_event_age=25200s: .* at most 6 hours"),
        ("max_event_age", cdk.Duration.seconds(30), r"max_event_age=30 seconds"),
        ("dry_run", "false", r"dry_run='false': must be True or False"),
    ],
)
def test_fails_function_settings_out_of_range(
    app: cdk.App, prop: str, value: Any, message: str
) -> None:
    fails(message, lambda: build(app, **{prop: value}))


# -- token-aware -----------------------------------------------------------------------


def test_tokens_are_not_validated_at_synth(app: cdk.App) -> None:
    stack = cdk.Stack(app, "Tokens", env=env())
    budget = cdk.CfnParameter(stack, "Budget", type="Number", default=1)
    concurrency = cdk.CfnParameter(stack, "Concurrency", type="Number", default=5)
    instance = cdk.CfnParameter(stack, "InstanceId", type="String")
    bucket, _ = evidence_bucket(stack)
    construct = UnresponsiveInstanceRemediation(
        stack,
        "Remediation",
        dumps=ExistingDumpBucket(bucket=bucket),
        instances=[instance.value_as_string],
        guards=InterruptGuards(daily_budget=budget.value_as_number),
        reserved_concurrency=concurrency.value_as_number,
        alarm_window=AlarmWindow(evaluation_periods=3, datapoints_to_alarm=3),
    )
    assert len(construct.alarms) == 1
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "ReservedConcurrentExecutions": {"Ref": "Concurrency"},
            "Environment": {
                "Variables": Match.object_like({"CRASHCART_DAILY_BUDGET": {"Ref": "Budget"}})
            },
        },
    )
