"""The triage job as its container runs it, against moto's server on 127.0.0.1.

Every run here is a separate ``python -m crashcart.triage.job`` process whose only crashcart
is the image's build context as CDK stages it. These runs cover what the job does with bad
input: a dump it cannot triage is reported (incident + notification), never modified; the
job's success path on a real kernel's dump runs in the e2e layer (tests/e2e), where the drill
makes one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import dumps as dump_support
from tests.support import triage_job as support


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return support.image_context(tmp_path_factory.mktemp("image"))


@pytest.fixture
def account(moto_reset: str) -> Iterator[support.Account]:
    yield support.Account(moto_reset).setup()


def test_the_image_context_holds_the_job_and_nothing_of_the_cdk(context: Path) -> None:
    files = sorted(str(path.relative_to(context)) for path in context.rglob("*") if path.is_file())
    assert "triage/job.py" in files and "triage/Dockerfile" in files
    assert {"__init__.py", "errors.py", "opt_in.py"} <= set(files)
    assert not [name for name in files if name.startswith(("constructs/", "lambda/", "stacks/"))]
    assert not [name for name in files if name.endswith(".pyc")]
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, crashcart.triage.job as job; "
            "print(job.__file__); print('aws_cdk' in sys.modules)",
        ],
        cwd=str(context.parent),
        env={"PYTHONPATH": str(context.parent), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    module_file, cdk_loaded = probe.stdout.split()
    assert Path(module_file).resolve().is_relative_to(context.resolve())
    assert cdk_loaded == "False"


def test_a_damaged_dump_is_reported_on_its_incident_and_left_alone(
    account: support.Account, context: Path, tmp_path: Path
) -> None:
    damaged = dump_support.vmcore_bytes("kdump-compressed", 8192)
    key = support.ship(account, vmcore=damaged, dmesg=dump_support.NMI_PANIC_DMESG, build_id=None)
    sk = account.open_incident([key])
    before = account.keys(support.DUMP_BUCKET)

    result = support.run_job(context, account.env(key, tmp_path), account.url)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    outcome = support.outcome(result)
    assert outcome["outcome"] == "rejected"
    assert "cannot open it as a crash dump" in outcome["reason"]
    assert outcome["incident"] == sk
    assert "cannot open it as a crash dump" in account.incident(sk)["report_error"]["S"]
    assert account.keys(support.DUMP_BUCKET) == before  # no report, dump untouched
    assert account.read(support.DUMP_BUCKET, key.replace("metadata.json", "vmcore")) == damaged
    (note,) = account.notifications()
    assert note["subject"] == f"crashcart: no report for {support.INSTANCE_ID}: triage failed"
    assert "The dump itself is untouched" in note["message"]
    assert not list(tmp_path.iterdir()), "scratch space must be cleaned up"


def test_the_key_from_the_event_is_url_decoded_once(
    account: support.Account, context: Path, tmp_path: Path
) -> None:
    """aws-assumption: s3-event-key-encoding: the input transformer passes the event's key
    as S3 wrote it into the event (':' as '%3A'); the job names the stored dump."""
    damaged = dump_support.vmcore_bytes("kdump-compressed", 8192)
    key = support.ship(account, vmcore=damaged, dmesg=dump_support.NMI_PANIC_DMESG, build_id=None)
    sk = account.open_incident([key])
    encoded = key.replace(":", "%3A")
    assert encoded != key

    result = support.run_job(context, account.env(encoded, tmp_path), account.url)

    assert result.returncode == 2, result.stdout + result.stderr
    outcome = support.outcome(result)
    assert "cannot open it as a crash dump" in outcome["reason"]  # it read the stored dump
    assert outcome["incident"] == sk
    assert "cannot open it as a crash dump" in account.incident(sk)["report_error"]["S"]


def test_a_vmcore_that_does_not_match_its_checksum_is_refused(
    account: support.Account, context: Path, tmp_path: Path
) -> None:
    key = support.ship(
        account,
        vmcore=dump_support.vmcore_bytes(),
        dmesg=None,
        build_id=None,
        sha_override="0" * 64,
    )
    result = support.run_job(context, account.env(key, tmp_path), account.url)
    assert result.returncode == 2
    assert "does not match the sha256 in its metadata.json" in support.outcome(result)["reason"]
    assert account.keys(support.DUMP_BUCKET, "reports/") == []


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("bad-key", "is not dumps/<role id>:<instance id>/<dump id>/metadata.json"),
        ("missing-metadata", "does not exist in s3://"),
        ("other-instance", "but was written under the prefix of"),
        ("log-only", "no vmcore was shipped (only a kernel log)"),
    ],
)
def test_bad_input_is_logged_with_its_reason_and_changes_nothing(
    account: support.Account, context: Path, tmp_path: Path, case: str, expected: str
) -> None:
    if case == "bad-key":
        key = "dumps/../../etc/passwd/metadata.json"
    elif case == "missing-metadata":
        key = f"dumps/{support.OWNER}/202611260000/metadata.json"
    elif case == "other-instance":
        key = support.ship(
            account,
            vmcore=b"x",
            dmesg=None,
            build_id=None,
            owner="AROAEXAMPLEROLEID0001:i-0fedcba9876543210",
        ).replace("i-0fedcba9876543210", support.INSTANCE_ID)
        # the metadata of one instance, copied under another's prefix
        s3 = support.client(account.url, "s3")
        source = key.replace(support.INSTANCE_ID, "i-0fedcba9876543210")
        s3.copy_object(
            Bucket=support.DUMP_BUCKET,
            Key=key,
            CopySource={"Bucket": support.DUMP_BUCKET, "Key": source},
        )
    else:
        key = support.ship(account, vmcore=None, dmesg="kernel log only", build_id=None)
    before = account.keys(support.DUMP_BUCKET)

    result = support.run_job(context, account.env(key, tmp_path), account.url)

    assert result.returncode == 2, result.stdout + result.stderr
    outcome = support.outcome(result)
    assert outcome["outcome"] == "rejected"
    assert expected in outcome["reason"]
    assert account.keys(support.DUMP_BUCKET) == before
    notes = account.notifications()
    if case == "bad-key":
        assert notes == []  # no instance to tell about: the log line is the record
    else:
        assert [note["subject"] for note in notes] == [
            f"crashcart: no report for {support.INSTANCE_ID}: triage failed"
        ]


def test_missing_settings_are_named(context: Path, tmp_path: Path) -> None:
    result = support.run_job(context, {"CRASHCART_METADATA_KEY": "x"}, "http://127.0.0.1:9")
    assert result.returncode == 2
    reason = support.outcome(result)["reason"]
    assert "CRASHCART_DUMP_BUCKET" in reason and "CRASHCART_TOPIC_ARN" in reason


def _hostile_metadata(account: support.Account, key: str, **changes: object) -> None:
    s3 = support.client(account.url, "s3")
    doc = json.loads(s3.get_object(Bucket=support.DUMP_BUCKET, Key=key)["Body"].read())
    for name, value in changes.items():
        if name == "vmcore_size":
            doc["files"][0]["size"] = value
        else:
            doc[name] = value
    s3.put_object(Bucket=support.DUMP_BUCKET, Key=key, Body=json.dumps(doc).encode())


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("not-a-dump", "not a crash dump"),
        ("claims-a-petabyte", "metadata.json claims 1125899906842624 bytes, S3 holds 4144"),
        ("claims-a-negative-size", "has no valid size"),
        ("claims-less-than-it-has", "metadata.json claims 100 bytes, S3 holds 4144"),
    ],
)
def test_crafted_dumps_end_in_a_bounded_record_and_a_clean_failure(
    account: support.Account, context: Path, tmp_path: Path, case: str, expected: str
) -> None:
    """Issue 22: a "dump" that is not one, or that claims sizes it does not have, with
    markup, header injection and an oversize field in its metadata: the job fails cleanly
    (exit 2, one JSON line, no traceback), the incident and the e-mail quote it bounded and
    escaped, and nothing is written under reports/."""
    vmcore = b"GIF89a<html><a href='https://evil.example'>x</a>" + b"\0" * 4096
    key = support.ship(account, vmcore=vmcore, dmesg=dump_support.NMI_PANIC_DMESG, build_id=None)
    release = "6.1\r\nBcc: all@example.com\r\n\r\nsee https://evil.example " + "K" * 30_000
    if case == "claims-a-petabyte":
        _hostile_metadata(account, key, kernel_release=release, vmcore_size=2**50)
    elif case == "claims-less-than-it-has":
        _hostile_metadata(account, key, kernel_release=release, vmcore_size=100)
    elif case == "claims-a-negative-size":
        _hostile_metadata(account, key, kernel_release=release, vmcore_size=-1)
    else:
        _hostile_metadata(account, key, kernel_release=release)
    sk = account.open_incident([key])

    result = support.run_job(context, account.env(key, tmp_path), account.url)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    outcome = support.outcome(result)
    assert outcome["outcome"] == "rejected" and expected in outcome["reason"]
    recorded = account.incident(sk)["report_error"]["S"]
    assert expected in recorded and len(recorded) <= 1000 and "\n" not in recorded
    (note,) = account.notifications()
    assert not [row for row in note["message"].split("\n") if row.startswith("Bcc:")]
    assert "https://" not in note["message"]
    assert account.keys(support.DUMP_BUCKET, "reports/") == []
