"""Triage one crash dump with drgn: :func:`triage` returns a :class:`~.report.Report`.

With the debug vmlinux of the crashed kernel, drgn reads everything from the dump (panic
message, kernel log, every CPU's stack with source lines, tasks in D state, load, memory).
Without it, triage still reports the kernel log (the ``dmesg`` file shipped beside the dump,
or ``makedumpfile --dump-dmesg``), the panic string and reason, the backtraces the kernel
printed, and the dump's VMCOREINFO (kernel release, build id, crash time) - and lists what
is missing. Bad input raises :class:`TriageError` with a message for people.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from crashcart.runtime import kernel_log as dmesg_mod
from crashcart.triage.report import CpuStack, Report

T = TypeVar("T")

MIB = 1024 * 1024
_MAGIC = (
    (b"KDUMP   ", "kdump-compressed"),
    (b"makedumpfile", "flattened"),
    (b"DISKDUMP", "diskdump"),
    (b"\x7fELF", "elf"),
)
_TAIL_LINES = 60
#: The start of the ``missing`` entry of a report made without drgn (the CLI warns on it).
DRGN_MISSING = "drgn is not installed (pip install 'crashcart[triage]')"
_MAX_BLOCKED_TASKS = 50


class TriageError(Exception):
    """The input cannot be triaged; the message says what is wrong and what to do."""


def detect_format(vmcore: Path) -> str:
    """The dump format from its magic bytes, or :class:`TriageError`."""
    if not vmcore.exists():
        raise TriageError(f"{vmcore}: no such file")
    if not vmcore.is_file():
        raise TriageError(f"{vmcore}: not a regular file")
    try:
        with vmcore.open("rb") as handle:
            head = handle.read(16)
    except OSError as error:
        raise TriageError(f"{vmcore}: cannot read it ({error.strerror})") from None
    if not head:
        raise TriageError(f"{vmcore}: the file is empty (an interrupted dump?)")
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    raise TriageError(
        f"{vmcore}: not a crash dump (expected a kdump-compressed, flattened makedumpfile "
        f"or ELF vmcore; the file starts with {head[:8]!r})"
    )


_KEY_CHAR = re.compile(rb"[A-Za-z0-9_-]")


def read_vmcoreinfo(vmcore: Path, limit: int = 64 * MIB) -> dict[str, str]:
    """``KEY=value`` lines of the dump's VMCOREINFO note (stored near the start)."""
    wanted = (b"OSRELEASE", b"BUILD-ID", b"CRASHTIME", b"PAGESIZE")
    found: dict[str, str] = {}
    carry = b""
    read = 0
    with vmcore.open("rb") as handle:
        while read < limit and len(found) < len(wanted):
            block = handle.read(4 * MIB)
            if not block:
                break
            read += len(block)
            data = carry + block
            for name in wanted:
                key = name.decode()
                if key in found:
                    continue
                # The note's first line follows its name's NUL padding, not a newline: the
                # key must only not be the tail of a longer one. A literal-led pattern lets
                # the regex engine skip ahead instead of trying every byte.
                pattern = re.compile(name + rb"=([\x21-\x7e]{1,128})\n")
                match = pattern.search(data)
                while match and match.start() > 0 and _KEY_CHAR.match(data, match.start() - 1):
                    match = pattern.search(data, match.end())
                if match:
                    found[key] = match.group(1).decode()
            carry = data[-512:]
    return found


def _sibling_dmesg(vmcore: Path) -> Path | None:
    folder = vmcore.parent
    for pattern in ("dmesg.txt", "vmcore-dmesg.txt", "dmesg.*"):
        for candidate in sorted(folder.glob(pattern)):
            if candidate.is_file() and candidate != vmcore:
                return candidate
    return None


