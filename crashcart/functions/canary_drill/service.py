"""The drill steps: one function per :class:`~crashcart.runtime.canary.Action`, plus the janitor.

Each step takes the state machine's payload and returns what the next state reads. Every
decision is logged as one JSON line; the per-type figures are also written as embedded
metrics (namespace ``crashcart``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from crashcart.runtime import canary
from crashcart.runtime.canary import Action, Outcome, Poll
from crashcart.runtime.incident import iso, parse_time
from crashcart.runtime.metrics import DIMENSION, NAMESPACE

from .adapter import Adapter, CapacityError
from .logic import (
    attested_at,
    capture_memory_mib,
    conclude,
    judge_dump,
    judge_ready,
    seconds_between,
    skip_reason,
)

LOG = logging.getLogger("crashcart.canary_drill")
LOG.setLevel(logging.INFO)

#: Per-type figures written as metrics (seconds, bytes, MiB).
FIGURES = (
    "boot_to_armed_seconds",
    "hang_to_interrupt_seconds",
    "interrupt_to_dump_seconds",
    "dump_bytes",
    "memory_mib",
    "capture_reserved_mib",
    "capture_used_mib",
    "capture_margin_mib",
    "makedumpfile_peak_mib",
)


class BadRequestError(ValueError):
    """The payload is not one the drill understands; the message says why."""


class DrillBusyError(RuntimeError):
    """Another execution holds the AMI's drill lock (one drill per AMI at a time)."""


