"""The dump-overdue sweep against moto (DynamoDB, SNS, SQS) on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.conftest import TEST_REGION
from tests.support.sweep import (
    INSTANCE_ID,
    OTHER_INSTANCE_ID,
    TABLE,
    create_table,
    get_item,
    load_sweep,
    put_incident,
    text,
)

NOW = datetime(2026, 11, 26, 6, 0, 0, tzinfo=UTC)  # deadlines below are 05:50 (past) / 06:10


@pytest.fixture(scope="module")
def sweep_mod() -> ModuleType:
    return load_sweep()


@pytest.fixture
def dynamodb(moto_reset: str) -> Any:
    client = boto3.client("dynamodb", endpoint_url=moto_reset, region_name=TEST_REGION)
    create_table(client)
    return client


class Outbox:
    """A publish callable that records messages (and can fail on demand)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self.fail = False

    def __call__(self, subject: str, body: str) -> None:
        if self.fail:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "KMSAccessDenied", "Message": "no"}}, "Publish")
        self.messages.append((subject, body))


def run(sweep_mod: ModuleType, client: Any, outbox: Outbox, now: datetime = NOW) -> Any:
    store = sweep_mod.Store(client, TABLE, max_pages=10)
    return sweep_mod.sweep(store, outbox, now=now)


def test_overdue_incident_is_flagged_and_notified_once(
    sweep_mod: ModuleType, dynamodb: Any
) -> None:
    key = put_incident(dynamodb, evidence_key="evidence/i-0123456789abcdef0/x/console-output.txt")
    outbox = Outbox()

    result = run(sweep_mod, dynamodb, outbox)

    item = get_item(dynamodb, key)
    assert text(item, "state") == "dump-overdue"
    assert text(item, "overdue_at") == "2026-11-26T06:00:00Z"
    assert text(item, "overdue_notified_at") == "2026-11-26T06:00:00Z"
    assert text(item, "state_before_overdue") == "interrupted"
    assert result.flagged == result.notified == [f"{INSTANCE_ID} incident#2026-11-26T05:19:49Z"]
    assert len(outbox.messages) == 1
    subject, body = outbox.messages[0]
    assert subject == f"crashcart: dump overdue from {INSTANCE_ID}"
    for expected in (
        INSTANCE_ID,
        "2026-11-26T05:19:49Z",  # opened / interrupted
        "2026-11-26T05:50:00Z",  # deadline
        "get-console-output",
        "journalctl -u crashcart-agent",
        "replaced or terminated",
        "/crashcart/dump-bucket",
        "evidence/i-0123456789abcdef0/x/console-output.txt",
    ):
        assert expected in body


def test_second_sweep_sends_nothing_more(sweep_mod: ModuleType, dynamodb: Any) -> None:
    put_incident(dynamodb)
    outbox = Outbox()
    run(sweep_mod, dynamodb, outbox)
    later = run(sweep_mod, dynamodb, outbox, now=NOW.replace(hour=7))
    assert len(outbox.messages) == 1
    assert later.flagged == later.notified == []


def test_incident_not_yet_due_is_untouched(sweep_mod: ModuleType, dynamodb: Any) -> None:
    key = put_incident(dynamodb, dump_deadline="2026-11-26T06:10:00Z")
    before = get_item(dynamodb, key)
    outbox = Outbox()
    run(sweep_mod, dynamodb, outbox)
    assert get_item(dynamodb, key) == before
    assert outbox.messages == []


def test_dump_already_received_is_untouched(sweep_mod: ModuleType, dynamodb: Any) -> None:
    key = put_incident(
        dynamodb,
        state="dump-received",
        dump_keys=[f"dumps/AROAEXAMPLE:{INSTANCE_ID}/202611260519/metadata.json"],
    )
    # Also: keys present while the state still says interrupted (never flag a received dump).
    other = put_incident(
        dynamodb, instance_id=OTHER_INSTANCE_ID, dump_keys=["dumps/x/metadata.json"]
    )
    before, other_before = get_item(dynamodb, key), get_item(dynamodb, other)
    outbox = Outbox()
    run(sweep_mod, dynamodb, outbox)
    assert get_item(dynamodb, key) == before
    assert get_item(dynamodb, other) == other_before
    assert outbox.messages == []


