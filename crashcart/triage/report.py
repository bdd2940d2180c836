"""The triage report: one value, rendered as Markdown for people and JSON for machines."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1


@dataclass
class CpuStack:
    """One CPU's stack (or one task's): frames innermost first, with source lines if known."""

    cpu: int | None
    pid: int | None
    comm: str | None
    frames: list[str]
    crashed: bool = False
    source: str = "vmcore"  # "vmcore" (drgn unwound it) or "log" (the kernel printed it)


@dataclass
class Report:
    """What triage found in one crash dump, and what it could not find (``missing``)."""

    vmcore: str
    format: str
    vmlinux: str | None
    kernel_release: str | None = None
    build_id: str | None = None
    crash_time: str | None = None
    uptime_seconds: float | None = None
    taint: str | None = None
    panic_message: str | None = None
    reason: str = "unknown"
    crashing_cpu: CpuStack | None = None
    other_cpus: list[CpuStack] = field(default_factory=list)
    blocked_tasks: list[CpuStack] = field(default_factory=list)
    hung_tasks_reported: list[str] = field(default_factory=list)
    load_average: list[float] | None = None
    memory: dict[str, int] | None = None
    dmesg_tail: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    elapsed_seconds: float | None = None
    schema: int = SCHEMA_VERSION


def to_dict(report: Report) -> dict[str, Any]:
    return asdict(report)


def to_json(report: Report) -> str:
    """The report as JSON (stable keys; ``schema`` versions the layout)."""
    return json.dumps(to_dict(report), indent=2, sort_keys=False)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")


def escape_markdown(text: object) -> str:
    """``text`` shown literally in Markdown: no link, image, HTML tag or table cell from it.

    The report quotes a crashed kernel's memory (task names, the kernel log), which whoever
    controlled the instance could fill: every such value is escaped where it is rendered.
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).splitlines()))


def _fence(lines: list[str]) -> str:
    """A code fence longer than any run of backticks inside, so no line can close it."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    return "`" * max(3, longest + 1)


def _stack_md(stack: CpuStack, title: str) -> list[str]:
    who = []
    if stack.cpu is not None:
        who.append(f"CPU {stack.cpu}")
    if stack.comm:
        who.append(f"{escape_markdown(stack.comm)} (pid {stack.pid})")
    heading = f"{title}: {', '.join(who)}" if who else title
    body = [f"#{i:<2} {frame}" for i, frame in enumerate(stack.frames)] or ["(no frames)"]
    fence = _fence(body)
    lines = [f"### {heading}", "", f"_source: {escape_markdown(stack.source)}_", "", fence]
    return [*lines, *body, fence, ""]


def render_markdown(report: Report) -> str:
    """The report as Markdown: summary table first, then stacks, tasks, memory, log tail."""

    def cell(value: object) -> str:
        return "-" if value in (None, "", []) else escape_markdown(value)

    uptime = f"{report.uptime_seconds:.0f} s" if report.uptime_seconds is not None else None
    load = (
        " ".join(f"{value:.2f}" for value in report.load_average) if report.load_average else None
    )
    out = [
        "# crashcart triage report",
        "",
        "| | |",
        "|---|---|",
        f"| panic | {cell(report.panic_message)} |",
        f"| reason | **{cell(report.reason)}** |",
        f"| kernel | {cell(report.kernel_release)} |",
        f"| build id | {cell(report.build_id)} |",
        f"| crash time | {cell(report.crash_time)} |",
        f"| uptime | {cell(uptime)} |",
        f"| taint | {cell(report.taint)} |",
        f"| load average | {cell(load)} |",
        f"| dump | {cell(report.vmcore)} ({cell(report.format)}) |",
        f"| debug vmlinux | {cell(report.vmlinux)} |",
        "",
    ]
    if report.missing:
        out += ["## Not in this report", ""]
        out += [f"- {escape_markdown(item)}" for item in report.missing]
        out.append("")
    out += ["## Crashing CPU", ""]
    if report.crashing_cpu is not None:
        out += _stack_md(report.crashing_cpu, "Backtrace")
    else:
        out += ["(unknown)", ""]
    if report.other_cpus:
        out += ["## Other CPUs", ""]
        for stack in report.other_cpus:
            out += _stack_md(stack, "Backtrace")
    out += ["## Tasks in D state (uninterruptible)", ""]
    if report.blocked_tasks:
        for stack in report.blocked_tasks:
            out += _stack_md(stack, "Task")
    else:
        out += ["(none found)" if "tasks" not in " ".join(report.missing) else "(not read)", ""]
    if report.hung_tasks_reported:
        out += ["Hung-task detector reports in the log:", ""]
        out += [f"- {escape_markdown(task)}" for task in report.hung_tasks_reported]
        out.append("")
    if report.memory:
        out += ["## Memory", "", "| counter | MiB |", "|---|---|"]
        out += [
            f"| {escape_markdown(name)} | {value / 1048576:.1f} |"
            for name, value in report.memory.items()
        ]
        out.append("")
    fence = _fence(report.dmesg_tail)
    out += ["## Kernel log (tail)", "", fence, *report.dmesg_tail, fence, ""]
    return "\n".join(out)
