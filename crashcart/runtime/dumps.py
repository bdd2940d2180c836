"""The crash-dump bucket's object layout and the key grammar of a shipped dump.

The agent writes ``dumps/<role id>:<instance id>/<dump id>/`` (``<role id>:<instance id>``
is the ``${aws:userid}`` of the instance-profile session: each instance can write only
there) and puts ``metadata.json`` last, so its arrival means the dump is complete. Into an
organisation's central bucket (``OrganisationCentral``) it writes
``dumps/<account id>/<role id>:<instance id>/<dump id>/``: the account segment is the
``${aws:PrincipalAccount}`` the central bucket policy checks. The
dump-arrival function and the triage job read that key from the S3 event; the constructs
build their IAM resources and event patterns from the same prefixes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote_plus

from crashcart.runtime.incident import INSTANCE_PREFIX, instance_pk

#: Key prefix of the dumps.
DUMPS_PREFIX: Final = "dumps/"
#: Key prefix of the remediation function's evidence (console output before an interrupt).
EVIDENCE_PREFIX: Final = "evidence/"
#: Key prefix of the full triage reports: ``reports/<role id>:<instance id>/<dump id>/``.
REPORTS_PREFIX: Final = "reports/"
#: The SSM parameter the agent reads the bucket name from.
DEFAULT_PARAMETER_NAME: Final = "/crashcart/dump-bucket"
#: The SSM parameter the agent reads its key layout from: ``account`` in an organisation's
#: member account (``dumps/<account id>/...`` in the central bucket); absent elsewhere.
LAYOUT_PARAMETER_NAME: Final = "/crashcart/dump-layout"
#: The layout value of a member account.
ACCOUNT_LAYOUT: Final = "account"
#: The object whose arrival means a dump is complete.
METADATA_NAME: Final = "metadata.json"
#: The ``source`` and ``detail-type`` of S3's EventBridge "Object Created" event (its arrival).
S3_SOURCE: Final = "aws.s3"
OBJECT_CREATED: Final = "Object Created"

#: ``dumps/[<account id>/]<role id>:<instance id>/<dump id>/metadata.json``;
#: ``dumps/[<account id>/]<instance id>/...`` is accepted too (the local drill, hand uploads).
#: The account segment (12 digits) is present in an organisation's central bucket only.
#: Matched whole (``fullmatch``: a trailing newline is not a key), after
#: :func:`decode_event_key`.
METADATA_KEY: Final = re.compile(
    r"dumps/(?:(?P<account>[0-9]{12})/)?"
    r"(?P<owner>(?:[A-Z0-9]{8,128}:)?(?P<instance>i-[0-9a-f]{8,17}))/"
    r"(?P<dump>[A-Za-z0-9._-]{1,128})/metadata\.json"
)


class BadKeyError(ValueError):
    """The key is not a dump's metadata.json; the message names it and says why."""


@dataclass(frozen=True)
class DumpKey:
    """One shipped dump, named by its metadata.json key."""

    key: str
    owner: str
    instance_id: str
    dump_id: str
    #: The member account that wrote the dump (central bucket); None in an account's own.
    account: str | None = None

    @property
    def prefix(self) -> str:
        """The dump's folder: ``dumps/[<account>/]<owner>/<dump id>/``."""
        return self.key.rsplit("/", 1)[0] + "/"

    @property
    def report_prefix(self) -> str:
        """Where the dump's full report goes: ``reports/[<account>/]<owner>/<dump id>/``."""
        account = f"{self.account}/" if self.account else ""
        return f"{REPORTS_PREFIX}{account}{self.owner}/{self.dump_id}/"

    @property
    def incident_pk(self) -> str:
        """The partition key of the instance's incidents: ``instance#<instance id>`` in an
        account's own table, ``instance#<account>:<instance id>`` in the central one."""
        return incident_pk_of(self.instance_id, self.account)


def is_object_created(event: Mapping[str, Any]) -> bool:
    """Whether an EventBridge event is S3's "Object Created"."""
    return event.get("source") == S3_SOURCE and event.get("detail-type") == OBJECT_CREATED


def object_created_target(
    event: Mapping[str, Any], error: type[Exception]
) -> tuple[object, object]:
    """``detail.bucket.name`` and ``detail.object.key`` of an S3 "Object Created" event, as
    sent (the caller judges them); ``error`` when the event has no detail object."""
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise error("event has no detail object")
    return (detail.get("bucket") or {}).get("name"), (detail.get("object") or {}).get("key")


def decode_event_key(raw: str) -> str:
    """The object key an S3 event names, URL-decoded exactly once (form encoding).

    aws-assumption: s3-event-key-encoding. S3 documents its event keys as
    ``application/x-www-form-urlencoded`` (``:`` -> ``%3A``, space -> ``+``). Every character
    of the key grammar (letters, digits, ``. _ - / :``) reads the same encoded or not, and the
    grammar has no ``%``, ``+`` or space: one decode gives the right key whether or not the
    event encoded it, and a ``+``, a ``%`` or a second layer of encoding never survives the
    grammar check that follows.
    """
    try:
        return unquote_plus(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as error:
        raise BadKeyError(f"key {raw!r} is not UTF-8 once URL-decoded: {error}") from None


def parse_metadata_key(raw: str) -> DumpKey:
    """The dump an event's key names (decoded once, then checked against the grammar)."""
    key = decode_event_key(raw)
    match = METADATA_KEY.fullmatch(key)
    if not match or match.group("dump") in (".", ".."):
        shown = repr(raw) if key == raw else f"{raw!r} (URL-decoded: {key!r})"
        raise BadKeyError(
            f"key {shown} is not dumps/<role id>:<instance id>/<dump id>/metadata.json "
            "(nor, in an organisation's central bucket, with a 12-digit <account id>/ "
            "after dumps/)"
        )
    return DumpKey(
        key,
        match.group("owner"),
        match.group("instance"),
        match.group("dump"),
        match.group("account"),
    )


def incident_pk_of(instance_id: str, account: str | None = None) -> str:
    """The incident partition key of an instance, qualified by its account when given (the
    central incident view keeps every member account's instances in one table)."""
    return f"{INSTANCE_PREFIX}{account}:{instance_id}" if account else instance_pk(instance_id)


#: The capture kernel's memory figures (kB) that the agent puts in metadata.json's
#: ``capture_memory`` and the dump-arrival function copies into the incident: what the
#: crashed kernel reserved, the most the capture kernel used while saving the dump
#: (MemTotal less the lowest MemAvailable), the difference, and makedumpfile's peak RSS.
CAPTURE_MEMORY_FIGURES: Final = (
    "reserved_kb",
    "used_kb",
    "margin_kb",
    "mem_total_kb",
    "makedumpfile_vmhwm_kb",
)
_FIGURE_BOUND = 1 << 40  # kB: a petabyte; anything beyond is not a memory figure


def capture_memory_figures(value: object) -> dict[str, int]:
    """The known figures of metadata.json's ``capture_memory`` (written by the instance:
    untrusted), each an integer within bounds; anything else is left out."""
    if not isinstance(value, dict):
        return {}
    return {
        name: number
        for name in CAPTURE_MEMORY_FIGURES
        if isinstance(number := value.get(name), int)
        and not isinstance(number, bool)
        and -_FIGURE_BOUND < number < _FIGURE_BOUND
    }
