"""Helpers for the triage-job tests: the job's image context, a shipped dump in moto, the run.

The job runs as its container would: ``python -m crashcart.triage.job`` with only the image's
build context on ``PYTHONPATH`` (copied with CDK's own Docker-ignore logic and the construct's
exclude list), as a separate process talking to moto's server on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.incidents import create_incident_table, stand_in_incidents, store_of

REGION = "eu-west-1"
DUMP_BUCKET = "crashcart-test-dumps"
SYMBOL_BUCKET = "crashcart-test-symbols"
TABLE = "crashcart-test-incidents"
INSTANCE_ID = "i-0123456789abcdef0"
OWNER = f"AROAEXAMPLEROLEID0001:{INSTANCE_ID}"
DUMP_ID = "202611260519"


def image_context(base: Path) -> Path:
    """The triage image's build context, staged by CDK exactly as ``cdk synth`` stages it.

    Returned as ``base/crashcart``: the image copies the context to /opt/crashcart/crashcart.
    """
    import aws_cdk as cdk

    from crashcart.constructs import dump_triage_job

    target = base / "crashcart"
    cdk.FileSystem.copy_directory(
        str(dump_triage_job._PACKAGE_ROOT),
        str(target),
        options=cdk.CopyOptions(
            exclude=dump_triage_job._IMAGE_CONTEXT_EXCLUDE, ignore_mode=cdk.IgnoreMode.DOCKER
        ),
    )
    return target


def client(url: str, service: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@dataclass
class Account:
    """The job's resources on a moto server."""

    url: str
    topic_arn: str = ""
    queue_url: str = ""

    def setup(self) -> Account:
        s3 = client(self.url, "s3")
        for bucket in (DUMP_BUCKET, SYMBOL_BUCKET):
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
        create_incident_table(client(self.url, "dynamodb"), TABLE)
        sns = client(self.url, "sns")
        sqs = client(self.url, "sqs")
        self.topic_arn = sns.create_topic(Name="crashcart-test")["TopicArn"]
        self.queue_url = sqs.create_queue(QueueName="crashcart-test-notifications")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn)
        return self

    def env(self, key: str, work_dir: Path, *, symbols: bool = True) -> dict[str, str]:
        env = {
            "CRASHCART_METADATA_KEY": key,
            "CRASHCART_DUMP_BUCKET": DUMP_BUCKET,
            "CRASHCART_TABLE_NAME": TABLE,
            "CRASHCART_TOPIC_ARN": self.topic_arn,
            "CRASHCART_WORK_DIR": str(work_dir),
            "CRASHCART_LINK_WAIT_SECONDS": "0",
            "CRASHCART_TIMEOUT_SECONDS": "600",
        }
        if symbols:
            env["CRASHCART_SYMBOL_BUCKET"] = SYMBOL_BUCKET
        return env

    def notifications(self) -> list[dict[str, str]]:
        """Every SNS message so far (subject, message), drained from the test queue."""
        sqs = client(self.url, "sqs")
        found = []
        while True:
            messages = sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                body = json.loads(message["Body"])
                found.append({"subject": body.get("Subject", ""), "message": body["Message"]})
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def open_incident(self, dump_keys: list[str], sk: str = "incident#2026-11-26T05:18:00Z") -> str:
        client(self.url, "dynamodb").put_item(
            TableName=TABLE,
            Item={
                "pk": {"S": f"instance#{INSTANCE_ID}"},
                "sk": {"S": sk},
                "state": {"S": "dump-received"},
                "dump_keys": {"L": [{"S": key} for key in dump_keys]},
            },
        )
        return sk

    def incident(self, sk: str) -> dict[str, Any]:
        item = client(self.url, "dynamodb").get_item(
            TableName=TABLE,
            Key={"pk": {"S": f"instance#{INSTANCE_ID}"}, "sk": {"S": sk}},
            ConsistentRead=True,
        )["Item"]
        return dict(item)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        response = client(self.url, "s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for item in response.get("Contents", []))

    def read(self, bucket: str, key: str) -> bytes:
        body: bytes = client(self.url, "s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        return body


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ship(
    account: Account,
    *,
    vmcore: bytes | Path | None,
    dmesg: str | None,
    build_id: str | None,
    owner: str = OWNER,
    dump_id: str = DUMP_ID,
    sha_override: str | None = None,
    kernel_release: str = "6.1.0-27-cloud-amd64",
) -> str:
    """Upload a dump as the agent ships it; the metadata.json key."""
    s3 = client(account.url, "s3")
    prefix = f"dumps/{owner}/{dump_id}/"
    files = []
    if vmcore is not None:
        if isinstance(vmcore, Path):
            data_sha = hashlib.sha256(vmcore.read_bytes()).hexdigest()
            size = vmcore.stat().st_size
            s3.upload_file(str(vmcore), DUMP_BUCKET, prefix + "vmcore")
        else:
            data_sha, size = sha256(vmcore), len(vmcore)
            s3.put_object(Bucket=DUMP_BUCKET, Key=prefix + "vmcore", Body=vmcore)
        files.append(
            {"name": "vmcore", "size": size, "sha256": sha_override or data_sha, "format": "?"}
        )
    if dmesg is not None:
        body = dmesg.encode()
        s3.put_object(Bucket=DUMP_BUCKET, Key=prefix + "dmesg.txt", Body=body)
        files.append({"name": "dmesg.txt", "size": len(body), "sha256": sha256(body)})
    metadata = {
        "schema": 1,
        "instance_id": owner.rsplit(":", 1)[-1],
        "region": REGION,
        "dump_id": dump_id,
        "kernel_release": kernel_release,
        "build_id": build_id,
        "dump_time": "2026-11-26T05:19:00Z",
        "files": files,
    }
    s3.put_object(Bucket=DUMP_BUCKET, Key=prefix + "metadata.json", Body=json.dumps(metadata))
    return prefix + "metadata.json"


def run_job(
    context: Path, env: dict[str, str], moto_url: str, *, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    """``python -m crashcart.triage.job`` with only the image context importable as crashcart."""
    full = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": str(context.parent),
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_MAX_ATTEMPTS": "2",
        # The parser as the job's own user: the work and image folders here are pytest's
        # (root-only); the uid drop runs in tests/e2e/test_parser_isolation.py.
        "CRASHCART_PARSER_USER": "current",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "crashcart.triage.job"],
        cwd=str(context.parent),
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def outcome(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The job's one JSON log line."""
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON outcome line; stdout={result.stdout!r} stderr={result.stderr!r}"
    parsed: dict[str, Any] = json.loads(lines[-1])
    return parsed


def job_stack(
    app: Any, stack_id: str = "Triage", *, agnostic: bool = False, **job_kwargs: Any
) -> Any:
    """A stack with a crash-dump bucket, stand-in incident table and topic, and the job.

    The table and topic stand in for the remediation construct's (not under test here).
    ``agnostic``: no account/region, as the reference app deploys (AZs from Fn::GetAZs
    rather than the dummy AZs a context-less lookup gives). Returns the ``DumpTriageJob``;
    its stack is ``cdk.Stack.of(job)``.
    """
    import aws_cdk as cdk

    from crashcart.constructs.crash_dump_bucket import CrashDumpBucket
    from crashcart.constructs.dump_triage_job import DumpTriageJob

    env = None if agnostic else cdk.Environment(account="111111111111", region=REGION)
    stack = cdk.Stack(app, stack_id, env=env)
    dumps = CrashDumpBucket(stack, "Dumps")
    table, topic, _key = stand_in_incidents(stack)
    return DumpTriageJob(
        stack, "Triage", dumps=dumps, incidents=store_of(stack, table, topic), **job_kwargs
    )


# ---------------------------------------------------------------- the drill's dump, in AWS form

PUBLISHER = (
    Path(__file__).resolve().parents[2]
    / "crashcart"
    / "components"
    / "symbols"
    / "crashcart-publish-symbols.py"
)


def kernel_notes(build_id: str) -> bytes:
    """/sys/kernel/notes of a kernel with this GNU build id (one NT_GNU_BUILD_ID note)."""
    import struct

    desc = bytes.fromhex(build_id)
    name = b"GNU\0"
    return struct.pack("<III", len(name), len(desc), 3) + name + desc


def full_report_of_drill_dump(moto_url: str, work: Path, vmlinux: Path) -> dict[str, Any]:
    """After a drill scenario: the drill's dump through dump arrival, the symbol store and the job.

    1. the dump-arrival function links the dump the agent shipped to the drill's incident;
    2. the bake-time publisher puts the guest kernel's debug vmlinux in a symbol store, its
       build id checked against the dumped kernel's (VMCOREINFO BUILD-ID, as
       /sys/kernel/notes of the guest would give it);
    3. the triage job runs as its container would. Returns what each step left behind.
    """
    from datetime import UTC, datetime, timedelta

    from crashcart.drill.remediation import DrillAccount
    from tests.support import dumps as dump_support

    drill = DrillAccount(url=moto_url)
    s3 = client(moto_url, "s3")
    listed = s3.list_objects_v2(Bucket=drill.dump_bucket, Prefix="dumps/").get("Contents", [])
    (key,) = [item["Key"] for item in listed if item["Key"].endswith("/metadata.json")]
    metadata = json.loads(s3.get_object(Bucket=drill.dump_bucket, Key=key)["Body"].read())
    topic_arn = client(moto_url, "sns").list_topics()["Topics"][0]["TopicArn"]
    table = "crashcart-drill-incidents"

    arrival = dump_support.load_arrival_handler()
    adapter = arrival.Adapter(
        arrival.Settings(table, topic_arn, timedelta(hours=6)),
        s3,
        client(moto_url, "dynamodb"),
        client(moto_url, "sns"),
    )
    linked = arrival.process(
        dump_support.object_created_event(drill.dump_bucket, key),
        adapter,
        now=datetime.now(UTC),
        request_id="e2e",
    )

    s3.create_bucket(Bucket=SYMBOL_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    sys_root = work / "sys"
    (sys_root / "kernel").mkdir(parents=True)
    (sys_root / "kernel" / "notes").write_bytes(kernel_notes(metadata["build_id"]))
    publish = subprocess.run(
        [
            sys.executable,
            str(PUBLISHER),
            "--bucket",
            SYMBOL_BUCKET,
            "--region",
            REGION,
            "--vmlinux",
            str(vmlinux),
            "--kernel-release",
            metadata["kernel_release"],
            "--family",
            "debian-12",
            "--sys-root",
            str(sys_root),
        ],
        env={
            **os.environ,
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "CRASHCART_AWS": str(Path(sys.executable).parent / "aws"),
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    context = image_context(work / "image")
    account = Account(moto_url, topic_arn=topic_arn)
    env = {
        "CRASHCART_METADATA_KEY": key,
        "CRASHCART_DUMP_BUCKET": drill.dump_bucket,
        "CRASHCART_SYMBOL_BUCKET": SYMBOL_BUCKET,
        "CRASHCART_TABLE_NAME": table,
        "CRASHCART_TOPIC_ARN": topic_arn,
        "CRASHCART_WORK_DIR": str(work / "scratch"),
        "CRASHCART_LINK_WAIT_SECONDS": "0",
        "CRASHCART_TIMEOUT_SECONDS": "900",
    }
    job = run_job(context, env, moto_url, timeout=900)
    result: dict[str, Any] = {
        "key": key,
        "metadata": metadata,
        "arrival": linked,
        "publish": publish,
        "job": job,
        "account": account,
    }
    if job.returncode == 0:
        done = outcome(job)
        report_key = next(k for k in done["report_keys"] if k.endswith(".json"))
        result["outcome"] = done
        result["report"] = json.loads(
            s3.get_object(Bucket=drill.dump_bucket, Key=report_key)["Body"].read()
        )
        item = client(moto_url, "dynamodb").get_item(
            TableName=table,
            Key={
                "pk": {"S": f"instance#{metadata['instance_id']}"},
                "sk": {"S": linked["incident"]},
            },
            ConsistentRead=True,
        )
        result["incident"] = item.get("Item", {})
    return result
