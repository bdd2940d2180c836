"""The kdump attestation: what the agent writes, and the one judge of what it means.

The crashcart agent tags its own instance ``crashcart:kdump-attestation`` with
``armed <ISO time with zone>`` or ``not-armed <ISO time with zone> <reason words>`` at boot
and hourly. The remediation function's attestation guard, the ``crashcart attestation``
operator command and the sweep's census all judge a tag value with :func:`judge_attestation`,
so they cannot disagree about an instance.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

#: The tag the agent writes on its own instance.
ATTESTATION_TAG_KEY: Final = "crashcart:kdump-attestation"
#: How far in the future an attestation time may be (clock skew) before it counts as garbage.
ATTESTATION_SKEW: Final = timedelta(minutes=5)
#: Default maximum age of an attestation (``InterruptGuards.attestation_max_age``: 7 days).
DEFAULT_MAX_AGE_SECONDS: Final = 604_800
#: The agent re-attests this often, plus up to its timer's randomized delay
#: (``crashcart-agent.timer``: ``OnUnitActiveSec=1h``, ``RandomizedDelaySec=5min``).
AGENT_REATTEST_SECONDS: Final = 3600
AGENT_REATTEST_JITTER_SECONDS: Final = 300
#: The smallest maximum age a deployment may set: 3 hours, longer than two of the agent's
#: intervals with their jitter (130 minutes), so one failed re-attestation does not make a
#: healthy instance count as "stale" (under the default REQUIRE policy a stale instance is
#: never interrupted).
MIN_MAX_AGE_SECONDS: Final = 3 * AGENT_REATTEST_SECONDS


class Status(enum.StrEnum):
    """What an attestation means for an interrupt, in the order operators see them listed."""

    NOT_ARMED = "not-armed"
    STALE = "stale"
    MISSING = "missing"
    UNPARSEABLE = "unparseable"
    #: Never a judgement of a tag: listings use it for an instance that is not running
    #: (only a running instance can attest).
    NOT_RUNNING = "not-running"
    ARMED = "armed"


@dataclass(frozen=True, kw_only=True)
class Attestation:
    """A parsed attestation tag value."""

    armed: bool
    at: datetime
    detail: str


@dataclass(frozen=True, kw_only=True)
class Judgement:
    """The verdict on one attestation tag value."""

    status: Status
    attested_at: datetime | None
    #: the agent's reason words of a ``not-armed`` attestation (as written).
    reasons: str | None
    #: plain words for people (printable: the tag is written by the instance).
    detail: str

    @property
    def armed(self) -> bool:
        """True when the attestation guard lets an interrupt through."""
        return self.status is Status.ARMED


def parse_attestation(value: str | None) -> Attestation | None:
    """The tag value, or None when absent or malformed.

    ``armed <ISO time with zone>`` (nothing after it) or ``not-armed <ISO time with zone>
    <reason words>``.
    """
    if not value:
        return None
    words = value.split()
    if len(words) < 2 or words[0] not in ("armed", "not-armed"):
        return None
    try:
        moment = datetime.fromisoformat(words[1])
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    armed = words[0] == "armed"
    if armed and len(words) != 2:
        return None
    return Attestation(armed=armed, at=moment, detail=" ".join(words[2:]))


def judge_attestation(value: str | None, *, now: datetime, max_age_seconds: int) -> Judgement:
    """Judge a tag value (``None``: no tag). ``now``: aware UTC.

    Armed means the attestation guard lets the interrupt through; every other status is a
    refusal under policy ``require``.
    """
    parsed = parse_attestation(value)
    if parsed is None:
        if value is None:
            return Judgement(
                status=Status.MISSING,
                attested_at=None,
                reasons=None,
                detail=f"no {ATTESTATION_TAG_KEY} tag: the crashcart agent is not installed, "
                "not running, or may not tag its instance",
            )
        return Judgement(
            status=Status.UNPARSEABLE,
            attested_at=None,
            reasons=None,
            detail=f"{printable(value[:60])!r} is not 'armed <UTC>' or 'not-armed <UTC> <reasons>'",
        )
    age = (now - parsed.at).total_seconds()
    if not parsed.armed:
        return Judgement(
            status=Status.NOT_ARMED,
            attested_at=parsed.at,
            reasons=parsed.detail,
            detail=printable(parsed.detail) or "(no reasons given)",
        )
    if parsed.at > now + ATTESTATION_SKEW:
        return Judgement(
            status=Status.UNPARSEABLE,
            attested_at=parsed.at,
            reasons=None,
            detail=f"attested {human_age(-age)} in the future, beyond the "
            f"{human_age(ATTESTATION_SKEW.total_seconds())} clock skew allowed",
        )
    if age > max_age_seconds:
        return Judgement(
            status=Status.STALE,
            attested_at=parsed.at,
            reasons=None,
            detail=f"armed, but older than {human_age(max_age_seconds)}: counts as missing "
            "(is crashcart-agent.timer running?)",
        )
    return Judgement(status=Status.ARMED, attested_at=parsed.at, reasons=None, detail="armed")


def human_age(seconds: float) -> str:
    """A short duration: ``45 s``, ``12 min``, ``5 h``, ``16 d`` (rounded down)."""
    value = int(seconds)
    if value < 0:
        return f"-{human_age(-value)}"
    if value < 120:
        return f"{value} s"
    if value < 2 * 3600:
        return f"{value // 60} min"
    if value < 2 * 86400:
        return f"{value // 3600} h"
    return f"{value // 86400} d"


def printable(text: str) -> str:
    """``text`` with every non-printable character shown as ``?``."""
    return "".join(char if char.isprintable() else "?" for char in text)