def test_states_that_do_not_wait_for_a_dump_are_untouched(
    sweep_mod: ModuleType, dynamodb: Any
) -> None:
    keys = [
        put_incident(
            dynamodb, opened_at="2026-11-26T01:00:00Z", state="skipped", dump_deadline=None
        ),
        put_incident(
            dynamodb, opened_at="2026-11-26T02:00:00Z", state="failed", dump_deadline=None
        ),
        # recovered without ever being interrupted: no deadline
        put_incident(
            dynamodb, opened_at="2026-11-26T03:00:00Z", state="recovered", dump_deadline=None
        ),
    ]
    dynamodb.put_item(  # a limits item of the same partition is not an incident
        TableName=TABLE,
        Item={"pk": {"S": f"instance#{INSTANCE_ID}"}, "sk": {"S": "limits"}},
    )
    outbox = Outbox()
    run(sweep_mod, dynamodb, outbox)
    assert [text(get_item(dynamodb, k), "state") for k in keys] == [
        "skipped",
        "failed",
        "recovered",
    ]
    assert outbox.messages == []


def test_recovered_after_the_kdump_reboot_but_no_dump_is_overdue(
    sweep_mod: ModuleType, dynamodb: Any
) -> None:
    """The kdump reboot clears the alarm (incident -> recovered) before the dump ships."""
    key = put_incident(dynamodb, state="recovered")
    outbox = Outbox()
    run(sweep_mod, dynamodb, outbox)
    item = get_item(dynamodb, key)
    assert text(item, "state") == "dump-overdue"
    assert text(item, "state_before_overdue") == "recovered"
    assert len(outbox.messages) == 1


def test_concurrent_arrival_wins(sweep_mod: ModuleType, dynamodb: Any) -> None:
    key = put_incident(dynamodb)

    class ArrivalDuringSweep(sweep_mod.Store):  # type: ignore[name-defined,misc]
        def flag(self, incident: Any, now_iso: str) -> bool:
            # the dump-arrival function's write lands between the scan and the update
            self._client.update_item(
                TableName=TABLE,
                Key=key,
                UpdateExpression="SET #s = :s, dump_keys = :k",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={
                    ":s": {"S": "dump-received"},
                    ":k": {"L": [{"S": "dumps/x/202611260519/metadata.json"}]},
                },
            )
            result: bool = super().flag(incident, now_iso)
            return result

    outbox = Outbox()
    result = sweep_mod.sweep(ArrivalDuringSweep(dynamodb, TABLE, max_pages=10), outbox, now=NOW)
    item = get_item(dynamodb, key)
    assert text(item, "state") == "dump-received"
    assert "overdue_at" not in item
    assert outbox.messages == []
    assert result.skipped == [f"{INSTANCE_ID} incident#2026-11-26T05:19:49Z"]


def test_failed_publish_raises_and_is_sent_by_the_next_sweep(
    sweep_mod: ModuleType, dynamodb: Any
) -> None:
    key = put_incident(dynamodb)
    outbox = Outbox()
    outbox.fail = True
    with pytest.raises(sweep_mod.SweepFailedError, match="KMSAccessDenied"):
        run(sweep_mod, dynamodb, outbox)
    item = get_item(dynamodb, key)
    assert text(item, "state") == "dump-overdue"
    assert "overdue_notified_at" not in item

    outbox.fail = False
    result = run(sweep_mod, dynamodb, outbox, now=NOW.replace(minute=5))
    assert result.flagged == []
    assert len(outbox.messages) == 1
    assert text(get_item(dynamodb, key), "overdue_notified_at") == "2026-11-26T06:05:00Z"
    run(sweep_mod, dynamodb, outbox, now=NOW.replace(minute=10))
    assert len(outbox.messages) == 1


def test_many_incidents_over_several_pages(sweep_mod: ModuleType, dynamodb: Any) -> None:
    for minute in range(12):
        put_incident(dynamodb, instance_id=f"i-00000000000000{minute:03d}")
    outbox = Outbox()
    store = sweep_mod.Store(dynamodb, TABLE, max_pages=50)
    original = store._client

    class SmallPages:  # moto honours Limit: force pagination
        def __getattr__(self, name: str) -> Any:
            return getattr(original, name)

        def scan(self, **kwargs: Any) -> Any:
            return original.scan(Limit=5, **kwargs)

    store._client = SmallPages()
    result = sweep_mod.sweep(store, outbox, now=NOW)
    assert len(result.flagged) == 12
    assert len(outbox.messages) == 12


