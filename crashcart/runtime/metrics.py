"""The metrics crashcart's functions emit, and the names the constructs read them by.

The functions write CloudWatch embedded-metric-format records (log lines: no
``cloudwatch:PutMetricData`` right is needed) in namespace :data:`NAMESPACE` with the one
dimension :data:`DIMENSION` (value: the function's name). The constructs' ``metric_*``
methods and alarms name the same metrics from here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

#: CloudWatch namespace of every crashcart metric.
NAMESPACE: Final = "crashcart"
#: The metric dimension (value: the Lambda function name).
DIMENSION: Final = "FunctionName"

#: The remediation function's outcomes -> metric names; each data point is a Count of 1.
REMEDIATION_OUTCOMES: Final[Mapping[str, str]] = {
    "interrupted": "InterruptsSent",
    "dry_run": "InterruptsDryRun",
    "skipped": "InterruptsSkipped",
    "failed": "InterruptsFailed",
    "escalated": "Escalations",
    "breaker_opened": "BreakerOpened",
    "rejected": "EventsRejected",
    "recovered": "Recoveries",
    #: the first skip of an instance for its kdump attestation (one per instance, not per
    #: alarm: the incident record and InterruptsSkipped count every one)
    "unattested_first_skip": "FirstUnattestedSkips",
    #: missed-alarm sweep: an impaired opted-in instance with no open (or a stale) incident,
    #: handed to the decision (each is an alarm event that was lost or a guard that cleared)
    "sweep_found": "SweepFoundWork",
    #: missed-alarm sweep: a pass that stopped early (page, per-pass or time bound)
    "sweep_truncated": "SweepTruncated",
    #: the organisation breaker opened with this function's slot (one notification)
    "org_breaker_opened": "OrganisationBreakerOpened",
    #: an interrupt candidate skipped because the organisation breaker is open
    "org_breaker_skipped": "OrganisationBreakerSkips",
    #: the organisation breaker table could not be used (unreachable, denied, throttled,
    #: contended, unexpected answer): the candidate was skipped, fail closed
    "org_breaker_unavailable": "OrganisationBreakerUnavailable",
    #: an incident event the central bus did not take (the local record stays)
    "incident_event_failed": "IncidentEventsFailed",
}

#: The kill-switch reach function: alarms whose actions it disabled or enabled.
KILL_SWITCH_OUTCOMES: Final[Mapping[str, str]] = {
    "alarm_actions_changed": "AlarmActionsChanged",
}

#: The lifecycle-hold and escalation function's outcomes (one count each).
HOLD_OUTCOMES: Final[Mapping[str, str]] = {
    "held": "LifecycleHolds",
    "continued": "LifecycleContinues",
    "heartbeat": "LifecycleHeartbeats",
    "escalation_reboot": "EscalationReboots",
    "escalation_recovered": "EscalationsNotNeeded",
    "rejected": "HoldEventsRejected",
}

#: The overdue sweep's attestation census: running opted-in instances, and those of them
#: attested armed (one data point each per sweep).
SWEEP_CENSUS: Final[Mapping[str, str]] = {
    "opted_in": "OptedInInstances",
    "attested": "AttestedInstances",
}

#: The central incident view: "dump received" events a member's bus refused or that could
#: not be sent (the dump is recorded centrally; the event is retried, then kept in the DLQ).
INCIDENT_VIEW_OUTCOMES: Final[Mapping[str, str]] = {
    "member_event_failed": "MemberDumpEventsFailed",
}


def emf_line(
    name: str, value: int, *, function_name: str, now: datetime, fields: Mapping[str, Any]
) -> str:
    """One log line (``fields`` plus the count ``value`` of metric ``name``) that CloudWatch
    also turns into a data point, as embedded metric format (aws-assumption:
    emf-lambda-stdout)."""
    record = {
        **fields,
        DIMENSION: function_name or "unknown",
        name: value,
        "_aws": {
            "Timestamp": int(now.timestamp() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [[DIMENSION]],
                    "Metrics": [{"Name": name, "Unit": "Count"}],
                }
            ],
        },
    }
    return json.dumps(record, sort_keys=True) + "\n"


def write_stdout(line: str) -> None:
    """Write ``line`` to standard output now (flushed): Lambda sends it to CloudWatch Logs,
    which reads an embedded-metric line as a data point (aws-assumption: emf-lambda-stdout).
    Looked up at call time, so a test's captured stdout gets it."""
    sys.stdout.write(line)
    sys.stdout.flush()
