"""OperationsMonitoring: the dashboard's widgets and the self-watch alarms, each notifying."""

from __future__ import annotations

import json
import re
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from crashcart.constructs.dump_overdue_sweep import DumpOverdueSweep
from crashcart.constructs.existing_dump_bucket import ExistingDumpBucket
from crashcart.constructs.operations_monitoring import OperationsMonitoring
from crashcart.constructs.unresponsive_instance_remediation import (
    FleetWatch,
    UnresponsiveInstanceRemediation,
)
from crashcart.errors import ConfigurationError
from tests.support.reference import reference_templates_without_nag
from tests.support.remediation import env, new_app

STACK = "CrashcartRemediation"
TOPIC = {"Ref": "RemediationTopicD0F28822"}


def _resources(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return reference_templates_without_nag()[STACK]


def _monitoring_alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        k: v["Properties"]
        for k, v in _resources(template, "AWS::CloudWatch::Alarm").items()
        if k.startswith("Monitoring")
    }


def _body(template: dict[str, Any]) -> str:
    (dashboard,) = _resources(template, "AWS::CloudWatch::Dashboard").values()
    return json.dumps(dashboard["Properties"]["DashboardBody"])


def test_every_monitoring_alarm_notifies_the_topic(template: dict[str, Any]) -> None:
    alarms = _monitoring_alarms(template)
    assert len(alarms) >= 20
    for logical, alarm in alarms.items():
        assert alarm["AlarmActions"] == [TOPIC], logical
        assert alarm["AlarmDescription"].endswith("(docs/operations.md)"), logical
        assert alarm["TreatMissingData"] == "notBreaching", logical


def test_the_named_alarms_watch_the_remediation_metrics(template: dict[str, Any]) -> None:
    alarms = _monitoring_alarms(template)
    by_metric = {
        a.get("MetricName"): a for a in alarms.values() if a.get("Namespace") == "crashcart"
    }
    assert set(by_metric) == {"InterruptsSent", "BreakerOpened", "SweepFoundWork"}
    for alarm in by_metric.values():
        assert alarm["Statistic"] == "Sum"
        assert alarm["Threshold"] == 1
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    (unattested,) = [a for a in alarms.values() if "Metrics" in a]
    expressions = [m["Expression"] for m in unattested["Metrics"] if "Expression" in m]
    assert expressions == ["optedin - attested"]
    assert unattested["EvaluationPeriods"] == unattested["DatapointsToAlarm"] == 24


def test_every_crashcart_function_has_errors_and_throttles_alarms(
    template: dict[str, Any],
) -> None:
    functions = [
        k
        for k, v in _resources(template, "AWS::Lambda::Function").items()
        if str(v["Properties"].get("Handler", "")).startswith("crashcart.functions.")
    ]
    # remediation, dump arrival, overdue sweep, lifecycle hold, kill-switch reach
    assert len(functions) == 5
    alarms = _monitoring_alarms(template).values()
    for metric in ("Errors", "Throttles"):
        watched = sorted(
            a["Dimensions"][0]["Value"]["Ref"]
            for a in alarms
            if a.get("Namespace") == "AWS/Lambda" and a["MetricName"] == metric
        )
        assert watched == sorted(functions), metric


def test_functions_with_an_on_failure_destination_alarm_on_failed_deliveries(
    template: dict[str, Any],
) -> None:
    # A failed delivery to the on-failure destination (e.g. a key policy the queue's key
    # refuses) loses the event with no error anywhere else: aws-assumption
    # lambda-destination-delivery-failures.
    with_destination = sorted(
        v["Properties"]["FunctionName"]["Ref"]
        for v in _resources(template, "AWS::Lambda::EventInvokeConfig").values()
        if "OnFailure" in v["Properties"].get("DestinationConfig", {})
    )
    assert len(with_destination) == 4  # remediation, hold, overdue sweep, kill-switch reach
    watched = sorted(
        a["Dimensions"][0]["Value"]["Ref"]
        for a in _monitoring_alarms(template).values()
        if a.get("MetricName") == "DestinationDeliveryFailures"
    )
    assert watched == with_destination
    for alarm in _monitoring_alarms(template).values():
        if alarm.get("MetricName") == "DestinationDeliveryFailures":
            assert alarm["Namespace"] == "AWS/Lambda"
            assert (alarm["Statistic"], alarm["Threshold"]) == ("Sum", 1)


