"""The full-report triage job: one shipped crash dump -> report.md + report.json, incident updated.

Runs as an ECS Fargate task (``DumpTriageJob``), started by EventBridge when a dump's
``metadata.json`` is written (the agent writes it last, so the dump is complete). The task's
environment names the dump and where things go:

- ``CRASHCART_METADATA_KEY``: ``dumps/<role id>:<instance id>/<dump id>/metadata.json``, as
  the S3 event names it (URL-decoded once, then checked);
- ``CRASHCART_DUMP_BUCKET``: the crash-dump bucket (reports go to its ``reports/`` prefix);
- ``CRASHCART_SYMBOL_BUCKET``: the debug-symbol store (``symbols/<build id>/vmlinux``),
  optional: without it (or without symbols for the dump's build id) the report is made from
  the dump's own kernel log, and says what is missing;
- ``CRASHCART_TABLE_NAME``, ``CRASHCART_TOPIC_ARN``: the incident table and topic;
- ``CRASHCART_WORK_DIR``: scratch space for the dump and the vmlinux (the task's ephemeral
  storage). Default: the system's temporary directory.

Flow: check the key -> read and check metadata.json -> room on disk for the dump (and the
symbols) -> download the vmcore (checksum verified) and dmesg -> look the debug vmlinux up by
build id -> ``triage`` (a vmlinux that does not match is dropped, not fatal) -> write the
report under ``reports/<owner>/<dump id>/`` -> add its keys to the incident that links the
dump (waiting for the dump-arrival function to link it) -> notify.

Exit codes: 0 a report was written; 2 bad input (the key, the metadata, the dump itself), the
reason logged and, where the instance is known, recorded on its incident and notified;
3 an unexpected failure (AWS errors after retries). The dump is never modified or deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crashcart.errors import ConfigurationError
from crashcart.runtime import environment as variables
from crashcart.runtime.dumps import BadKeyError, DumpKey, parse_metadata_key
from crashcart.runtime.incident import INCIDENT_PREFIX, instance_pk, iso
from crashcart.runtime.notification import subject as sns_subject
from crashcart.runtime.objects import read_head
from crashcart.symbol_layout import normalize_build_id, symbol_key
from crashcart.triage.core import TriageError, triage
from crashcart.triage.report import Report, render_markdown, to_json

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_FAILURE = 3

MAX_METADATA_BYTES = 64 * 1024
#: Kept free on the scratch disk beyond the files, for drgn's and the OS's own use.
DISK_HEADROOM_BYTES = 512 * 1024 * 1024
FRAMES_IN_NOTIFICATION = 12


class BadInputError(ValueError):
    """The dump cannot be triaged as shipped; the message says why."""


@dataclass(frozen=True)
class Settings:
    metadata_key: str
    dump_bucket: str
    symbol_bucket: str | None
    table_name: str
    topic_arn: str
    work_dir: Path
    #: How long to wait for the dump-arrival function to link the dump to an incident.
    link_wait_seconds: float = 120.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        required = (
            variables.METADATA_KEY,
            variables.DUMP_BUCKET,
            variables.TABLE_NAME,
            variables.TOPIC_ARN,
        )
        missing = [name for name in required if not env.get(name)]
        if missing:
            raise BadInputError(f"missing environment variables: {', '.join(missing)}")
        wait = env.get(variables.LINK_WAIT_SECONDS, "120")
        try:
            link_wait = float(wait)
        except ValueError:
            raise BadInputError(f"CRASHCART_LINK_WAIT_SECONDS={wait!r} is not a number") from None
        return cls(
            metadata_key=env[variables.METADATA_KEY],
            dump_bucket=env[variables.DUMP_BUCKET],
            symbol_bucket=env.get(variables.SYMBOL_BUCKET) or None,
            table_name=env[variables.TABLE_NAME],
            topic_arn=env[variables.TOPIC_ARN],
            work_dir=Path(env.get(variables.WORK_DIR) or tempfile.gettempdir()),
            link_wait_seconds=max(0.0, link_wait),
        )


@dataclass(frozen=True)
class ShippedFile:
    name: str
    size: int
    sha256: str | None


@dataclass(frozen=True)
class DumpMetadata:
    kernel_release: str | None
    build_id: str | None
    vmcore: ShippedFile | None
    dmesg: ShippedFile | None


@dataclass
class Outcome:
    """What the job did; logged as one JSON line and returned by :func:`process`."""

    outcome: str
    key: str
    instance_id: str | None = None
    reason: str | None = None
    report_keys: list[str] = field(default_factory=list)
    vmlinux: str | None = None
    incident: str | None = None
    notes: list[str] = field(default_factory=list)


def parse_key(raw: str) -> DumpKey:
    """The dump ``CRASHCART_METADATA_KEY`` names: the event's ``detail.object.key`` (EventBridge
    input transformer), decoded once (aws-assumption: s3-event-key-encoding)."""
    try:
        return parse_metadata_key(raw)
    except BadKeyError as error:
        raise BadInputError(str(error)) from None


def _shipped(entry: dict[str, Any]) -> ShippedFile:
    size = entry.get("size")
    digest = entry.get("sha256")
    if not isinstance(size, int) or size < 0:
        raise BadInputError(f"metadata.json: file {entry.get('name')!r} has no valid size")
    if digest is not None and not re.fullmatch(r"[0-9a-f]{64}", str(digest)):
        raise BadInputError(f"metadata.json: file {entry.get('name')!r} has a bad sha256")
    return ShippedFile(str(entry["name"]), size, digest)


def parse_metadata(raw: bytes, dump: DumpKey) -> DumpMetadata:
    """The fields triage needs from the agent's metadata.json, checked."""
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise BadInputError(f"{dump.key} is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{dump.key} is not a JSON object")
    if data.get("instance_id") != dump.instance_id:
        raise BadInputError(
            f"{dump.key} names instance {data.get('instance_id')!r}, but was written under "
            f"the prefix of {dump.instance_id}"
        )
    files = data.get("files")
    if not isinstance(files, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("name"), str) for entry in files
    ):
        raise BadInputError(f"{dump.key} has no valid 'files' list")
    by_name = {entry["name"]: entry for entry in files}
    build_id = data.get("build_id")
    if build_id is not None:
        try:
            build_id = normalize_build_id(str(build_id))
        except ConfigurationError as error:
            raise BadInputError(f"{dump.key}: {error}") from None
    release = data.get("kernel_release")
    return DumpMetadata(
        kernel_release=str(release) if release else None,
        build_id=build_id,
        vmcore=_shipped(by_name["vmcore"]) if "vmcore" in by_name else None,
        dmesg=_shipped(by_name["dmesg.txt"]) if "dmesg.txt" in by_name else None,
    )