def test_page_bound_reached_raises_after_flagging_what_it_read(
    sweep_mod: ModuleType, dynamodb: Any
) -> None:
    for minute in range(4):
        put_incident(dynamodb, instance_id=f"i-00000000000000{minute:03d}")
    original = dynamodb

    class OnePerPage:
        def __getattr__(self, name: str) -> Any:
            return getattr(original, name)

        def scan(self, **kwargs: Any) -> Any:
            return original.scan(Limit=1, **kwargs)

    outbox = Outbox()
    store = sweep_mod.Store(OnePerPage(), TABLE, max_pages=2)
    with pytest.raises(sweep_mod.SweepFailedError, match="stopped after 2 pages"):
        sweep_mod.sweep(store, outbox, now=NOW)
    assert len(outbox.messages) == 2


def test_table_unreachable_raises(sweep_mod: ModuleType, moto_reset: str) -> None:
    missing = boto3.client("dynamodb", endpoint_url=moto_reset, region_name=TEST_REGION)
    outbox = Outbox()
    with pytest.raises(sweep_mod.StoreUnavailableError, match="ResourceNotFoundException"):
        sweep_mod.sweep(sweep_mod.Store(missing, "no-such-table", max_pages=10), outbox, now=NOW)
    closed = boto3.client(
        "dynamodb",
        endpoint_url="http://127.0.0.1:9",
        region_name=TEST_REGION,
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=1),
    )
    with pytest.raises(sweep_mod.StoreUnavailableError, match="scanning"):
        sweep_mod.sweep(sweep_mod.Store(closed, TABLE, max_pages=10), outbox, now=NOW)
    assert outbox.messages == []


def test_handler_end_to_end_through_sns(
    sweep_mod: ModuleType,
    dynamodb: Any,
    moto_reset: str,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: Any,
) -> None:
    sns = boto3.client("sns", endpoint_url=moto_reset, region_name=TEST_REGION)
    sqs = boto3.client("sqs", endpoint_url=moto_reset, region_name=TEST_REGION)
    topic = sns.create_topic(Name="crashcart")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    key = put_incident(dynamodb, dump_deadline="2000-01-01T00:00:00Z")
    put_incident(dynamodb, instance_id=OTHER_INSTANCE_ID, dump_deadline="2999-01-01T00:00:00Z")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_reset)
    monkeypatch.setenv("CRASHCART_TABLE_NAME", TABLE)
    monkeypatch.setenv("CRASHCART_TOPIC_ARN", topic)
    monkeypatch.setenv("CRASHCART_DUMP_BUCKET_PARAMETER", "/team/dump-bucket")

    result = sweep_mod.handler(
        {"source": "aws.events", "detail-type": "Scheduled Event"}, lambda_context
    )

    assert result["notified"] == [f"{INSTANCE_ID} incident#2026-11-26T05:19:49Z"]
    assert text(get_item(dynamodb, key), "state") == "dump-overdue"
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert len(received) == 1
    envelope = json.loads(received[0]["Body"])
    assert envelope["Subject"] == f"crashcart: dump overdue from {INSTANCE_ID}"
    assert "/team/dump-bucket" in envelope["Message"]


@pytest.mark.parametrize(
    ("environ", "match"),
    [
        ({"CRASHCART_TOPIC_ARN": "arn:aws:sns:eu-west-1:111111111111:t"}, "CRASHCART_TABLE_NAME"),
        ({"CRASHCART_TABLE_NAME": "t"}, "CRASHCART_TOPIC_ARN"),
        (
            {
                "CRASHCART_TABLE_NAME": "t",
                "CRASHCART_TOPIC_ARN": "a",
                "CRASHCART_SWEEP_MAX_PAGES": "0",
            },
            "CRASHCART_SWEEP_MAX_PAGES",
        ),
    ],
)
def test_settings_refuse_bad_configuration(
    sweep_mod: ModuleType, environ: dict[str, str], match: str
) -> None:
    with pytest.raises(sweep_mod.SettingsError, match=match):
        sweep_mod.Settings.from_env(environ)


@pytest.mark.parametrize(
    "instance_id",
    ["i-0123456789abcdef0\n\x1b[31m" + "x" * 200, "i-\u2028" + "\u00e9" * 120],
)
def test_the_subject_stays_publishable_whatever_the_table_holds(
    sweep_mod: ModuleType, instance_id: str
) -> None:
    """SNS refuses subjects of 100 characters or more, or with control or non-ASCII ones."""
    item = {
        "pk": {"S": f"instance#{instance_id}"},
        "sk": {"S": "incident#2026-11-26T05:19:49Z"},
        "instance_id": {"S": instance_id},
        "state": {"S": "interrupted"},
        "dump_deadline": {"S": "2026-11-26T05:50:00Z"},
    }
    incident = sweep_mod.from_item(item)
    subject, _ = sweep_mod.message(incident)
    assert len(subject) < 100 and subject.isascii() and subject.isprintable()
    assert subject.startswith("crashcart: dump overdue from i-")


