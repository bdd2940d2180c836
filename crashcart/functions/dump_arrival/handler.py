"""Dump arrival: a crash dump's metadata.json was written -> incident update + notification.

Flow: EventBridge "Object Created" (S3) -> parse (the key URL-decoded once, then checked
against the key grammar; bad event: reason logged, raised, so the
event ends in the dead-letter queue after Lambda's retries; nothing is changed) -> read
metadata.json and dmesg.txt -> first summary from the kernel log (panic string, reason, the
backtrace the kernel printed) -> decide: attach to the instance's latest incident, or open a
``spontaneous`` one -> write (conditional) -> SNS notification.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import ClientError

from crashcart.runtime import environment as variables
from crashcart.runtime import notification
from crashcart.runtime.dumps import BadKeyError, DumpKey, parse_metadata_key
from crashcart.runtime.incident import (
    INCIDENT_PREFIX,
    Origin,
    State,
    incident_sk,
    instance_pk,
    iso,
    parse_time,
)
from crashcart.runtime.kernel_log import summarize

LOG = logging.getLogger("crashcart.dump_arrival")
LOG.setLevel(logging.INFO)

MAX_METADATA_BYTES = 64 * 1024
MAX_DMESG_BYTES = 4 * 1024 * 1024
#: The files a dump folder may list: the agent writes "vmcore" and "dmesg.txt".
MAX_FILES = 16
#: A file name in metadata.json: one path segment, no leading dot ("." / ".." / hidden).
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class BadEventError(ValueError):
    """The event is not a dump arrival we can act on; the message says why."""


@dataclass(frozen=True)
class Settings:
    table_name: str
    topic_arn: str
    attach_window: timedelta

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        missing = [
            name for name in (variables.TABLE_NAME, variables.TOPIC_ARN) if not env.get(name)
        ]
        if missing:
            raise RuntimeError(f"missing environment variables: {', '.join(missing)}")
        raw = env.get(variables.ATTACH_WINDOW_SECONDS, "21600")
        try:
            seconds = int(raw)
        except ValueError:
            raise RuntimeError(
                f"CRASHCART_ATTACH_WINDOW_SECONDS={raw!r} is not an integer"
            ) from None
        if seconds <= 0:
            raise RuntimeError(f"CRASHCART_ATTACH_WINDOW_SECONDS={seconds} must be positive")
        return cls(env[variables.TABLE_NAME], env[variables.TOPIC_ARN], timedelta(seconds=seconds))


@dataclass(frozen=True)
class DumpArrival:
    bucket: str
    key: str
    instance_id: str
    dump_id: str

    @property
    def prefix(self) -> str:
        return self.key.rsplit("/", 1)[0] + "/"


@dataclass(frozen=True)
class Incident:
    sk: str
    opened_at: datetime
    state: str
    dump_keys: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    action: str  # "attach" | "open" | "duplicate"
    incident_sk: str
    reason: str


def parse_key(raw: str) -> DumpKey:
    """The dump the event's key names (decoded once: aws-assumption: s3-event-key-encoding)."""
    try:
        return parse_metadata_key(raw)
    except BadKeyError as error:
        raise BadEventError(str(error)) from None


def parse_event(event: Any) -> DumpArrival:
    """The bucket and key of an EventBridge S3 "Object Created" event for a metadata.json."""
    if not isinstance(event, dict):
        raise BadEventError(f"event is a {type(event).__name__}, not an object")
    if event.get("source") != "aws.s3" or event.get("detail-type") != "Object Created":
        raise BadEventError(
            f"not an S3 Object Created event (source={event.get('source')!r}, "
            f"detail-type={event.get('detail-type')!r})"
        )
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise BadEventError("event has no detail object")
    bucket = (detail.get("bucket") or {}).get("name")
    key = (detail.get("object") or {}).get("key")
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str):
        raise BadEventError("event detail lacks bucket.name or object.key")
    dump = parse_key(key)
    return DumpArrival(bucket, dump.key, dump.instance_id, dump.dump_id)


