"""Several accounts against one moto server (issue 23): the central account's view of them.

moto keeps state per account: a request's account is the one its credentials belong to, and
credentials from ``sts:AssumeRole`` belong to the role's account (moto maps an assumed-role
access key back to it; ``x-moto-account-id`` or ``MOTO_ACCOUNT_ID`` would force one). Each
account here acts with credentials of a role session in that account; member A's instance
session is named after its instance id, as EC2 names an instance profile's session, so its
``aws:userid`` is ``<role id>:<instance id>``. S3 buckets are found across accounts (moto's
cross-account bucket lookup), as a real central bucket is.

moto does not evaluate bucket policies with ``aws:PrincipalOrgID`` (the offline evaluator
does: tests/compliance/test_organisation_central_policies.py); this test is the data flow:
the agent in A writes under A's prefix, the central view records A's dump for A, receives
A's and B's incident events and refuses B's event claiming to be A.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from crashcart.functions.incident_view import handler as view_handler
from crashcart.functions.incident_view import service
from crashcart.functions.incident_view.events import BadEventError
from crashcart.functions.incident_view.settings import Settings
from crashcart.runtime.dumps import parse_metadata_key
from crashcart.triage.job_aws import Adapter as TriageAdapter
from crashcart.triage.job_input import Settings as TriageSettings
from tests.conftest import load_event
from tests.support.dumps import (
    AWS_CLI,
    INSTANCE_ID,
    fake_host,
    make_dump,
    object_created_event,
    run_agent,
)
from tests.support.eventbridge_hop import EventBridgeHop
from tests.support.incidents import create_incident_table

CENTRAL, ACCOUNT_A, ACCOUNT_B = "999999999999", "111111111111", "222222222222"
BUCKET = "crashcart-central-dumps"
TABLE = "crashcart-central-incidents"
REGION = "eu-west-1"
NOW = datetime(2026, 12, 5, 22, 6, tzinfo=UTC)


def session(endpoint: str, account: str, name: str) -> dict[str, str]:
    """Credentials of a role session in ``account`` (moto's STS, on 127.0.0.1)."""
    sts = boto3.client(
        "sts",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="secret",
    )
    credentials = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/crashcart-test", RoleSessionName=name
    )["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
    }


def client(endpoint: str, name: str, credentials: dict[str, str]) -> Any:
    return boto3.client(
        name,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=credentials["AWS_SESSION_TOKEN"],
    )


@pytest.fixture
def central(moto_reset: str) -> dict[str, Any]:
    """The central account: bucket, incident table, topic (with a queue to read it)."""
    credentials = session(moto_reset, CENTRAL, "deploy")
    s3, ddb = client(moto_reset, "s3", credentials), client(moto_reset, "dynamodb", credentials)
    sns, sqs = client(moto_reset, "sns", credentials), client(moto_reset, "sqs", credentials)
    assert client(moto_reset, "sts", credentials).get_caller_identity()["Account"] == CENTRAL
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    create_incident_table(ddb, TABLE)
    topic = sns.create_topic(Name="crashcart-organisation")["TopicArn"]
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
    settings = Settings(TABLE, topic, BUCKET, timedelta(hours=6), REGION)
    hop = EventBridgeHop(CENTRAL)
    adapter = view_handler.build(settings, clients={"dynamodb": ddb, "sns": sns, "events": hop})
    return {
        "s3": s3,
        "ddb": ddb,
        "sqs": sqs,
        "queue": queue,
        "topic": topic,
        "view": adapter,
        "hop": hop,
    }


def incidents(ddb: Any) -> dict[tuple[str, str], dict[str, Any]]:
    items = ddb.scan(TableName=TABLE)["Items"]
    return {(i["pk"]["S"], i["sk"]["S"]): i for i in items}


def notifications(central: dict[str, Any]) -> list[str]:
    answer = central["sqs"].receive_message(QueueUrl=central["queue"], MaxNumberOfMessages=10)
    return [m["Body"] for m in answer.get("Messages", [])]


def test_moto_keeps_the_accounts_apart(moto_reset: str) -> None:
    """The premise: each session acts in its own account."""
    for account in (CENTRAL, ACCOUNT_A, ACCOUNT_B):
        identity = client(moto_reset, "sts", session(moto_reset, account, INSTANCE_ID))
        caller = identity.get_caller_identity()
        assert caller["Account"] == account
        assert caller["UserId"].endswith(f":{INSTANCE_ID}")


def test_the_central_view_records_each_accounts_incidents_and_refuses_impersonation(
    central: dict[str, Any],
) -> None:
    view = central["view"]
    a = service.process(
        load_event("incident_view_update_account_a"), view, now=NOW, request_id="r1"
    )
    b = service.process(
        load_event("incident_view_update_account_b"), view, now=NOW, request_id="r2"
    )
    assert (a["outcome"], a["account"]) == ("recorded", ACCOUNT_A)
    assert (b["outcome"], b["account"]) == ("recorded", ACCOUNT_B)
    before = incidents(central["ddb"])
    # B reports the same instance id (ids are per account here): two incidents, one each.
    pk_a, pk_b = f"instance#{ACCOUNT_A}:{INSTANCE_ID}", f"instance#{ACCOUNT_B}:{INSTANCE_ID}"
    sk = "incident#2026-12-05T22:00:00Z"
    assert set(before) == {(pk_a, sk), (pk_b, sk)}
    assert before[(pk_a, sk)]["state"]["S"] == "interrupted"
    assert before[(pk_a, sk)]["account"]["S"] == ACCOUNT_A
    assert before[(pk_b, sk)]["state"]["S"] == "claimed"
    assert len(notifications(central)) == 2

    # B's event claiming to be A: refused with the reason, nothing written, nothing sent.
    with pytest.raises(BadEventError, match=f"not the sending account '{ACCOUNT_B}'"):
        service.process(
            load_event("incident_view_update_b_claims_a"), view, now=NOW, request_id="r3"
        )
    assert incidents(central["ddb"]) == before
    assert notifications(central) == []


