"""The dump-arrival function end to end against moto (S3, DynamoDB, SNS) on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import boto3
import pytest

from tests.support.dumps import (
    INSTANCE_ID,
    NMI_PANIC_DMESG,
    load_arrival_handler,
    metadata_document,
    object_created_event,
)
from tests.support.incidents import create_incident_table

BUCKET = "crashcart-dumps"
TABLE = "crashcart-incidents"
OWNER = f"AROAEXAMPLEROLEID1234:{INSTANCE_ID}"
PREFIX = f"dumps/{OWNER}/202611260519/"
NOW = datetime(2026, 11, 26, 5, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def arrival() -> ModuleType:
    return load_arrival_handler()


@pytest.fixture
def aws(moto_reset: str) -> dict[str, Any]:
    def client(name: str) -> Any:
        return boto3.client(name, endpoint_url=moto_reset, region_name="eu-west-1")

    s3, ddb, sns, sqs = client("s3"), client("dynamodb"), client("sns"), client("sqs")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    create_incident_table(ddb, TABLE)
    topic = sns.create_topic(Name="crashcart")["TopicArn"]
    queue = sqs.create_queue(QueueName="notifications")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    return {"s3": s3, "ddb": ddb, "sns": sns, "sqs": sqs, "topic": topic, "queue": queue}


def adapter(arrival: ModuleType, aws: dict[str, Any]) -> Any:
    settings = arrival.Settings(TABLE, aws["topic"], timedelta(hours=6))
    return arrival.Adapter(settings, aws["s3"], aws["ddb"], aws["sns"])


def ship(aws: dict[str, Any], metadata: bytes | None = None, dmesg: str = NMI_PANIC_DMESG) -> str:
    aws["s3"].put_object(Bucket=BUCKET, Key=PREFIX + "vmcore", Body=b"KDUMP   ")
    aws["s3"].put_object(Bucket=BUCKET, Key=PREFIX + "dmesg.txt", Body=dmesg.encode())
    aws["s3"].put_object(
        Bucket=BUCKET,
        Key=PREFIX + "metadata.json",
        Body=metadata if metadata is not None else metadata_document(),
    )
    return PREFIX + "metadata.json"


def incident(aws: dict[str, Any], opened: datetime, **attrs: Any) -> str:
    sk = "incident#" + opened.strftime("%Y-%m-%dT%H:%M:%SZ")
    item = {
        "pk": {"S": f"instance#{INSTANCE_ID}"},
        "sk": {"S": sk},
        "instance_id": {"S": INSTANCE_ID},
        "state": {"S": "interrupted"},
        "opened_at": {"S": sk.removeprefix("incident#")},
        "origin": {"S": "remediation"},
    }
    item.update(attrs)
    aws["ddb"].put_item(TableName=TABLE, Item=item)
    return sk


def items(aws: dict[str, Any]) -> list[dict[str, Any]]:
    return aws["ddb"].query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"instance#{INSTANCE_ID}"}},
    )["Items"]


def notifications(aws: dict[str, Any]) -> list[str]:
    messages = aws["sqs"].receive_message(QueueUrl=aws["queue"], MaxNumberOfMessages=10)
    return [m["Body"] for m in messages.get("Messages", [])]


def test_dump_for_an_interrupted_instance_updates_its_incident(
    arrival: ModuleType, aws: dict[str, Any]
) -> None:
    sk = incident(aws, NOW - timedelta(minutes=10))
    key = ship(aws)
    result = arrival.process(
        object_created_event(BUCKET, key), adapter(arrival, aws), now=NOW, request_id="r-1"
    )
    assert result["outcome"] == "attach" and result["incident"] == sk
    (item,) = items(aws)
    assert item["state"]["S"] == "dump-received"
    assert item["origin"]["S"] == "remediation"
    assert [k["S"] for k in item["dump_keys"]["L"]] == [
        PREFIX + "vmcore",
        PREFIX + "dmesg.txt",
        PREFIX + "metadata.json",
    ]
    assert item["summary"]["S"].startswith("NMI: Not continuing | nmi | cpu 1: hang_spin")
    (message,) = notifications(aws)
    assert INSTANCE_ID in message and "hang_init [crashcart_hang]" in message
    assert f"s3://{BUCKET}/{PREFIX}vmcore" in message


def test_dump_without_an_incident_opens_a_spontaneous_one(
    arrival: ModuleType, aws: dict[str, Any]
) -> None:
    key = ship(aws)
    result = arrival.process(
        object_created_event(BUCKET, key), adapter(arrival, aws), now=NOW, request_id="r-2"
    )
    assert result["outcome"] == "open"
    (item,) = items(aws)
    assert item["sk"]["S"] == "incident#2026-11-26T05:30:00Z"
    assert item["origin"]["S"] == "spontaneous"
    assert item["state"]["S"] == "dump-received"
    assert item["request_id"]["S"] == "r-2"
    assert len(notifications(aws)) == 1


@pytest.mark.parametrize(
    "existing",
    [
        {"opened": NOW - timedelta(hours=7)},  # older than the window
        {
            "opened": NOW - timedelta(minutes=5),
            "dump_keys": {"L": [{"S": "dumps/x/1/metadata.json"}]},
        },
    ],
    ids=["latest-too-old", "latest-already-has-a-dump"],
)
def test_dump_that_does_not_belong_to_the_latest_incident_opens_a_new_one(
    arrival: ModuleType, aws: dict[str, Any], existing: dict[str, Any]
) -> None:
    opened = existing.pop("opened")
    old_sk = incident(aws, opened, **existing)
    key = ship(aws)
    result = arrival.process(
        object_created_event(BUCKET, key), adapter(arrival, aws), now=NOW, request_id="r-3"
    )
    assert result["outcome"] == "open"
    by_sk = {item["sk"]["S"]: item for item in items(aws)}
    assert len(by_sk) == 2
    assert by_sk[old_sk]["state"]["S"] == "interrupted"  # untouched
    assert by_sk[result["incident"]]["origin"]["S"] == "spontaneous"


def test_repeated_event_is_a_no_op(arrival: ModuleType, aws: dict[str, Any]) -> None:
    incident(aws, NOW - timedelta(minutes=10))
    key = ship(aws)
    event = object_created_event(BUCKET, key)
    arrival.process(event, adapter(arrival, aws), now=NOW, request_id="r-4")
    again = arrival.process(
        event, adapter(arrival, aws), now=NOW + timedelta(minutes=1), request_id="r-5"
    )
    assert again["outcome"] == "duplicate"
    assert len(items(aws)) == 1
    assert len(notifications(aws)) == 1


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"source": "aws.ec2", "detail-type": "Object Created"}, "not an S3 Object Created"),
        (object_created_event(BUCKET, "dumps/not-an-instance/1/metadata.json"), "is not dumps/"),
        (object_created_event(BUCKET, f"dumps/{OWNER}/1/vmcore"), "is not dumps/"),
        (object_created_event(BUCKET, PREFIX + "metadata.json"), "does not exist"),
        ("not even a dict", "not an object"),
    ],
    ids=["foreign-source", "bad-prefix", "not-metadata", "object-gone", "not-a-dict"],
)
def test_bad_events_are_rejected_without_action(
    arrival: ModuleType, aws: dict[str, Any], event: Any, reason: str
) -> None:
    with pytest.raises(arrival.BadEventError, match=reason):
        arrival.process(event, adapter(arrival, aws), now=NOW, request_id="r-6")
    assert items(aws) == []
    assert notifications(aws) == []


def test_metadata_naming_another_instance_is_rejected(
    arrival: ModuleType, aws: dict[str, Any]
) -> None:
    key = ship(aws, metadata=metadata_document(instance_id="i-0fffffffffffffff0"))
    with pytest.raises(arrival.BadEventError, match="under the prefix of"):
        arrival.process(
            object_created_event(BUCKET, key), adapter(arrival, aws), now=NOW, request_id="r-7"
        )
    assert items(aws) == []


def test_handler_reads_settings_from_the_environment_and_raises_on_bad_events(
    arrival: ModuleType, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    monkeypatch.delenv("CRASHCART_TABLE_NAME", raising=False)
    with pytest.raises(RuntimeError, match="CRASHCART_TABLE_NAME"):
        arrival.handler({}, lambda_context)
    env = {
        "CRASHCART_TABLE_NAME": "t",
        "CRASHCART_TOPIC_ARN": "arn:aws:sns:eu-west-1:1:t",
        "CRASHCART_ATTACH_WINDOW_SECONDS": "60",
    }
    assert arrival.Settings.from_env(env).attach_window == timedelta(seconds=60)
    with pytest.raises(RuntimeError, match="not an integer"):
        arrival.Settings.from_env({**env, "CRASHCART_ATTACH_WINDOW_SECONDS": "soon"})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(arrival.BadEventError):
        arrival.handler({"source": "aws.s3"}, lambda_context)


def test_summary_without_dmesg(arrival: ModuleType, aws: dict[str, Any]) -> None:
    doc = json.loads(metadata_document())
    doc["files"] = [f for f in doc["files"] if f["name"] == "vmcore"]
    key = ship(aws, metadata=json.dumps(doc).encode())
    arrival.process(
        object_created_event(BUCKET, key), adapter(arrival, aws), now=NOW, request_id="r-8"
    )
    (item,) = items(aws)
    assert "no dmesg file" in item["summary"]["S"]
    assert [k["S"] for k in item["dump_keys"]["L"]] == [PREFIX + "vmcore", PREFIX + "metadata.json"]


# ---------------------------------------------------------------- the event's key encoding
# aws-assumption: s3-event-key-encoding. S3 form-URL-encodes event keys (':' -> '%3A'); the
# function decodes exactly once, then checks the key grammar with fullmatch.


@pytest.mark.parametrize(
    "event_key",
    [
        PREFIX.replace(":", "%3A") + "metadata.json",  # encoded, as S3 documents event keys
        PREFIX.replace(":", "%3a") + "metadata.json",  # hex digits in either case
        PREFIX + "metadata.json",  # as stored: one decode leaves it as it is
    ],
    ids=["encoded", "encoded-lowercase-hex", "literal"],
)
def test_an_encoded_or_literal_key_names_the_stored_dump(
    arrival: ModuleType, aws: dict[str, Any], event_key: str
) -> None:
    sk = incident(aws, NOW - timedelta(minutes=10))
    ship(aws)
    result = arrival.process(
        object_created_event(BUCKET, event_key), adapter(arrival, aws), now=NOW, request_id="r-9"
    )
    assert result["outcome"] == "attach" and result["incident"] == sk
    (item,) = items(aws)
    assert [k["S"] for k in item["dump_keys"]["L"]] == [
        PREFIX + "vmcore",
        PREFIX + "dmesg.txt",
        PREFIX + "metadata.json",
    ]
    (message,) = notifications(aws)
    assert f"s3://{BUCKET}/{PREFIX}vmcore" in message and "%3A" not in message


@pytest.mark.parametrize(
    ("event_key", "shown"),
    [
        # '+' is a space in form encoding: no key of the grammar has one
        (f"dumps/{OWNER}/2026+11/metadata.json", "'dumps/" + OWNER + "/2026 11/metadata.json'"),
        # an encoded '+' decodes to '+', which the grammar does not have either
        (f"dumps/{OWNER}/2026%2B11/metadata.json", "/2026+11/"),
        # encoded twice: decoded once only, the '%' that is left is refused
        (PREFIX.replace(":", "%253A") + "metadata.json", "%3A"),
        # a key with a trailing newline is another key ('$' would have let it through)
        (PREFIX + "metadata.json\n", "metadata.json\\n"),
        (PREFIX + "metadata.json%0A", "metadata.json\\n"),
        (f"dumps/{OWNER}/../metadata.json", "/../"),
    ],
    ids=["plus", "encoded-plus", "double-encoded", "newline", "encoded-newline", "dot-dot"],
)
def test_keys_outside_the_grammar_after_one_decode_are_rejected(
    arrival: ModuleType, aws: dict[str, Any], event_key: str, shown: str
) -> None:
    ship(aws)
    with pytest.raises(arrival.BadEventError, match="is not dumps/") as raised:
        arrival.process(
            object_created_event(BUCKET, event_key), adapter(arrival, aws), now=NOW, request_id="r"
        )
    assert shown in str(raised.value)
    assert items(aws) == []
    assert notifications(aws) == []


def test_a_key_that_is_not_utf8_once_decoded_is_rejected(arrival: ModuleType) -> None:
    with pytest.raises(arrival.BadEventError, match="not UTF-8 once URL-decoded"):
        arrival.parse_event(object_created_event(BUCKET, PREFIX + "%ff/metadata.json"))


@pytest.mark.parametrize("opened", [True, False], ids=["attach", "open"])
def test_the_capture_kernels_memory_figures_reach_the_incident_as_numbers(
    arrival: ModuleType, aws: dict[str, Any], opened: bool
) -> None:
    """Issue 18, part 2: the agent's capture-memory figures travel to the incident (where the
    canary drill reads them); the instance wrote them, so only bounded integers of the known
    names are kept."""
    if opened:
        incident(aws, NOW - timedelta(minutes=10))
    figures = {
        "reserved_kb": 196608,
        "used_kb": 90000,
        "margin_kb": 106608,
        "mem_total_kb": 150000,
        "makedumpfile_vmhwm_kb": 18000,
        "mem_free_min_kb": 20000,  # not one the incident keeps
        "samples": "97",
    }
    hostile = {"used_kb": True, "reserved_kb": 10**30, "margin_kb": "1", "x": {"y": 1}}
    key = ship(aws, metadata=metadata_document(capture_memory=figures))
    arrival.process(
        object_created_event(BUCKET, key), adapter(arrival, aws), now=NOW, request_id="r-9"
    )
    (item,) = items(aws)
    assert item["capture_memory"] == {
        "M": {
            "reserved_kb": {"N": "196608"},
            "used_kb": {"N": "90000"},
            "margin_kb": {"N": "106608"},
            "mem_total_kb": {"N": "150000"},
            "makedumpfile_vmhwm_kb": {"N": "18000"},
        }
    }
    # nothing usable: no attribute at all
    aws["ddb"].delete_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})
    key = ship(aws, metadata=metadata_document(capture_memory=hostile))
    arrival.process(
        object_created_event(BUCKET, key), adapter(arrival, aws), now=NOW, request_id="r-10"
    )
    (item,) = items(aws)
    assert "capture_memory" not in item
