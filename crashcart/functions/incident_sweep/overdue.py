"""Which incidents are "dump overdue", and what to tell people about them (pure: no AWS calls).

An incident waits for its crash dump from the moment the remediation function interrupted the
instance (it then sets ``dump_deadline``). It is *overdue* when, at the sweep time:

- it has a ``dump_deadline`` that has passed (ISO-8601 UTC strings compare in time order),
- it has no ``dump_keys`` (the dump-arrival function sets them when ``metadata.json`` lands),
- it was not flagged before (no ``overdue_at``), and
- its state is ``interrupted`` or ``recovered``. ``recovered`` counts because the kdump
  reboot itself usually clears the status-check alarm (the remediation function then marks
  the incident ``recovered``) minutes before the agent ships the dump: a dump that never
  ships leaves exactly such an incident behind.

Flagging is two steps, each a conditional write: ``state = dump-overdue`` + ``overdue_at``
(only if the incident is still as read: a dump arriving meanwhile wins), then, after the
notification was published, ``overdue_notified_at``. An incident flagged but not yet notified
(the publish failed) is notified by the next sweep: at least once, never silently lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from crashcart.runtime import dumps, notification
from crashcart.runtime.incident import (
    INCIDENT_PREFIX,
    INSTANCE_PREFIX,
    WAITING_FOR_DUMP,
    Attribute,
    State,
)

OVERDUE_STATE: Final = State.DUMP_OVERDUE
#: States in which an incident still waits for its dump.
WAITING_STATES: Final = WAITING_FOR_DUMP
DEFAULT_PARAMETER_NAME: Final = dumps.DEFAULT_PARAMETER_NAME

#: Attributes the sweep reads (keeps the scan's returned data small).
PROJECTED: Final = (
    Attribute.PK,
    Attribute.SK,
    Attribute.INSTANCE_ID,
    Attribute.STATE,
    Attribute.OPENED_AT,
    Attribute.INTERRUPTED_AT,
    Attribute.DUMP_DEADLINE,
    Attribute.ALARM_NAME,
    Attribute.EVIDENCE_KEY,
    Attribute.OVERDUE_AT,
    Attribute.OVERDUE_NOTIFIED_AT,
    Attribute.DUMP_KEYS,
)


class Action(StrEnum):
    """What the sweep does with one incident."""

    FLAG = "flag"  # set dump-overdue, then notify
    NOTIFY = "notify"  # flagged before, notification still pending
    NONE = "none"


@dataclass(frozen=True, kw_only=True)
class Incident:
    """The parts of an incident item the sweep needs."""

    pk: str
    sk: str
    instance_id: str
    state: str
    opened_at: str
    dump_deadline: str | None
    interrupted_at: str | None = None
    alarm_name: str | None = None
    evidence_key: str | None = None
    has_dump: bool = False
    overdue_at: str | None = None
    notified: bool = False


def _text(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    if isinstance(value, Mapping) and isinstance(value.get("S"), str):
        text: str = value["S"]
        return text
    return None


def from_item(item: Mapping[str, Any]) -> Incident | None:
    """A low-level DynamoDB item -> :class:`Incident`; None for items that are not incidents."""
    pk, sk = _text(item, "pk"), _text(item, "sk")
    if pk is None or sk is None or not sk.startswith(INCIDENT_PREFIX):
        return None
    instance_id = _text(item, "instance_id") or pk.removeprefix(INSTANCE_PREFIX)
    dump_keys = item.get("dump_keys")
    return Incident(
        pk=pk,
        sk=sk,
        instance_id=instance_id,
        state=_text(item, "state") or "",
        opened_at=_text(item, "opened_at") or sk.removeprefix(INCIDENT_PREFIX),
        dump_deadline=_text(item, "dump_deadline"),
        interrupted_at=_text(item, "interrupted_at"),
        alarm_name=_text(item, "alarm_name"),
        evidence_key=_text(item, "evidence_key"),
        has_dump=dump_keys is not None,
        overdue_at=_text(item, "overdue_at"),
        notified=_text(item, "overdue_notified_at") is not None,
    )


def decide(incident: Incident, now_iso: str) -> Action:
    """The scan filter, re-checked on the item (the filter is the cost saver, this the rule)."""
    if incident.has_dump:
        return Action.NONE
    if incident.overdue_at is not None:
        return Action.NONE if incident.notified else Action.NOTIFY
    if incident.state not in WAITING_STATES or incident.dump_deadline is None:
        return Action.NONE
    return Action.FLAG if incident.dump_deadline < now_iso else Action.NONE


def scan_filter(now_iso: str) -> dict[str, Any]:
    """Scan arguments (without TableName / ExclusiveStartKey) selecting FLAG and NOTIFY items."""
    names: dict[str, str] = {f"#p{i}": name for i, name in enumerate(PROJECTED)}
    ref: dict[str, str] = {name: f"#p{i}" for i, name in enumerate(PROJECTED)}
    waiting = ", ".join(f":w{i}" for i in range(len(WAITING_STATES)))
    due = (
        f"{ref['state']} IN ({waiting}) AND {ref['dump_deadline']} < :now"
        f" AND attribute_not_exists({ref['overdue_at']})"
    )
    pending = (
        f"attribute_exists({ref['overdue_at']})"
        f" AND attribute_not_exists({ref['overdue_notified_at']})"
    )
    values: dict[str, Any] = {":now": {"S": now_iso}}
    values.update({f":w{i}": {"S": state} for i, state in enumerate(WAITING_STATES)})
    return {
        "FilterExpression": (
            f"begins_with({ref['sk']}, :incident) AND attribute_not_exists({ref['dump_keys']})"
            f" AND (({due}) OR ({pending}))"
        ),
        "ProjectionExpression": ", ".join(ref[name] for name in PROJECTED),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": {**values, ":incident": {"S": INCIDENT_PREFIX}},
    }


def message(incident: Incident, *, parameter_name: str = DEFAULT_PARAMETER_NAME) -> tuple[str, str]:
    """Subject and plain-words body of the "dump overdue" notification."""
    instance = incident.instance_id
    # The table's values are written by other functions: the subject must stay publishable
    # whatever they hold, or the sweep would fail on this incident at every run.
    subject = notification.subject(f"crashcart: dump overdue from {instance}")
    lines = [
        f"crashcart: no crash dump has arrived from {instance}.",
        "",
        f"incident:     {incident.sk} (state before this: {incident.state})",
        f"alarm:        {incident.alarm_name or 'unknown'}",
        f"opened:       {incident.opened_at}",
        f"interrupted:  {incident.interrupted_at or 'unknown'}",
        f"dump due by:  {incident.dump_deadline or 'unknown'}",
        "",
        "What was expected: after the diagnostic interrupt the kernel panics, kdump writes a "
        "vmcore to /var/crash, the instance reboots, and the crashcart agent ships the dump "
        f"to the dump bucket under dumps/.../{instance}/<dump id>/ (metadata.json last). "
        "None of that has been seen.",
        "",
        "What to check:",
        f"  1. The console output of {instance} (aws ec2 get-console-output --latest "
        f"--instance-id {instance}): did the kernel panic, did kdump start and save a vmcore?",
    ]
    if incident.evidence_key:
        lines.append(
            "     The console output from before the interrupt was saved as "
            f"{incident.evidence_key}."
        )
    lines += [
        "  2. On the instance, the agent's journal: journalctl -u crashcart-agent "
        "(upload errors, permissions, no space), and ls /var/crash.",
        f"  3. Whether {instance} was replaced or terminated (an Auto Scaling group may have "
        "replaced it before the dump was shipped: the dump is then lost with its disk).",
        f"  4. The SSM parameter {parameter_name}: it must name the dump bucket, and the "
        "instance role must be allowed to read it and write to the bucket.",
        "",
        "A dump that still arrives is attached to this incident (state becomes dump-received).",
    ]
    return subject, "\n".join(lines)
