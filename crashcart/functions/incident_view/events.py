"""The incident view's input: a member's incident update (central bus) or a dump's arrival in
the central bucket (S3 "Object Created" on the central account's default bus).

Both are checked before anything is written: the update by the organisation contract
(:func:`crashcart.runtime.organisation.parse_incident_event`: ``detail.account`` must be the
sending account), the arrival by the key grammar (:mod:`crashcart.runtime.dumps`), which in
the central bucket must carry the account segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crashcart.runtime import untrusted
from crashcart.runtime.dumps import (
    BadKeyError,
    DumpKey,
    is_object_created,
    object_created_target,
    parse_metadata_key,
)
from crashcart.runtime.organisation import (
    INCIDENT_SOURCE,
    BadIncidentEventError,
    IncidentUpdate,
    parse_incident_event,
)


class BadEventError(ValueError):
    """The event is neither a valid incident update nor a central dump arrival; says why."""


@dataclass(frozen=True)
class DumpArrived:
    """A dump's metadata.json landed in the central bucket under ``account``'s prefix."""

    bucket: str
    dump: DumpKey

    @property
    def account(self) -> str:
        assert self.dump.account is not None  # checked by parse_event
        return self.dump.account


def parse_event(event: Any, *, dump_bucket: str) -> IncidentUpdate | DumpArrived:
    """What the event reports; :class:`BadEventError` with the reason otherwise."""
    if not isinstance(event, dict):
        raise BadEventError(f"event is a {type(event).__name__}, not an object")
    if event.get("source") == INCIDENT_SOURCE:
        try:
            return parse_incident_event(event)
        except BadIncidentEventError as error:
            raise BadEventError(str(error)) from None
    if not is_object_created(event):
        raise BadEventError(
            f"neither a crashcart incident update nor an S3 Object Created event "
            f"(source={untrusted.line(event.get('source'), 60)}, "
            f"detail-type={untrusted.line(event.get('detail-type'), 60)})"
        )
    bucket, key = object_created_target(event, BadEventError)
    if bucket != dump_bucket or not isinstance(key, str):
        raise BadEventError(
            f"object in bucket {untrusted.line(bucket, 80)} is not in the central dump "
            f"bucket {dump_bucket}, or has no key"
        )
    try:
        dump = parse_metadata_key(key)
    except BadKeyError as error:
        raise BadEventError(str(error)) from None
    if dump.account is None:
        raise BadEventError(
            f"key {dump.key} has no account segment: the central bucket only takes "
            "dumps/<account id>/<role id>:<instance id>/<dump id>/"
        )
    return DumpArrived(bucket, dump)
