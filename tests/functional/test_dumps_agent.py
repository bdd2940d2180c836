"""The crashcart agent against fake /proc, /sys and /var/crash trees and moto S3 on 127.0.0.1.

The agent runs as a subprocess exactly as the systemd unit runs it, with the real AWS CLI
(pip ``awscli``) pointed at the moto server by ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.dumps import (
    AGENT,
    AWS_CLI,
    BUILD_ID,
    INSTANCE_ID,
    NMI_PANIC_DMESG,
    fake_host,
    load_module,
    make_dump,
    run_agent,
)

pytestmark = pytest.mark.skipif(not AWS_CLI.exists(), reason="needs the aws CLI in the venv")

BUCKET = "crashcart-dumps-test"


@pytest.fixture
def s3(moto_reset: str) -> Any:
    client = boto3.client("s3", endpoint_url=moto_reset, region_name="eu-west-1")
    client.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    return client


@pytest.fixture
def host(tmp_path: Path) -> dict[str, str]:
    env = fake_host(tmp_path)
    env["CRASHCART_BUCKET"] = BUCKET
    return env


def keys(s3: Any) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_ships_vmcore_dmesg_and_metadata_last(
    s3: Any, host: dict[str, str], moto_reset: str
) -> None:
    crash = Path(host["CRASHCART_CRASH_DIR"])
    folder = make_dump(crash, "202611260519", kind="flattened", size=8192)
    already = make_dump(crash, "202611250101")
    (already / ".crashcart-shipped").write_text("{}\n")
    result = run_agent(host, "ship", endpoint=moto_reset)
    assert result.returncode == 0, result.stderr
    base = f"dumps/{INSTANCE_ID}/202611260519/"
    assert keys(s3) == [base + "dmesg.txt", base + "metadata.json", base + "vmcore"]
    vmcore = (folder / "dump.202611260519").read_bytes()
    assert s3.get_object(Bucket=BUCKET, Key=base + "vmcore")["Body"].read() == vmcore
    metadata = json.loads(s3.get_object(Bucket=BUCKET, Key=base + "metadata.json")["Body"].read())
    assert metadata["instance_id"] == INSTANCE_ID
    assert metadata["region"] == "eu-west-1"
    assert metadata["dump_id"] == "202611260519"
    assert metadata["kernel_release"] == "6.1.0-27-cloud-amd64"
    assert metadata["build_id"] == BUILD_ID
    assert metadata["format"] == "flattened"
    assert metadata["dump_time"].endswith("Z")
    files = {f["name"]: f for f in metadata["files"]}
    assert files["vmcore"]["size"] == 8192
    assert files["vmcore"]["sha256"] == hashlib.sha256(vmcore).hexdigest()
    assert files["vmcore"]["source"] == "dump.202611260519"
    assert (
        files["dmesg.txt"]["sha256"]
        == hashlib.sha256((folder / "dmesg.202611260519").read_bytes()).hexdigest()
    )
    # metadata.json is the last object written: it is newer than (or as new as) the others.
    stamps = {k: s3.head_object(Bucket=BUCKET, Key=k)["LastModified"] for k in keys(s3)}
    assert stamps[base + "metadata.json"] >= max(stamps.values())
    assert (folder / ".crashcart-shipped").is_file()
    # A folder already marked shipped is skipped (nothing of it in the bucket) and kept.
    assert already.is_dir()
    assert not any("202611250101" in key for key in keys(s3))


def test_failed_upload_keeps_everything_and_a_later_run_ships(
    s3: Any, host: dict[str, str], moto_reset: str
) -> None:
    crash = Path(host["CRASHCART_CRASH_DIR"])
    folder = make_dump(crash, "202611260519")
    before = sorted(p.name for p in folder.iterdir())
    failed = run_agent({**host, "CRASHCART_KEEP_SHIPPED": "0"}, "ship", endpoint=closed_port())
    assert failed.returncode == 1
    assert "could not ship" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert folder.is_dir() and not (folder / ".crashcart-shipped").exists()
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == before
    assert keys(s3) == []

    retried = run_agent(host, "ship", endpoint=moto_reset)
    assert retried.returncode == 0, retried.stderr
    assert f"dumps/{INSTANCE_ID}/202611260519/metadata.json" in keys(s3)
    assert (folder / ".crashcart-shipped").is_file()


def test_never_overwrites_an_existing_object(
    s3: Any, host: dict[str, str], moto_reset: str
) -> None:
    crash = Path(host["CRASHCART_CRASH_DIR"])
    make_dump(crash, "202611260519")
    key = f"dumps/{INSTANCE_ID}/202611260519/vmcore"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"earlier upload")
    result = run_agent(host, "ship", endpoint=moto_reset)
    assert result.returncode == 0, result.stderr
    assert "already exists" in result.stderr
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"earlier upload"


def test_multipart_upload_and_bounded_retention(
    s3: Any, host: dict[str, str], moto_reset: str
) -> None:
    crash = Path(host["CRASHCART_CRASH_DIR"])
    old = [make_dump(crash, f"20261120000{i}") for i in range(2)]
    for folder in old:
        (folder / ".crashcart-shipped").write_text("{}\n")
    big = make_dump(
        crash, "202611260600", kind="kdump-compressed", size=11 * 1024 * 1024, debian=False
    )
    env = {
        **host,
        "CRASHCART_SINGLE_PUT_MAX": str(5 * 1024 * 1024),
        "CRASHCART_PART_SIZE": str(5 * 1024 * 1024),
        "CRASHCART_KEEP_SHIPPED": "1",
    }
    result = run_agent(env, "ship", endpoint=moto_reset)
    assert result.returncode == 0, result.stderr
    base = f"dumps/{INSTANCE_ID}/202611260600/"
    head = s3.head_object(Bucket=BUCKET, Key=base + "vmcore")
    assert head["ContentLength"] == 11 * 1024 * 1024
    assert "-" in head["ETag"]  # a multipart ETag: <md5 of part md5s>-<parts>
    metadata = json.loads(s3.get_object(Bucket=BUCKET, Key=base + "metadata.json")["Body"].read())
    assert metadata["format"] == "kdump-compressed"
    assert {f["source"] for f in metadata["files"]} == {"vmcore", "vmcore-dmesg.txt"}
    # Only the newest shipped dump stays on disk; the older shipped ones are pruned.
    assert big.is_dir()
    assert not any(folder.exists() for folder in old)


def test_unshipped_dumps_are_never_pruned(tmp_path: Path) -> None:
    agent = load_module(AGENT, "crashcart_agent_under_test")
    env = fake_host(tmp_path)
    crash = Path(env["CRASHCART_CRASH_DIR"])
    unshipped = [make_dump(crash, f"2026112{i}0000") for i in range(3)]
    shipped = make_dump(crash, "202611250000")
    (shipped / ".crashcart-shipped").write_text("{}\n")
    removed = agent.prune(agent.Config({**env, "CRASHCART_KEEP_SHIPPED": "0"}))
    assert removed == [shipped]
    assert all(folder.is_dir() for folder in unshipped)


def test_bucket_name_comes_from_the_ssm_parameter(
    s3: Any, host: dict[str, str], moto_reset: str
) -> None:
    ssm = boto3.client("ssm", endpoint_url=moto_reset, region_name="eu-west-1")
    ssm.put_parameter(Name="/crashcart/dump-bucket", Value=BUCKET, Type="String")
    env = {k: v for k, v in host.items() if k != "CRASHCART_BUCKET"}
    make_dump(Path(env["CRASHCART_CRASH_DIR"]), "202611260519")
    result = run_agent(env, "ship", endpoint=moto_reset)
    assert result.returncode == 0, result.stderr
    assert f"dumps/{INSTANCE_ID}/202611260519/metadata.json" in keys(s3)


def test_attestation_is_published_as_the_instance_tag(tmp_path: Path, moto_reset: str) -> None:
    ec2 = boto3.client("ec2", endpoint_url=moto_reset, region_name="eu-west-1")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]
    env = fake_host(tmp_path, unknown_nmi_panic="0")
    env["CRASHCART_INSTANCE_ID"] = instance["InstanceId"]
    result = run_agent(env, "attest", endpoint=moto_reset)
    assert result.returncode == 0, result.stderr
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [instance["InstanceId"]]}])[
        "Tags"
    ]
    value = {t["Key"]: t["Value"] for t in tags}["crashcart:kdump-attestation"]
    assert value.startswith("not-armed 20")
    assert value.endswith("unknown_nmi_panic=0")
    local = json.loads((tmp_path / "state" / "attestation.json").read_text())
    assert local["armed"] is False and local["build_id"] == BUILD_ID


#: What the capture-memory hook writes (components/fragments/capture-memory-install.sh).
CAPTURE_MEMORY = """\
# crashcart capture-kernel memory while the dump was saved (kB)
kernel_release=6.1.0-27-cloud-amd64
mem_total_kb=150000
mem_available_start_kb=90000
mem_free_start_kb=100000
mem_available_min_kb=60000
mem_free_min_kb=20000
makedumpfile_vmhwm_kb=18000
samples=97
sample_interval_s=0.2
final=1
"""
RESERVING = (
    "[    0.004000] Reserving 192MB of memory at 752MB for crashkernel (System RAM: 1023MB)\n"
)


def test_ships_the_capture_kernels_memory_as_numbers_with_the_reservation(
    s3: Any, host: dict[str, str], moto_reset: str
) -> None:
    """Issue 18, part 2: the figures the capture-memory hook saved with the dump travel in
    metadata.json as numbers, against the reservation the crashed kernel logged at boot."""
    crash = Path(host["CRASHCART_CRASH_DIR"])
    measured = make_dump(crash, "202612052300", dmesg=RESERVING + NMI_PANIC_DMESG)
    (measured / "capture-memory.txt").write_text(CAPTURE_MEMORY)
    make_dump(crash, "202612052301")  # no hook, no reservation line
    result = run_agent(host, "ship", endpoint=moto_reset)
    assert result.returncode == 0, result.stderr

    def metadata(dump_id: str) -> Any:
        key = f"dumps/{INSTANCE_ID}/{dump_id}/metadata.json"
        return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    assert metadata("202612052300")["capture_memory"] == {
        "mem_total_kb": 150000,
        "mem_available_start_kb": 90000,
        "mem_free_start_kb": 100000,
        "mem_available_min_kb": 60000,
        "mem_free_min_kb": 20000,
        "makedumpfile_vmhwm_kb": 18000,
        "samples": 97,
        "final": 1,
        "used_kb": 90000,  # MemTotal less the lowest MemAvailable
        "reserved_kb": 192 * 1024,
        "margin_kb": 192 * 1024 - 90000,
    }
    assert metadata("202612052301")["capture_memory"] is None


def test_reads_the_reservation_from_either_kernel_log_form_and_ignores_junk(
    tmp_path: Path,
) -> None:
    agent = load_module(AGENT, "crashcart_agent_capture_memory")
    assert agent.reserved_kb_from_dmesg(RESERVING) == 192 * 1024
    generic = (
        "[    0.000000] crashkernel reserved: 0x00000000af000000 - 0x00000000bf000000 (256 MB)"
    )
    assert agent.reserved_kb_from_dmesg(generic) == 256 * 1024
    assert agent.reserved_kb_from_dmesg(NMI_PANIC_DMESG) is None
    (tmp_path / "capture-memory.txt").write_text(
        "mem_total_kb=100\nmem_available_min_kb=40\nmem_total_kb=oops\n$(reboot)=1\nextra=5\n"
    )
    assert agent.capture_memory(tmp_path, None) == {
        "mem_total_kb": 100,
        "mem_available_min_kb": 40,
        "used_kb": 60,
    }
    (tmp_path / "capture-memory.txt").write_text("# the hook started, nothing sampled\n")
    assert agent.capture_memory(tmp_path, 1024) is None
