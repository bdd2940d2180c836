"""The debug-symbol publisher against real ELF files and moto S3 on 127.0.0.1.

The publisher runs as a subprocess, as the Image Builder component runs it, with the venv's
real AWS CLI pointed at the moto server by ``AWS_ENDPOINT_URL``. The "vmlinux" is a real ELF64
file with a GNU build-id note, linked by gcc here; the fake /sys/kernel/notes holds that same
note (cut out of the file by objcopy) or another one. ``readelf -n`` is the independent oracle
for the build id.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from crashcart.symbol_layout import metadata_key, symbol_key
from tests.support.dumps import AWS_CLI, REPO, load_module

PUBLISHER = REPO / "crashcart" / "components" / "symbols" / "crashcart-publish-symbols.py"
AGENT = REPO / "crashcart" / "components" / "agent" / "crashcart-agent.py"
BUCKET = "crashcart-symbols-test"
RELEASE = "6.1.0-27-cloud-amd64"

pytestmark = [
    pytest.mark.skipif(not AWS_CLI.exists(), reason="needs the aws CLI in the venv"),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="scripts/setup.sh installs gcc"),
]


def _link(folder: Path, name: str, *, build_id: str = "sha1", source: str = "") -> Path:
    """A real ELF64 executable linked by gcc (``--build-id=none`` for one without)."""
    folder.mkdir(parents=True, exist_ok=True)
    c_file = folder / f"{name}.c"
    c_file.write_text(f"int main(void) {{ return 0; }}\n{source}\n")
    out = folder / name
    subprocess.run(
        ["gcc", f"-Wl,--build-id={build_id}", "-o", str(out), str(c_file)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return out


def _readelf_build_id(path: Path) -> str:
    text = subprocess.run(
        ["readelf", "-n", str(path)], check=True, capture_output=True, text=True
    ).stdout
    match = re.search(r"Build ID: ([0-9a-f]+)", text)
    assert match, text
    return match.group(1)


def _note_bytes(elf: Path, tmp: Path) -> bytes:
    out = tmp / f"{elf.name}.notes"
    subprocess.run(
        ["objcopy", "-O", "binary", "--only-section=.note.gnu.build-id", str(elf), str(out)],
        check=True,
        capture_output=True,
    )
    return out.read_bytes()


def _fake_sys(root: Path, notes: bytes) -> Path:
    """A /sys tree whose kernel/notes holds a Xen note, then ``notes`` (as a kernel's does)."""
    sys_root = root / "sys"
    (sys_root / "kernel").mkdir(parents=True, exist_ok=True)
    xen = struct.pack("<III", 4, 4, 1) + b"Xen\0" + b"abcd"
    (sys_root / "kernel" / "notes").write_bytes(xen + notes)
    return sys_root


@pytest.fixture(scope="module")
def elves(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("elves")
    return {
        "vmlinux": _link(folder, "vmlinux"),
        "other": _link(folder, "other", source="int other(void) { return 42; }"),
        "no-id": _link(folder, "noid", build_id="none"),
    }


@pytest.fixture
def s3(moto_reset: str) -> Any:
    client = boto3.client("s3", endpoint_url=moto_reset, region_name="eu-west-1")
    client.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    return client


def keys(s3: Any) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def run(
    *args: str, endpoint: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run the publisher; its process and its one JSON line."""
    full = dict(os.environ)
    full.update(
        {
            "CRASHCART_AWS": str(AWS_CLI),
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_MAX_ATTEMPTS": "1",
            "CRASHCART_RETRY_DELAY": "0",
        }
    )
    full.update(env or {})
    done = subprocess.run(
        [sys.executable, str(PUBLISHER), "--region", "eu-west-1", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout + done.stderr
    return done, json.loads(lines[0])


def _standard(tmp_path: Path, elves: dict[str, Path], *, running: str = "vmlinux") -> list[str]:
    """Arguments for a vmlinux given by path and a /sys whose kernel is ``running``."""
    sys_root = _fake_sys(tmp_path, _note_bytes(elves[running], tmp_path))
    return [
        "--bucket",
        BUCKET,
        "--vmlinux",
        str(elves["vmlinux"]),
        "--sys-root",
        str(sys_root),
        "--kernel-release",
        RELEASE,
        "--family",
        "debian-12",
        "--source-package",
        f"linux-image-{RELEASE}-dbg",
    ]


# --- published ----------------------------------------------------------------------------------


def test_publishes_vmlinux_then_metadata(
    s3: Any, moto_reset: str, elves: dict[str, Path], tmp_path: Path
) -> None:
    build_id = _readelf_build_id(elves["vmlinux"])
    done, result = run(
        *_standard(tmp_path, elves),
        "--image-build-arn",
        "arn:aws:imagebuilder:eu-west-1:111111111111:image/x/1.0.0/1",
        endpoint=moto_reset,
    )
    assert done.returncode == 0, done.stderr
    assert result["result"] == "published"
    assert result["build_id"] == build_id
    assert result["objects"] == {"vmlinux": "stored", "metadata.json": "stored"}
    assert keys(s3) == [metadata_key(build_id), symbol_key(build_id)]
    body = elves["vmlinux"].read_bytes()
    assert s3.get_object(Bucket=BUCKET, Key=symbol_key(build_id))["Body"].read() == body
    metadata = json.loads(s3.get_object(Bucket=BUCKET, Key=metadata_key(build_id))["Body"].read())
    assert metadata == {
        "schema": 1,
        "build_id": build_id,
        "kernel_release": RELEASE,
        "family": "debian-12",
        "architecture": "x86_64",
        "source_package": f"linux-image-{RELEASE}-dbg",
        "sha256": hashlib.sha256(body).hexdigest(),
        "size": len(body),
        "vmlinux_key": symbol_key(build_id),
        "published_at": metadata["published_at"],
        "image_build_arn": "arn:aws:imagebuilder:eu-west-1:111111111111:image/x/1.0.0/1",
        "source_ami_id": None,
        "publisher": "crashcart-publish-symbols/1",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", metadata["published_at"])
    head = s3.head_object(Bucket=BUCKET, Key=metadata_key(build_id))
    assert head["ContentType"] == "application/json"
    stamps = {k: s3.head_object(Bucket=BUCKET, Key=k)["LastModified"] for k in keys(s3)}
    assert stamps[metadata_key(build_id)] >= stamps[symbol_key(build_id)]


@pytest.mark.parametrize(
    "layout",
    ["usr/lib/debug/boot/vmlinux-{release}", "usr/lib/debug/lib/modules/{release}/vmlinux"],
    ids=["debian-ubuntu", "amazon-linux-rhel"],
)
def test_finds_the_vmlinux_in_the_standard_locations(
    layout: str, s3: Any, moto_reset: str, elves: dict[str, Path], tmp_path: Path
) -> None:
    root = tmp_path / "root"
    target = root / layout.format(release=RELEASE)
    target.parent.mkdir(parents=True)
    shutil.copy(elves["vmlinux"], target)
    sys_root = _fake_sys(tmp_path, _note_bytes(elves["vmlinux"], tmp_path))
    done, result = run(
        "--bucket", BUCKET, "--root", str(root), "--sys-root", str(sys_root),
        "--kernel-release", RELEASE, endpoint=moto_reset,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert result["vmlinux"] == str(target)
    assert symbol_key(_readelf_build_id(elves["vmlinux"])) in keys(s3)


def test_second_publish_is_already_published_and_overwrites_nothing(
    s3: Any, moto_reset: str, elves: dict[str, Path], tmp_path: Path
) -> None:
    args = _standard(tmp_path, elves)
    first, _ = run(*args, endpoint=moto_reset)
    assert first.returncode == 0, first.stderr
    build_id = _readelf_build_id(elves["vmlinux"])
    before = s3.get_object(Bucket=BUCKET, Key=metadata_key(build_id))["Body"].read()
    versions_before = s3.list_object_versions(Bucket=BUCKET).get("Versions", [])

    again, result = run(*args, "--source-package", "something-else", endpoint=moto_reset)
    assert again.returncode == 0, again.stderr
    assert result["result"] == "already-published"
    assert result["objects"] == {"vmlinux": "present", "metadata.json": "present"}
    assert "already published" in again.stderr
    assert s3.get_object(Bucket=BUCKET, Key=metadata_key(build_id))["Body"].read() == before
    assert s3.list_object_versions(Bucket=BUCKET).get("Versions", []) == versions_before


def test_metadata_missing_from_an_interrupted_run_is_completed(
    s3: Any, moto_reset: str, elves: dict[str, Path], tmp_path: Path
) -> None:
    build_id = _readelf_build_id(elves["vmlinux"])
    s3.put_object(Bucket=BUCKET, Key=symbol_key(build_id), Body=elves["vmlinux"].read_bytes())
    done, result = run(*_standard(tmp_path, elves), endpoint=moto_reset)
    assert done.returncode == 0, done.stderr
    assert result["result"] == "published"
    assert result["objects"] == {"vmlinux": "present", "metadata.json": "stored"}
    assert metadata_key(build_id) in keys(s3)


def test_bucket_name_from_an_ssm_parameter(
    s3: Any, moto_reset: str, elves: dict[str, Path], tmp_path: Path
) -> None:
    ssm = boto3.client("ssm", endpoint_url=moto_reset, region_name="eu-west-1")
    ssm.put_parameter(Name="/crashcart/symbol-bucket", Value=BUCKET, Type="String")
    args = _standard(tmp_path, elves)
    args[:2] = ["--bucket-parameter", "/crashcart/symbol-bucket"]
    done, result = run(*args, endpoint=moto_reset)
    assert done.returncode == 0, done.stderr
    assert result["bucket"] == BUCKET
    assert symbol_key(_readelf_build_id(elves["vmlinux"])) in keys(s3)


# --- refused and failed -------------------------------------------------------------------------


def test_refuses_a_vmlinux_of_another_kernel_and_uploads_nothing(
    s3: Any, moto_reset: str, elves: dict[str, Path], tmp_path: Path
) -> None:
    done, result = run(*_standard(tmp_path, elves, running="other"), endpoint=moto_reset)
    assert done.returncode == 3
    assert result["result"] == "refused"
    ours, theirs = _readelf_build_id(elves["vmlinux"]), _readelf_build_id(elves["other"])
    assert ours != theirs
    assert result["build_id"] == ours and result["running_build_id"] == theirs
    assert ours in result["error"] and theirs in result["error"]
    assert "another kernel" in done.stderr and "nothing was published" in done.stderr
    assert keys(s3) == []


def test_missing_vmlinux_says_where_it_looked(
    s3: Any, moto_reset: str, elves: dict[str, Path], tmp_path: Path
) -> None:
    sys_root = _fake_sys(tmp_path, _note_bytes(elves["vmlinux"], tmp_path))
    root = tmp_path / "empty-root"
    root.mkdir()
    done, result = run(
        "--bucket", BUCKET, "--root", str(root), "--sys-root", str(sys_root),
        "--kernel-release", RELEASE, endpoint=moto_reset,
    )  # fmt: skip
    assert done.returncode == 2
    assert result["result"] == "error"
    assert f"no debug vmlinux for kernel {RELEASE}" in result["error"]
    assert f"usr/lib/debug/boot/vmlinux-{RELEASE}" in result["error"]
    assert f"usr/lib/debug/lib/modules/{RELEASE}/vmlinux" in result["error"]
    assert "Traceback" not in done.stderr
    assert keys(s3) == []


def _patched(elf: Path, tmp_path: Path, name: str, patch: dict[int, int]) -> Path:
    data = bytearray(elf.read_bytes())
    for offset, value in patch.items():
        data[offset] = value
    out = tmp_path / name
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("text", "is not an ELF file"),
        ("elf32", "ELF32 little-endian: only ELF64 little-endian"),
        ("big-endian", "ELF64 big-endian: only ELF64 little-endian"),
        ("no-build-id", "has no GNU build-id note"),
    ],
)
def test_refuses_what_is_not_an_elf64_le_file_with_a_build_id(
    kind: str,
    expected: str,
    s3: Any,
    moto_reset: str,
    elves: dict[str, Path],
    tmp_path: Path,
) -> None:
    if kind == "text":
        vmlinux = tmp_path / "vmlinux.txt"
        vmlinux.write_text("this is a System.map, not a vmlinux\n")
    elif kind == "elf32":
        vmlinux = _patched(elves["vmlinux"], tmp_path, "elf32", {4: 1})
    elif kind == "big-endian":
        vmlinux = _patched(elves["vmlinux"], tmp_path, "be", {5: 2})
    else:
        vmlinux = elves["no-id"]
    args = _standard(tmp_path, elves)
    args[args.index("--vmlinux") + 1] = str(vmlinux)
    done, result = run(*args, endpoint=moto_reset)
    assert done.returncode == 2, done.stderr
    assert expected in result["error"]
    assert "Traceback" not in done.stderr
    assert keys(s3) == []


def test_reads_the_build_id_from_program_headers_without_section_headers(
    s3: Any, moto_reset: str, elves: dict[str, Path], tmp_path: Path
) -> None:
    # e_shoff (8 bytes at 40) and e_shnum (2 bytes at 60) zeroed: only PT_NOTE segments left.
    stripped = _patched(elves["vmlinux"], tmp_path, "no-sections", {i: 0 for i in range(40, 48)})
    stripped = _patched(stripped, tmp_path, "no-sections", {60: 0, 61: 0})
    args = _standard(tmp_path, elves)
    args[args.index("--vmlinux") + 1] = str(stripped)
    done, result = run(*args, endpoint=moto_reset)
    assert done.returncode == 0, done.stderr
    assert result["build_id"] == _readelf_build_id(elves["vmlinux"])


def _fake_cli(tmp_path: Path, failures: int, error: str) -> tuple[Path, Path]:
    """An AWS CLI that fails ``failures`` times with ``error``, then runs the real one."""
    counter = tmp_path / "calls"
    script = tmp_path / "aws"
    script.write_text(
        "#!/bin/bash\n"
        f"count=$(( $(cat '{counter}' 2>/dev/null || echo 0) + 1 ))\n"
        f"echo \"$count\" >'{counter}'\n"
        f'if [ "$count" -le {failures} ]; then\n'
        f"  echo '{error}' >&2\n"
        "  exit 254\n"
        "fi\n"
        f"exec '{AWS_CLI}' \"$@\"\n"
    )
    script.chmod(0o755)
    return script, counter


def test_retries_throttling(
    s3: Any, moto_reset: str, elves: dict[str, Path], tmp_path: Path
) -> None:
    cli, counter = _fake_cli(
        tmp_path,
        2,
        "An error occurred (SlowDown) when calling the PutObject operation: Please reduce "
        "your request rate.",
    )
    done, result = run(
        *_standard(tmp_path, elves), endpoint=moto_reset, env={"CRASHCART_AWS": str(cli)}
    )
    assert done.returncode == 0, done.stderr
    assert result["result"] == "published"
    assert done.stderr.count("retrying") == 2
    assert int(counter.read_text()) == 4  # 2 throttled + vmlinux + metadata.json


def test_gives_up_after_the_attempts_and_on_other_errors(
    s3: Any, moto_reset: str, elves: dict[str, Path], tmp_path: Path
) -> None:
    cli, counter = _fake_cli(
        tmp_path, 99, "An error occurred (InternalError) when calling the PutObject operation"
    )
    env = {"CRASHCART_AWS": str(cli), "CRASHCART_PUBLISH_ATTEMPTS": "3"}
    done, result = run(*_standard(tmp_path, elves), endpoint=moto_reset, env=env)
    assert done.returncode == 1
    assert result["result"] == "error" and "InternalError" in result["error"]
    assert int(counter.read_text()) == 3

    args = _standard(tmp_path, elves)
    args[1] = "no-such-bucket"
    done, result = run(*args, endpoint=moto_reset)
    assert done.returncode == 1
    assert "NoSuchBucket" in result["error"]
    assert "retrying" not in done.stderr
    assert keys(s3) == []


# --- one layout, one note parser ----------------------------------------------------------------


def test_publisher_agent_and_library_agree(elves: dict[str, Path], tmp_path: Path) -> None:
    publisher = load_module(PUBLISHER, "crashcart_publish_symbols")
    agent = load_module(AGENT, "crashcart_agent_for_symbols")
    notes = _fake_sys(tmp_path, _note_bytes(elves["vmlinux"], tmp_path)) / "kernel" / "notes"
    data = notes.read_bytes()
    build_id = _readelf_build_id(elves["vmlinux"])
    assert publisher.gnu_build_id(data) == agent.build_id_from_notes(data) == build_id
    assert publisher.elf_build_id(elves["vmlinux"]) == (build_id, "x86_64")
    assert symbol_key(build_id) == f"{publisher.SYMBOLS_PREFIX}{build_id}/vmlinux"
