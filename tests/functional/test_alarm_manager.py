"""The alarm manager (managed per-instance alarms) against moto EC2 / CloudWatch / SQS on 127.0.0.1.

Every case the issue names: an instance tagged, untagged, re-tagged, its tag removed, its
termination; two deployments side by side; a throttled ``PutMetricAlarm`` (botocore Stubber:
moto never throttles); the stack's deletion removing every managed alarm and nothing else.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from crashcart.functions.alarm_manager import handler as manager
from crashcart.functions.alarm_manager.adapter import Alarms, Fleet, Pacer, ThrottledError
from crashcart.functions.alarm_manager.alarms import alarm_spec
from crashcart.functions.alarm_manager.service import reconcile
from crashcart.functions.alarm_manager.settings import Settings
from crashcart.runtime import environment as variables
from tests.conftest import TEST_ACCOUNT, TEST_REGION, FakeLambdaContext, load_event

PREFIX_A = "crashcart-a-11111111-"
PREFIX_B = "crashcart-b-22222222-"
TAG = {"Key": "crashcart:diagnostic-interrupt", "Value": "enabled"}
AMI = "ami-12c6146b"


class Responses:
    """Stands in for the HTTPS PUT to CloudFormation's pre-signed URL (no network)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, url: str, body: dict[str, Any]) -> None:
        self.sent.append((url, body))


