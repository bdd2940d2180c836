"""The parser's report, checked as untrusted data before the supervisor quotes any of it.

The parser (:mod:`crashcart.triage.parser`) may have been taken over by the dump it read,
so its JSON is handled like anything else an instance wrote: parsed with a size bound and a
nesting guard, every field checked for its type, every string made one bounded, escaped,
link-free line (:mod:`crashcart.runtime.untrusted`), every list bounded in length. A field
of the wrong type is refused (:class:`BadReportError`, naming the field): the triage fails
cleanly and says so on the incident, instead of writing half a report.
"""

from __future__ import annotations

import json
import math
from typing import Any

from crashcart.runtime import untrusted
from crashcart.triage.report import CpuStack, Report

#: The dump formats the parser can name (crashcart.triage.core.detect_format).
FORMATS = frozenset({"kdump-compressed", "flattened", "diskdump", "elf"})
TEXT_CHARS = 400
SHORT_CHARS = 128
FRAME_CHARS = 300
FRAMES_PER_STACK = 64
MAX_CPUS = 256
MAX_BLOCKED = 64
MAX_LOG_LINES = 100
MAX_NOTES = 50
MAX_MEMORY_COUNTERS = 16


class BadReportError(ValueError):
    """The parser's report is not a report; the message names the field."""


def _text(data: dict[str, Any], name: str, limit: int = TEXT_CHARS) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadReportError(f"report field {name!r} is a {type(value).__name__}, not text")
    return untrusted.line(value, limit, empty="") or None


def _number(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadReportError(f"report field {name!r} is not a finite number")
    return float(value)


def _int_or_none(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise BadReportError(f"report field {name!r} is not a small non-negative integer")
    return value


def _texts(data: dict[str, Any], name: str, count: int, limit: int = TEXT_CHARS) -> list[str]:
    value = data.get(name) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadReportError(f"report field {name!r} is not a list of text")
    return untrusted.lines(value, limit=limit, count=count)


def _stack(value: Any, name: str) -> CpuStack:
    if not isinstance(value, dict):
        raise BadReportError(f"report field {name!r} is not a stack")
    source = value.get("source", "vmcore")
    if source not in ("vmcore", "log"):
        raise BadReportError(f"report field {name}.source is {str(source)[:20]!r}")
    return CpuStack(
        cpu=_int_or_none(value.get("cpu"), f"{name}.cpu"),
        pid=_int_or_none(value.get("pid"), f"{name}.pid"),
        comm=_text(value, "comm", SHORT_CHARS),
        frames=_texts(value, "frames", FRAMES_PER_STACK, FRAME_CHARS),
        crashed=value.get("crashed") is True,
        source=source,
    )


def _stacks(data: dict[str, Any], name: str, count: int) -> list[CpuStack]:
    value = data.get(name) or []
    if not isinstance(value, list):
        raise BadReportError(f"report field {name!r} is not a list")
    return [_stack(item, f"{name}[{index}]") for index, item in enumerate(value[:count])]


def checked_report(data: Any) -> Report:
    """A :class:`Report` built only from fields that pass their checks."""
    if not isinstance(data, dict):
        raise BadReportError("the report is not a JSON object")
    fmt = data.get("format")
    if fmt not in FORMATS:
        raise BadReportError(f"report field 'format' is {untrusted.line(fmt, 40)!r}")
    load = data.get("load_average")
    if load is not None and (
        not isinstance(load, list)
        or len(load) != 3
        or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in load
        )
    ):
        raise BadReportError("report field 'load_average' is not three numbers")
    memory = data.get("memory")
    if memory is not None and (
        not isinstance(memory, dict)
        or len(memory) > MAX_MEMORY_COUNTERS
        or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63
            for k, v in memory.items()
        )
    ):
        raise BadReportError("report field 'memory' is not a few named byte counts")
    crashing = data.get("crashing_cpu")
    return Report(
        vmcore="",
        format=fmt,
        vmlinux=None,
        kernel_release=_text(data, "kernel_release", SHORT_CHARS),
        build_id=_text(data, "build_id", SHORT_CHARS),
        crash_time=_text(data, "crash_time", 40),
        uptime_seconds=_number(data, "uptime_seconds"),
        taint=_text(data, "taint", SHORT_CHARS),
        panic_message=_text(data, "panic_message"),
        reason=_text(data, "reason", SHORT_CHARS) or "unknown",
        crashing_cpu=None if crashing is None else _stack(crashing, "crashing_cpu"),
        other_cpus=_stacks(data, "other_cpus", MAX_CPUS),
        blocked_tasks=_stacks(data, "blocked_tasks", MAX_BLOCKED),
        hung_tasks_reported=_texts(data, "hung_tasks_reported", MAX_NOTES),
        load_average=[float(v) for v in load] if load is not None else None,
        memory=(
            {untrusted.line(k, 40): int(v) for k, v in memory.items()}
            if memory is not None
            else None
        ),
        dmesg_tail=_texts(data, "dmesg_tail", MAX_LOG_LINES),
        missing=_texts(data, "missing", MAX_NOTES),
        elapsed_seconds=_number(data, "elapsed_seconds"),
    )


def parse_parser_output(raw: bytes) -> tuple[Report | None, bool, list[str], str | None]:
    """The parser's document: (report, vmlinux used, notes, error). Raises BadReportError."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise BadReportError(f"the parser's output is not JSON ({str(error)[:100]})") from None
    except RecursionError:
        raise BadReportError("the parser's output is nested too deeply") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("ok"), bool):
        raise BadReportError("the parser's output has no 'ok' flag")
    if not doc["ok"]:
        reason = doc.get("error")
        return None, False, [], untrusted.line(reason, 1000, empty="the parser gave no reason")
    notes = doc.get("notes") or []
    if not isinstance(notes, list) or not all(isinstance(note, str) for note in notes):
        raise BadReportError("the parser's notes are not a list of text")
    return (
        checked_report(doc.get("report")),
        doc.get("vmlinux_used") is True,
        untrusted.lines(notes, limit=1000, count=10),
        None,
    )