def check_room(needed: int, work_dir: Path) -> None:
    """Refuse before downloading when the scratch disk cannot hold ``needed`` bytes."""
    free = shutil.disk_usage(work_dir).free
    if needed + DISK_HEADROOM_BYTES > free:
        raise BadInputError(
            f"the dump needs {needed / 2**30:.1f} GiB plus {DISK_HEADROOM_BYTES / 2**30:.1f} "
            f"GiB of headroom in {work_dir}, which has {free / 2**30:.1f} GiB free: raise "
            "the job's ephemeral_storage_gib (up to 200)"
        )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Adapter:
    """AWS calls, with injected clients (boto3's, or Stubbers' in tests)."""

    def __init__(self, settings: Settings, s3: Any, dynamodb: Any, sns: Any) -> None:
        self.settings = settings
        self.s3 = s3
        self.dynamodb = dynamodb
        self.sns = sns

    def read_small(self, bucket: str, key: str, limit: int) -> bytes | None:
        """The first ``limit`` bytes of an object; None when it is missing (AccessDenied is
        not "missing": the event just said the object was created, so a 403 is a deployment
        fault; it propagates and the run is kept in the failed-runs queue)."""
        return read_head(self.s3, bucket, key, limit)

    def size_of(self, bucket: str, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            response = self.s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        return int(response["ContentLength"])

    def download(self, bucket: str, key: str, target: Path) -> None:
        self.s3.download_file(bucket, key, str(target))

    def put_report(self, key: str, body: str, content_type: str) -> None:
        self.s3.put_object(
            Bucket=self.settings.dump_bucket,
            Key=key,
            Body=body.encode("utf-8"),
            ContentType=content_type,
        )

    def incident_linking(self, dump: DumpKey) -> str | None:
        """The sort key of the incident whose dump_keys include this metadata.json."""
        response = self.dynamodb.query(
            TableName=self.settings.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            FilterExpression="contains(dump_keys, :key)",
            ExpressionAttributeValues={
                ":pk": {"S": instance_pk(dump.instance_id)},
                ":prefix": {"S": INCIDENT_PREFIX},
                ":key": {"S": dump.key},
            },
            ScanIndexForward=False,
            ConsistentRead=True,
        )
        items = response.get("Items") or []
        return str(items[0]["sk"]["S"]) if items else None

    def record(self, dump: DumpKey, sk: str, values: dict[str, Any]) -> None:
        names = {f"#{name}": name for name in values}
        self.dynamodb.update_item(
            TableName=self.settings.table_name,
            Key={"pk": {"S": instance_pk(dump.instance_id)}, "sk": {"S": sk}},
            UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in values),
            ConditionExpression="attribute_exists(pk) AND contains(dump_keys, :dump_key)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={
                **{f":{name}": _attribute(value) for name, value in values.items()},
                ":dump_key": {"S": dump.key},
            },
        )

    def notify(self, subject: str, message: str) -> None:
        self.sns.publish(
            TopicArn=self.settings.topic_arn, Subject=sns_subject(subject), Message=message
        )


