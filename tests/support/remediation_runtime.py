"""Test helpers for the remediation function's RUNTIME (``crashcart.functions.remediation``).

(The construct's infra helpers live in ``tests/support/remediation.py``; this module imports
no CDK, so runtime tests stay fast.)

- :func:`load` gives the function's modules as attributes (``R.decision``, ``R.handler``):
  they are an ordinary package, imported like any other.
- :class:`Ec2Script` is THE TEST LAYER'S ADDITION to moto: moto 5.2.5 does not implement
  ``SendDiagnosticInterrupt`` and its ``DescribeInstanceStatus`` always answers ok. Installed
  on a boto3 EC2 client through botocore event hooks (``before-parameter-build`` to see the
  call's parameters, ``before-call`` to answer it), it answers ``SendDiagnosticInterrupt``
  (recording every call, honouring ``DryRun`` with ``DryRunOperation``, scripted errors) and
  returns scripted ``DescribeInstanceStatus`` states; everything else goes to moto. Nothing
  of this exists in the runtime code.
- :class:`World` builds the function's AWS resources on a moto server and the clients for
  ``handler.build``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from tests.support.incidents import create_incident_table

REPO_ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = REPO_ROOT / "crashcart" / "functions"
FOLDER = FUNCTIONS / "remediation"
#: The function's modules, in dependency order.
MODULES = (
    "settings",
    "events",
    "decision",
    "telemetry",
    "notify",
    "adapter",
    "breakers",
    "claims",
    "rejected",
    "org_breaker",
    "central_events",
    "sweep",
    "service",
    "handler",
)
TEST_ACCOUNT = "111111111111"
TEST_REGION = "eu-west-1"
PREFIX = "crashcart-test-"
FIXTURE_INSTANCE = "i-0123456789abcdef0"


def load() -> SimpleNamespace:
    """The remediation modules as attributes (``R.decision``, ``R.handler``, ...)."""
    package = "crashcart.functions.remediation"
    return SimpleNamespace(
        **{name: importlib.import_module(f"{package}.{name}") for name in MODULES}
    )


def runtime_sources() -> dict[str, str]:
    """``<function>/<file>`` -> text of every source file of every function package."""
    return {
        p.relative_to(FUNCTIONS).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(FUNCTIONS.glob("*/*.py"))
    }


# ------------------------------------------------------------------------------------------
# Settings, clock, events


def env(tag: str = "unit", **overrides: str) -> dict[str, str]:
    """Environment variables as the construct sets them, for the test resources of ``tag``."""
    values = {
        "CRASHCART_TABLE_NAME": f"crashcart-incidents-{tag}",
        "CRASHCART_TOPIC_ARN": f"arn:aws:sns:{TEST_REGION}:{TEST_ACCOUNT}:crashcart-notify-{tag}",
        "CRASHCART_EVIDENCE_BUCKET": f"crashcart-evidence-{tag}",
        "CRASHCART_REJECTED_QUEUE_URL": "",  # filled in by World.setup
        "CRASHCART_KILL_SWITCH_PARAMETER": f"/crashcart/{tag}/kill-switch",
        "CRASHCART_ALARM_NAME_PREFIX": PREFIX,
        "CRASHCART_OPT_IN_TAG_KEY": "crashcart:diagnostic-interrupt",
        "CRASHCART_OPT_IN_TAG_VALUE": "enabled",
        "CRASHCART_DRY_RUN": "false",
        "CRASHCART_BOOT_GRACE_SECONDS": "900",
        "CRASHCART_COOLDOWN_SECONDS": "21600",
        "CRASHCART_DAILY_BUDGET": "1",
        "CRASHCART_BREAKER_FLEET_THRESHOLD": "5",
        "CRASHCART_BREAKER_AZ_THRESHOLD": "3",
        "CRASHCART_BREAKER_WINDOW_SECONDS": "900",
        "CRASHCART_BREAKER_QUIET_SECONDS": "3600",
        "CRASHCART_ATTESTATION_POLICY": "require",
        "CRASHCART_ATTESTATION_MAX_AGE_SECONDS": "604800",
        "CRASHCART_ALLOW_UNVERIFIED_ARCH": "false",
        "CRASHCART_DUMP_DEADLINE_SECONDS": "1800",
        "CRASHCART_MAX_EVENT_AGE_SECONDS": "3600",
    }
    values.update(overrides)
    return values


def settings(**overrides: Any) -> Any:
    """A ``Settings`` object for unit tests (keyword overrides by field name)."""
    r = load()
    base: dict[str, Any] = {
        "table_name": "crashcart-incidents",
        "topic_arn": f"arn:aws:sns:{TEST_REGION}:{TEST_ACCOUNT}:crashcart-notify",
        "evidence_bucket": "crashcart-evidence",
        "rejected_queue_url": f"https://sqs.{TEST_REGION}.amazonaws.com/{TEST_ACCOUNT}/rejected",
        "kill_switch_parameter": "/crashcart/kill-switch",
        "alarm_name_prefix": PREFIX,
    }
    base.update(overrides)
    return r.settings.Settings(**base)


@dataclass
class Clock:
    """An injectable clock: aware UTC, moves only when told."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def after_launch_clock() -> Clock:
    """A clock for instances moto launched just now: 02:00 UTC tomorrow.

    That is at least two hours after the launch (past any boot grace) and leaves 22 hours
    before the next UTC midnight, when the daily interrupt budget resets, so a test that
    advances the clock by hours never sees the budget reset because of when it ran (a clock
    at "now + 2 h" crossed midnight for tests started after about 20:30 UTC).
    """
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    return Clock(tomorrow.replace(hour=2, minute=0, second=0, microsecond=0))