def _makedumpfile_dmesg(vmcore: Path) -> str | None:
    tool = shutil.which("makedumpfile")
    if tool is None:
        return None
    with tempfile.TemporaryDirectory(prefix="crashcart-triage-") as tmp:
        out = Path(tmp) / "dmesg"
        try:
            subprocess.run(
                [tool, "--dump-dmesg", str(vmcore), str(out)],
                capture_output=True,
                timeout=120,
                check=True,
            )
        except (subprocess.SubprocessError, OSError):
            return None
        return out.read_text(encoding="utf-8", errors="replace") if out.exists() else None


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _log_stack(trace: dmesg_mod.Backtrace, *, crashed: bool) -> CpuStack:
    frames = list(trace.frames)
    if trace.rip:
        frames = [f"{trace.rip} (RIP)", *frames]
    return CpuStack(trace.cpu, trace.pid, trace.comm, frames, crashed=crashed, source="log")


def _apply_log(report: Report, text: str, *, stacks_from_log: bool) -> None:
    """Fill the report from the kernel log text."""
    lines = dmesg_mod.parse(text)
    summary = dmesg_mod.summarize(text)
    report.panic_message = report.panic_message or summary.panic_message
    report.reason = dmesg_mod.classify(report.panic_message, lines)
    report.hung_tasks_reported = list(summary.hung_tasks)
    report.dmesg_tail = dmesg_mod.tail(lines, _TAIL_LINES)
    if report.taint is None:
        for line in lines:
            match = re.search(r"\bTainted: ([A-Z][A-Z ]*?)\s+\d", line.text)
            if match:
                report.taint = " ".join(match.group(1).split())
                break
            if re.search(r"\bNot tainted\b", line.text):
                report.taint = "not tainted"
                break
    if report.uptime_seconds is None:
        panic_line = next((ln for ln in lines if "Kernel panic - not syncing" in ln.text), None)
        if panic_line is not None:
            report.uptime_seconds = panic_line.timestamp
    if report.kernel_release is None:
        match = re.search(r"Linux version (\S+)", text)
        report.kernel_release = match.group(1) if match else None
    if stacks_from_log:
        if summary.panic_backtrace is not None:
            report.crashing_cpu = _log_stack(summary.panic_backtrace, crashed=True)
        seen = {summary.crashing_cpu}
        for trace in reversed(summary.backtraces):
            if trace.cpu is None or trace.cpu in seen:
                continue
            seen.add(trace.cpu)
            report.other_cpus.append(_log_stack(trace, crashed=False))
        report.other_cpus.sort(key=lambda s: s.cpu if s.cpu is not None else -1)


def triage(vmcore: Path, vmlinux: Path | None = None, *, dmesg: Path | None = None) -> Report:
    """Triage ``vmcore`` (with the debug ``vmlinux`` of its kernel when available).

    :param dmesg: the kernel log saved beside the dump; default: a ``dmesg*`` file in the
        dump's folder, else ``makedumpfile --dump-dmesg``. Used when no vmlinux is given.
    :raises TriageError: missing / unreadable / not a vmcore / truncated dump; missing or
        mismatched vmlinux.
    """
    started = time.perf_counter()
    vmcore = Path(vmcore)
    fmt = detect_format(vmcore)
    if vmlinux is not None:
        vmlinux = Path(vmlinux)
        if not vmlinux.is_file():
            raise TriageError(f"{vmlinux}: no such vmlinux file")
    info = read_vmcoreinfo(vmcore)
    report = Report(
        vmcore=str(vmcore),
        format=fmt,
        vmlinux=str(vmlinux) if vmlinux else None,
        kernel_release=info.get("OSRELEASE"),
        build_id=info.get("BUILD-ID"),
        crash_time=_iso(int(info["CRASHTIME"])) if info.get("CRASHTIME", "").isdigit() else None,
    )
    if _load_drgn() is None:
        # The log-only report needs no drgn: it reads the kernel log shipped beside the dump
        # (or makedumpfile's copy of it) and the VMCOREINFO note read above.
        report.missing.append(
            f"{DRGN_MISSING}: the dump itself was not opened (a truncated dump is not "
            "detected), and stacks unwound from memory, tasks in D state, load average and "
            "memory counters are not read"
            + (f"; the vmlinux {vmlinux} was not used" if vmlinux is not None else "")
        )
        report.vmlinux = None
        _report_from_log(report, vmcore, dmesg)
    elif vmlinux is None:
        _open(vmcore)  # refuses a truncated or damaged dump
        report.missing.append(
            "debug vmlinux not given: stacks unwound from memory with source lines, tasks "
            "in D state, load average and memory counters need the vmlinux of kernel "
            f"{report.kernel_release or '(unknown)'} (build id {report.build_id or '?'})"
        )
        _report_from_log(report, vmcore, dmesg)
    else:
        prog = _open(vmcore)
        _load_vmlinux(prog, vmlinux, report)
        _from_program(prog, report)
    report.elapsed_seconds = round(time.perf_counter() - started, 3)
    return report


