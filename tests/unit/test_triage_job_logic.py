"""The triage job's pure parts and its contracts with the rest of crashcart."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from crashcart.runtime.dumps import REPORTS_PREFIX
from crashcart.triage import job, job_input
from tests.conftest import REPO_ROOT
from tests.support import dumps as dump_support

OWNER = f"AROAEXAMPLEROLEID0001:{dump_support.INSTANCE_ID}"
KEY = f"dumps/{OWNER}/202611260519/metadata.json"


def _metadata(**extra: Any) -> bytes:
    doc: dict[str, Any] = {
        "instance_id": dump_support.INSTANCE_ID,
        "kernel_release": "6.1.0-27-cloud-amd64",
        "build_id": dump_support.BUILD_ID.upper(),
        "files": [
            {"name": "vmcore", "size": 4096, "sha256": "a" * 64},
            {"name": "dmesg.txt", "size": 100, "sha256": "b" * 64},
        ],
    }
    doc.update(extra)
    return json.dumps(doc).encode()


def test_keys_name_owner_instance_and_dump() -> None:
    dump = job.parse_key(KEY)
    assert (dump.owner, dump.instance_id, dump.dump_id) == (
        OWNER,
        dump_support.INSTANCE_ID,
        "202611260519",
    )
    assert dump.prefix == f"dumps/{OWNER}/202611260519/"
    assert dump.report_prefix == f"reports/{OWNER}/202611260519/"
    # the local drill's form (no role id) is accepted, as by the dump-arrival function
    assert job.parse_key(f"dumps/{dump_support.INSTANCE_ID}/d1/metadata.json").owner == (
        dump_support.INSTANCE_ID
    )


@pytest.mark.parametrize(
    "key",
    [
        "dumps/i-0123456789abcdef0/d1/vmcore",
        "evidence/i-0123456789abcdef0/d1/metadata.json",
        "dumps/AROA:i-0123456789abcdef0/d1/metadata.json",
        "dumps/i-0123456789abcdef0/../metadata.json",
        "dumps/i-0123456789abcdef0/a/b/metadata.json",
    ],
)
def test_other_keys_are_refused(key: str) -> None:
    with pytest.raises(job.BadInputError, match="is not dumps/"):
        job.parse_key(key)


#: Raw keys as an S3 event may name them -> the key both parsers must find (None: refused).
EVENT_KEYS: list[tuple[str, str | None]] = [
    (KEY, KEY),
    (KEY.replace(":", "%3A"), KEY),  # form-encoded, as S3 documents event keys
    (KEY.replace(":", "%3a"), KEY),
    (KEY.replace("/", "%2F"), KEY),  # an encoded '/' is a '/'
    (KEY.replace(":", "%253A"), None),  # encoded twice: decoded once, '%' left over
    (KEY.replace("202611260519", "2026+1126"), None),  # '+' is a space
    (KEY.replace("202611260519", "2026%2B1126"), None),  # an encoded '+' is a '+'
    (KEY.replace("202611260519", "2026%201126"), None),
    (KEY + "\n", None),
    (KEY + "%0A", None),
    (KEY.replace("202611260519", ".."), None),
    (KEY.replace("202611260519", "%ff"), None),  # not UTF-8 once decoded
    ("", None),
]


@pytest.mark.parametrize(("raw", "expected"), EVENT_KEYS)
def test_both_parsers_decode_the_event_key_once_and_agree(raw: str, expected: str | None) -> None:
    """aws-assumption: s3-event-key-encoding (the job's copy of the dump-arrival contract)."""
    arrival = dump_support.load_arrival_handler()
    if expected is None:
        with pytest.raises(job.BadInputError):
            job.parse_key(raw)
        with pytest.raises(arrival.BadEventError):
            arrival.parse_key(raw)
        return
    assert job.parse_key(raw).key == expected
    assert arrival.parse_key(raw).key == expected


def test_the_key_contract_is_the_dump_arrival_functions() -> None:
    arrival = dump_support.load_arrival_handler()
    # Both parse with the shared runtime's grammar (no copy to keep equal).
    assert arrival.parse_metadata_key is job_input.parse_metadata_key
    assert job.parse_key(KEY).report_prefix.startswith(REPORTS_PREFIX)


def test_metadata_gives_build_id_and_files() -> None:
    metadata = job.parse_metadata(_metadata(), job.parse_key(KEY))
    assert metadata.build_id == dump_support.BUILD_ID  # lower-cased
    assert metadata.vmcore == job.ShippedFile("vmcore", 4096, "a" * 64)
    assert metadata.dmesg is not None and metadata.dmesg.size == 100


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "is not JSON"),
        (b"[]", "is not a JSON object"),
        (_metadata(instance_id="i-0fedcba9876543210"), "but was written under the prefix"),
        (_metadata(files="vmcore"), "has no valid 'files' list"),
        (_metadata(build_id="../../etc"), "is not a GNU build id"),
        (_metadata(build_id="a" * 41), "is not a GNU build id"),
        (_metadata(files=[{"name": "vmcore", "size": -1}]), "has no valid size"),
        (_metadata(files=[{"name": "vmcore", "size": 1, "sha256": "zz"}]), "bad sha256"),
    ],
)
def test_bad_metadata_is_named(raw: bytes, message: str) -> None:
    with pytest.raises(job.BadInputError, match=re.escape(message)):
        job.parse_metadata(raw, job.parse_key(KEY))


