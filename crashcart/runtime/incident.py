"""The incident record: the one definition of what crashcart keeps in its incident table.

Every unit that reads or writes the table (the remediation function, dump arrival, the
overdue sweep, the triage job, the drill, the ``IncidentStore`` construct's grants) takes its
keys, states and attribute names from here. To change what an incident records, change this
module and the writers that set the new attribute.

Items (``pk`` / ``sk`` are strings):

======================================  ===========  ==============================================
item                                    ``sk``       attributes
======================================  ===========  ==============================================
incident ``pk=instance#<id>``           ``incident#  see :class:`Attribute`; ``opened_at`` is when
                                        <opened_at>``  the alarm entered ALARM (or a dump arrived)
limits ``pk=instance#<id>``             ``limits``   ``last_interrupt_epoch``, ``budget_day``,
                                                     ``budget_count``, ``claim_incident``,
                                                     ``version``
attestation skips ``pk=instance#<id>``  ``attesta-   ``first_skipped_at``, ``last_skipped_at``,
                                        tion-skip``  ``last_incident``, ``last_reason``, ``skips``
hold ``pk=hold#active``                 ``instance#  one per instance held in a termination
                                        <id>``       lifecycle hook: ``group``, ``hook``,
                                                     ``token``, ``incident``, ``held_at``,
                                                     ``hold_deadline``; deleted on release
breaker ``pk=breaker#fleet`` /          ``state``    ``window_start_epoch``, ``count``,
``breaker#az#<az>``                                  ``opened_epoch``, ``last_alarm_epoch``,
                                                     ``version``
======================================  ===========  ==============================================

Times are ISO-8601 UTC strings to the second (``2025-01-31T12:00:00Z``, :func:`iso`), so they
compare in time order as strings (the sweep's filter relies on that).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

#: The table's key attributes (both strings).
PK: Final = "pk"
SK: Final = "sk"

INSTANCE_PREFIX: Final = "instance#"
INCIDENT_PREFIX: Final = "incident#"
BREAKER_PREFIX: Final = "breaker#"
#: ``sk`` of an instance's limits item (cooldown and daily budget).
LIMITS_SK: Final = "limits"
#: ``sk`` of an instance's attestation-skip counter (the first skip for the kdump
#: attestation is notified, later ones only recorded).
ATTESTATION_SKIP_SK: Final = "attestation-skip"
#: ``sk`` of a circuit-breaker item.
BREAKER_SK: Final = "state"
#: ``pk`` of the active lifecycle holds: one small partition the hold function's schedule
#: reads (a Query, not a Scan); ``sk`` is :func:`instance_pk` of the held instance.
HOLDS_PK: Final = "hold#active"
#: ``pk`` of the fleet breaker.
FLEET_BREAKER_PK: Final = f"{BREAKER_PREFIX}fleet"
#: ``pk`` of the organisation breaker: its one item (``sk`` :data:`BREAKER_SK`) lives in the
#: central account's breaker table (``OrganisationBreaker``), not in an incident table; same
#: attributes as the fleet breaker, plus ``last_account`` and ``last_instance``.
ORGANISATION_BREAKER_PK: Final = f"{BREAKER_PREFIX}organisation"

#: How times are written (UTC, to the second).
TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"


class State(StrEnum):
    """The ``state`` of an incident, and who sets it."""

    #: remediation: the claim transaction took the instance; the interrupt is under way.
    CLAIMED = "claimed"
    #: remediation: SendDiagnosticInterrupt was sent (or, in dry-run mode, dry-run).
    INTERRUPTED = "interrupted"
    #: remediation: a guard said no (``reason``, ``guard``).
    SKIPPED = "skipped"
    #: remediation: the instance's budget is spent; a human must look.
    ESCALATED = "escalated"
    #: remediation: EC2 refused or the call failed.
    FAILED = "failed"
    #: remediation: the alarm went back to OK.
    RECOVERED = "recovered"
    #: dump arrival: the dump's metadata.json landed (``dump_keys``, ``summary``).
    DUMP_RECEIVED = "dump-received"
    #: overdue sweep: no dump by ``dump_deadline``.
    DUMP_OVERDUE = "dump-overdue"


#: States in which an incident still waits for its dump (the sweep flags them when late).
#: ``recovered`` counts: the kdump reboot itself usually clears the alarm before the dump ships.
WAITING_FOR_DUMP: Final = (State.INTERRUPTED, State.RECOVERED)
#: States after which a recovery is worth a notification (a human was told before).
NOTIFY_RECOVERY_FROM: Final = frozenset(
    {State.INTERRUPTED, State.ESCALATED, State.FAILED, State.DUMP_RECEIVED, State.DUMP_OVERDUE}
)


#: States in which an interrupted incident may still need an escalation reboot (the
#: instance never came back: no OK, no dump): ``interrupted``, or ``dump-overdue`` flagged
#: while it was ``interrupted`` (``state_before_overdue``; the sweep's fixed deadline can
#: pass before the memory-sized one of a large instance).
ESCALATION_CANDIDATES: Final = (State.INTERRUPTED, State.DUMP_OVERDUE)


class HoldState(StrEnum):
    """``hold_state`` of an incident whose instance a termination lifecycle hook held."""

    #: the hold function keeps the instance in ``Terminating:Wait`` with heartbeats.
    HELD = "held"
    #: the hold function completed the lifecycle action (``hold_result``, ``hold_reason``).
    RELEASED = "released"


class Origin(StrEnum):
    """How an incident was opened (``origin``)."""

    #: by the remediation function, for an alarm.
    REMEDIATION = "remediation"
    #: by dump arrival: a dump came with no incident to attach to (a crash nobody caused).
    SPONTANEOUS = "spontaneous"
    #: by the remediation function's missed-alarm sweep: an impaired opted-in instance whose
    #: alarm event never arrived (or whose incident went stale while it stayed impaired).
    MISSED_ALARM_SWEEP = "missed-alarm-sweep"


class Attribute(StrEnum):
    """Attribute names of an incident item, grouped by the unit that writes them."""

    # -- every writer (opening writers: remediation, or dump arrival for a spontaneous crash)
    PK = PK
    SK = SK
    STATE = "state"
    UPDATED_AT = "updated_at"
    INSTANCE_ID = "instance_id"
    OPENED_AT = "opened_at"
    ORIGIN = "origin"
    REASON = "reason"
    REQUEST_ID = "request_id"
    # -- remediation (opening, deciding, acting, recovering)
    ALARM_NAME = "alarm_name"
    ALARM_ARN = "alarm_arn"
    DECISION = "decision"
    GUARD = "guard"
    WARNINGS = "warnings"
    EVENT_ID = "event_id"
    LAMBDA_REQUEST_ID = "lambda_request_id"
    DRY_RUN = "dry_run"
    AVAILABILITY_ZONE = "availability_zone"
    INSTANCE_TYPE = "instance_type"
    IMPAIRED_SINCE = "impaired_since"
    EVIDENCE_KEY = "evidence_key"
    EVIDENCE_ERROR = "evidence_error"
    INTERRUPT_OUTCOME = "interrupt_outcome"
    INTERRUPT_CODE = "interrupt_code"
    INTERRUPT_ATTEMPTS = "interrupt_attempts"
    INTERRUPTED_AT = "interrupted_at"
    DUMP_DEADLINE = "dump_deadline"
    RECOVERED_AT = "recovered_at"
    FINAL_STATE = "final_state"
    # -- dump arrival
    DUMP_KEYS = "dump_keys"
    SUMMARY = "summary"
    #: the capture kernel's memory figures from metadata.json (kB; see runtime.dumps)
    CAPTURE_MEMORY = "capture_memory"
    # -- overdue sweep
    OVERDUE_AT = "overdue_at"
    OVERDUE_NOTIFIED_AT = "overdue_notified_at"
    STATE_BEFORE_OVERDUE = "state_before_overdue"
    # -- lifecycle hold (the termination hook of an Auto Scaling group)
    HOLD_STATE = "hold_state"
    HOLD_GROUP = "hold_group"
    HOLD_HOOK = "hold_hook"
    HELD_AT = "held_at"
    HOLD_DEADLINE = "hold_deadline"
    HOLD_HEARTBEATS = "hold_heartbeats"
    HOLD_RELEASED_AT = "hold_released_at"
    HOLD_RESULT = "hold_result"
    HOLD_REASON = "hold_reason"
    # -- escalation (a reboot when the dump deadline passes and the instance is still hung)
    ESCALATION_DEADLINE = "escalation_deadline"
    ESCALATED_AT = "escalated_at"
    ESCALATION_OUTCOME = "escalation_outcome"
    ESCALATION_REASON = "escalation_reason"
    # -- triage job
    REPORT_KEYS = "report_keys"
    REPORT_SUMMARY = "report_summary"
    REPORT_SYMBOLS = "report_symbols"
    REPORT_ERROR = "report_error"
    TRIAGED_AT = "triaged_at"


#: What the triage job may touch: the key, the dump link its update is conditional on, and
#: what it writes (the ``dynamodb:Attributes`` of its grant).
TRIAGE_ATTRIBUTES: Final = (
    Attribute.PK,
    Attribute.SK,
    Attribute.DUMP_KEYS,
    Attribute.REPORT_KEYS,
    Attribute.REPORT_SUMMARY,
    Attribute.REPORT_SYMBOLS,
    Attribute.REPORT_ERROR,
    Attribute.TRIAGED_AT,
)


def instance_pk(instance_id: str) -> str:
    """``pk`` of an instance's incidents and limits: ``instance#<id>``."""
    return f"{INSTANCE_PREFIX}{instance_id}"


def incident_sk(opened_at: str) -> str:
    """``sk`` of an incident: ``incident#<opened_at>`` (ISO UTC, so incidents sort by time)."""
    return f"{INCIDENT_PREFIX}{opened_at}"


def az_breaker_pk(availability_zone: str) -> str:
    """``pk`` of an availability zone's breaker: ``breaker#az#<zone>``."""
    return f"{BREAKER_PREFIX}az#{availability_zone}"


def item_key(pk: str, sk: str) -> dict[str, Any]:
    """The low-level DynamoDB key of an item."""
    return {PK: {"S": pk}, SK: {"S": sk}}


def iso(moment: datetime) -> str:
    """``moment`` as the table writes times (UTC, to the second)."""
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(value: str) -> datetime:
    """A time the table holds (:data:`TIME_FORMAT`) as an aware UTC datetime."""
    return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=UTC)
