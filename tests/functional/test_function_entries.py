"""Each function's thin Lambda entry (``handler.handler``) on its event fixtures, against moto.

Every function has the same shape: ``handler.handler`` reads its settings from the environment,
creates its boto3 clients once per container and hands the event to the service. These tests
drive that entry with the fixtures in ``tests/events/`` (``<function>_*.json``) on a moto
server on 127.0.0.1, so the wiring from the entry to the service is covered for every
function (the remediation function's entry: ``test_remediation_handler.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from crashcart.functions.dump_arrival import handler as arrival_handler
from crashcart.functions.dump_arrival.events import BadEventError
from crashcart.functions.incident_sweep import handler as sweep_handler
from tests.conftest import EVENTS_DIR, REPO_ROOT, TEST_REGION, FakeLambdaContext, load_event
from tests.support.dumps import INSTANCE_ID, NMI_PANIC_DMESG, metadata_document
from tests.support.incidents import create_incident_table
from tests.support.sweep import put_incident

BUCKET = "crashcart-dumps"
TABLE = "crashcart-incidents"


@pytest.fixture
def aws(moto_reset: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The table, bucket and topic on moto; the functions' clients find it by environment."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_reset)
    for module in (arrival_handler, sweep_handler):
        monkeypatch.setattr(module, "_CONTAINER", {})

    def client(name: str) -> Any:
        return boto3.client(name, endpoint_url=moto_reset, region_name=TEST_REGION)

    s3, ddb, sns = client("s3"), client("dynamodb"), client("sns")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": TEST_REGION})
    create_incident_table(ddb, TABLE)
    topic = sns.create_topic(Name="crashcart")["TopicArn"]
    monkeypatch.setenv("CRASHCART_TABLE_NAME", TABLE)
    monkeypatch.setenv("CRASHCART_TOPIC_ARN", topic)
    yield {"s3": s3, "ddb": ddb}


def test_every_function_has_event_fixtures() -> None:
    functions = sorted(
        p.parent.name for p in (REPO_ROOT / "crashcart" / "functions").glob("*/handler.py")
    )
    assert len(functions) >= 7, functions
    for function in functions:
        assert sorted(EVENTS_DIR.glob(f"{function}_*.json")), function


def test_dump_arrival_entry_opens_an_incident_and_reads_the_encoded_key_as_the_same_dump(
    aws: dict[str, Any],
) -> None:
    event = load_event("dump_arrival_object_created")
    key = event["detail"]["object"]["key"]
    prefix = key.rsplit("/", 1)[0] + "/"
    aws["s3"].put_object(Bucket=BUCKET, Key=prefix + "vmcore", Body=b"KDUMP   ")
    aws["s3"].put_object(Bucket=BUCKET, Key=prefix + "dmesg.txt", Body=NMI_PANIC_DMESG.encode())
    aws["s3"].put_object(Bucket=BUCKET, Key=key, Body=metadata_document())

    first = arrival_handler.handler(event, FakeLambdaContext())
    again = arrival_handler.handler(
        load_event("dump_arrival_object_created_encoded_key"), FakeLambdaContext()
    )

    assert first["outcome"] == "open" and first["instance_id"] == INSTANCE_ID
    assert again["outcome"] == "duplicate" and again["incident"] == first["incident"]
    assert set(arrival_handler._CONTAINER) == {"s3", "dynamodb", "sns"}  # once per container


@pytest.mark.parametrize("fixture", ["dump_arrival_other_object", "dump_arrival_other_source"])
def test_dump_arrival_entry_rejects_what_is_not_a_dump_arrival(
    aws: dict[str, Any], fixture: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(BadEventError):
        arrival_handler.handler(load_event(fixture), FakeLambdaContext())
    rejected = [json.loads(r.getMessage()) for r in caplog.records if "rejected" in r.getMessage()]
    assert rejected and rejected[0]["reason"]
    assert aws["ddb"].scan(TableName=TABLE)["Items"] == []


def test_sweep_entry_flags_an_overdue_incident_on_its_schedule(aws: dict[str, Any]) -> None:
    put_incident(aws["ddb"], table=TABLE)

    result = sweep_handler.handler(load_event("incident_sweep_scheduled"), FakeLambdaContext())

    assert result["flagged"] == [f"{INSTANCE_ID} incident#2026-11-26T05:19:49Z"]
    assert result["notified"] == result["flagged"]
    assert "attestation" not in result  # the census is off unless the construct turns it on


def test_lifecycle_hold_entry_ticks_on_the_scheduled_fixture(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thin entry reads the remediation's variables and its own, builds the clients
    (the remediation's and Auto Scaling's) once, and runs a tick: nothing held, nothing due."""
    from crashcart.functions.lifecycle_hold import handler as hold_handler
    from crashcart.functions.remediation import handler as remediation_handler

    for module in (hold_handler, remediation_handler):
        monkeypatch.setattr(module, "_CONTAINER", {})
    endpoint = aws["ddb"].meta.endpoint_url
    ssm = boto3.client("ssm", endpoint_url=endpoint, region_name=TEST_REGION)
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=TEST_REGION)
    ssm.put_parameter(Name="/crashcart/entry/kill-switch", Value="off", Type="String")
    for name, value in {
        "CRASHCART_EVIDENCE_BUCKET": BUCKET,
        "CRASHCART_REJECTED_QUEUE_URL": sqs.create_queue(QueueName="rejected")["QueueUrl"],
        "CRASHCART_KILL_SWITCH_PARAMETER": "/crashcart/entry/kill-switch",
        "CRASHCART_ALARM_NAME_PREFIX": "crashcart-entry-",
        "CRASHCART_HOLD_GROUPS": "web",
        "CRASHCART_HOLD_HOOK_NAME": "crashcart-dump-hold-test",
    }.items():
        monkeypatch.setenv(name, value)
    result = hold_handler.handler(load_event("lifecycle_hold_scheduled"), FakeLambdaContext())
    assert result == {"outcome": "tick"}
    assert "autoscaling" in hold_handler._CONTAINER
