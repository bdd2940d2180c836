"""The dump-arrival function against hostile files written by an instance (issue 14,
defect 5): metadata.json and dmesg.txt come from the instance, so from whoever controls it.

A bad dump is refused with a reason (BadEventError: Lambda retries, then the dead-letter
queue keeps the event) and changes nothing; a hostile panic line cannot make the
notification fail after the incident was written.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import boto3
import pytest

from tests.functional.test_dumps_arrival import (
    BUCKET,
    NOW,
    TABLE,
    adapter,
    items,
    notifications,
    ship,
)
from tests.support.dumps import (
    NMI_PANIC_DMESG,
    load_arrival_handler,
    metadata_document,
    object_created_event,
)
from tests.support.incidents import create_incident_table


@pytest.fixture(scope="module")
def arrival() -> ModuleType:
    return load_arrival_handler()


@pytest.fixture
def aws(moto_reset: str) -> dict[str, Any]:
    """The bucket, table and topic of ``tests/functional/test_dumps_arrival.py``."""

    def client(name: str) -> Any:
        return boto3.client(name, endpoint_url=moto_reset, region_name="eu-west-1")

    s3, ddb, sns, sqs = client("s3"), client("dynamodb"), client("sns"), client("sqs")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    create_incident_table(ddb, TABLE)
    topic = sns.create_topic(Name="crashcart")["TopicArn"]
    queue = sqs.create_queue(QueueName="notifications")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=arn["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )
    return {"s3": s3, "ddb": ddb, "sns": sns, "sqs": sqs, "topic": topic, "queue": queue}


def process(arrival: ModuleType, aws: dict[str, Any], key: str, **kwargs: Any) -> Any:
    return arrival.process(
        object_created_event(BUCKET, key),
        kwargs.pop("adapter", None) or adapter(arrival, aws),
        now=NOW,
        request_id="r-hostile",
    )


def test_deeply_nested_metadata_is_refused_not_a_crash(
    arrival: ModuleType, aws: dict[str, Any]
) -> None:
    depth = 20_000  # 40 KB: within what the function reads, far past json's recursion limit
    key = ship(aws, metadata=b"[" * depth + b"]" * depth)
    with pytest.raises(arrival.BadEventError, match="nested too deeply"):
        process(arrival, aws, key)
    assert items(aws) == []
    assert notifications(aws) == []


@pytest.mark.parametrize(
    "files",
    [
        [{"name": ".."}],
        [{"name": "."}],
        [{"name": "dmesg.txt\n"}],
        [{"name": ""}],
        [{"name": "vmcore\\..\\x"}],
        [],
        [{"name": f"part{i}"} for i in range(17)],
    ],
    ids=["dotdot", "dot", "newline", "empty", "backslash", "none", "too-many"],
)
def test_file_lists_outside_the_grammar_are_refused(
    arrival: ModuleType, aws: dict[str, Any], files: list[dict[str, str]]
) -> None:
    doc = json.loads(metadata_document())
    doc["files"] = files
    key = ship(aws, metadata=json.dumps(doc).encode())
    with pytest.raises(arrival.BadEventError, match="no valid 'files' list"):
        process(arrival, aws, key)
    assert items(aws) == []


class RecordingSns:
    """Records what is published, then lets moto have it."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return self.client.publish(**kwargs)


def test_a_hostile_panic_line_cannot_break_the_notification_subject(
    arrival: ModuleType, aws: dict[str, Any]
) -> None:
    hostile = NMI_PANIC_DMESG.replace(
        "Kernel panic - not syncing:", "Kernel panic - not syncing: \x1b[31m\u2028\u00e9t\u00e9\r"
    )
    assert hostile != NMI_PANIC_DMESG
    key = ship(aws, dmesg=hostile)
    recorder = RecordingSns(aws["sns"])
    used = adapter(arrival, aws)
    used.sns = recorder
    result = process(arrival, aws, key, adapter=used)
    assert result["outcome"] == "open"
    (call,) = recorder.calls
    subject = call["Subject"]
    assert subject.isascii() and subject.isprintable() and len(subject) < 100
    assert subject.startswith("crashcart: dump from i-")
    (item,) = items(aws)
    assert item["state"]["S"] == "dump-received"


HEADER_INJECTION = (
    "6.1.0\r\nBcc: everyone@example.com\r\n\r\nAction required: https://evil.example/login"
)


def test_markup_links_and_oversize_fields_end_as_bounded_escaped_text(
    arrival: ModuleType, aws: dict[str, Any]
) -> None:
    """Issue 22: metadata.json and the kernel log carry header injection, links, markup and
    a 300 KB field; the record and the e-mail quote each as one bounded, link-free line."""
    doc = json.loads(metadata_document())
    doc["kernel_release"] = HEADER_INJECTION
    doc["build_id"] = "<a href='http://evil.example'>click</a>"
    doc["dump_time"] = "x" * 40_000  # the whole metadata.json stays under the 64 KB read
    hostile_log = NMI_PANIC_DMESG.replace(
        "Kernel panic - not syncing:",
        "Kernel panic - not syncing: \u202egnp.exe see www.evil.example/reset "
        + "A" * 300_000
        + "\u2028Subject: x",
    )
    key = ship(aws, metadata=json.dumps(doc).encode(), dmesg=hostile_log)
    recorder = RecordingSns(aws["sns"])
    used = adapter(arrival, aws)
    used.sns = recorder

    result = process(arrival, aws, key, adapter=used)

    assert result["outcome"] == "open"
    (call,) = recorder.calls
    message = call["Message"]
    assert "\r" not in message and "\u2028" not in message and "\u202e" not in message
    assert not [row for row in message.split("\n") if row.startswith(("Bcc:", "Subject:"))]
    assert "https://" not in message and "http://" not in message
    assert "www.evil" not in message
    assert "https[:]//evil.example" in message and "www[.]evil" in message
    assert len(message) < 8_000, len(message)
    (item,) = items(aws)
    summary = item["summary"]["S"]
    assert len(summary) <= 400 and "\u2028" not in summary and "www[.]evil" in summary
    assert "cut]" in summary
    assert call["Subject"].isascii() and len(call["Subject"]) < 100
