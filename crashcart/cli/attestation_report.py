"""The ``crashcart attestation`` report: one row per opted-in instance, its exit code.

The model and its two renderings (the human table and the ``--json`` document) of
:mod:`crashcart.cli.attestation`, which lists the instances and runs the command.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crashcart.opt_in import OptInTag
from crashcart.runtime.attestation import (
    ATTESTATION_TAG_KEY,
    Judgement,
    Status,
    human_age,
    printable,
)

#: Version of the ``--json`` document; bumped when a key changes meaning or disappears.
SCHEMA_VERSION = 1
#: The function's default boot grace: a younger instance may simply not have attested yet.
BOOT_GRACE_SECONDS = 900

#: The statuses that make the command exit 9 (the remediation would refuse the interrupt).
NOT_GOOD = frozenset({Status.NOT_ARMED, Status.STALE, Status.MISSING, Status.UNPARSEABLE})


class ExitCode(enum.IntEnum):
    ALL_ARMED = 0
    USAGE = 2
    AWS_ERROR = 3
    NOT_ARMED = 9


@dataclass(frozen=True, kw_only=True)
class InstanceAttestation:
    """One opted-in instance: its state and what its attestation means."""

    region: str
    instance_id: str
    name: str | None
    state: str
    launch_time: datetime | None
    attestation: str | None  # the raw tag value
    judgement: Judgement
    now: datetime

    @property
    def status(self) -> Status:
        if self.state != "running":
            return Status.NOT_RUNNING
        return self.judgement.status

    @property
    def age_seconds(self) -> int | None:
        at = self.judgement.attested_at
        return None if at is None else int((self.now - at).total_seconds())

    @property
    def detail(self) -> str:
        if self.state != "running":
            verb = "pending (starting)" if self.state == "pending" else self.state
            last = self.judgement.status.value
            if self.judgement.reasons:
                last += f" ({printable(self.judgement.reasons)})"
            return (
                f"{verb}: only a running instance can attest (the agent attests at boot); "
                f"last attestation: {last}"
            )
        detail = self.judgement.detail
        if self.judgement.status is Status.MISSING and self.launch_time is not None:
            up = (self.now - self.launch_time).total_seconds()
            if up < BOOT_GRACE_SECONDS:  # (negative: the local clock is behind EC2's)
                detail += f" (launched {human_age(max(up, 0))} ago: it may not have attested yet)"
        return detail

    def to_json(self) -> dict[str, Any]:
        at = self.judgement.attested_at
        return {
            "region": self.region,
            "instance_id": self.instance_id,
            "name": self.name,
            "state": self.state,
            "status": self.status.value,
            "attestation_status": self.judgement.status.value,
            "attestation": self.attestation,
            "attested_at": None if at is None else _iso(at),
            "age_seconds": self.age_seconds,
            "reasons": self.judgement.reasons,
            "detail": self.detail,
        }


@dataclass(frozen=True, kw_only=True)
class RegionError:
    """A region that could not be listed, in plain words."""

    region: str
    code: str
    message: str


@dataclass(frozen=True, kw_only=True)
class AttestationReport:
    """Every opted-in instance found, and the regions that could not be listed."""

    regions: tuple[str, ...]
    tag: OptInTag
    max_age_seconds: int
    generated_at: datetime
    instances: tuple[InstanceAttestation, ...]
    errors: tuple[RegionError, ...]

    @property
    def counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in Status}
        for instance in self.instances:
            counts[instance.status.value] += 1
        return counts

    @property
    def not_good(self) -> tuple[InstanceAttestation, ...]:
        return tuple(i for i in self.instances if i.status in NOT_GOOD)

    @property
    def exit_code(self) -> int:
        if self.errors:
            return int(ExitCode.AWS_ERROR)
        if self.not_good:
            return int(ExitCode.NOT_ARMED)
        return int(ExitCode.ALL_ARMED)

    def listed(self, *, include_armed: bool) -> tuple[InstanceAttestation, ...]:
        """The rows shown: all but the armed ones, or everything with ``include_armed``."""
        return tuple(i for i in self.instances if include_armed or i.status is not Status.ARMED)

    def to_json(self, *, include_armed: bool) -> dict[str, Any]:
        """The ``--json`` document (schema :data:`SCHEMA_VERSION`; every key always present)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "generated_at": _iso(self.generated_at),
            "regions": list(self.regions),
            "opt_in_tag": {"key": self.tag.key, "value": self.tag.value},
            "attestation_tag_key": ATTESTATION_TAG_KEY,
            "max_age_seconds": self.max_age_seconds,
            "include_armed": include_armed,
            "counts": self.counts,
            "instances": [i.to_json() for i in self.listed(include_armed=include_armed)],
            "errors": [
                {"region": e.region, "code": e.code, "message": e.message} for e in self.errors
            ],
            "exit_code": self.exit_code,
        }

    def render(self, *, include_armed: bool) -> str:
        """The human table printed by default."""
        where = f"({self.tag.key}={self.tag.value}) in {', '.join(self.regions)}"
        if include_armed:
            title = f"Every opted-in instance {where} and its kdump attestation"
        else:
            title = f"Opted-in instances {where} whose kdump attestation is not armed"
        lines = [f"{title} (max age {human_age(self.max_age_seconds)}):", ""]
        rows = self.listed(include_armed=include_armed)
        if rows:
            lines += _table(rows)
            lines.append("")
        for error in self.errors:
            lines.append(f"ERROR {error.region}: {error.message}")
        if self.errors:
            lines.append("")
        counts = self.counts
        total = len(self.instances)
        summary = ", ".join(f"{counts[s.value]} {s.value}" for s in Status if counts[s.value])
        lines.append(
            f"{len(rows)} of {total} opted-in instances listed"
            + (f": {summary}" if summary else "")
        )
        if counts[Status.NOT_RUNNING.value]:
            lines.append(
                "not-running instances (pending, stopping, stopped) cannot attest; they are "
                "listed with their last attestation and do not change the exit code"
            )
        lines.append(f"Result: {self._headline()} (exit code {self.exit_code})")
        return "\n".join(lines)

    def _headline(self) -> str:
        if self.errors:
            failed = ", ".join(e.region for e in self.errors)
            return f"INCOMPLETE: could not list {failed}"
        bad = len(self.not_good)
        if bad:
            return (
                f"NOT ARMED: {bad} running opted-in "
                f"{'instances are' if bad != 1 else 'instance is'} not attested armed; with "
                "attestation policy require (the default) the remediation would not interrupt "
                f"{'them' if bad != 1 else 'it'}"
            )
        running = sum(1 for i in self.instances if i.state == "running")
        if not running:
            return (
                "NONE RUNNING: no running opted-in instance found (are the regions and the "
                "opt-in tag right?)"
            )
        if running == 1:
            return "ARMED: the 1 running opted-in instance is attested armed"
        return f"ARMED: all {running} running opted-in instances are attested armed"


def _table(rows: Sequence[InstanceAttestation]) -> list[str]:
    header = ("REGION", "INSTANCE", "NAME", "STATE", "STATUS", "ATTESTED", "AGE", "DETAIL")
    cells = [header]
    for row in rows:
        at = row.judgement.attested_at
        age = row.age_seconds
        cells.append(
            (
                row.region,
                row.instance_id,
                printable(row.name or "-")[:24],
                row.state,
                row.status.value,
                "-" if at is None else _iso(at),
                "-" if age is None else human_age(age),
                row.detail,
            )
        )
    widths = [max(len(line[col]) for line in cells) for col in range(len(header) - 1)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
        + "  "
        + line[-1]
        for line in cells
    ]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
