"""fleet=ManagedAlarms() and the fleet alarm's partial-data watch, in the synthesized template."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from crashcart import FleetWatch, ManagedAlarms, UnresponsiveInstanceRemediation
from crashcart.constructs.existing_dump_bucket import ExistingDumpBucket
from crashcart.errors import ConfigurationError
from crashcart.runtime import environment as variables
from tests.conftest import TEST_ACCOUNT, TEST_REGION
from tests.support.remediation import env, evidence_bucket, new_app, resources_of


@dataclass
class Synth:
    construct: UnresponsiveInstanceRemediation
    json: dict[str, Any]
    template: Template
    stack: cdk.Stack

    def logical(self, construct: Any) -> str:
        return str(self.stack.get_logical_id(construct.node.default_child or construct))


def synth(fleet: Any, name: str = "Scale") -> Synth:
    app = new_app()
    stack = cdk.Stack(app, name, env=env())
    bucket, _ = evidence_bucket(stack)
    construct = UnresponsiveInstanceRemediation(
        stack, "Remediation", dumps=ExistingDumpBucket(bucket=bucket), fleet=fleet
    )
    template = app.synth().get_stack_by_name(name).template
    return Synth(construct, template, Template.from_json(template), stack)


@pytest.fixture(scope="module")
def managed() -> Synth:
    return synth(ManagedAlarms())


@pytest.fixture(scope="module")
def fleet() -> Synth:
    return synth(FleetWatch(), "Fleet")


# -- managed alarms ------------------------------------------------------------------------


def test_managed_mode_declares_no_status_alarm_and_routes_single_alarm_events(
    managed: Synth,
) -> None:
    c = managed.construct
    assert c.alarms == [] and c.alarm_manager is not None and c.partial_data_alarm is None
    rule = managed.json["Resources"][managed.logical(c.rule)]
    assert rule["Properties"]["EventPattern"]["detail-type"] == ["CloudWatch Alarm State Change"]
    for resource in resources_of(managed.json, "AWS::CloudWatch::Alarm").values():
        assert "Metrics" not in resource["Properties"]  # no Metrics Insights alarm at all


def test_the_manager_may_touch_only_this_deployments_alarms(managed: Synth) -> None:
    prefix = managed.construct.alarm_name_prefix
    managed.template.has_resource_properties(
        "AWS::IAM::ManagedPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        {
                            "Sid": "DeploymentAlarms",
                            "Effect": "Allow",
                            "Action": [
                                "cloudwatch:DeleteAlarms",
                                "cloudwatch:DescribeAlarms",
                                "cloudwatch:PutMetricAlarm",
                                "cloudwatch:TagResource",
                            ],
                            "Resource": f"arn:aws:cloudwatch:{TEST_REGION}:{TEST_ACCOUNT}:"
                            f"alarm:{prefix}*",
                        }
                    ]
                )
            }
        },
    )
    text = json.dumps(resources_of(managed.json, "AWS::IAM::ManagedPolicy"))
    assert '"cloudwatch:*"' not in text and "alarm:*" not in text


def test_the_manager_wakes_on_launches_terminations_tag_changes_and_a_schedule(
    managed: Synth,
) -> None:
    manager = managed.construct.alarm_manager
    assert manager is not None
    state, tags, schedule = (managed.json["Resources"][managed.logical(r)] for r in manager.rules)
    assert state["Properties"]["EventPattern"] == {
        "source": ["aws.ec2"],
        "detail-type": ["EC2 Instance State-change Notification"],
        "account": [TEST_ACCOUNT],
        "region": [TEST_REGION],
        "detail": {"state": ["running", "shutting-down", "terminated"]},
    }
    assert tags["Properties"]["EventPattern"]["detail"] == {
        "service": ["ec2"],
        "resource-type": ["instance"],
        "changed-tag-keys": ["crashcart:diagnostic-interrupt"],
    }
    assert schedule["Properties"]["ScheduleExpression"] == "rate(15 minutes)"
    for rule in (state, tags, schedule):
        target = rule["Properties"]["Targets"][0]
        assert "DeadLetterConfig" in target and "RetryPolicy" in target


def test_the_manager_function_gets_its_settings(managed: Synth) -> None:
    manager = managed.construct.alarm_manager
    assert manager is not None
    function = managed.json["Resources"][managed.logical(manager.function)]["Properties"]
    environment = function["Environment"]["Variables"]
    assert set(environment) == set(variables.ALARM_MANAGER)
    assert environment[variables.ALARM_NAME_PREFIX] == managed.construct.alarm_name_prefix
    assert environment[variables.MANAGED_PUTS_PER_SECOND] == "2"
    assert function["Timeout"] == 900


def test_stack_deletion_removes_the_rules_before_the_cleanup_runs(managed: Synth) -> None:
    manager = managed.construct.alarm_manager
    assert manager is not None
    resources = managed.json["Resources"]
    cleanup = managed.logical(manager.cleanup)
    assert resources[cleanup]["Type"] == "Custom::CrashcartManagedAlarms"
    # CloudFormation deletes dependents first: rules (depend on the cleanup) go before it;
    # the function, its policy and log group (the cleanup depends on them) stay until after.
    for rule in manager.rules:
        assert cleanup in resources[managed.logical(rule)].get("DependsOn", [])
    needs = resources[cleanup].get("DependsOn", [])
    for part in (manager.policy, manager.log_group):
        assert managed.logical(part) in needs
    token = resources[cleanup]["Properties"]["ServiceToken"]
    assert token == {"Fn::GetAtt": [managed.logical(manager.function), "Arn"]}


def test_managed_mode_template_does_not_grow_with_the_fleet() -> None:
    a = synth(ManagedAlarms(), "A").json
    b = synth(ManagedAlarms(reconcile_every=cdk.Duration.minutes(30)), "A").json
    assert len(a["Resources"]) == len(b["Resources"])


# -- partial data --------------------------------------------------------------------------


def test_partial_data_of_the_fleet_alarm_notifies_the_topic(fleet: Synth) -> None:
    c = fleet.construct
    assert c.partial_data_rule is not None and c.partial_data_alarm is not None
    rule = fleet.json["Resources"][fleet.logical(c.partial_data_rule)]["Properties"]
    assert rule["EventPattern"] == {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "account": [TEST_ACCOUNT],
        "region": [TEST_REGION],
        "detail": {
            "alarmName": [{"prefix": c.alarm_name_prefix}],
            "state": {"evaluationState": ["PARTIAL_DATA"]},
        },
    }
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": [fleet.logical(c.partial_data_queue), "Arn"]}
    alarm = fleet.json["Resources"][fleet.logical(c.partial_data_alarm)]["Properties"]
    assert alarm["AlarmActions"] == [{"Ref": fleet.logical(c.topic)}]
    assert alarm["MetricName"] == "NumberOfMessagesSent"


def test_the_fleet_alarm_name_matches_the_partial_data_rule(fleet: Synth) -> None:
    name = fleet.json["Resources"][fleet.logical(fleet.construct.alarms[0])]["Properties"][
        "AlarmName"
    ]
    assert name.startswith(fleet.construct.alarm_name_prefix)
    # ... and ends with exactly what the function expects after the prefix
    from crashcart.functions.remediation.events import FLEET_SUFFIX

    assert name == f"{fleet.construct.alarm_name_prefix}{FLEET_SUFFIX}"


# -- Metrics Insights alarm quota ----------------------------------------------------------------


def test_fails_at_construction_past_the_metrics_insights_alarm_quota() -> None:
    app = new_app()
    stack = cdk.Stack(app, "Quota", env=env())
    bucket, _ = evidence_bucket(stack)
    UnresponsiveInstanceRemediation(
        stack, "One", dumps=ExistingDumpBucket(bucket=bucket), fleet=FleetWatch()
    )
    with pytest.raises(ConfigurationError) as raised:
        UnresponsiveInstanceRemediation(
            stack, "Two", dumps=ExistingDumpBucket(bucket=bucket), fleet=FleetWatch(alarm_quota=1)
        )
    message = str(raised.value)
    assert "would have 2 Metrics Insights alarms, more than FleetWatch alarm_quota=1" in message
    assert "fleet=ManagedAlarms()" in message


def test_fails_at_synth_when_later_insights_alarms_pass_the_quota() -> None:
    from aws_cdk import aws_cloudwatch as cloudwatch

    app = new_app()
    stack = cdk.Stack(app, "QuotaLater", env=env())
    bucket, _ = evidence_bucket(stack)
    UnresponsiveInstanceRemediation(
        stack, "One", dumps=ExistingDumpBucket(bucket=bucket), fleet=FleetWatch(alarm_quota=1)
    )
    cloudwatch.Alarm(
        stack,
        "Theirs",
        metric=cloudwatch.MathExpression(
            expression='SELECT AVG(CPUUtilization) FROM SCHEMA("AWS/EC2", InstanceId)',
            using_metrics={},
        ),
        threshold=90,
        evaluation_periods=1,
    )
    with pytest.raises(Exception, match="would have 2 Metrics Insights alarms"):
        app.synth()
