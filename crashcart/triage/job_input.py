"""The triage job's inputs, checked: its settings, the dump's key and its metadata.json.

All of it is read by the supervisor (trusted code, standard library and boto3 only) before
the parser starts; metadata.json is written by the instance, so it is parsed as hostile
input: bounded, typed, its instance checked against the key's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crashcart.errors import ConfigurationError
from crashcart.runtime import environment as variables
from crashcart.runtime.dumps import BadKeyError, DumpKey, parse_metadata_key
from crashcart.runtime.environment_reader import require
from crashcart.symbol_layout import normalize_build_id

MAX_METADATA_BYTES = 64 * 1024
#: Kept free on the scratch disk beyond the files, for drgn's and the OS's own use.
DISK_HEADROOM_BYTES = 512 * 1024 * 1024
#: The task's memory when ``CRASHCART_TASK_MEMORY_MIB`` is not set (the construct sets it).
DEFAULT_TASK_MEMORY_MIB = 4096


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
    #: Who the parser runs as (``CRASHCART_PARSER_USER``; see crashcart.triage.sandbox).
    parser_user: str | None = None
    #: The task's memory (``CRASHCART_TASK_MEMORY_MIB``); the parser may map it less a reserve.
    task_memory_mib: int = DEFAULT_TASK_MEMORY_MIB
    #: The job's own deadline (``CRASHCART_TIMEOUT_SECONDS``); the parser ends before it.
    timeout_seconds: int | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        required = (
            variables.METADATA_KEY,
            variables.DUMP_BUCKET,
            variables.TABLE_NAME,
            variables.TOPIC_ARN,
        )
        require(env, required, BadInputError)
        wait = env.get(variables.LINK_WAIT_SECONDS, "120")
        try:
            link_wait = float(wait)
        except ValueError:
            raise BadInputError(f"CRASHCART_LINK_WAIT_SECONDS={wait!r} is not a number") from None
        numbers = {}
        for name in (variables.TASK_MEMORY_MIB, variables.TIMEOUT_SECONDS):
            raw = env.get(name)
            if raw:
                if not raw.isdigit() or int(raw) <= 0:
                    raise BadInputError(f"{name}={raw!r} is not a positive whole number")
                numbers[name] = int(raw)
        return cls(
            metadata_key=env[variables.METADATA_KEY],
            dump_bucket=env[variables.DUMP_BUCKET],
            symbol_bucket=env.get(variables.SYMBOL_BUCKET) or None,
            table_name=env[variables.TABLE_NAME],
            topic_arn=env[variables.TOPIC_ARN],
            work_dir=Path(env.get(variables.WORK_DIR) or tempfile.gettempdir()),
            link_wait_seconds=max(0.0, link_wait),
            parser_user=env.get(variables.PARSER_USER) or None,
            task_memory_mib=numbers.get(variables.TASK_MEMORY_MIB, DEFAULT_TASK_MEMORY_MIB),
            timeout_seconds=numbers.get(variables.TIMEOUT_SECONDS),
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