def event_time(moment: datetime) -> str:
    """CloudWatch's alarm-state timestamp format (``2026-11-26T05:19:49.123+0000``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def alarm_event(
    instance_id: str,
    *,
    at: datetime,
    state: str = "ALARM",
    previous: str = "OK",
    fixture: str = "remediation_alarm_ok_to_alarm",
) -> dict[str, Any]:
    """A documented-shape alarm event for ``instance_id`` entering ``state`` at ``at``.

    Every other timestamp of the fixture (the previous state's, a mute window) moves with
    the state's, so the event stays as consistent as the fixture was.
    """
    from tests.conftest import load_event

    text = json.dumps(load_event(fixture)).replace(FIXTURE_INSTANCE, instance_id)
    event: dict[str, Any] = json.loads(text)
    detail = event["detail"]
    delta = at - datetime.fromisoformat(detail["state"]["timestamp"])
    detail["state"]["value"] = state
    detail["state"]["timestamp"] = event_time(at)
    if "previousState" in detail:
        detail["previousState"]["value"] = previous
        before = datetime.fromisoformat(detail["previousState"]["timestamp"])
        detail["previousState"]["timestamp"] = event_time(before + delta)
    for bound in ("muteWindowStart", "muteWindowEnd"):
        if bound in detail.get("muteDetail", {}):
            moved = datetime.fromisoformat(detail["muteDetail"][bound]) + delta
            detail["muteDetail"][bound] = event_time(moved)
    event["time"] = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return copy.deepcopy(event)


# ------------------------------------------------------------------------------------------
# The test layer's EC2 additions (what moto 5.2.5 lacks)


def _answer(status: int, body: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    response = AWSResponse("https://ec2.test/", status, {}, None)
    body.setdefault("ResponseMetadata", {"RequestId": "test-layer", "HTTPStatusCode": status})
    return response, body


def _error(code: str, message: str, status: int = 400) -> tuple[AWSResponse, dict[str, Any]]:
    return _answer(status, {"Error": {"Code": code, "Message": message}})


STATUS_KINDS = (
    "impaired",
    "ok",
    "initializing",
    "insufficient-data",
    "system-impaired",
    "ebs-impaired",
    "scheduled-event",
    "completed-event-only",
    "no-ebs-status",
)


def status_entry(
    instance_id: str,
    kind: str,
    *,
    impaired_since: datetime | None = None,
    az: str = "eu-west-1a",
) -> dict[str, Any]:
    """A DescribeInstanceStatus entry for a scripted state (one of :data:`STATUS_KINDS`).

    ``impaired``: instance check failed with ``ImpairedSince``, system and EBS ok;
    the others change one thing from that (``ok`` = moto's answer).
    """
    if kind not in STATUS_KINDS:
        raise ValueError(kind)
    since = impaired_since or datetime(2026, 11, 26, 5, 15, tzinfo=UTC)
    passed = [{"Name": "reachability", "Status": "passed"}]
    failed = [{"Name": "reachability", "Status": "failed", "ImpairedSince": since}]
    instance_status: dict[str, Any] = {"Status": "impaired", "Details": failed}
    system: dict[str, Any] = {"Status": "ok", "Details": passed}
    ebs: dict[str, Any] | None = {"Status": "ok", "Details": passed}
    events: list[dict[str, Any]] = []
    if kind == "ok":
        instance_status = {"Status": "ok", "Details": passed}
    elif kind == "initializing":
        instance_status = {
            "Status": "initializing",
            "Details": [{"Name": "reachability", "Status": "initializing"}],
        }
    elif kind == "insufficient-data":
        instance_status = {"Status": "insufficient-data", "Details": []}
    elif kind == "system-impaired":
        system = {"Status": "impaired", "Details": failed}
    elif kind == "ebs-impaired":
        ebs = {"Status": "impaired", "Details": failed}
    elif kind == "scheduled-event":
        events = [
            {"Code": "system-reboot", "Description": "scheduled reboot", "NotBefore": since},
            {"Code": "instance-stop", "Description": "[Completed] old event"},
        ]
    elif kind == "completed-event-only":
        events = [{"Code": "instance-stop", "Description": "[Completed] old event"}]
    elif kind == "no-ebs-status":
        ebs = None
    entry: dict[str, Any] = {
        "InstanceId": instance_id,
        "AvailabilityZone": az,
        "InstanceState": {"Code": 16, "Name": "running"},
        "InstanceStatus": instance_status,
        "SystemStatus": system,
        "Events": events,
    }
    if ebs is not None:
        entry["AttachedEbsStatus"] = ebs
    return entry


@dataclass
class Ec2Script:
    """Test-layer answers for what moto lacks (see the module docstring).

    - ``statuses``: instance id -> DescribeInstanceStatus entry (:func:`status_entry`);
      ``default_status``: a kind for every instance without an entry (None: moto answers).
    - ``interrupt_answers``: instance id -> answers consumed in order: ``"ok"``, an error
      code (``"UnsupportedOperation"`` ...; ``InternalError`` / ``ServiceUnavailable`` are
      HTTP 5xx), ``"timeout"`` (ReadTimeoutError after the request reached EC2),
      ``"connect"`` (EndpointConnectionError: never sent). Nothing scripted: ``"ok"``.
    - ``interrupts``: every SendDiagnosticInterrupt call seen; with ``record_path`` each is
      also appended to that file as a JSON line (O_APPEND), so calls made in other
      processes can be counted.
    - The missed-alarm sweep's listing (``DescribeInstanceStatus`` without ids, filtered on
      ``instance-status.status``): moto ignores that filter and never reports ``impaired``,
      so the listing is answered here from ``statuses`` (in insertion order) plus
      ``phantom_impaired`` (ids of impaired instances that do not exist in moto, to make
      pages without launching thousands of instances), ``MaxResults`` at a time with a
      ``NextToken``; each call's parameters are kept in ``listings``.
    """

    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    default_status: str | None = None
    interrupt_answers: dict[str, list[str]] = field(default_factory=dict)
    interrupts: list[dict[str, Any]] = field(default_factory=list)
    record_path: Path | None = None
    phantom_impaired: list[str] = field(default_factory=list)
    listings: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, client: Any) -> Any:
        events = client.meta.events
        events.register("before-parameter-build.ec2.SendDiagnosticInterrupt", self._remember)
        events.register("before-parameter-build.ec2.DescribeInstanceStatus", self._remember)
        events.register("before-call.ec2.SendDiagnosticInterrupt", self._interrupt)
        events.register("before-call.ec2.DescribeInstanceStatus", self._status)
        return client

    @staticmethod
    def _remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["crashcart_test_params"] = dict(params)

    def _status(self, context: dict[str, Any], **_: Any) -> Any:
        params = context.get("crashcart_test_params", {})
        if not params.get("InstanceIds") and params.get("Filters"):
            return self._listing(params)
        entries = []
        for instance_id in params.get("InstanceIds", []):
            if instance_id in self.statuses:
                entries.append(self.statuses[instance_id])
            elif self.default_status is not None:
                entries.append(status_entry(instance_id, self.default_status))
            else:
                return None  # moto answers
        return _answer(200, {"InstanceStatuses": entries})

    def _listing(self, params: dict[str, Any]) -> Any:
        filters = {f["Name"]: list(f["Values"]) for f in params["Filters"]}
        wanted = filters.get("instance-status.status", [])
        with self._lock:
            self.listings.append(copy.deepcopy(params))
        entries = [e for e in self.statuses.values() if e["InstanceStatus"]["Status"] in wanted]
        if "impaired" in wanted:
            entries += [status_entry(i, "impaired") for i in self.phantom_impaired]
        size = int(params.get("MaxResults", 1000))
        start = int(params.get("NextToken") or 0)
        body: dict[str, Any] = {"InstanceStatuses": entries[start : start + size]}
        if start + size < len(entries):
            body["NextToken"] = str(start + size)
        return _answer(200, body)

    def _interrupt(self, context: dict[str, Any], **_: Any) -> Any:
        from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

        params = context.get("crashcart_test_params", {})
        instance_id = str(params.get("InstanceId", ""))
        dry_run = bool(params.get("DryRun", False))
        with self._lock:
            queue = self.interrupt_answers.get(instance_id, [])
            answer = queue.pop(0) if queue else "ok"
        endpoint = f"https://ec2.{TEST_REGION}.amazonaws.com/"
        if answer == "connect":
            self._record(instance_id, dry_run, answer)
            raise EndpointConnectionError(endpoint_url=endpoint)
        self._record(instance_id, dry_run, answer)
        if answer == "timeout":
            raise ReadTimeoutError(endpoint_url=endpoint)
        if answer == "ok":
            if dry_run:
                return _error(
                    "DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412
                )
            return _answer(
                200,
                {"ResponseMetadata": {"RequestId": f"req-{instance_id}", "HTTPStatusCode": 200}},
            )
        status = 500 if answer in ("InternalError", "ServiceUnavailable") else 400
        return _error(answer, f"scripted {answer}", status)

    def _record(self, instance_id: str, dry_run: bool, answer: str) -> None:
        entry = {"InstanceId": instance_id, "DryRun": dry_run, "answer": answer, "pid": os.getpid()}
        with self._lock:
            self.interrupts.append(entry)
        if self.record_path is not None:
            fd = os.open(self.record_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (json.dumps(entry) + "\n").encode())
            finally:
                os.close(fd)

    def sent(self) -> list[dict[str, Any]]:
        """Real (not DryRun) calls that reached EC2 and were accepted or timed out."""
        return [c for c in self.interrupts if not c["DryRun"] and c["answer"] in ("ok", "timeout")]


def recorded_interrupts(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------
# A moto world

FAST = Config(
    retries={"mode": "standard", "total_max_attempts": 2}, connect_timeout=5, read_timeout=30
)


_IMAGE_IDS: dict[str, str] = {}


def unique_tag() -> str:
    import uuid

    return uuid.uuid4().hex[:10]


@dataclass
class World:
    """The function's resources on a moto server, plus a capture queue subscribed to the topic.

    Every world has its own table, bucket, topic, queues and kill-switch parameter (names
    carry ``tag``), so tests share one moto server without resetting it: a reset makes moto
    reload its EC2 and SSM defaults, which costs seconds per test.
    """

    url: str
    script: Ec2Script = field(default_factory=Ec2Script)
    tag: str = field(default_factory=unique_tag)
    env: dict[str, str] = field(default_factory=dict)
    image_id: str = ""
    capture_queue_url: str = ""
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str, config: Config | None = None) -> Any:
        if config is None and service in self._clients:
            return self._clients[service]
        made = boto3.client(
            service, endpoint_url=self.url, region_name=TEST_REGION, config=config or FAST
        )
        if config is None:
            self._clients[service] = made
        return made

    def __post_init__(self) -> None:
        if not self.env:
            self.env = env(self.tag)

    def setup(self, *, kill_switch: str | None = "off") -> World:
        ddb = self.client("dynamodb")
        create_incident_table(ddb, self.env["CRASHCART_TABLE_NAME"])
        self.client("s3").create_bucket(
            Bucket=self.env["CRASHCART_EVIDENCE_BUCKET"],
            CreateBucketConfiguration={"LocationConstraint": TEST_REGION},
        )
        sns = self.client("sns")
        topic = sns.create_topic(Name=f"crashcart-notify-{self.tag}")["TopicArn"]
        self.env["CRASHCART_TOPIC_ARN"] = topic
        sqs = self.client("sqs")
        self.env["CRASHCART_REJECTED_QUEUE_URL"] = sqs.create_queue(
            QueueName=f"rejected-{self.tag}"
        )["QueueUrl"]
        self.capture_queue_url = sqs.create_queue(QueueName=f"captured-{self.tag}")["QueueUrl"]
        capture_arn = sqs.get_queue_attributes(
            QueueUrl=self.capture_queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=capture_arn)
        if kill_switch is not None:
            self.client("ssm").put_parameter(
                Name=self.env["CRASHCART_KILL_SWITCH_PARAMETER"], Value=kill_switch, Type="String"
            )
        if self.url not in _IMAGE_IDS:
            images = self.client("ec2").describe_images(
                Filters=[{"Name": "architecture", "Values": ["x86_64"]}]
            )
            _IMAGE_IDS[self.url] = images["Images"][0]["ImageId"]
        self.image_id = _IMAGE_IDS[self.url]
        return self

    def settings(self) -> Any:
        return load().settings.Settings.from_env(self.env)

    def teardown(self) -> None:
        """Delete the world's table: moto copies every table of the region on each
        TransactWriteItems, so tables left behind slow every later test down."""
        ddb = self.client("dynamodb")
        with contextlib.suppress(ddb.exceptions.ResourceNotFoundException):
            ddb.delete_table(TableName=f"crashcart-incidents-{self.tag}")

    def instances(
        self,
        count: int = 1,
        *,
        clock: Clock,
        instance_type: str = "m5.large",
        az: str = "eu-west-1a",
        opted_in: bool = True,
        attestation: str | None = "armed",
        status: str | None = "impaired",
    ) -> list[str]:
        """Launch ``count`` tagged instances; script their status (``status=None``: moto's)."""
        tags = [{"Key": "Name", "Value": "crashcart-test"}]
        if opted_in:
            tags.append({"Key": "crashcart:diagnostic-interrupt", "Value": "enabled"})
        if attestation == "armed":
            attestation = f"armed {(clock() - timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%SZ')}"
        if attestation:
            tags.append({"Key": "crashcart:kdump-attestation", "Value": attestation})
        response = self.client("ec2").run_instances(
            ImageId=self.image_id,
            MinCount=count,
            MaxCount=count,
            InstanceType=instance_type,
            Placement={"AvailabilityZone": az},
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
        ids = [str(i["InstanceId"]) for i in response["Instances"]]
        if status is not None:
            for instance_id in ids:
                self.script.statuses[instance_id] = status_entry(instance_id, status, az=az)
        return ids

    def clients(self) -> dict[str, Any]:
        """Clients for ``handler.build`` (both EC2 clients carry the test layer)."""
        r = load()
        return {
            "ec2": self.script.install(self.client("ec2", FAST)),
            "ec2_interrupt": self.script.install(self.client("ec2", r.handler.INTERRUPT_CONFIG)),
            "ssm": self.client("ssm"),
            "dynamodb": self.client("dynamodb"),
            "sns": self.client("sns"),
            "s3": self.client("s3"),
            "sqs": self.client("sqs"),
            "type_cache": r.adapter.TypeCache(),
        }

    # -- observations ----------------------------------------------------------------------

    def notifications(self) -> list[dict[str, str]]:
        """Every SNS message published so far (subject, message), drained from the capture queue."""
        sqs = self.client("sqs")
        out: list[dict[str, str]] = []
        while True:
            response = sqs.receive_message(
                QueueUrl=self.capture_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            messages = response.get("Messages", [])
            if not messages:
                return out
            for message in messages:
                body = json.loads(message["Body"])
                out.append({"subject": body.get("Subject", ""), "message": body.get("Message", "")})
                sqs.delete_message(
                    QueueUrl=self.capture_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def rejected(self) -> list[dict[str, Any]]:
        sqs = self.client("sqs")
        out: list[dict[str, Any]] = []
        while True:
            response = sqs.receive_message(
                QueueUrl=self.env["CRASHCART_REJECTED_QUEUE_URL"], MaxNumberOfMessages=10
            )
            messages = response.get("Messages", [])
            if not messages:
                return out
            for message in messages:
                out.append(json.loads(message["Body"]))
                sqs.delete_message(
                    QueueUrl=self.env["CRASHCART_REJECTED_QUEUE_URL"],
                    ReceiptHandle=message["ReceiptHandle"],
                )

    def item(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self.client("dynamodb").get_item(
            TableName=self.env["CRASHCART_TABLE_NAME"],
            Key={"pk": {"S": pk}, "sk": {"S": sk}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return plain(item) if item else None

    def incidents(self, instance_id: str) -> list[dict[str, Any]]:
        response = self.client("dynamodb").query(
            TableName=self.env["CRASHCART_TABLE_NAME"],
            KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
            ExpressionAttributeValues={
                ":pk": {"S": f"instance#{instance_id}"},
                ":p": {"S": "incident#"},
            },
        )
        return [plain(i) for i in response.get("Items", [])]

    def evidence(self) -> dict[str, str]:
        s3 = self.client("s3")
        bucket = self.env["CRASHCART_EVIDENCE_BUCKET"]
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read().decode() for k in keys}


class _OncePerTransactionCopy:
    """Stands in for the ``copy`` module inside ``moto.dynamodb.models``.

    moto's TransactWriteItems backs up the *whole table* once per item of the transaction
    (so a 4-item claim copies the table 4 times, before changing anything). Copying it once
    per transaction is the same backup; this makes the 200-instance burst test ~4x cheaper.
    A performance shim of the test layer only: no behaviour of moto changes.
    """

    def __init__(self) -> None:
        import copy as real

        self._real = real
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def start(self) -> None:
        self._local.cache = {}

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        cache = getattr(self._local, "cache", None)
        if cache is None or not isinstance(value, Table):
            return self._real.deepcopy(value, memo)
        if id(value) not in cache:
            cache[id(value)] = self._real.deepcopy(value, memo)
        return cache[id(value)]


@contextmanager
def moto_backs_up_each_table_once() -> Iterator[None]:
    """Install :class:`_OncePerTransactionCopy` in moto's DynamoDB backend (in this process,
    where the ThreadedMotoServer runs) for the duration of the block."""
    import moto.dynamodb.models as models

    shim = _OncePerTransactionCopy()
    original_copy = models.copy
    original_transact = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: Any) -> Any:
        shim.start()
        try:
            return original_transact(self, transact_items)
        finally:
            shim._local.cache = None

    models.copy = shim  # type: ignore[assignment]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    try:
        yield
    finally:
        models.copy = original_copy
        models.DynamoDBBackend.transact_write_items = original_transact  # type: ignore[method-assign]


@contextmanager
def moto_dynamodb_serialized() -> Iterator[None]:
    """Serialize moto's DynamoDB requests (in this process, where the ThreadedMotoServer runs).

    Real DynamoDB transactions are serializable; moto's server handles requests in threads
    and checks a transaction's conditions and applies it without a lock, so two concurrent
    transactions could interleave there and both "succeed" - a moto artefact that would
    make a concurrency test flaky for reasons that are not ours. One lock around each
    DynamoDB request restores the isolation the real service gives.
    """
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    original = DynamoHandler.call_action

    def serialized(self: Any) -> Any:
        with lock:
            return original(self)

    DynamoHandler.call_action = serialized  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoHandler.call_action = original  # type: ignore[method-assign]


def plain(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB attribute values -> plain Python values."""
    out: dict[str, Any] = {}
    for name, value in item.items():
        if "S" in value:
            out[name] = value["S"]
        elif "N" in value:
            out[name] = int(value["N"])
        elif "BOOL" in value:
            out[name] = value["BOOL"]
        elif "L" in value:
            out[name] = [v.get("S") for v in value["L"]]
        else:
            out[name] = value
    return out


class MemoryLog:
    """A ``telemetry.Log`` writing to memory, with the records parsed back."""

    def __init__(
        self, clock: Callable[[], datetime], function_name: str = "crashcart-test"
    ) -> None:
        self.stream = io.StringIO()
        self.log = load().telemetry.Log(
            clock=clock, stream=self.stream, function_name=function_name
        )

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]


class Context:
    """The Lambda context attributes the handler reads (as ``tests.conftest.FakeLambdaContext``,
    without importing pytest into spawned processes)."""

    function_name = "crashcart-test"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    invoked_function_arn = f"arn:aws:lambda:{TEST_REGION}:{TEST_ACCOUNT}:function:crashcart-test"


def build(
    world: World,
    clock: Clock,
    *,
    clients: dict[str, Any] | None = None,
    log: Any = None,
    sleeps: list[float] | None = None,
) -> Any:
    """``handler.build`` over the world's clients, an injected clock and a recording sleep."""
    recorded = sleeps if sleeps is not None else []
    return load().handler.build(
        world.settings(),
        Context(),
        clients=clients or world.clients(),
        clock=clock,
        sleep=recorded.append,
        log=log,
    )


# ------------------------------------------------------------------------------------------
# Separate processes (multiprocessing, spawn)


def deliver_in_child(
    args: tuple[str, dict[str, str], dict[str, Any], str, str, Any, int],
) -> list[dict[str, Any]]:
    """Runs in a spawned process: deliver ``event`` ``threads`` times at once.

    ``args``: (moto URL, env, event, record path, clock ISO, barrier, threads). Every thread
    waits on the one barrier shared by all processes, so all deliveries start together. The
    EC2 test layer appends each interrupt to the shared record file, so the parent counts
    the interrupts of every process.
    """
    from concurrent.futures import ThreadPoolExecutor

    url, environment, event, record_path, clock_iso, barrier, threads = args
    script = Ec2Script(record_path=Path(record_path), default_status="impaired")
    world = World(url=url, script=script, tag="child", env=dict(environment))
    clock = Clock(datetime.fromisoformat(clock_iso))
    clients = world.clients()
    services = [
        build(world, clock, clients=clients, log=MemoryLog(clock).log) for _ in range(threads)
    ]

    def one(service: Any) -> dict[str, Any]:
        barrier.wait(timeout=300)
        try:
            return {"ok": True, "pid": os.getpid(), **service.handle(event)}
        except Exception as error:  # reported to the parent, which asserts on it
            return {"ok": False, "error": f"{type(error).__name__}: {error}"}

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, services))


def spawn_deliveries(
    deliveries: int,
    *,
    processes: int,
    url: str,
    environment: dict[str, str],
    event: dict[str, Any],
    record_path: Path,
    clock_iso: str,
) -> list[dict[str, Any]]:
    """Deliver ``event`` ``deliveries`` times from ``processes`` spawned processes (each
    running ``deliveries // processes`` threads), all released together by one barrier.
    ``processes == deliveries`` gives every delivery its own process."""
    import multiprocessing

    if deliveries % processes:
        raise ValueError("deliveries must be a multiple of processes")
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(deliveries)
        job = (
            url,
            environment,
            event,
            str(record_path),
            clock_iso,
            barrier,
            deliveries // processes,
        )
        with context.Pool(processes=processes) as pool:
            per_process = pool.map(deliver_in_child, [job] * processes, chunksize=1)
    return [result for results in per_process for result in results]
