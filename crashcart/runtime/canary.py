"""The canary crash drill's contract: tags, actions, outcomes and the drill table's items.

The ``CanaryCrashDrill`` construct writes its IAM conditions and its state machine from these
names; the drill function tags, judges and records with the same ones.

Drill table items (``pk`` / ``sk`` strings, ``expires_at`` a TTL in epoch seconds):

* lock ``pk=ami#<id>``, ``sk=lock``: ``execution`` holds the AMI's one running drill;
* result ``pk=ami#<id>``, ``sk=result#<finished at>``: ``outcome``, ``execution``, ``results``
  (the per-type figures as JSON).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

#: Marks an instance as a drill canary of one construct (value: the construct's unique id).
#: The function's role may launch instances only with it, and terminate only instances with it.
CANARY_TAG_KEY: Final = "crashcart:drill-canary"
#: The execution (name) that launched a canary: the janitor terminates by it.
EXECUTION_TAG_KEY: Final = "crashcart:drill-execution"
#: The AMI's drill status tag (``candidate`` from the pipeline, then one of :class:`AmiStatus`).
AMI_STATUS_TAG_KEY: Final = "crashcart:status"
#: When the AMI passed its drill (ISO UTC).
AMI_VERIFIED_AT_TAG_KEY: Final = "crashcart:verified-at"
#: The pipeline's AMI tags read to decide whether a drill applies.
AMI_FAMILY_TAG_KEY: Final = "crashcart:os-family"
AMI_ARCHITECTURE_TAG_KEY: Final = "crashcart:architecture"
AMI_PIPELINE_TAG_KEY: Final = "crashcart:pipeline"

LOCK_SK: Final = "lock"
RESULT_PREFIX: Final = "result#"


def ami_pk(ami_id: str) -> str:
    """``pk`` of an AMI's drill items."""
    return f"ami#{ami_id}"


class Action(StrEnum):
    """What the state machine asks the function to do (``action`` of the payload)."""

    CLAIM = "claim"
    LAUNCH = "launch"
    CHECK_READY = "check-ready"
    HANG = "hang"
    CHECK_DUMP = "check-dump"
    CONCLUDE = "conclude"
    RELEASE = "release"


class Outcome(StrEnum):
    """A type's (or the whole drill's) outcome."""

    PASSED = "passed"
    FAILED = "failed"
    #: no verdict on the AMI: EC2 had no capacity, or the account's limits said no.
    INCONCLUSIVE = "inconclusive"
    #: the AMI is not one the drill can prove (Windows, arm64): the reason says why.
    SKIPPED = "skipped"


class Poll(StrEnum):
    """What a wait step found."""

    READY = "ready"
    PENDING = "pending"
    FAILED = "failed"
    TIMED_OUT = "timed-out"


class AmiStatus(StrEnum):
    """Values of :data:`AMI_STATUS_TAG_KEY` the drill writes."""

    VERIFIED = "verified"
    DRILL_FAILED = "drill-failed"