def parse_metadata(raw: bytes, arrival: DumpArrival) -> dict[str, Any]:
    """metadata.json as written by the agent; its instance must be the key's instance."""
    try:
        metadata = json.loads(raw)
    except ValueError as error:
        raise BadEventError(f"{arrival.key} is not JSON: {str(error)[:200]}") from None
    except RecursionError:
        # Written by the instance, so possibly hostile: deep nesting is refused, not a crash.
        raise BadEventError(f"{arrival.key} is nested too deeply to be a metadata.json") from None
    if not isinstance(metadata, dict):
        raise BadEventError(f"{arrival.key} is not a JSON object")
    named = metadata.get("instance_id")
    if named != arrival.instance_id:
        shown = repr(named[:40]) if isinstance(named, str) else type(named).__name__
        raise BadEventError(
            f"{arrival.key} names instance {shown}, but was written under the prefix of "
            f"{arrival.instance_id}"
        )
    files = metadata.get("files")
    if (
        not isinstance(files, list)
        or not 1 <= len(files) <= MAX_FILES
        or not all(
            isinstance(f, dict)
            and isinstance(f.get("name"), str)
            and FILE_NAME.fullmatch(f["name"])
            for f in files
        )
    ):
        raise BadEventError(
            f"{arrival.key} has no valid 'files' list (1-{MAX_FILES} entries, each a plain "
            "file name: letters, digits and ._-, not starting with a dot)"
        )
    return metadata


def decide(latest: Incident | None, arrival_key: str, now: datetime, window: timedelta) -> Decision:
    """Attach the dump to the latest incident, or open a spontaneous one."""
    new_sk = incident_sk(iso(now))
    if latest is None:
        return Decision("open", new_sk, "no incident for this instance")
    if arrival_key in latest.dump_keys:
        return Decision("duplicate", latest.sk, "this dump is already linked (event repeated)")
    if latest.dump_keys:
        return Decision("open", new_sk, "the latest incident already has a dump")
    if now - latest.opened_at > window:
        return Decision(
            "open",
            new_sk,
            f"the latest incident was opened {iso(latest.opened_at)}, before the "
            f"{int(window.total_seconds())} s window",
        )
    return Decision("attach", latest.sk, f"dump for incident opened {iso(latest.opened_at)}")