def test_an_older_update_does_not_overwrite_a_newer_one(central: dict[str, Any]) -> None:
    view = central["view"]
    newer = load_event("incident_view_update_account_a")
    newer["detail"].update(state="recovered", updated_at="2026-12-05T22:09:00Z")
    assert service.process(newer, view, now=NOW, request_id="r1")["outcome"] == "recorded"
    older = load_event("incident_view_update_account_a")
    assert service.process(older, view, now=NOW, request_id="r2")["outcome"] == "stale"
    (item,) = incidents(central["ddb"]).values()
    assert item["state"]["S"] == "recovered"


@pytest.mark.skipif(not AWS_CLI.exists(), reason="needs the aws CLI in the venv")
def test_a_dump_from_a_lands_under_as_prefix_and_the_view_records_it_for_a(
    central: dict[str, Any], moto_reset: str, tmp_path: Path
) -> None:
    view = central["view"]
    service.process(load_event("incident_view_update_account_a"), view, now=NOW, request_id="r")
    service.process(load_event("incident_view_update_account_b"), view, now=NOW, request_id="r")
    notifications(central)

    # A's instance: its instance-profile session, the central layout, the central bucket.
    env = fake_host(tmp_path)
    env.update(session(moto_reset, ACCOUNT_A, INSTANCE_ID))
    env.update(
        CRASHCART_BUCKET=BUCKET, CRASHCART_DUMP_LAYOUT="account", CRASHCART_ACCOUNT_ID=ACCOUNT_A
    )
    make_dump(Path(env["CRASHCART_CRASH_DIR"]), "202612052205")
    result = run_agent(env, "ship", endpoint=moto_reset)
    assert result.returncode == 0, result.stderr

    keys = [o["Key"] for o in central["s3"].list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert len(keys) == 3
    assert all(k.startswith(f"dumps/{ACCOUNT_A}/") and f":{INSTANCE_ID}/" in k for k in keys)
    (metadata_key,) = [k for k in keys if k.endswith("/metadata.json")]
    role_id = metadata_key.split("/")[2].split(":")[0]
    assert role_id.startswith("AROA")  # the session's aws:userid, not the bare instance id

    outcome = service.process(
        object_created_event(BUCKET, metadata_key), view, now=NOW, request_id="r4"
    )
    assert (outcome["outcome"], outcome["account"]) == ("attach", ACCOUNT_A)
    sk = "incident#2026-12-05T22:00:00Z"
    table = incidents(central["ddb"])
    a_item = table[(f"instance#{ACCOUNT_A}:{INSTANCE_ID}", sk)]
    b_item = table[(f"instance#{ACCOUNT_B}:{INSTANCE_ID}", sk)]
    assert [v["S"] for v in a_item["dump_keys"]["L"]] == [metadata_key]
    assert a_item["state"]["S"] == "interrupted"  # the member's state is the member's
    assert "dump_keys" not in b_item  # same instance id, other account: untouched
    (message,) = notifications(central)
    assert f"account {ACCOUNT_A}" in message and metadata_key in message
    # ... and tells A (only A), on A's default bus in this Region.
    (sent,) = central["hop"].sent
    assert sent["EventBusName"] == f"arn:aws:events:{REGION}:{ACCOUNT_A}:event-bus/default"
    assert json.loads(sent["Detail"])["dump_key"] == metadata_key

    # The triage job in the central account finds the incident the view linked.
    settings = TriageSettings(metadata_key, BUCKET, None, TABLE, central["topic"], tmp_path)
    triage = TriageAdapter(settings, central["s3"], central["ddb"], None)
    assert triage.incident_linking(parse_metadata_key(metadata_key)) == sk


def test_a_dump_without_the_account_segment_is_refused(central: dict[str, Any]) -> None:
    with pytest.raises(BadEventError, match="no account segment"):
        service.process(
            load_event("incident_view_dump_without_account"),
            central["view"],
            now=NOW,
            request_id="r",
        )
    assert incidents(central["ddb"]) == {}


def test_the_handler_logs_and_raises_a_refused_event(
    central: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = central["view"].settings
    monkeypatch.setenv("CRASHCART_TABLE_NAME", settings.table_name)
    monkeypatch.setenv("CRASHCART_TOPIC_ARN", settings.topic_arn)
    monkeypatch.setenv("CRASHCART_DUMP_BUCKET", settings.dump_bucket)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setattr(
        view_handler,
        "_CONTAINER",
        {"dynamodb": central["ddb"], "sns": central["view"].sns, "events": central["hop"]},
    )
    with pytest.raises(BadEventError):
        view_handler.handler(load_event("incident_view_update_b_claims_a"), None)
    (record,) = [r for r in caplog.records if r.name == "crashcart.incident_view"]
    logged = json.loads(record.getMessage())
    assert logged["outcome"] == "rejected"
    assert (
        f"detail.account {ACCOUNT_A} is not the sending account '{ACCOUNT_B}'" in logged["reason"]
    )