# ---------------------------------------------------------------- attestation census
# aws-assumption: attestation-self-tag. If no instance can attest, every real alarm is
# skipped; each sweep counts running opted-in instances and attested ones as metrics.

OPT_IN = {"Key": "crashcart:diagnostic-interrupt", "Value": "enabled"}


def _attested(hours_ago: float) -> dict[str, str]:
    moment = NOW.timestamp() - hours_ago * 3600
    stamp = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"Key": "crashcart:kdump-attestation", "Value": f"armed {stamp}"}


def _launch(ec2: Any, *tag_sets: list[dict[str, str]]) -> list[str]:
    image = ec2.describe_images(Filters=[{"Name": "architecture", "Values": ["x86_64"]}])["Images"][
        0
    ]["ImageId"]
    ids = []
    for tags in tag_sets:
        spec = [{"ResourceType": "instance", "Tags": tags}] if tags else []
        (instance,) = ec2.run_instances(
            ImageId=image, MinCount=1, MaxCount=1, InstanceType="m5.large", TagSpecifications=spec
        )["Instances"]
        ids.append(instance["InstanceId"])
    return ids


@pytest.fixture
def ec2(moto_reset: str) -> Any:
    return boto3.client("ec2", endpoint_url=moto_reset, region_name=TEST_REGION)


def _census(sweep_mod: ModuleType, ec2: Any, **settings: Any) -> tuple[Any, dict[str, Any]]:
    lines: list[str] = []
    configured = sweep_mod.Settings(table_name=TABLE, topic_arn="t", census=True, **settings)
    counted = sweep_mod.census(
        sweep_mod.Fleet(ec2, max_pages=settings.get("max_pages", 10)),
        configured,
        now=NOW,
        function_name="crashcart-sweep",
        write=lines.append,
    )
    (line,) = lines
    return counted, json.loads(line)


def test_census_counts_running_opted_in_and_attested_instances(
    sweep_mod: ModuleType, ec2: Any
) -> None:
    armed, stale, not_armed, missing, _other, stopped = _launch(
        ec2,
        [OPT_IN, _attested(1)],
        [OPT_IN, _attested(24 * 8)],  # older than the 7-day max age
        [
            OPT_IN,
            {"Key": "crashcart:kdump-attestation", "Value": "not-armed 2026-11-26T05:00:00Z x"},
        ],
        [OPT_IN],
        [_attested(1)],  # attested but not opted in: not counted
        [OPT_IN, _attested(1)],
    )
    ec2.stop_instances(InstanceIds=[stopped])

    counted, record = _census(sweep_mod, ec2)

    assert (counted.opted_in, counted.attested) == (4, 1)
    assert set(counted.unattested) == {stale, not_armed, missing}
    assert armed not in counted.unattested
    assert record["OptedInInstances"] == 4 and record["AttestedInstances"] == 1
    assert record["FunctionName"] == "crashcart-sweep"
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "crashcart"
    assert directive["Dimensions"] == [["FunctionName"]]
    assert [m["Name"] for m in directive["Metrics"]] == ["OptedInInstances", "AttestedInstances"]
    assert record["_aws"]["Timestamp"] == int(NOW.timestamp() * 1000)


