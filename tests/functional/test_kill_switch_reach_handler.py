"""The kill switch's reach to alarm actions, against moto's server on 127.0.0.1.

moto holds the parameter and the alarms (actions, tags, ``ActionsEnabled``); the function
reads the switch, finds this deployment's acting alarms and flips their actions.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from crashcart.functions.kill_switch import handler, service
from crashcart.functions.kill_switch.adapter import Alarms, ReachUnavailableError
from crashcart.functions.kill_switch.settings import Settings, SettingsError
from tests.conftest import TEST_ACCOUNT, TEST_REGION, FakeLambdaContext, load_event
from tests.support.remediation_runtime import unique_tag

REBOOT = f"arn:aws:automate:{TEST_REGION}:ec2:reboot"
LAMBDA = f"arn:aws:lambda:{TEST_REGION}:{TEST_ACCOUNT}:function:escalate"
TOPIC = f"arn:aws:sns:{TEST_REGION}:{TEST_ACCOUNT}:crashcart-notify"
NOW = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


class Deployment:
    def __init__(self, url: str) -> None:
        self.tag = unique_tag()
        self.prefix = f"crashcart-{self.tag}-"
        self.parameter = f"/crashcart/{self.tag}/kill-switch"
        self.ssm = boto3.client("ssm", endpoint_url=url, region_name=TEST_REGION)
        self.cloudwatch = boto3.client("cloudwatch", endpoint_url=url, region_name=TEST_REGION)
        self.ssm.put_parameter(Name=self.parameter, Value="off", Type="String")
        self.env = {
            "CRASHCART_KILL_SWITCH_PARAMETER": self.parameter,
            "CRASHCART_ALARM_NAME_PREFIXES": self.prefix,
            "CRASHCART_KILL_SWITCH_TAG_KEY": "crashcart:kill-switch",
            "CRASHCART_KILL_SWITCH_TAG_VALUE": self.tag,
        }

    def alarm(self, name: str, actions: list[str], tags: dict[str, str] | None = None) -> str:
        self.cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="AWS/EC2",
            MetricName="StatusCheckFailed_Instance",
            Dimensions=[{"Name": "InstanceId", "Value": "i-0123456789abcdef0"}],
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=3,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            AlarmActions=actions,
            Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
        )
        return name

    def enabled(self, name: str) -> bool:
        (alarm,) = self.cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
        return bool(alarm["ActionsEnabled"])

    def switch(self, value: str) -> None:
        self.ssm.put_parameter(Name=self.parameter, Value=value, Type="String", Overwrite=True)

    def run(self, monkeypatch: pytest.MonkeyPatch, event: dict[str, Any] | None = None) -> Any:
        for key, value in self.env.items():
            monkeypatch.setenv(key, value)
        return handler.run(
            event or load_event("kill_switch_parameter_change"),
            FakeLambdaContext(),
            clients={"ssm": self.ssm, "cloudwatch": self.cloudwatch},
            now=NOW,
        )


@pytest.fixture
def deployment(moto_server: str) -> Iterator[Deployment]:
    made = Deployment(moto_server)
    yield made
    names = [
        a["AlarmName"]
        for a in made.cloudwatch.describe_alarms(MaxRecords=100)["MetricAlarms"]
        if made.tag in a["AlarmName"]
    ]
    if names:
        made.cloudwatch.delete_alarms(AlarmNames=names)


def test_the_switch_on_disables_exactly_this_deployments_acting_alarms_and_off_restores(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = deployment
    by_prefix = d.alarm(f"{d.prefix}i-0123456789abcdef0", [REBOOT])
    by_tag = d.alarm(f"backstop-{d.tag}", [LAMBDA, TOPIC], {"crashcart:kill-switch": d.tag})
    notify_only = d.alarm(f"queue-{d.tag}", [TOPIC], {"crashcart:kill-switch": d.tag})
    other = d.alarm(f"other-{d.tag}", [REBOOT], {"crashcart:kill-switch": "someone-else"})
    untagged = d.alarm(f"unrelated-{d.tag}", [REBOOT])

    d.switch("on")
    result = d.run(monkeypatch)

    assert result["actions"] == "disabled"
    assert sorted(result["changed"]) == sorted([by_prefix, by_tag])
    assert not d.enabled(by_prefix) and not d.enabled(by_tag)
    assert d.enabled(notify_only) and d.enabled(other) and d.enabled(untagged)

    assert d.run(monkeypatch)["changed"] == []  # idempotent

    d.switch("off")
    back = d.run(monkeypatch, {"detail-type": "Scheduled Event"})
    assert back["woken_by"] == "Scheduled Event"
    assert sorted(back["changed"]) == sorted([by_prefix, by_tag])
    assert d.enabled(by_prefix) and d.enabled(by_tag)


def test_any_value_but_off_stops_alarm_actions(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = deployment
    name = d.alarm(f"{d.prefix}fleet", [REBOOT])
    d.switch(" Paused ")
    assert d.run(monkeypatch)["changed"] == [name]
    assert not d.enabled(name)


def test_more_than_a_page_of_alarms_are_all_reached(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = deployment
    names = [d.alarm(f"{d.prefix}i-{n:017x}", [REBOOT]) for n in range(150)]
    d.switch("on")
    result = d.run(monkeypatch)
    assert sorted(result["changed"]) == sorted(names)
    assert result["examined"] >= 150
    assert not any(d.enabled(n) for n in names[::37])


def test_a_missing_switch_fails_and_changes_nothing(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = deployment
    name = d.alarm(f"{d.prefix}i-0123456789abcdef0", [REBOOT])
    d.ssm.delete_parameter(Name=d.parameter)
    with pytest.raises(ReachUnavailableError, match="GetParameter"):
        d.run(monkeypatch)
    assert d.enabled(name)


def test_the_outcome_is_a_log_line_with_an_embedded_metric() -> None:
    class NoAlarms(Alarms):
        def __init__(self) -> None:
            pass

        def listed(self) -> Iterator[Any]:
            return iter(())

    stream = io.StringIO()
    service.reconcile(
        NoAlarms(),
        "on",
        Settings(kill_switch_parameter="/k", tag_value="t"),
        now=NOW,
        function_name="crashcart-kill",
        write=stream.write,
    )
    record = json.loads(stream.getvalue())
    assert record["AlarmActionsChanged"] == 0
    assert record["FunctionName"] == "crashcart-kill"
    assert record["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "AlarmActionsChanged", "Unit": "Count"}
    ]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "CRASHCART_KILL_SWITCH_PARAMETER, CRASHCART_KILL_SWITCH_TAG_VALUE not set"),
        (
            {
                "CRASHCART_KILL_SWITCH_PARAMETER": "/k",
                "CRASHCART_KILL_SWITCH_TAG_VALUE": "t",
                "CRASHCART_ALARM_NAME_PREFIXES": "crashcart-a-,,",
            },
            "an empty prefix would match every alarm",
        ),
    ],
)
def test_bad_settings_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(environ)


def test_acting_means_any_action_but_a_notification() -> None:
    from crashcart.functions.kill_switch.adapter import AlarmFacts

    def facts(*actions: str) -> AlarmFacts:
        return AlarmFacts(name="a", arn="arn", actions_enabled=True, actions=actions)

    assert not service.acting(facts())
    assert not service.acting(facts(TOPIC))
    assert service.acting(facts(TOPIC, REBOOT))
    assert service.acting(facts(LAMBDA))
    assert service.acting(
        facts("arn:aws:swf:eu-west-1:111111111111:action/actions/AWS_EC2.InstanceId.Reboot/1.0")
    )
    assert service.acting(facts("garbage"))