def _load_drgn() -> Any | None:
    """The drgn module, or None when it is not installed (the log-only report still works)."""
    try:
        import drgn
    except ImportError:
        return None
    return drgn


def _report_from_log(report: Report, vmcore: Path, dmesg: Path | None) -> None:
    """Panic, reason and the backtraces the kernel printed, from the kernel log."""
    log_path = dmesg or _sibling_dmesg(vmcore)
    text = None
    if log_path is not None:
        try:
            text = log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            report.missing.append(f"kernel log {log_path}: {error.strerror}")
    if text is None:
        text = _makedumpfile_dmesg(vmcore)
    if text is None:
        report.missing.append(
            "kernel log: no dmesg file beside the dump and makedumpfile could not "
            "extract it; the panic message and reason are unknown"
        )
        return
    _apply_log(report, text, stacks_from_log=True)
    report.missing.append(
        "backtraces below are the ones the kernel printed in its log (source: log)"
    )


def _open(vmcore: Path) -> Any:
    drgn = _load_drgn()
    if drgn is None:  # pragma: no cover - triage() makes the log-only report instead
        raise TriageError(f"{DRGN_MISSING}: it is needed to open {vmcore}")
    prog = drgn.Program()
    try:
        prog.set_core_dump(str(vmcore))
    except Exception as error:  # drgn raises ValueError, OSError, drgn.FaultError...
        raise TriageError(
            f"{vmcore}: cannot open it as a crash dump ({_short(error)}); it may be "
            "truncated or damaged - check the sha256 in its metadata.json"
        ) from None
    return prog


def _load_vmlinux(prog: Any, vmlinux: Path, report: Report) -> None:
    import drgn

    try:
        prog.load_debug_info([str(vmlinux)], main=True)
    except drgn.MissingDebugInfoError:
        pass  # modules without debug info are reported per module; checked below
    except Exception as error:
        raise TriageError(f"{vmlinux}: cannot load it as debug info ({_short(error)})") from None
    try:
        prog.type("struct task_struct")
    except LookupError:
        raise TriageError(
            f"{vmlinux} does not match the dump: its build id is not the crashed kernel's "
            f"({report.kernel_release or 'unknown release'}, build id "
            f"{report.build_id or 'unknown'}); give the debug vmlinux of that exact kernel"
        ) from None
    try:
        from drgn.helpers.linux.kallsyms import load_module_kallsyms

        prog.register_symbol_finder(
            "crashcart_module_kallsyms", load_module_kallsyms(prog), enable_index=-1
        )
    except Exception as error:
        report.missing.append(f"module symbol names: {_short(error)}")


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) < 300 else text[:297] + "..."


def _section(report: Report, name: str, action: Callable[[], T]) -> T | None:
    try:
        return action()
    except Exception as error:
        report.missing.append(f"{name}: {_short(error)}")
        return None


def _frames(trace: Any) -> list[str]:
    out = []
    for frame in trace:
        name = frame.name or f"0x{frame.pc:x}"
        try:
            filename, line, _column = frame.source()
            out.append(f"{name} at {filename}:{line}")
        except LookupError:
            out.append(name)
    return out