def test_every_queue_of_the_stack_has_an_unhandled_message_alarm(
    template: dict[str, Any],
) -> None:
    queues = sorted(_resources(template, "AWS::SQS::Queue"))
    alarms = [
        a
        for a in _monitoring_alarms(template).values()
        if a.get("MetricName") == "ApproximateAgeOfOldestMessage"
    ]
    assert sorted(a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in alarms) == queues
    assert {a["Threshold"] for a in alarms} == {86_400}


def test_the_dashboard_shows_each_part(template: dict[str, Any]) -> None:
    body = _body(template)
    for title in (
        "Remediation outcomes",
        "Breaker, missed-alarm sweep",
        "Opted-in instances and attested ones",
        "Kill switch: alarms whose actions were switched",
        "crashcart functions: errors and throttles",
        "Queues: messages waiting",
        "crashcart alarms",
    ):
        assert title in body, title
    for metric in ("InterruptsSent", "SweepFoundWork", "OptedInInstances", "AlarmActionsChanged"):
        assert metric in body, metric
    alarm_arns = set(re.findall(r"Monitoring[A-Za-z0-9]+Alarm[0-9A-F]{8}", body))
    assert len(alarm_arns) == len(_monitoring_alarms(template))


def _small(
    **kwargs: Any,
) -> tuple[cdk.Stack, OperationsMonitoring, UnresponsiveInstanceRemediation]:
    stack = cdk.Stack(new_app(), "Small", env=env())
    bucket = s3.Bucket(stack, "Evidence", enforce_ssl=True)
    remediation = UnresponsiveInstanceRemediation(
        stack, "Remediation", dumps=ExistingDumpBucket(bucket=bucket), fleet=FleetWatch()
    )
    monitoring = OperationsMonitoring(stack, "Monitoring", remediation=remediation, **kwargs)
    return stack, monitoring, remediation


def test_parts_added_after_the_monitoring_are_watched_and_the_widget_hook_shows_an_alarm() -> None:
    stack, monitoring, remediation = _small()
    # added after the monitoring construct: discovered when the stack is complete
    DumpOverdueSweep(stack, "Sweep", incidents=remediation.incidents)
    partial = cloudwatch.Alarm(
        stack,
        "FleetPartialData",
        metric=cloudwatch.Metric(namespace="crashcart", metric_name="Partial"),
        threshold=1,
        evaluation_periods=1,
    )
    monitoring.add_alarm_widget(partial)
    template = Template.from_stack(stack).to_json()
    alarms = _monitoring_alarms(template)
    assert any("SweepFunction" in logical for logical in alarms)
    assert any("SweepDeadLetterQueue" in logical for logical in alarms)
    assert stack.get_logical_id(partial.node.default_child) in _body(template)  # type: ignore[arg-type]
    # no census given: no unattested alarm
    assert monitoring.unattested_alarm is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"unattested_for": cdk.Duration.minutes(90)},
            "unattested_for=1 hour 30 minutes: give whole hours from 1 to 168",
        ),
        (
            {"unhandled_after": cdk.Duration.days(30)},
            "unhandled_after=30 days: give whole hours from 1 to 336",
        ),
    ],
)
def test_fails_on_bad_windows(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        _small(**kwargs)


def test_fails_without_a_remediation() -> None:
    stack = cdk.Stack(new_app(), "Bad", env=env())
    with pytest.raises(ConfigurationError, match="remediation"):
        OperationsMonitoring(stack, "Monitoring", remediation=None)  # type: ignore[arg-type]
