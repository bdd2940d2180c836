"""Kernel-log parsing and panic classification on synthetic dmesg text."""

from __future__ import annotations

import pytest

from crashcart.runtime import kernel_log as dmesg
from tests.support.dumps import HUNG_TASK_DMESG, NMI_PANIC_DMESG


def test_prefixes_are_stripped_and_timestamps_kept() -> None:
    lines = dmesg.parse(
        "[   12.500000] hello\n<4>[ 13.000001] world\n[ 14.0][  T123] caller id\nbare\n"
    )
    assert [(line.timestamp, line.text) for line in lines] == [
        (12.5, "hello"),
        (13.000001, "world"),
        (14.0, "caller id"),
        (None, "bare"),
    ]


def test_nmi_panic_summary_names_the_panic_and_the_hung_function() -> None:
    summary = dmesg.summarize(NMI_PANIC_DMESG)
    assert summary.panic_message == "NMI: Not continuing"
    assert summary.reason == "nmi"
    assert summary.crashing_cpu == 1
    trace = summary.panic_backtrace
    assert trace is not None and trace.comm == "insmod" and trace.pid == 412
    assert trace.rip == "hang_spin"
    assert "hang_init [crashcart_hang]" in trace.functions()
    assert "? hang_spin [crashcart_hang]" not in trace.functions()  # unreliable frame
    line = summary.one_line()
    assert line.startswith("NMI: Not continuing | nmi | cpu 1: hang_spin < hang_init")
    assert "panic <" not in line  # the panic machinery is left out of the one-liner


def test_hung_task_panic_and_blocked_task_report() -> None:
    summary = dmesg.summarize(HUNG_TASK_DMESG)
    assert summary.reason == "hung task"
    assert summary.hung_tasks == ("jbd2/vda1-8:187 (120 s)",)
    assert len(summary.backtraces) == 2
    assert summary.backtraces[0].functions() == ["__schedule", "schedule", "io_schedule"]
    assert summary.crashing_cpu == 0


@pytest.mark.parametrize(
    ("panic", "log", "reason"),
    [
        ("NMI: Not continuing", "", "nmi"),
        ("NMI IOCK error: Not continuing", "", "nmi"),
        ("softlockup: hung tasks", "", "soft lockup"),
        ("hung_task: blocked tasks", "", "hung task"),
        ("Hard LOCKUP", "", "hard lockup"),
        ("sysrq triggered crash", "", "sysrq"),
        ("Fatal exception", "BUG: kernel NULL pointer dereference, address: 0", "oops"),
        ("Fatal exception in interrupt", "", "oops"),
        ("Attempted to kill init! exitcode=0x00000009", "", "other"),
        ("VFS: Unable to mount root fs on unknown-block(0,0)", "", "other"),
        ("System is deadlocked on memory", "", "out of memory"),
    ],
)
def test_classification(panic: str, log: str, reason: str) -> None:
    text = f"[ 1.0] {log}\n[ 2.0] Kernel panic - not syncing: {panic}\n"
    assert dmesg.summarize(text).reason == reason


def test_no_panic_in_the_log() -> None:
    summary = dmesg.summarize("[ 1.0] just booting\n")
    assert summary.panic_message is None
    assert summary.reason == "no panic"
    assert summary.panic_backtrace is None
    assert summary.one_line().startswith("no panic message in the kernel log")


def test_one_line_is_bounded() -> None:
    text = "[ 1.0] Kernel panic - not syncing: " + "x" * 1000 + "\n"
    assert len(dmesg.summarize(text).one_line(limit=120)) == 120


def test_tail_keeps_the_last_lines_with_timestamps() -> None:
    lines = dmesg.parse(NMI_PANIC_DMESG)
    tail = dmesg.tail(lines, 2)
    assert len(tail) == 2
    assert tail[-1].startswith("[   85.100150] Kernel Offset")