def _text(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value or len(value) > 512:
        raise BadRequestError(f"{name}={value!r}: expected a non-empty string")
    return value


def _when(payload: Mapping[str, Any], name: str) -> datetime:
    try:
        return parse_time(_text(payload, name))
    except ValueError:
        raise BadRequestError(
            f"{name}={payload.get(name)!r}: expected YYYY-MM-DDTHH:MM:SSZ"
        ) from None


def _log(outcome: str, **fields: Any) -> None:
    LOG.info(json.dumps({"outcome": outcome, **fields}, default=str, sort_keys=True))


def claim(adapter: Adapter, payload: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Resolve the AMI (given, or the candidate / verified parameter), decide, take the lock."""
    s = adapter.settings
    execution = _text(payload, "execution")
    given = payload.get("input")
    request: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    source = request.get("source", "candidate")
    if source not in ("candidate", "verified", "on-demand"):
        raise BadRequestError(f"source={source!r}: expected candidate, verified or on-demand")
    ami_id = request.get("ami_id")
    if ami_id is None:
        name = s.verified_parameter if source == "verified" else s.candidate_parameter
        ami_id = adapter.parameter(name)
    if not isinstance(ami_id, str) or not ami_id.startswith("ami-"):
        raise BadRequestError(f"ami_id={ami_id!r}: expected an AMI id (ami-...)")
    tags = adapter.image_tags(ami_id)
    if tags is None:
        raise BadRequestError(f"{ami_id}: no such AMI visible to this account")
    if tags.get(canary.AMI_PIPELINE_TAG_KEY) != s.pipeline_tag_value:
        raise BadRequestError(
            f"{ami_id}: not an AMI of this drill's pipeline ({canary.AMI_PIPELINE_TAG_KEY} is "
            f"{tags.get(canary.AMI_PIPELINE_TAG_KEY)!r}); the drill may launch only those"
        )
    holder = adapter.take_lock(ami_id, execution, now)
    if holder is not None:
        _log("busy", ami_id=ami_id, execution=execution, holder=holder)
        raise DrillBusyError(f"{ami_id}: a drill is already running ({holder})")
    skip = skip_reason(
        family=tags.get(canary.AMI_FAMILY_TAG_KEY),
        architecture=tags.get(canary.AMI_ARCHITECTURE_TAG_KEY),
    )
    _log("claimed", ami_id=ami_id, execution=execution, source=source, skip=skip)
    return {
        "ami_id": ami_id,
        "source": source,
        "execution": execution,
        "skip_reason": skip or "",
        "instance_types": [] if skip else list(s.instance_types),
        "poll_seconds": s.poll_seconds,
    }


def launch(adapter: Adapter, payload: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    ami_id, instance_type = _text(payload, "ami_id"), _text(payload, "instance_type")
    execution = _text(payload, "execution")
    try:
        instance_id, launched = adapter.launch(ami_id, instance_type, execution)
    except CapacityError as error:
        _log("inconclusive", ami_id=ami_id, instance_type=instance_type, code=error.code)
        return {"launched": False, "outcome": Outcome.INCONCLUSIVE, "reason": str(error)}
    deadline = now + timedelta(seconds=adapter.settings.boot_timeout)
    _log("launched", ami_id=ami_id, instance_type=instance_type, instance_id=instance_id)
    return {
        "launched": True,
        "instance_id": instance_id,
        "launched_at": iso(launched if isinstance(launched, datetime) else now),
        "ready_deadline": iso(deadline),
    }


def check_ready(adapter: Adapter, payload: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    instance_id = _text(payload, "instance_id")
    deadline, launched_at = _when(payload, "ready_deadline"), _when(payload, "launched_at")
    facts = adapter.readiness(instance_id)
    poll, reason = judge_ready(
        facts,
        now=now,
        deadline=deadline,
        max_age_seconds=adapter.settings.attestation_max_age,
        hang_at=launched_at + timedelta(seconds=adapter.settings.hang_after),
    )
    result: dict[str, Any] = {"status": poll.value, "reason": reason}
    if poll is Poll.READY:
        armed = attested_at(facts.attestation) or now
        result["armed_at"] = iso(armed)
        result["boot_to_armed_seconds"] = seconds_between(launched_at, armed)
    if poll is not Poll.PENDING:
        _log(f"ready-{poll.value}", instance_id=instance_id, reason=reason)
    return result


def hang(adapter: Adapter, payload: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    instance_id = _text(payload, "instance_id")
    command_id = adapter.hang(instance_id)
    _log("hung", instance_id=instance_id, command_id=command_id)
    return {
        "command_id": command_id,
        "hung_at": iso(now),
        "dump_deadline": iso(now + timedelta(seconds=adapter.settings.dump_timeout)),
    }


def check_dump(adapter: Adapter, payload: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    instance_id = _text(payload, "instance_id")
    deadline, hung_at = _when(payload, "dump_deadline"), _when(payload, "hung_at")
    instance_type = _text(payload, "instance_type")
    incident = adapter.latest_incident(instance_id)
    poll, reason = judge_dump(incident, now=now, deadline=deadline)
    result: dict[str, Any] = {"status": poll.value, "reason": reason}
    if poll is Poll.READY and incident is not None:
        metadata = next(k for k in incident.dump_keys if k.endswith("/metadata.json"))
        interrupted = incident.interrupted_at
        size, landed = adapter.dump_listing(metadata)
        result.update(
            hang_to_interrupt_seconds=seconds_between(hung_at, interrupted),
            # metadata.json is written last: its arrival is the dump's (the incident's
            # updated_at moves again when the alarm recovers).
            interrupt_to_dump_seconds=seconds_between(interrupted, landed or now),
            dump_bytes=size,
            memory_mib=adapter.memory_mib(instance_type),
            summary=incident.summary,
            # what the capture kernel needed on this type against what was reserved
            **capture_memory_mib(incident.capture_memory),
        )
    if poll is not Poll.PENDING:
        _log(f"dump-{poll.value}", instance_id=instance_id, reason=reason)
    return result


def finish(adapter: Adapter, payload: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Conclude: record, promote (or mark failed), notify, release the lock."""
    ami_id, execution = _text(payload, "ami_id"), _text(payload, "execution")
    results = payload.get("results") or []
    if not isinstance(results, list):
        raise BadRequestError(f"results={results!r}: expected a list")
    verdict = conclude(
        results,
        skip_reason=payload.get("skip_reason") or None,
        from_candidate=payload.get("source", "candidate") != "verified",
    )
    adapter.record(ami_id, execution, verdict.outcome.value, results, now)
    if verdict.promote:
        adapter.promote(ami_id, now)
    elif verdict.outcome is Outcome.FAILED:
        adapter.tag_image(ami_id, canary.AmiStatus.DRILL_FAILED, now)
    for result in results:
        _metrics(result)
    lines = [
        f"AMI:       {ami_id}",
        f"outcome:   {verdict.outcome.value}",
        f"reason:    {verdict.reason}",
        f"promoted:  {'yes, ' + adapter.settings.verified_parameter if verdict.promote else 'no'}",
        f"execution: {execution}",
        "",
        *(json.dumps(r, sort_keys=True, default=str) for r in results),
    ]
    adapter.notify(f"crashcart drill {verdict.outcome.value}: {ami_id}", "\n".join(lines))
    adapter.release_lock(ami_id, execution)
    _log("concluded", ami_id=ami_id, execution=execution, drill=verdict.outcome.value)
    return {
        "ami_id": ami_id,
        "outcome": verdict.outcome.value,
        "reason": verdict.reason,
        "promoted": verdict.promote,
        "results": results,
    }


def release(adapter: Adapter, payload: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """After an error the state machine caught: notify and release the lock."""
    execution = _text(payload, "execution")
    amis = [payload["ami_id"]] if isinstance(payload.get("ami_id"), str) else []
    amis = amis or adapter.locks_of(execution)
    error = payload.get("error") or {}
    for ami_id in amis:
        adapter.release_lock(ami_id, execution)
    adapter.notify(
        "crashcart drill error",
        f"execution {execution} stopped on an error before it concluded: "
        f"{json.dumps(error, default=str)[:2000]}; AMIs: {', '.join(amis) or 'none'}",
    )
    _log("released", execution=execution, amis=amis)
    return {"released": amis}


def janitor(adapter: Adapter, event: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Executions stopped by hand, timed out or failed (no Catch ran), and overdue canaries.

    aws-assumption: sfn-execution-status-events
    """
    detail = event.get("detail") if isinstance(event.get("detail"), Mapping) else {}
    assert isinstance(detail, Mapping)
    terminated: list[str] = []
    released: list[str] = []
    if event.get("detail-type") == "Step Functions Execution Status Change":
        name = detail.get("name")
        status = detail.get("status")
        if not isinstance(name, str) or status not in ("ABORTED", "TIMED_OUT", "FAILED"):
            raise BadRequestError(
                f"execution status event {detail!r:.300}: expected a name and a status of "
                "ABORTED, TIMED_OUT or FAILED"
            )
        terminated = adapter.terminate(i for i, _ in adapter.canaries(name))
        for ami_id in adapter.locks_of(name):
            if adapter.release_lock(ami_id, name):
                released.append(ami_id)
    elif event.get("detail-type") != "Scheduled Event":
        raise BadRequestError(
            f"event {event!r:.300}: expected a Step Functions execution status change or a schedule"
        )
    oldest = now - timedelta(seconds=adapter.settings.max_canary_lifetime)
    overdue = [i for i, launched in adapter.canaries() if launched <= oldest]
    terminated += adapter.terminate(overdue)
    if terminated or released:
        adapter.notify(
            "crashcart drill janitor",
            f"terminated canaries {', '.join(terminated) or 'none'}; released locks of "
            f"{', '.join(released) or 'none'} ({event.get('detail-type')})",
        )
    _log("janitor", terminated=terminated, released=released)
    return {"terminated": terminated, "released": released}


def _metrics(result: Mapping[str, Any]) -> None:
    """Embedded-metric-format record of one type's figures (no PutMetricData right needed)."""
    figures = {k: result[k] for k in FIGURES if isinstance(result.get(k), int | float)}
    passed = 1 if result.get("outcome") == Outcome.PASSED else 0
    record = {
        "_aws": {
            "Timestamp": int(datetime.now(UTC).timestamp() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [["InstanceType"]],
                    "Metrics": [
                        {"Name": "DrillPassed", "Unit": "Count"},
                        *({"Name": name, "Unit": "None"} for name in figures),
                    ],
                }
            ],
        },
        "InstanceType": str(result.get("instance_type", "")),
        "DrillPassed": passed,
        **figures,
    }
    print(json.dumps(record))


STEPS: dict[str, Callable[[Adapter, Mapping[str, Any], datetime], dict[str, Any]]] = {
    Action.CLAIM: claim,
    Action.LAUNCH: launch,
    Action.CHECK_READY: check_ready,
    Action.HANG: hang,
    Action.CHECK_DUMP: check_dump,
    Action.CONCLUDE: finish,
    Action.RELEASE: release,
}
_ = DIMENSION