def _attribute(value: Any) -> dict[str, Any]:
    if isinstance(value, list):
        return {"L": [{"S": str(item)} for item in value]}
    return {"S": str(value)}


def find_vmlinux(
    adapter: Adapter, metadata: DumpMetadata, scratch: Path, outcome: Outcome
) -> Path | None:
    """Download the debug vmlinux of the dump's build id from the symbol store, if it has one."""
    bucket = adapter.settings.symbol_bucket
    if bucket is None:
        outcome.notes.append("no symbol store configured: report from the dump's kernel log")
        return None
    if metadata.build_id is None:
        outcome.notes.append("metadata.json has no build_id: the symbol store cannot be asked")
        return None
    key = symbol_key(metadata.build_id)
    size = adapter.size_of(bucket, key)
    if size is None:
        outcome.notes.append(
            f"no debug symbols for build id {metadata.build_id} "
            f"({metadata.kernel_release or 'unknown release'}) in s3://{bucket}/symbols/: "
            "was this AMI baked with debug_symbols?"
        )
        return None
    check_room(size, scratch)
    target = scratch / "vmlinux"
    adapter.download(bucket, key, target)
    outcome.vmlinux = f"s3://{bucket}/{key}"
    return target


def fetch_dump(adapter: Adapter, dump: DumpKey, metadata: DumpMetadata, scratch: Path) -> Path:
    """Download the vmcore (and the dmesg beside it); verify the vmcore's checksum."""
    if metadata.vmcore is None:
        raise BadInputError(f"{dump.key}: no vmcore was shipped (only a kernel log)")
    check_room(metadata.vmcore.size + (metadata.dmesg.size if metadata.dmesg else 0), scratch)
    vmcore = scratch / "vmcore"
    adapter.download(adapter.settings.dump_bucket, dump.prefix + "vmcore", vmcore)
    if metadata.vmcore.sha256 and sha256_of(vmcore) != metadata.vmcore.sha256:
        raise BadInputError(
            f"{dump.prefix}vmcore does not match the sha256 in its metadata.json: the upload "
            "is damaged or was replaced"
        )
    if metadata.dmesg is not None:
        adapter.download(adapter.settings.dump_bucket, dump.prefix + "dmesg.txt", scratch / "dmesg")
    return vmcore


