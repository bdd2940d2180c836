"""KillSwitchReach synthesizes what we intend: every alarm tagged, two wake-ups, least rights."""

from __future__ import annotations

import re
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from aws_cdk.assertions import Template

from crashcart.constructs.kill_switch_reach import KILL_SWITCH_TAG_KEY, KillSwitchReach
from crashcart.errors import ConfigurationError
from tests.support.reference import reference_templates_without_nag
from tests.support.remediation import env, new_app

STACK = "CrashcartRemediation"


def _resources(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return reference_templates_without_nag()[STACK]


def _reach_function(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (k, v)
        for k, v in _resources(template, "AWS::Lambda::Function").items()
        if k.startswith("KillSwitchReachFunction")
    ]
    return found


def test_every_alarm_of_the_reference_stack_carries_the_reach_tag(
    template: dict[str, Any],
) -> None:
    _, function = _reach_function(template)
    value = function["Properties"]["Environment"]["Variables"]["CRASHCART_KILL_SWITCH_TAG_VALUE"]
    alarms = _resources(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 30
    for logical, alarm in alarms.items():
        tags = {t["Key"]: t["Value"] for t in alarm["Properties"].get("Tags", [])}
        assert tags.get(KILL_SWITCH_TAG_KEY) == value, logical


def test_the_reach_knows_the_remediations_alarm_prefix(template: dict[str, Any]) -> None:
    _, function = _reach_function(template)
    variables = function["Properties"]["Environment"]["Variables"]
    # the remediation function (the hold function carries the remediation's variables too)
    (remediation,) = [
        f
        for logical_id, f in _resources(template, "AWS::Lambda::Function").items()
        if logical_id.startswith("RemediationFunction")
    ]
    prefix = remediation["Properties"]["Environment"]["Variables"]["CRASHCART_ALARM_NAME_PREFIX"]
    assert variables["CRASHCART_ALARM_NAME_PREFIXES"] == prefix
    assert variables["CRASHCART_KILL_SWITCH_PARAMETER"] == {"Ref": "RemediationKillSwitchEC140FA8"}


def test_the_switch_change_event_and_a_schedule_wake_the_function(
    template: dict[str, Any],
) -> None:
    logical, _ = _reach_function(template)
    rules = {
        k: v["Properties"]
        for k, v in _resources(template, "AWS::Events::Rule").items()
        if k.startswith("KillSwitchReach")
    }
    assert len(rules) == 2
    (change,) = [r for r in rules.values() if "EventPattern" in r]
    assert change["EventPattern"] == {
        "source": ["aws.ssm"],
        "detail-type": ["Parameter Store Change"],
        "detail": {"name": [{"Ref": "RemediationKillSwitchEC140FA8"}]},
    }
    (schedule,) = [r for r in rules.values() if "ScheduleExpression" in r]
    assert schedule["ScheduleExpression"] == "rate(5 minutes)"
    for rule in rules.values():
        (target,) = rule["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": [logical, "Arn"]}
        assert "DeadLetterConfig" in target


def test_the_role_reads_the_switch_and_switches_alarm_actions_only(
    template: dict[str, Any],
) -> None:
    (policy,) = [
        v["Properties"]
        for k, v in _resources(template, "AWS::IAM::ManagedPolicy").items()
        if k.startswith("KillSwitchReachPolicy")
    ]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert set(statements) == {"Logs", "ReadSwitch", "AlarmActions", "FailedInvocations", "Key"}
    assert statements["ReadSwitch"]["Action"] == "ssm:GetParameter"
    assert sorted(statements["AlarmActions"]["Action"]) == [
        "cloudwatch:DescribeAlarms",
        "cloudwatch:DisableAlarmActions",
        "cloudwatch:EnableAlarmActions",
        "cloudwatch:ListTagsForResource",
    ]
    resource = statements["AlarmActions"]["Resource"]
    assert resource != "*"
    assert "alarm:*" in str(resource)
    for statement in statements.values():
        assert statement["Resource"] != "*", statement


def _stack() -> tuple[cdk.Stack, ssm.StringParameter, sns.Topic]:
    stack = cdk.Stack(new_app(), "Reach", env=env())
    parameter = ssm.StringParameter(stack, "Switch", string_value="off")
    topic = sns.Topic(stack, "Topic", enforce_ssl=True)
    return stack, parameter, topic


def test_alarms_added_after_the_reach_are_tagged_too() -> None:
    stack, parameter, topic = _stack()
    reach = KillSwitchReach(stack, "Reach", kill_switch=parameter, topic=topic)
    later = cloudwatch.Alarm(
        stack,
        "BackstopReboot",
        metric=cloudwatch.Metric(
            namespace="AWS/EC2",
            metric_name="StatusCheckFailed_Instance",
            dimensions_map={"InstanceId": "i-0123456789abcdef0"},
        ),
        threshold=1,
        evaluation_periods=3,
    )
    later.add_alarm_action(
        cloudwatch_actions.Ec2Action(cloudwatch_actions.Ec2InstanceAction.REBOOT)
    )
    cloudwatch.CompositeAlarm(
        stack,
        "Composite",
        alarm_rule=cloudwatch.AlarmRule.from_alarm(later, cloudwatch.AlarmState.ALARM),
    )
    json_template = Template.from_stack(stack).to_json()
    for kind in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"):
        found = _resources(json_template, kind)
        assert found, kind
        for logical, alarm in found.items():
            tags = {t["Key"]: t["Value"] for t in alarm["Properties"].get("Tags", [])}
            assert tags.get(KILL_SWITCH_TAG_KEY) == reach.tag_value, logical


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alarm_name_prefixes": [""]}, "is not a usable prefix"),
        ({"alarm_name_prefixes": ["a,b"]}, "is not a usable prefix"),
        ({"reconcile_every": cdk.Duration.seconds(30)}, "whole minutes from 1 to 60"),
        ({"reconcile_every": cdk.Duration.hours(2)}, "whole minutes from 1 to 60"),
    ],
)
def test_fails_on_bad_props(kwargs: dict[str, Any], message: str) -> None:
    stack, parameter, topic = _stack()
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        KillSwitchReach(stack, "Reach", kill_switch=parameter, topic=topic, **kwargs)
