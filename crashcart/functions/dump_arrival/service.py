"""Dump arrival: a crash dump's metadata.json was written -> incident update + notification.

Flow: EventBridge "Object Created" (S3) -> parse (the key URL-decoded once, then checked
against the key grammar; bad event: reason logged, raised, so the
event ends in the dead-letter queue after Lambda's retries; nothing is changed) -> read
metadata.json and dmesg.txt -> first summary from the kernel log (panic string, reason, the
backtrace the kernel printed) -> decide: attach to the instance's latest incident, or open a
``spontaneous`` one -> write (conditional) -> SNS notification.

In an organisation's member account the same function also takes the central account's
"dump received" event (source ``crashcart.central``): :mod:`.central` records it with the
same decision and writes.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from crashcart.runtime import untrusted
from crashcart.runtime.dumps import capture_memory_figures
from crashcart.runtime.incident import Origin
from crashcart.runtime.kernel_log import summarize
from crashcart.runtime.organisation import DUMP_RECEIVED_SOURCE

from . import central
from .adapter import Adapter
from .events import BadEventError, parse_event, parse_metadata
from .placement import place

LOG = logging.getLogger("crashcart.dump_arrival")
LOG.setLevel(logging.INFO)

MAX_METADATA_BYTES = 64 * 1024
MAX_DMESG_BYTES = 4 * 1024 * 1024
#: Bounds on what the instance wrote, as quoted in the incident and the notification.
SUMMARY_CHARS = 400
FIELD_CHARS = 100
FRAME_CHARS = 200
FRAMES_QUOTED = 24


def process(event: Any, adapter: Adapter, *, now: datetime, request_id: str) -> dict[str, Any]:
    if isinstance(event, dict) and event.get("source") == DUMP_RECEIVED_SOURCE:
        return central.process(event, adapter, request_id=request_id)
    arrival = parse_event(event)
    raw = adapter.read(arrival.bucket, arrival.key, MAX_METADATA_BYTES)
    if raw is None:
        raise BadEventError(f"{arrival.key} does not exist (deleted, or a replayed event)")
    metadata = parse_metadata(raw, arrival)
    names = [str(f["name"]) for f in metadata["files"]]
    keys = [arrival.prefix + name for name in names] + [arrival.key]
    dmesg_name = next((n for n in names if n.startswith("dmesg")), None)
    dmesg = (
        adapter.read(arrival.bucket, arrival.prefix + dmesg_name, MAX_DMESG_BYTES)
        if dmesg_name
        else None
    )
    # Everything below that comes from the instance (the kernel log, metadata.json) is
    # untrusted: one escaped, link-free, bounded line per value (crashcart.runtime.untrusted).
    if dmesg is not None:
        panic = summarize(dmesg.decode("utf-8", errors="replace"))
        summary = untrusted.line(panic.one_line(SUMMARY_CHARS), SUMMARY_CHARS)
        trace = panic.panic_backtrace
        backtrace_text = (
            "\n".join(
                "  " + frame
                for frame in untrusted.lines(trace.frames, limit=FRAME_CHARS, count=FRAMES_QUOTED)
            )
            if trace
            else "(no backtrace in the log)"
        )
    else:
        summary = "no dmesg file was shipped with this dump: run triage on the vmcore"
        backtrace_text = "(no kernel log)"

    decision = place(
        adapter,
        capture_memory=capture_memory_figures(metadata.get("capture_memory")),
        instance_id=arrival.instance_id,
        arrival_key=arrival.key,
        keys=keys,
        summary=summary,
        now=now,
        reason="dump arrived",
        request_id=request_id,
    )
    if decision.action == "duplicate":
        LOG.info(json.dumps({"outcome": "duplicate", "key": arrival.key}))
        return {"outcome": "duplicate", "incident": decision.incident_sk}

    origin = Origin.SPONTANEOUS if decision.action == "open" else Origin.REMEDIATION

    def quoted(name: str) -> str:
        return untrusted.line(metadata.get(name), FIELD_CHARS)

    release = quoted("kernel_release")
    message = "\n".join(
        [
            f"crashcart: crash dump received from {arrival.instance_id}",
            "",
            f"incident:  {decision.incident_sk} ({origin}; {decision.reason})",
            f"kernel:    {release} (build id {quoted('build_id')})",
            f"dump time: {quoted('dump_time')}",
            f"summary:   {summary}",
            "",
            "backtrace printed by the kernel:",
            backtrace_text,
            "",
            "objects:",
            *[f"  s3://{arrival.bucket}/{key}" for key in keys],
            "",
            f"full report: crashcart triage <vmcore> --vmlinux <debug vmlinux of {release}>",
        ]
    )
    adapter.notify(f"crashcart: dump from {arrival.instance_id}: {summary}", message)
    result = {
        "outcome": decision.action,
        "incident": decision.incident_sk,
        "instance_id": arrival.instance_id,
        "summary": summary,
    }
    LOG.info(json.dumps(result))
    return result