def run_triage(vmcore: Path, vmlinux: Path | None, outcome: Outcome) -> Report:
    """Triage with the vmlinux; if it does not fit the dump, again from the log alone."""
    dmesg = vmcore.parent / "dmesg"
    dmesg_path = dmesg if dmesg.is_file() else None
    try:
        return triage(vmcore, vmlinux, dmesg=dmesg_path)
    except TriageError as error:
        if vmlinux is None:
            raise BadInputError(str(error)) from None
        outcome.notes.append(f"the symbol store's vmlinux was not used: {error}")
        outcome.vmlinux = None
    try:
        report = triage(vmcore, None, dmesg=dmesg_path)
    except TriageError as error:
        raise BadInputError(str(error)) from None
    return report


def summary_line(report: Report) -> str:
    message = report.panic_message or "no panic message found"
    return f"{report.reason}: {message}"


def notification(dump: DumpKey, report: Report, outcome: Outcome, bucket: str) -> str:
    """The notification body: what crashed, where, and where the report is."""
    lines = [
        f"crashcart: full triage report for {dump.instance_id}",
        "",
        f"kernel:   {report.kernel_release or '?'} (build id {report.build_id or '?'})",
        f"crashed:  {report.crash_time or '?'}",
        f"reason:   {report.reason}",
        f"panic:    {report.panic_message or '(none found)'}",
        f"symbols:  {outcome.vmlinux or 'none: stacks are the ones the kernel printed'}",
        f"incident: {outcome.incident or 'none links this dump'}",
    ]
    if report.crashing_cpu is not None:
        stack = report.crashing_cpu
        lines += ["", f"crashing CPU {stack.cpu} ({stack.comm or '?'}, pid {stack.pid}):"]
        lines += [f"  {frame}" for frame in stack.frames[:FRAMES_IN_NOTIFICATION]]
    if report.blocked_tasks:
        lines += ["", f"tasks in D state: {len(report.blocked_tasks)}"]
    lines += ["", "report:", *[f"  s3://{bucket}/{key}" for key in outcome.report_keys]]
    if outcome.notes:
        lines += ["", "notes:", *[f"  - {note}" for note in outcome.notes]]
    return "\n".join(lines)


