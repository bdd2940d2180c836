"""Read a kernel log: the panic string, why the kernel panicked, the backtraces it printed.

Part of the shared runtime: the dump-arrival function writes its first summary with it and
the triage job its full report, so both say the same about one log. Input is the text of
``dmesg.txt`` (``makedumpfile --dump-dmesg`` output, as kdump-tools and kdump.service save
it) or the records read from a vmcore.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# [   12.345678] text   /   <4>[ 12.3] text   /   [ 12.3][  T123] text
_PREFIX = re.compile(r"^(?:<\d+>)?\[\s*(\d+\.\d+)\](?:\[\s*[TC]\d+\])?\s?(.*)\Z")
_PANIC = re.compile(r"Kernel panic - not syncing:\s*(.*?)\s*\Z")
_FRAME = re.compile(
    r"^\s*(?P<unreliable>\?\s+)?(?P<function>[\w.$]+)\+0x[0-9a-f]+/0x[0-9a-f]+"
    r"(?:\s+\[(?P<module>[\w-]+)\])?"
)
_MARKER = re.compile(r"^\s*</?(NMI|IRQ|TASK|EOI|SOFTIRQ)>\s*\Z")
_CPU_LINE = re.compile(
    r"CPU:\s*(?P<cpu>\d+)\s+(?:UID:\s*\d+\s+)?PID:\s*(?P<pid>\d+)\s+Comm:\s*(?P<comm>\S+)"
)
_NMI_BACKTRACE = re.compile(r"NMI backtrace for cpu (?P<cpu>\d+)")
_RIP = re.compile(r"^\s*RIP:\s*[0-9a-f]{4}:(?P<function>[\w.$]+)\+0x[0-9a-f]+/0x[0-9a-f]+")
_HUNG_TASK = re.compile(
    r"INFO: task (?P<comm>.+?):(?P<pid>\d+) blocked for more than (?P<secs>\d+) seconds"
)

#: Reasons, most specific first: (reason, patterns searched in the panic string, then log).
REASONS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("sysrq", ("sysrq triggered crash",), ("sysrq: Trigger a crash",)),
    ("hung task", ("hung_task: blocked tasks",), ()),
    ("soft lockup", ("softlockup: hung tasks",), ()),
    ("hard lockup", ("Hard LOCKUP", "hardlockup: hung tasks"), ()),
    ("nmi", ("NMI: Not continuing", "NMI IOCK error", "NMI: "), ()),
    ("out of memory", ("Out of memory", "System is deadlocked on memory"), ()),
    (
        "oops",
        ("Fatal exception", "Oops", "kernel BUG", "general protection fault"),
        ("BUG: unable to handle", "BUG: kernel NULL pointer dereference", "kernel BUG at"),
    ),
)


#: Frames of the panic / NMI machinery itself: left out of one-line summaries so that the
#: interrupted work shows.
PANIC_PATH_FRAMES = (
    "dump_stack",
    "panic",
    "nmi_panic",
    "unknown_nmi_error",
    "default_do_nmi",
    "exc_nmi",
    "end_repeat_nmi",
    "asm_exc_nmi",
    "nmi_handle",
    "nmi_cpu_backtrace",
    "show_stack",
    "__show_trace",
    "show_trace_log_lvl",
    "crash_nmi_callback",
    "watchdog_timer_fn",
    "watchdog",
    "sysrq_handle_crash",
    "__handle_sysrq",
    "oops_end",
    "die",
)


def is_panic_path(function: str) -> bool:
    """True for frames of the panic / NMI handling path (``panic``, ``exc_nmi``...)."""
    name = function.split(" ", 1)[0].split(".", 1)[0]
    return name in PANIC_PATH_FRAMES or name.startswith(("dump_stack", "__die"))


@dataclass(frozen=True)
class LogLine:
    """One kernel log line: seconds since boot (when printed) and the text."""

    timestamp: float | None
    text: str


@dataclass(frozen=True)
class Backtrace:
    """A backtrace the kernel printed (its own panic trace, or an NMI backtrace of a CPU)."""

    cpu: int | None
    pid: int | None
    comm: str | None
    rip: str | None
    frames: tuple[str, ...]
    origin: str = "log"

    def functions(self, *, reliable_only: bool = True) -> list[str]:
        """Function names, innermost first (``?`` frames are unreliable guesses)."""
        out = []
        for frame in self.frames:
            if reliable_only and frame.startswith("? "):
                continue
            out.append(frame.removeprefix("? "))
        return out


@dataclass(frozen=True)
class PanicSummary:
    """What the kernel log alone says about a crash."""

    panic_message: str | None
    reason: str
    crashing_cpu: int | None
    panic_backtrace: Backtrace | None
    backtraces: tuple[Backtrace, ...] = field(default_factory=tuple)
    hung_tasks: tuple[str, ...] = field(default_factory=tuple)

    def one_line(self, limit: int = 400) -> str:
        """A short summary for an incident record or a notification subject line."""
        parts = [self.panic_message or "no panic message in the kernel log", self.reason]
        trace = self.panic_backtrace
        if trace is not None:
            where = f"cpu {trace.cpu}" if trace.cpu is not None else "panicking cpu"
            functions = [f for f in trace.functions() if not is_panic_path(f)]
            if trace.rip:
                functions = [trace.rip, *[f for f in functions if f != trace.rip]]
            if functions:
                parts.append(f"{where}: " + " < ".join(functions[:6]))
        text = " | ".join(parts)
        return text if len(text) <= limit else text[: limit - 3] + "..."


def parse(text: str) -> list[LogLine]:
    """Split a kernel log into lines, stripping ``[ seconds]`` / ``<level>`` prefixes."""
    lines = []
    for raw in text.splitlines():
        match = _PREFIX.match(raw)
        if match:
            lines.append(LogLine(float(match.group(1)), match.group(2).rstrip()))
        elif raw.strip():
            lines.append(LogLine(None, raw.rstrip()))
    return lines


def panic_message(lines: Sequence[LogLine]) -> str | None:
    """The text after the first "Kernel panic - not syncing:", if the log has one."""
    for line in lines:
        match = _PANIC.search(line.text)
        if match:
            return match.group(1) or "(empty panic message)"
    return None


def classify(message: str | None, lines: Iterable[LogLine] = ()) -> str:
    """Why the kernel panicked: sysrq, hung task, soft lockup, hard lockup, nmi, out of
    memory, oops, or other (no panic message at all: "no panic")."""
    if message is None:
        return "no panic"
    for reason, in_message, _ in REASONS:
        if any(pattern in message for pattern in in_message):
            return reason
    texts = [line.text for line in lines]
    for reason, _, in_log in REASONS:
        if any(pattern in text for pattern in in_log for text in texts):
            return reason
    return "other"


def backtraces(lines: Sequence[LogLine]) -> list[Backtrace]:
    """Every backtrace block in the log, in order.

    A block starts at "NMI backtrace for cpu N" or "CPU: N PID: ..." and collects the
    "RIP:" line and the frames after "Call Trace:" until the first line that is neither a
    frame nor a context marker (``<NMI>``, ``<TASK>``...).
    """
    found: list[Backtrace] = []
    cpu: int | None = None
    pid: int | None = None
    comm: str | None = None
    rip: str | None = None
    index = 0
    while index < len(lines):
        text = lines[index].text
        nmi = _NMI_BACKTRACE.search(text)
        header = _CPU_LINE.search(text)
        rip_match = _RIP.match(text)
        if nmi:
            cpu, pid, comm, rip = int(nmi.group("cpu")), None, None, None
        elif header:
            cpu = int(header.group("cpu"))
            pid = int(header.group("pid"))
            comm = header.group("comm")
        elif rip_match:
            rip = rip_match.group("function")
        elif text.strip() == "Call Trace:":
            frames: list[str] = []
            index += 1
            while index < len(lines):
                inner = lines[index].text
                frame = _FRAME.match(inner)
                if frame:
                    name = frame.group("function")
                    if frame.group("module"):
                        name += f" [{frame.group('module')}]"
                    frames.append(("? " if frame.group("unreliable") else "") + name)
                elif (inner_rip := _RIP.match(inner)) is not None:
                    rip = rip or inner_rip.group("function")
                elif not (_MARKER.match(inner) or _is_register_line(inner)):
                    break
                index += 1
            found.append(Backtrace(cpu, pid, comm, rip, tuple(frames)))
            cpu = pid = None
            comm = rip = None
            continue
        index += 1
    return found


def _is_register_line(text: str) -> bool:
    stripped = text.strip()
    return bool(re.match(r"^(Code:|RSP:|RAX:|RDX:|RBP:|R\d+:|FS:|CS:|CR2:|DR\d:|PKRU:)", stripped))


def hung_tasks(lines: Sequence[LogLine]) -> list[str]:
    """Tasks the hung-task detector reported ("comm:pid blocked for more than N seconds")."""
    out = []
    for line in lines:
        match = _HUNG_TASK.search(line.text)
        if match:
            out.append(f"{match.group('comm')}:{match.group('pid')} ({match.group('secs')} s)")
    return out


def summarize(text: str) -> PanicSummary:
    """The panic string, its reason and the backtraces, from the kernel log alone."""
    lines = parse(text)
    message = panic_message(lines)
    traces = backtraces(lines)
    panic_trace: Backtrace | None = None
    crashing_cpu: int | None = None
    if message is not None:
        panic_index = next(i for i, line in enumerate(lines) if _PANIC.search(line.text))
        # The panic's own trace is the first block printed after the panic line.
        after = backtraces(lines[panic_index:])
        if after:
            panic_trace = after[0]
            crashing_cpu = panic_trace.cpu
        # For an NMI panic the interrupted work shows in the NMI backtrace of that CPU
        # (printed before the panic); prefer it when it names a function.
        if crashing_cpu is not None:
            before = [t for t in backtraces(lines[:panic_index]) if t.cpu == crashing_cpu]
            if before and before[-1].functions() and panic_trace is not None:
                panic_trace = Backtrace(
                    crashing_cpu,
                    panic_trace.pid,
                    panic_trace.comm,
                    before[-1].rip or panic_trace.rip,
                    panic_trace.frames,
                )
    return PanicSummary(
        panic_message=message,
        reason=classify(message, lines),
        crashing_cpu=crashing_cpu,
        panic_backtrace=panic_trace,
        backtraces=tuple(traces),
        hung_tasks=tuple(hung_tasks(lines)),
    )


def tail(lines: Sequence[LogLine], count: int = 60) -> list[str]:
    """The last ``count`` lines, formatted with their timestamps."""
    out = []
    for line in lines[-count:]:
        stamp = f"[{line.timestamp:12.6f}] " if line.timestamp is not None else ""
        out.append(stamp + line.text)
    return out