def test_census_says_so_when_no_opted_in_instance_is_attested(
    sweep_mod: ModuleType, ec2: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _launch(ec2, [OPT_IN], [OPT_IN])
    counted, record = _census(sweep_mod, ec2)
    assert (record["OptedInInstances"], record["AttestedInstances"]) == (2, 0)
    assert counted.attested == 0
    assert any("none-attested" in message for message in caplog.messages)


def test_census_of_an_empty_fleet_writes_zeros(sweep_mod: ModuleType, ec2: Any) -> None:
    counted, record = _census(sweep_mod, ec2)
    assert (counted.opted_in, record["OptedInInstances"], record["AttestedInstances"]) == (0, 0, 0)


def test_census_honours_custom_tag_and_max_age(sweep_mod: ModuleType, ec2: Any) -> None:
    team = {"Key": "team:nmi", "Value": "yes"}
    _launch(ec2, [team, _attested(2)], [OPT_IN, _attested(2)])
    counted, _ = _census(
        sweep_mod,
        ec2,
        opt_in_tag_key="team:nmi",
        opt_in_tag_value="yes",
        attestation_max_age_seconds=3600,
    )
    assert (counted.opted_in, counted.attested) == (1, 0)


def test_census_fails_loudly_when_ec2_cannot_be_listed(sweep_mod: ModuleType) -> None:
    closed = boto3.client(
        "ec2",
        endpoint_url="http://127.0.0.1:9",
        region_name=TEST_REGION,
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(sweep_mod.CensusFailedError, match="listing opted-in instances failed"):
        _census(sweep_mod, closed)


def test_handler_runs_the_census_and_the_overdue_sweep(
    sweep_mod: ModuleType,
    dynamodb: Any,
    ec2: Any,
    moto_reset: str,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _launch(ec2, [OPT_IN])
    sns = boto3.client("sns", endpoint_url=moto_reset, region_name=TEST_REGION)
    topic = sns.create_topic(Name="crashcart")["TopicArn"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_reset)
    monkeypatch.setenv("CRASHCART_TABLE_NAME", TABLE)
    monkeypatch.setenv("CRASHCART_TOPIC_ARN", topic)
    monkeypatch.setenv("CRASHCART_ATTESTATION_CENSUS", "true")

    result = sweep_mod.handler({"source": "aws.events"}, lambda_context)

    assert result["attestation"]["opted_in"] == 1 and result["attestation"]["attested"] == 0
    assert result["notified"] == []
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    assert [(r["OptedInInstances"], r["AttestedInstances"]) for r in emf] == [(1, 0)]
    assert emf[0]["FunctionName"] == "crashcart-test"


def test_handler_without_the_census_makes_no_ec2_call(
    sweep_mod: ModuleType,
    dynamodb: Any,
    moto_reset: str,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: Any,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_reset)
    monkeypatch.setenv("CRASHCART_TABLE_NAME", TABLE)
    monkeypatch.setenv("CRASHCART_TOPIC_ARN", "arn:aws:sns:eu-west-1:111111111111:t")
    monkeypatch.setenv("CRASHCART_ATTESTATION_CENSUS", "false")
    monkeypatch.setattr(sweep_mod, "Fleet", None)  # would fail if used
    assert "attestation" not in sweep_mod.handler({}, lambda_context)


def test_a_failed_census_fails_the_invocation_after_the_overdue_sweep(
    sweep_mod: ModuleType,
    dynamodb: Any,
    moto_reset: str,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: Any,
) -> None:
    key = put_incident(dynamodb, dump_deadline="2000-01-01T00:00:00Z")
    sns = boto3.client("sns", endpoint_url=moto_reset, region_name=TEST_REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_reset)
    monkeypatch.setenv("CRASHCART_TABLE_NAME", TABLE)
    monkeypatch.setenv("CRASHCART_TOPIC_ARN", sns.create_topic(Name="crashcart")["TopicArn"])
    monkeypatch.setenv("CRASHCART_ATTESTATION_CENSUS", "true")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise sweep_mod.CensusFailedError("listing opted-in instances failed: AccessDenied")

    monkeypatch.setattr(sweep_mod.Fleet, "running", broken)
    with pytest.raises(sweep_mod.CensusFailedError, match="AccessDenied"):
        sweep_mod.handler({}, lambda_context)
    assert text(get_item(dynamodb, key), "state") == "dump-overdue"  # that part still ran


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CRASHCART_ATTESTATION_CENSUS", "yes"),
        ("CRASHCART_ATTESTATION_MAX_AGE_SECONDS", "7d"),
    ],
)
def test_census_settings_refuse_bad_values(sweep_mod: ModuleType, name: str, value: str) -> None:
    with pytest.raises(sweep_mod.SettingsError, match=name):
        sweep_mod.Settings.from_env(
            {"CRASHCART_TABLE_NAME": "t", "CRASHCART_TOPIC_ARN": "a", name: value}
        )


def test_census_defaults_are_the_remediation_functions(sweep_mod: ModuleType) -> None:
    from tests.support.remediation_runtime import load

    function = load().settings.ENVIRONMENT
    assert function["CRASHCART_OPT_IN_TAG_KEY"] == sweep_mod.DEFAULT_OPT_IN_TAG_KEY
    assert function["CRASHCART_OPT_IN_TAG_VALUE"] == sweep_mod.DEFAULT_OPT_IN_TAG_VALUE
    assert (
        int(str(function["CRASHCART_ATTESTATION_MAX_AGE_SECONDS"]))
        == sweep_mod.DEFAULT_ATTESTATION_MAX_AGE_SECONDS
    )
