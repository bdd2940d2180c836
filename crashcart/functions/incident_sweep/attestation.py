"""Attestation census: how many running opted-in instances are there, how many attested armed?

With attestation policy ``require`` (the default) the remediation function interrupts only
instances whose crashcart agent attested, within the max age, that kdump is armed (the
``crashcart:kdump-attestation`` tag the instance writes on itself). If instances cannot
attest at all (aws-assumption: attestation-self-tag), every real alarm is skipped. Each sweep
counts both numbers and writes them as embedded metrics; the construct's
``AttestationSilentAlarm`` fires when opted-in instances run all day and none attested.

Pure functions here (no AWS calls); the judgement is the shared runtime's
(:func:`crashcart.runtime.attestation.judge_attestation`), the one the remediation function's
guard uses, so the census and the guard cannot disagree about an instance.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from crashcart.runtime import metrics
from crashcart.runtime.attestation import ATTESTATION_TAG_KEY, judge_attestation

METRIC_NAMESPACE: Final = metrics.NAMESPACE
METRIC_DIMENSION: Final = metrics.DIMENSION
#: Metric names: running opted-in instances, and those of them attested armed.
METRICS: Final = metrics.SWEEP_CENSUS
#: At most this many unattested instance ids go into the census log line.
LOGGED_IDS: Final = 20


def attested_armed(value: str | None, *, now: datetime, max_age_seconds: int) -> bool:
    """True when the remediation function's attestation guard would let an interrupt through."""
    return judge_attestation(value, now=now, max_age_seconds=max_age_seconds).armed


@dataclass(frozen=True, kw_only=True)
class Census:
    """One count of the running opted-in instances of the sweep's account and region."""

    opted_in: int
    attested: int
    unattested: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        return {
            "opted_in": self.opted_in,
            "attested": self.attested,
            "unattested": list(self.unattested[:LOGGED_IDS]),
            "unattested_count": len(self.unattested),
        }


def count(
    instances: Iterable[tuple[str, Mapping[str, str]]],
    *,
    tag_key: str,
    tag_value: str,
    now: datetime,
    max_age_seconds: int,
) -> Census:
    """Count ``(instance id, tags)`` pairs of running instances.

    The opt-in tag is matched exactly (EC2 tag keys are case-sensitive; the function matches
    exactly too), whatever filter the caller's DescribeInstances used.
    """
    opted_in = 0
    unattested: list[str] = []
    for instance_id, tags in instances:
        if tags.get(tag_key) != tag_value:
            continue
        opted_in += 1
        value = tags.get(ATTESTATION_TAG_KEY)
        if not attested_armed(value, now=now, max_age_seconds=max_age_seconds):
            unattested.append(instance_id)
    return Census(
        opted_in=opted_in,
        attested=opted_in - len(unattested),
        unattested=tuple(sorted(unattested)),
    )


def emf_record(census: Census, *, function_name: str, now: datetime) -> str:
    """The census as one CloudWatch embedded-metric-format log line (both counts, always).

    aws-assumption: emf-lambda-stdout. Lambda sends what a function writes to standard
    output to its log group, and CloudWatch Logs turns such a line into metrics.
    """
    record = {
        "message": "attestation census",
        "service": "crashcart-incident-sweep",
        METRIC_DIMENSION: function_name or "unknown",
        METRICS["opted_in"]: census.opted_in,
        METRICS["attested"]: census.attested,
        "unattested": list(census.unattested[:LOGGED_IDS]),
        "unattested_count": len(census.unattested),
        "_aws": {
            "Timestamp": int(now.timestamp() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": METRIC_NAMESPACE,
                    "Dimensions": [[METRIC_DIMENSION]],
                    "Metrics": [
                        {"Name": METRICS["opted_in"], "Unit": "Count"},
                        {"Name": METRICS["attested"], "Unit": "Count"},
                    ],
                }
            ],
        },
    }
    return json.dumps(record, sort_keys=True)