def _from_program(prog: Any, report: Report) -> None:
    from drgn.helpers.linux.cpumask import for_each_online_cpu
    from drgn.helpers.linux.mm import totalram_pages
    from drgn.helpers.linux.panic import panic_message, tainted
    from drgn.helpers.linux.pid import for_each_task
    from drgn.helpers.linux.printk import get_printk_records
    from drgn.helpers.linux.sched import cpu_curr, loadavg, task_cpu, task_state_to_char
    from drgn.helpers.linux.timekeeping import ktime_get_real_seconds, uptime
    from drgn.helpers.linux.vmstat import nr_free_pages

    def release() -> str:
        return str(prog["init_uts_ns"].name.release.string_().decode())

    report.kernel_release = _section(report, "kernel release", release) or report.kernel_release
    message = _section(report, "panic message", lambda: panic_message(prog))
    report.panic_message = message.decode() if isinstance(message, bytes) else message
    crash_seconds = _section(report, "crash time", lambda: int(ktime_get_real_seconds(prog)))
    if crash_seconds:
        report.crash_time = _iso(crash_seconds)
    report.uptime_seconds = _section(report, "uptime", lambda: float(uptime(prog)))
    report.taint = _section(report, "taint", lambda: str(tainted(prog)) or "not tainted")
    load = _section(report, "load average", lambda: [float(v) for v in loadavg(prog)])
    report.load_average = load

    def log_text() -> str:
        return "\n".join(
            f"[{record.timestamp / 1e9:12.6f}] {record.text.decode(errors='replace')}"
            for record in get_printk_records(prog)
        )

    text = _section(report, "kernel log", log_text)
    if text is not None:
        _apply_log(report, text, stacks_from_log=False)

    crashed_cpu: int | None = None

    def crashed() -> CpuStack:
        nonlocal crashed_cpu
        thread = prog.crashed_thread()
        task = thread.object
        crashed_cpu = int(task_cpu(task))
        return CpuStack(
            crashed_cpu,
            int(task.pid),
            task.comm.string_().decode(),
            _frames(thread.stack_trace()),
            crashed=True,
        )

    report.crashing_cpu = _section(report, "crashing CPU backtrace", crashed)

    def other_cpus() -> list[CpuStack]:
        stacks = []
        for cpu in for_each_online_cpu(prog):
            if cpu == crashed_cpu:
                continue
            task = cpu_curr(prog, cpu)
            try:
                frames = _frames(prog.stack_trace(task))
            except Exception as error:
                frames = [f"(cannot unwind: {_short(error)})"]
            stacks.append(CpuStack(int(cpu), int(task.pid), task.comm.string_().decode(), frames))
        return stacks

    report.other_cpus = _section(report, "other CPUs' backtraces", other_cpus) or []

    def blocked() -> list[CpuStack]:
        stacks = []
        for task in _limited(for_each_task(prog), 100_000):
            if task_state_to_char(task) != "D":
                continue
            try:
                frames = _frames(prog.stack_trace(task))
            except Exception as error:
                frames = [f"(cannot unwind: {_short(error)})"]
            stacks.append(CpuStack(None, int(task.pid), task.comm.string_().decode(), frames))
            if len(stacks) >= _MAX_BLOCKED_TASKS:
                report.missing.append(f"tasks in D state: only the first {_MAX_BLOCKED_TASKS}")
                break
        return stacks

    report.blocked_tasks = _section(report, "tasks in D state", blocked) or []

    def memory() -> dict[str, int]:
        page = int(prog["PAGE_SIZE"]) if _has(prog, "PAGE_SIZE") else 4096
        return {
            "total": int(totalram_pages(prog)) * page,
            "free": int(nr_free_pages(prog)) * page,
        }

    report.memory = _section(report, "memory summary", memory)


def _has(prog: Any, name: str) -> bool:
    try:
        prog[name]
    except (KeyError, LookupError):
        return False
    return True


def _limited(items: Iterator[T], limit: int) -> Iterator[T]:
    for index, item in enumerate(items):
        if index >= limit:
            return
        yield item
