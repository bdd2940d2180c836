"""The alarm manager's pure parts: event classification, settings, the alarm each instance
should have, and drift."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from crashcart.functions.alarm_manager import events
from crashcart.functions.alarm_manager.alarms import (
    Instance,
    alarm_spec,
    drifted,
    managed_instance,
    wants_alarm,
)
from crashcart.functions.alarm_manager.settings import Settings, SettingsError
from crashcart.runtime import environment as variables
from tests.conftest import TEST_ACCOUNT, TEST_REGION, load_event

PREFIX = "crashcart-a-11111111-"
INSTANCE = "i-0123456789abcdef0"


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "alarm_name_prefix": PREFIX,
        "deployment": PREFIX.rstrip("-"),
        "rejected_queue_url": "https://sqs.invalid/q",
        "opt_in_tag_key": "crashcart:diagnostic-interrupt",
        "opt_in_tag_value": "enabled",
        "evaluation_periods": 3,
        "datapoints_to_alarm": 3,
        "puts_per_second": 2,
    }
    values.update(overrides)
    return Settings(**values)


def parse(event: Any) -> Any:
    return events.parse(event, account=TEST_ACCOUNT, region=TEST_REGION)


# -- events ------------------------------------------------------------------------------


def test_each_fixture_is_classified() -> None:
    assert parse(load_event("alarm_manager_state_change")) == events.LookAt(
        instance_ids=(INSTANCE,), why="state change to 'running'"
    )
    assert isinstance(parse(load_event("alarm_manager_tag_change")), events.LookAt)
    assert isinstance(parse(load_event("alarm_manager_scheduled")), events.Reconcile)
    request = parse(load_event("alarm_manager_stack_delete"))
    assert isinstance(request, events.StackRequest) and request.request_type == "Delete"


def _mutated(name: str, change: Any) -> dict[str, Any]:
    event = copy.deepcopy(load_event(name))
    change(event)
    return event


@pytest.mark.parametrize(
    ("event", "words"),
    [
        (None, "not an object"),
        ([], "not an object"),
        (_mutated("alarm_manager_state_change", lambda e: e.update(region="us-east-1")), "foreign"),
        (
            _mutated(
                "alarm_manager_state_change", lambda e: e["detail"].update({"instance-id": "x"})
            ),
            "not an instance id",
        ),
        (
            _mutated("alarm_manager_tag_change", lambda e: e["detail"].update(service="s3")),
            "not of an EC2 instance",
        ),
        (
            _mutated(
                "alarm_manager_tag_change",
                lambda e: e.update(resources=["arn:aws:ec2:eu-west-1:222222222222:instance/i-1"]),
            ),
            "not an instance ARN of",
        ),
        (_mutated("alarm_manager_scheduled", lambda e: e.update(source="aws.s3")), "not one"),
        (_mutated("alarm_manager_stack_delete", lambda e: e.pop("ResponseURL")), "ResponseURL"),
        (
            _mutated(
                "alarm_manager_stack_delete", lambda e: e.update(ResponseURL="http://x.invalid/")
            ),
            "not an https URL",
        ),
        (_mutated("alarm_manager_stack_delete", lambda e: e.update(RequestType="Nuke")), "Nuke"),
    ],
)
def test_bad_and_foreign_events_are_rejected_with_a_reason(event: Any, words: str) -> None:
    parsed = parse(event)
    assert isinstance(parsed, events.Rejected)
    assert words in parsed.reason


# -- settings ----------------------------------------------------------------------------


def test_settings_need_the_prefix_deployment_and_queue() -> None:
    with pytest.raises(SettingsError, match="CRASHCART_ALARM_NAME_PREFIX"):
        Settings.from_env({})


def test_datapoints_may_not_exceed_periods() -> None:
    env = {
        variables.ALARM_NAME_PREFIX: PREFIX,
        variables.MANAGED_DEPLOYMENT: "d",
        variables.REJECTED_QUEUE_URL: "https://sqs.invalid/q",
        variables.MANAGED_EVALUATION_PERIODS: "2",
        variables.MANAGED_DATAPOINTS_TO_ALARM: "3",
    }
    with pytest.raises(SettingsError, match="DATAPOINTS_TO_ALARM='3'"):
        Settings.from_env(env)


# -- alarms ------------------------------------------------------------------------------


def test_only_prefix_plus_an_instance_id_is_a_managed_alarm() -> None:
    s = settings()
    assert managed_instance(s, f"{PREFIX}{INSTANCE}") == INSTANCE
    for name in (f"{PREFIX}fleet", f"{PREFIX}{INSTANCE}-x", f"other-{INSTANCE}", PREFIX):
        assert managed_instance(s, name) is None


@pytest.mark.parametrize(
    ("state", "tags", "wanted"),
    [
        ("running", {"crashcart:diagnostic-interrupt": "enabled"}, True),
        ("stopped", {"crashcart:diagnostic-interrupt": "enabled"}, True),
        ("shutting-down", {"crashcart:diagnostic-interrupt": "enabled"}, False),
        ("terminated", {"crashcart:diagnostic-interrupt": "enabled"}, False),
        ("running", {"crashcart:diagnostic-interrupt": "disabled"}, False),
        ("running", {}, False),
    ],
)
def test_which_instances_want_an_alarm(state: str, tags: dict[str, str], wanted: bool) -> None:
    instance = Instance(instance_id=INSTANCE, state=state, tags=tags)
    assert wants_alarm(settings(), instance) is wanted
    assert wants_alarm(settings(), None) is False


def _described(spec: dict[str, Any]) -> dict[str, Any]:
    """A DescribeAlarms entry for ``spec`` (no tags, no actions)."""
    described = {k: v for k, v in spec.items() if k != "Tags"}
    described.update(AlarmActions=[], OKActions=[], InsufficientDataActions=[])
    return described


def test_an_alarm_as_put_has_not_drifted() -> None:
    s = settings()
    assert drifted(s, _described(alarm_spec(s, INSTANCE))) is False


@pytest.mark.parametrize(
    "change",
    [
        {"Threshold": 5.0},
        {"EvaluationPeriods": 1},
        {"Dimensions": [{"Name": "InstanceId", "Value": "i-0fedcba9876543210"}]},
        {"AlarmActions": ["arn:aws:automate:eu-west-1:ec2:reboot"]},
        {"TreatMissingData": "breaching"},
    ],
)
def test_an_edited_alarm_has_drifted(change: dict[str, Any]) -> None:
    s = settings()
    assert drifted(s, {**_described(alarm_spec(s, INSTANCE)), **change}) is True


def test_a_new_window_makes_every_alarm_drift() -> None:
    described = _described(alarm_spec(settings(), INSTANCE))
    assert drifted(settings(evaluation_periods=5, datapoints_to_alarm=5), described) is True