class Adapter:
    """AWS calls, with injected clients."""

    def __init__(self, settings: Settings, s3: Any, dynamodb: Any, sns: Any) -> None:
        self.settings = settings
        self.s3 = s3
        self.dynamodb = dynamodb
        self.sns = sns

    def read(self, bucket: str, key: str, limit: int) -> bytes | None:
        try:
            response = self.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{limit - 1}")
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404", "InvalidRange"):
                return None
            raise
        data: bytes = response["Body"].read()
        return data

    def latest_incident(self, instance_id: str) -> Incident | None:
        response = self.dynamodb.query(
            TableName=self.settings.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": {"S": instance_pk(instance_id)},
                ":prefix": {"S": INCIDENT_PREFIX},
            },
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = response.get("Items") or []
        if not items:
            return None
        item = items[0]
        sk = item["sk"]["S"]
        opened = item.get("opened_at", {}).get("S") or sk.removeprefix(INCIDENT_PREFIX)
        keys = tuple(value["S"] for value in item.get("dump_keys", {}).get("L", []))
        return Incident(sk, parse_time(opened), item.get("state", {}).get("S", ""), keys)

    def attach(self, instance_id: str, sk: str, keys: list[str], summary: str, now: str) -> bool:
        try:
            self.dynamodb.update_item(
                TableName=self.settings.table_name,
                Key={"pk": {"S": instance_pk(instance_id)}, "sk": {"S": sk}},
                UpdateExpression=(
                    "SET #state = :state, dump_keys = :keys, summary = :summary, updated_at = :now"
                ),
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(dump_keys)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":state": {"S": State.DUMP_RECEIVED},
                    ":keys": {"L": [{"S": key} for key in keys]},
                    ":summary": {"S": summary},
                    ":now": {"S": now},
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def open(
        self,
        instance_id: str,
        sk: str,
        keys: list[str],
        summary: str,
        reason: str,
        request_id: str,
    ) -> bool:
        opened = sk.removeprefix(INCIDENT_PREFIX)
        try:
            self.dynamodb.put_item(
                TableName=self.settings.table_name,
                Item={
                    "pk": {"S": instance_pk(instance_id)},
                    "sk": {"S": sk},
                    "instance_id": {"S": instance_id},
                    "state": {"S": State.DUMP_RECEIVED},
                    "origin": {"S": Origin.SPONTANEOUS},
                    "opened_at": {"S": opened},
                    "updated_at": {"S": opened},
                    "reason": {"S": reason},
                    "request_id": {"S": request_id},
                    "dump_keys": {"L": [{"S": key} for key in keys]},
                    "summary": {"S": summary},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def notify(self, subject: str, message: str) -> None:
        # The subject quotes the kernel's panic line (from the instance): SNS refuses control
        # and non-ASCII characters there, and a refused publish after the incident was
        # written would lose the notification on the retry (it finds a duplicate).
        safe = notification.subject(subject, fallback="crashcart: dump")
        self.sns.publish(TopicArn=self.settings.topic_arn, Subject=safe, Message=message)


def process(event: Any, adapter: Adapter, *, now: datetime, request_id: str) -> dict[str, Any]:
    arrival = parse_event(event)
    raw = adapter.read(arrival.bucket, arrival.key, MAX_METADATA_BYTES)
    if raw is None:
        raise BadEventError(f"{arrival.key} does not exist (deleted, or a replayed event)")
    metadata = parse_metadata(raw, arrival)
    names = [str(f["name"]) for f in metadata["files"]]
    keys = [arrival.prefix + name for name in names] + [arrival.key]
    dmesg_name = next((n for n in names if n.startswith("dmesg")), None)
    dmesg = (
        adapter.read(arrival.bucket, arrival.prefix + dmesg_name, MAX_DMESG_BYTES)
        if dmesg_name
        else None
    )
    if dmesg is not None:
        panic = summarize(dmesg.decode("utf-8", errors="replace"))
        summary = panic.one_line()
        trace = panic.panic_backtrace
        backtrace_text = "\n".join(trace.frames) if trace else "(no backtrace in the log)"
    else:
        summary = "no dmesg file was shipped with this dump: run triage on the vmcore"
        backtrace_text = "(no kernel log)"

    for _attempt in range(3):
        latest = adapter.latest_incident(arrival.instance_id)
        decision = decide(latest, arrival.key, now, adapter.settings.attach_window)
        if decision.action == "duplicate":
            LOG.info(json.dumps({"outcome": "duplicate", "key": arrival.key}))
            return {"outcome": "duplicate", "incident": decision.incident_sk}
        if decision.action == "attach":
            done = adapter.attach(
                arrival.instance_id, decision.incident_sk, keys, summary, iso(now)
            )
        else:
            done = adapter.open(
                arrival.instance_id,
                decision.incident_sk,
                keys,
                summary,
                f"dump arrived: {decision.reason}",
                request_id,
            )
        if done:
            break
        now = now + timedelta(seconds=1)  # lost a race: decide again on fresh facts
    else:
        raise RuntimeError(f"could not record the dump {arrival.key} after 3 attempts")

    origin = Origin.SPONTANEOUS if decision.action == "open" else Origin.REMEDIATION
    message = "\n".join(
        [
            f"crashcart: crash dump received from {arrival.instance_id}",
            "",
            f"incident:  {decision.incident_sk} ({origin}; {decision.reason})",
            f"kernel:    {metadata.get('kernel_release', '?')} "
            f"(build id {metadata.get('build_id', '?')})",
            f"dump time: {metadata.get('dump_time', '?')}",
            f"summary:   {summary}",
            "",
            "backtrace printed by the kernel:",
            backtrace_text,
            "",
            "objects:",
            *[f"  s3://{arrival.bucket}/{key}" for key in keys],
            "",
            f"full report: crashcart triage <vmcore> --vmlinux <debug vmlinux of "
            f"{metadata.get('kernel_release', 'the kernel')}>",
        ]
    )
    adapter.notify(f"crashcart: dump from {arrival.instance_id}: {summary}", message)
    result = {
        "outcome": decision.action,
        "incident": decision.incident_sk,
        "instance_id": arrival.instance_id,
        "summary": summary,
    }
    LOG.info(json.dumps(result))
    return result


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    adapter = Adapter(settings, boto3.client("s3"), boto3.client("dynamodb"), boto3.client("sns"))
    try:
        return process(
            event,
            adapter,
            now=datetime.now(UTC),
            request_id=getattr(context, "aws_request_id", "unknown"),
        )
    except BadEventError as error:
        # No action; raising keeps the event (Lambda retries, then the dead-letter queue).
        LOG.error(json.dumps({"outcome": "rejected", "reason": str(error)}))
        raise
