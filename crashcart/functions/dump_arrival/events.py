"""The dump-arrival function's input: the S3 "Object Created" event and the dump's metadata.json.

Both are checked before anything is read or written: the key is URL-decoded once and matched
against the shared key grammar (:mod:`crashcart.runtime.dumps`), metadata.json (written by
the instance, so possibly hostile) must name the key's instance and list plain file names.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from crashcart.runtime.dumps import (
    BadKeyError,
    DumpKey,
    is_object_created,
    object_created_target,
    parse_metadata_key,
)

#: The files a dump folder may list: the agent writes "vmcore" and "dmesg.txt".
MAX_FILES = 16
#: A file name in metadata.json: one path segment, no leading dot ("." / ".." / hidden).
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class BadEventError(ValueError):
    """The event is not a dump arrival we can act on; the message says why."""


@dataclass(frozen=True)
class DumpArrival:
    bucket: str
    key: str
    instance_id: str
    dump_id: str

    @property
    def prefix(self) -> str:
        return self.key.rsplit("/", 1)[0] + "/"


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
    if not is_object_created(event):
        raise BadEventError(
            f"not an S3 Object Created event (source={event.get('source')!r}, "
            f"detail-type={event.get('detail-type')!r})"
        )
    bucket, key = object_created_target(event, BadEventError)
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