def test_a_dump_larger_than_the_scratch_disk_is_refused_before_download(tmp_path: Path) -> None:
    with pytest.raises(job.BadInputError, match="raise the job's ephemeral_storage_gib"):
        job.check_room(1 << 50, tmp_path)
    job.check_room(1 << 20, tmp_path)


def test_settings_come_from_the_environment(tmp_path: Path) -> None:
    env = {
        "CRASHCART_METADATA_KEY": KEY,
        "CRASHCART_DUMP_BUCKET": "dumps",
        "CRASHCART_TABLE_NAME": "incidents",
        "CRASHCART_TOPIC_ARN": "arn:aws:sns:eu-west-1:111111111111:t",
        "CRASHCART_WORK_DIR": str(tmp_path),
    }
    loaded = job.Settings.from_env(env)
    assert loaded.symbol_bucket is None and loaded.work_dir == tmp_path
    with pytest.raises(job.BadInputError, match="is not a number"):
        job.Settings.from_env({**env, "CRASHCART_LINK_WAIT_SECONDS": "soon"})


def _adapter(wait: float = 5.0) -> tuple[job.Adapter, Stubber]:
    dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
    stubbed = job.Settings(
        metadata_key=KEY,
        dump_bucket="dumps",
        symbol_bucket=None,
        table_name="incidents",
        topic_arn="arn:aws:sns:eu-west-1:111111111111:t",
        work_dir=Path("/tmp"),
        link_wait_seconds=wait,
    )
    return job.Adapter(stubbed, None, dynamodb, None), Stubber(dynamodb)


def _query(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Items": items, "Count": len(items), "ScannedCount": len(items)}


def test_the_report_waits_for_the_dump_arrival_function_to_link_the_dump() -> None:
    adapter, stub = _adapter()
    dump = job.parse_key(KEY)
    stub.add_response("query", _query([]))
    stub.add_response("query", _query([{"sk": {"S": "incident#2026-11-26T05:18:00Z"}}]))
    stub.add_response("update_item", {})
    slept: list[float] = []
    with stub:
        sk = job.link_incident(adapter, dump, {"report_summary": "nmi"}, sleep=slept.append)
    assert sk == "incident#2026-11-26T05:18:00Z"
    assert slept == [2.0]
    stub.assert_no_pending_responses()


def test_a_lost_race_is_retried_and_a_missing_link_gives_up_in_time() -> None:
    adapter, stub = _adapter(wait=5.0)
    dump = job.parse_key(KEY)
    stub.add_response("query", _query([{"sk": {"S": "incident#a"}}]))
    stub.add_client_error("update_item", "ConditionalCheckFailedException")
    stub.add_response("query", _query([]))
    stub.add_response("query", _query([]))
    slept: list[float] = []
    with stub:
        assert job.link_incident(adapter, dump, {"x": "y"}, sleep=slept.append) is None
    assert slept == [2.0, 4.0]  # the next wait (8 s) would pass the 5 s deadline
    stub.assert_no_pending_responses()


def test_other_dynamodb_errors_are_not_swallowed() -> None:
    adapter, stub = _adapter()
    stub.add_response("query", _query([{"sk": {"S": "incident#a"}}]))
    stub.add_client_error("update_item", "ProvisionedThroughputExceededException")
    with stub, pytest.raises(Exception, match="ProvisionedThroughputExceeded"):
        job.link_incident(adapter, job.parse_key(KEY), {"x": "y"}, sleep=lambda _: None)


def test_the_dockerfile_installs_the_versions_crashcart_is_tested_with() -> None:
    dockerfile = (REPO_ROOT / "crashcart" / "triage" / "Dockerfile").read_text()
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    pins = dict(re.findall(r"^ARG (\w+)_VERSION=(\S+)$", dockerfile, re.MULTILINE))
    assert pins == {"DRGN": "0.3.0", "BOTO3": "1.44.8"}
    assert f'"drgn=={pins["DRGN"]}"' in pyproject
    assert f'"boto3=={pins["BOTO3"]}"' in pyproject
    assert 'ENTRYPOINT ["python", "-m", "crashcart.triage.job"]' in dockerfile
    # The supervisor is root (to start the parser as uid 65534, issue 22); the scratch
    # volume is root's and declared a VOLUME; no file keeps a setuid / setgid bit.
    assert re.search(r"^USER 0:0$", dockerfile, re.MULTILINE)
    assert "RUN mkdir /scratch && chmod 0755 /scratch" in dockerfile
    assert 'VOLUME ["/scratch"]' in dockerfile
    assert "-perm /6000 -exec chmod a-s" in dockerfile
