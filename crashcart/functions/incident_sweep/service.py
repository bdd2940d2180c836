"""Dump-overdue sweep: every few minutes, flag incidents whose crash dump is late and say so.

Flow (see :mod:`overdue` for the rule): Scan the incident table (filtered, paginated, at most
``CRASHCART_SWEEP_MAX_PAGES`` pages) -> for each due incident a conditional UpdateItem to
``dump-overdue`` (a dump that arrived meanwhile wins: nothing is sent) -> one SNS message ->
``overdue_notified_at``. Fails closed: a table or topic error raises (after the other incidents
were handled), so the invocation is retried and, after Lambda's retries, kept in the
on-failure queue; nothing is marked notified that was not published.

Then, with ``CRASHCART_ATTESTATION_CENSUS=true``, the attestation census (see
:mod:`attestation`): one paginated ``ec2:DescribeInstances`` for the running instances that
carry the opt-in tag, counted and written as two embedded metrics (``OptedInInstances``,
``AttestedInstances``) on standard output. It runs even when the overdue part failed; an EC2
error fails the invocation after both parts ran (retried, then kept in the on-failure queue).

Environment: ``CRASHCART_TABLE_NAME`` and ``CRASHCART_TOPIC_ARN`` (required),
``CRASHCART_DUMP_BUCKET_PARAMETER`` (named in the message; default ``/crashcart/dump-bucket``),
``CRASHCART_SWEEP_MAX_PAGES`` (default 100 pages of up to 1 MB each; also bounds the census),
``CRASHCART_ATTESTATION_CENSUS`` (``true`` / ``false``, default ``false``),
``CRASHCART_OPT_IN_TAG_KEY`` / ``CRASHCART_OPT_IN_TAG_VALUE`` (default
``crashcart:diagnostic-interrupt`` / ``enabled``), ``CRASHCART_ATTESTATION_MAX_AGE_SECONDS``
(default 604800, the remediation function's).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from crashcart.runtime import metrics
from crashcart.runtime.incident import iso

from .adapter import Fleet, Store, StoreUnavailableError
from .attestation import Census, count, emf_record
from .overdue import DEFAULT_PARAMETER_NAME, Action, decide, from_item, message
from .settings import Settings

LOG = logging.getLogger("crashcart.incident_sweep")
LOG.setLevel(logging.INFO)


class SweepFailedError(RuntimeError):
    """Some incidents could not be flagged or notified; the next run / retry picks them up."""


@dataclass
class Result:
    flagged: list[str] = field(default_factory=list)
    notified: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # changed between scan and write
    errors: list[str] = field(default_factory=list)
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "flagged": self.flagged,
            "notified": self.notified,
            "skipped": self.skipped,
            "errors": self.errors,
            "truncated": self.truncated,
        }


def sweep(
    store: Store,
    publish: Callable[[str, str], None],
    *,
    now: datetime,
    parameter_name: str = DEFAULT_PARAMETER_NAME,
) -> Result:
    """One sweep. Raises :class:`StoreUnavailableError` when the scan fails (nothing done),
    :class:`SweepFailedError` after handling the rest when some incident failed or the scan
    was cut at its page bound."""
    now_iso = iso(now)
    result = Result()
    for item in store.candidates(now_iso):
        incident = from_item(item)
        if incident is None:
            continue
        action = decide(incident, now_iso)
        if action is Action.NONE:
            continue
        name = f"{incident.instance_id} {incident.sk}"
        try:
            if action is Action.FLAG:
                if not store.flag(incident, now_iso):
                    result.skipped.append(name)
                    LOG.info(json.dumps({"outcome": "changed", "incident": name}))
                    continue
                result.flagged.append(name)
            subject, body = message(incident, parameter_name=parameter_name)
            publish(subject, body)
            store.mark_notified(incident, now_iso)
            result.notified.append(name)
            LOG.warning(json.dumps({"outcome": "dump-overdue", "incident": name}))
        except (StoreUnavailableError, ClientError, BotoCoreError) as error:
            result.errors.append(f"{name}: {error}")
            LOG.error(json.dumps({"outcome": "error", "incident": name, "error": str(error)}))
    result.truncated = store.truncated
    LOG.info(json.dumps({"outcome": "swept", **result.as_dict()}))
    if result.errors:
        raise SweepFailedError(f"{len(result.errors)} incident(s) failed: {result.errors}")
    if result.truncated:
        raise SweepFailedError(
            f"the scan stopped after {store.max_pages} pages with more to read: raise "
            "CRASHCART_SWEEP_MAX_PAGES or move to an index (docs/incident-sweep.md)"
        )
    return result


def census(
    fleet: Fleet,
    settings: Settings,
    *,
    now: datetime,
    function_name: str,
    write: Callable[[str], object] | None = None,
) -> Census:
    """Count the running opted-in instances and those attested armed; write the metrics
    (``write``: default standard output, looked up at call time)."""
    counted = count(
        fleet.running(settings.opt_in_tag_key, settings.opt_in_tag_value),
        tag_key=settings.opt_in_tag_key,
        tag_value=settings.opt_in_tag_value,
        now=now,
        max_age_seconds=settings.attestation_max_age_seconds,
    )
    line = emf_record(counted, function_name=function_name, now=now) + "\n"
    (write or metrics.write_stdout)(line)
    if counted.opted_in and not counted.attested:
        LOG.warning(
            json.dumps(
                {
                    "outcome": "none-attested",
                    "reason": "no running opted-in instance is attested armed: with attestation "
                    "policy require every alarm is skipped (docs/aws-assumptions.md, "
                    "attestation-self-tag)",
                    **counted.as_dict(),
                }
            )
        )
    return counted