def link_incident(
    adapter: Adapter,
    dump: DumpKey,
    values: dict[str, Any],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """Record ``values`` on the incident linking the dump; wait for the link to appear.

    The dump-arrival function links the dump within seconds of the same event; the job has
    just spent longer than that downloading. Polls for ``link_wait_seconds`` at most.
    """
    from botocore.exceptions import ClientError

    deadline = time.monotonic() + adapter.settings.link_wait_seconds
    delay = 2.0
    while True:
        sk = adapter.incident_linking(dump)
        if sk is not None:
            try:
                adapter.record(dump, sk, values)
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
            else:
                return sk
        if time.monotonic() + delay > deadline:
            return None
        sleep(delay)
        delay = min(delay * 2, 30.0)


def process(
    adapter: Adapter,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Triage the dump the settings name; raises BadInputError for a dump it cannot triage."""
    settings = adapter.settings
    dump = parse_key(settings.metadata_key)
    outcome = Outcome("reported", dump.key, dump.instance_id)
    raw = adapter.read_small(settings.dump_bucket, dump.key, MAX_METADATA_BYTES)
    if raw is None:
        raise BadInputError(
            f"{dump.key} does not exist in s3://{settings.dump_bucket} (deleted, or a "
            "replayed event)"
        )
    metadata = parse_metadata(raw, dump)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="crashcart-triage-", dir=settings.work_dir) as tmp:
        scratch = Path(tmp)
        vmcore = fetch_dump(adapter, dump, metadata, scratch)
        vmlinux = find_vmlinux(adapter, metadata, scratch, outcome)
        report = run_triage(vmcore, vmlinux, outcome)
    report.vmcore = f"s3://{settings.dump_bucket}/{dump.prefix}vmcore"
    report.vmlinux = outcome.vmlinux
    report.missing.extend(outcome.notes)
    markdown_key = dump.report_prefix + "report.md"
    json_key = dump.report_prefix + "report.json"
    adapter.put_report(json_key, to_json(report) + "\n", "application/json")
    adapter.put_report(markdown_key, render_markdown(report) + "\n", "text/markdown")
    outcome.report_keys = [markdown_key, json_key]
    outcome.reason = summary_line(report)
    outcome.incident = link_incident(
        adapter,
        dump,
        {
            "report_keys": outcome.report_keys,
            "report_summary": outcome.reason,
            "report_symbols": outcome.vmlinux or "none",
            "triaged_at": iso(now()),
        },
        sleep=sleep,
    )
    if outcome.incident is None:
        outcome.notes.append(
            f"no incident links {dump.key} after {settings.link_wait_seconds:.0f} s: the "
            "report is in S3 only (is the dump-arrival function deployed?)"
        )
    adapter.notify(
        f"crashcart: report for {dump.instance_id}: {outcome.reason}",
        notification(dump, report, outcome, settings.dump_bucket),
    )
    return outcome


def record_failure(adapter: Adapter, key: str, reason: str) -> Outcome:
    """A dump that cannot be triaged: say so on its incident (if any) and to on-call."""
    outcome = Outcome("rejected", key, reason=reason)
    try:
        dump = parse_key(key)
    except BadInputError:
        return outcome  # no instance to tell about; the log line carries the reason
    outcome.instance_id = dump.instance_id
    sk = adapter.incident_linking(dump)
    if sk is not None:
        from botocore.exceptions import ClientError

        try:
            adapter.record(dump, sk, {"report_error": reason})
            outcome.incident = sk
        except ClientError as error:
            outcome.notes.append(f"incident not updated: {error}")
    adapter.notify(
        f"crashcart: no report for {dump.instance_id}: triage failed",
        "\n".join(
            [
                f"crashcart: the crash dump s3://{adapter.settings.dump_bucket}/{dump.prefix} "
                "could not be triaged.",
                "",
                f"reason:   {reason}",
                f"incident: {outcome.incident or 'none links this dump'}",
                "",
                "The dump itself is untouched. Triage it by hand: crashcart triage <vmcore> "
                "--vmlinux <debug vmlinux>",
            ]
        ),
    )
    return outcome


def log(outcome: Outcome) -> None:
    print(json.dumps({"crashcart": "triage-job", **outcome.__dict__}), flush=True)


class JobTimeoutError(Exception):
    """The job ran longer than CRASHCART_TIMEOUT_SECONDS."""


def _arm_timeout(env: dict[str, str] | os._Environ[str]) -> None:
    raw = env.get(variables.TIMEOUT_SECONDS)
    if not raw:
        return
    seconds = int(raw)

    def expired(signum: int, frame: object) -> None:
        raise JobTimeoutError(f"triage took longer than {seconds} s")

    signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)


def main(env: dict[str, str] | None = None) -> int:
    """Run the job for the environment's dump; the exit code."""
    import boto3

    environ = os.environ if env is None else env
    key = environ.get(variables.METADATA_KEY, "")
    try:
        settings = Settings.from_env(env)
        _arm_timeout(environ)
    except (BadInputError, ValueError) as error:
        log(Outcome("rejected", key, reason=str(error)))
        return EXIT_BAD_INPUT
    adapter = Adapter(settings, boto3.client("s3"), boto3.client("dynamodb"), boto3.client("sns"))
    try:
        log(process(adapter))
        return EXIT_OK
    except BadInputError as error:
        try:
            log(record_failure(adapter, key, str(error)))
        except Exception as failure:  # the reason still reaches the log
            log(Outcome("rejected", key, reason=str(error), notes=[f"not recorded: {failure}"]))
        return EXIT_BAD_INPUT
    except Exception as error:  # one line in the log, never a traceback
        log(Outcome("failed", key, reason=f"{type(error).__name__}: {error}"))
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