@pytest.fixture
def aws(moto_reset: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    clients = {
        name: boto3.client(name, endpoint_url=moto_reset, region_name=TEST_REGION)
        for name in ("ec2", "cloudwatch", "sqs")
    }
    queue = clients["sqs"].create_queue(QueueName="rejected")["QueueUrl"]
    deploy(monkeypatch, PREFIX_A, queue)
    monkeypatch.setattr(manager, "_CONTAINER", dict(clients))
    yield {**clients, "queue": queue}


def deploy(monkeypatch: pytest.MonkeyPatch, prefix: str, queue: str) -> None:
    monkeypatch.setenv(variables.ALARM_NAME_PREFIX, prefix)
    monkeypatch.setenv(variables.MANAGED_DEPLOYMENT, prefix.rstrip("-"))
    monkeypatch.setenv(variables.REJECTED_QUEUE_URL, queue)
    monkeypatch.setenv(variables.MANAGED_PUTS_PER_SECOND, "50")


def launch(ec2: Any, *, tagged: bool) -> str:
    kwargs: dict[str, Any] = {"ImageId": AMI, "MinCount": 1, "MaxCount": 1}
    if tagged:
        kwargs["TagSpecifications"] = [{"ResourceType": "instance", "Tags": [TAG]}]
    return str(ec2.run_instances(**kwargs)["Instances"][0]["InstanceId"])


def state_change(instance_id: str, state: str = "running") -> dict[str, Any]:
    event = load_event("alarm_manager_state_change")
    event["detail"] = {"instance-id": instance_id, "state": state}
    event["resources"] = [f"arn:aws:ec2:{TEST_REGION}:{TEST_ACCOUNT}:instance/{instance_id}"]
    return event


def tag_change(instance_id: str, tags: dict[str, str]) -> dict[str, Any]:
    event = load_event("alarm_manager_tag_change")
    event["resources"] = [f"arn:aws:ec2:{TEST_REGION}:{TEST_ACCOUNT}:instance/{instance_id}"]
    event["detail"]["tags"] = tags
    return event


def run(event: dict[str, Any], responses: Responses | None = None) -> dict[str, Any]:
    return manager.handler(event, FakeLambdaContext(), respond=responses or Responses())


def alarms(cloudwatch: Any, prefix: str = "crashcart-") -> dict[str, dict[str, Any]]:
    answer = cloudwatch.describe_alarms(AlarmNamePrefix=prefix)
    return {a["AlarmName"]: a for a in answer["MetricAlarms"]}


# -- events ------------------------------------------------------------------------------


def test_a_tagged_instance_gets_its_alarm_on_launch(aws: dict[str, Any]) -> None:
    instance = launch(aws["ec2"], tagged=True)
    result = run(state_change(instance))
    assert result["put"] == 1
    alarm = alarms(aws["cloudwatch"])[f"{PREFIX_A}{instance}"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/EC2", "StatusCheckFailed_Instance")
    assert alarm["Dimensions"] == [{"Name": "InstanceId", "Value": instance}]
    assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"]) == ("Maximum", 60, 3)
    assert alarm["AlarmActions"] == []  # acted on through its event, behind the guards
    tags = aws["cloudwatch"].list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]
    assert {"Key": "crashcart:deployment", "Value": PREFIX_A.rstrip("-")} in tags


def test_an_untagged_instance_gets_no_alarm(aws: dict[str, Any]) -> None:
    instance = launch(aws["ec2"], tagged=False)
    result = run(state_change(instance))
    assert (result["put"], alarms(aws["cloudwatch"])) == (0, {})


def test_a_re_tagged_instance_gains_and_loses_its_alarm(aws: dict[str, Any]) -> None:
    ec2 = aws["ec2"]
    instance = launch(ec2, tagged=False)
    run(state_change(instance))
    ec2.create_tags(Resources=[instance], Tags=[TAG])
    run(tag_change(instance, {TAG["Key"]: TAG["Value"]}))
    assert f"{PREFIX_A}{instance}" in alarms(aws["cloudwatch"])
    ec2.create_tags(Resources=[instance], Tags=[{"Key": TAG["Key"], "Value": "disabled"}])
    run(tag_change(instance, {TAG["Key"]: "disabled"}))
    assert alarms(aws["cloudwatch"]) == {}


def test_removing_the_tag_removes_the_alarm(aws: dict[str, Any]) -> None:
    instance = launch(aws["ec2"], tagged=True)
    run(state_change(instance))
    aws["ec2"].delete_tags(Resources=[instance], Tags=[{"Key": TAG["Key"]}])
    run(tag_change(instance, {}))
    assert alarms(aws["cloudwatch"]) == {}


def test_a_stale_event_is_judged_by_the_instance_as_it_is_now(aws: dict[str, Any]) -> None:
    """A tag change delivered after the tag was removed again does not bring the alarm back."""
    instance = launch(aws["ec2"], tagged=False)
    run(tag_change(instance, {TAG["Key"]: TAG["Value"]}))  # the event says tagged; EC2 says not
    assert alarms(aws["cloudwatch"]) == {}


def test_termination_removes_the_alarm(aws: dict[str, Any]) -> None:
    instance = launch(aws["ec2"], tagged=True)
    run(state_change(instance))
    aws["ec2"].terminate_instances(InstanceIds=[instance])
    result = run(state_change(instance, "shutting-down"))
    assert result["deleted"] == 1
    assert alarms(aws["cloudwatch"]) == {}
    # The 'terminated' event that follows finds nothing to delete and is not an error.
    assert run(state_change(instance, "terminated"))["outcome"] == "done"


def test_a_foreign_event_is_kept_and_changes_nothing(aws: dict[str, Any]) -> None:
    instance = launch(aws["ec2"], tagged=True)
    event = state_change(instance)
    event["account"] = "222222222222"
    result = run(event)
    assert result["outcome"] == "rejected"
    assert "foreign event" in result["reason"]
    assert alarms(aws["cloudwatch"]) == {}
    kept = aws["sqs"].receive_message(QueueUrl=aws["queue"])["Messages"]
    assert "foreign event" in json.loads(kept[0]["Body"])["reason"]


# -- reconcile -----------------------------------------------------------------------------


def test_reconcile_creates_missing_deletes_stale_and_repairs_drift(aws: dict[str, Any]) -> None:
    ec2, cloudwatch = aws["ec2"], aws["cloudwatch"]
    missing = launch(ec2, tagged=True)
    drifted = launch(ec2, tagged=True)
    gone = launch(ec2, tagged=True)
    untagged = launch(ec2, tagged=False)
    for instance in (drifted, gone):
        run(state_change(instance))
    edited = {**alarm_spec(settings(PREFIX_A), drifted), "Threshold": 5.0}
    cloudwatch.put_metric_alarm(**edited)
    ec2.terminate_instances(InstanceIds=[gone])  # its event was lost
    result = run(load_event("alarm_manager_scheduled"))
    assert (result["put"], result["deleted"], result["remaining"]) == (2, 1, 0)
    found = alarms(cloudwatch)
    assert set(found) == {f"{PREFIX_A}{missing}", f"{PREFIX_A}{drifted}"}
    assert found[f"{PREFIX_A}{drifted}"]["Threshold"] == 1.0
    assert f"{PREFIX_A}{untagged}" not in found
    # A second pass finds nothing to do.
    again = run(load_event("alarm_manager_scheduled"))
    assert (again["put"], again["deleted"], again["unchanged"]) == (0, 0, 2)


def test_reconcile_stops_before_the_deadline_and_counts_what_is_left(aws: dict[str, Any]) -> None:
    for _ in range(3):
        launch(aws["ec2"], tagged=True)
    s = settings(PREFIX_A)
    clock = iter([60.0, 5.0, 5.0])  # one put, then under the 20 s margin
    outcome = reconcile(
        Fleet(aws["ec2"]),
        Alarms(aws["cloudwatch"], PREFIX_A, Pacer(50)),
        s,
        time_left=lambda: next(clock),
    )
    assert (outcome.put, outcome.remaining) == (1, 2)


# -- two deployments -----------------------------------------------------------------------


def test_two_deployments_side_by_side_keep_to_their_own_alarms(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = launch(aws["ec2"], tagged=True)
    run(state_change(instance))  # deployment A
    deploy(monkeypatch, PREFIX_B, aws["queue"])
    run(state_change(instance))  # deployment B, same instance: its own alarm
    assert set(alarms(aws["cloudwatch"])) == {f"{PREFIX_A}{instance}", f"{PREFIX_B}{instance}"}
    # B's reconcile does not see A's alarm as stale; B's stack deletion leaves A's alarm.
    assert run(load_event("alarm_manager_scheduled"))["deleted"] == 0
    responses = Responses()
    run(load_event("alarm_manager_stack_delete"), responses)
    assert set(alarms(aws["cloudwatch"])) == {f"{PREFIX_A}{instance}"}
    assert responses.sent[0][1]["Status"] == "SUCCESS"


# -- stack deletion ------------------------------------------------------------------------


def test_stack_deletion_removes_every_managed_alarm_and_nothing_else(aws: dict[str, Any]) -> None:
    cloudwatch = aws["cloudwatch"]
    instances = [launch(aws["ec2"], tagged=True) for _ in range(3)]
    for instance in instances:
        run(state_change(instance))
    # Same prefix, not a managed name (e.g. an alarm the construct declares): kept.
    cloudwatch.put_metric_alarm(
        **{**alarm_spec(settings(PREFIX_A), instances[0]), "AlarmName": f"{PREFIX_A}fleet"}
    )
    responses = Responses()
    result = run(load_event("alarm_manager_stack_delete"), responses)
    assert result["deleted"] == 3
    assert set(alarms(cloudwatch)) == {f"{PREFIX_A}fleet"}
    url, body = responses.sent[0]
    assert url.startswith("https://")
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == f"{PREFIX_A}managed-alarms"
    assert body["RequestId"] == load_event("alarm_manager_stack_delete")["RequestId"]


def test_stack_deletion_that_runs_out_of_time_answers_failed(aws: dict[str, Any]) -> None:
    instance = launch(aws["ec2"], tagged=True)
    run(state_change(instance))
    responses = Responses()
    manager.handler(
        load_event("alarm_manager_stack_delete"),
        FakeLambdaContext(remaining_ms=5_000),
        respond=responses,
    )
    body = responses.sent[0][1]
    assert body["Status"] == "FAILED"
    assert "1 managed alarms" in body["Reason"]
    assert f"{PREFIX_A}{instance}" in alarms(aws["cloudwatch"])


def test_a_stack_create_reconciles_and_answers(aws: dict[str, Any]) -> None:
    instance = launch(aws["ec2"], tagged=True)
    event = copy.deepcopy(load_event("alarm_manager_stack_delete"))
    event["RequestType"] = "Create"
    del event["PhysicalResourceId"]
    responses = Responses()
    run(event, responses)
    assert responses.sent[0][1]["Status"] == "SUCCESS"
    assert f"{PREFIX_A}{instance}" in alarms(aws["cloudwatch"])


# -- throttling (botocore Stubber: moto never throttles) ------------------------------------


def settings(prefix: str) -> Settings:
    return Settings(
        alarm_name_prefix=prefix,
        deployment=prefix.rstrip("-"),
        rejected_queue_url="https://sqs.invalid/q",
        opt_in_tag_key=TAG["Key"],
        opt_in_tag_value=TAG["Value"],
        evaluation_periods=3,
        datapoints_to_alarm=3,
        puts_per_second=2,
    )


def throttling_client() -> tuple[Any, Stubber]:
    client = boto3.client("cloudwatch", region_name=TEST_REGION)
    return client, Stubber(client)


def test_a_throttled_put_is_backed_off_and_retried() -> None:
    client, stub = throttling_client()
    spec = alarm_spec(settings(PREFIX_A), "i-0123456789abcdef0")
    for _ in range(2):
        stub.add_client_error("put_metric_alarm", "Throttling", "Rate exceeded", 400, spec)
    stub.add_response("put_metric_alarm", {}, spec)
    slept: list[float] = []
    alarms_ = Alarms(client, PREFIX_A, Pacer(1000, sleep=slept.append), sleep=slept.append)
    with stub:
        alarms_.put(spec)
    stub.assert_no_pending_responses()
    assert alarms_.throttled == 2
    assert len([s for s in slept if s > 0]) >= 1  # waited before the retries


def test_writes_are_paced_under_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(2, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        pacer.wait()
    assert now[0] == pytest.approx(2.0)  # 5 calls at 2 a second: the last at t = 2 s


def test_reconcile_under_lasting_throttling_stops_and_leaves_the_rest(aws: dict[str, Any]) -> None:
    for _ in range(2):
        launch(aws["ec2"], tagged=True)
    client, stub = throttling_client()
    stub.add_response("describe_alarms", {"MetricAlarms": []})
    for _ in range(8):
        stub.add_client_error("put_metric_alarm", "Throttling", "Rate exceeded", 400)
    alarms_ = Alarms(client, PREFIX_A, Pacer(1000, sleep=lambda _s: None), sleep=lambda _s: None)
    with stub:
        outcome = reconcile(Fleet(aws["ec2"]), alarms_, settings(PREFIX_A), time_left=lambda: 600)
    assert (outcome.put, outcome.remaining, outcome.throttled) == (0, 2, 8)


def test_lasting_throttling_raises_a_named_error() -> None:
    client, stub = throttling_client()
    spec = alarm_spec(settings(PREFIX_A), "i-0123456789abcdef0")
    for _ in range(8):
        stub.add_client_error("put_metric_alarm", "Throttling", "Rate exceeded", 400)
    alarms_ = Alarms(client, PREFIX_A, Pacer(1000, sleep=lambda _s: None), sleep=lambda _s: None)
    with stub, pytest.raises(ThrottledError, match="after 8 attempts"):
        alarms_.put(spec)
