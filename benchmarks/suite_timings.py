"""Benchmark 10 - suite timings: what `make check` and `make test` cost (read, not run).

Every run of the whole suite records itself (``tests/support/suite_record.py``) in
``<drill cache>/suite-runs.json``: wall time, the CPU of every process it started (QEMU
included), its tests, the load average around it, the commit. A ``make test`` run also
records the drill of the same run: its plain guest boot (the first positive scenario, booted
cold), whether each guest image was taken from the cache or prepared in the run, and each
scenario's time. This benchmark reports the newest runs of each kind, ``make test``'s as
ratios against that plain boot, and checks them against issue 24's budgets (for a quiet
2-core machine: each row gives its load). The suite takes minutes, so ``make bench`` does
not run it: run ``make check`` or ``make test`` to refresh the figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.common import Context, SkipError, check, ratio, table, times

NAME = "suite_timings"
TITLE = "Suite timings: make check and make test, against a plain guest boot of the same run"

RECORD_FILE = "suite-runs.json"
#: Issue 24's budgets, in seconds of wall time on a quiet 2-core machine.
BUDGET_CHECK_S = 120.0
BUDGET_TEST_WARM_S = 480.0
BUDGET_TEST_COLD_S = 720.0
#: Rows shown per kind, newest first.
SHOWN = 5


def records_path(ctx: Context) -> Path:
    configured = ctx.options.get("suite_runs")
    if configured:
        return Path(configured)
    from crashcart.drill.paths import cache_dir

    return cache_dir() / RECORD_FILE


def images_state(entry: dict[str, Any]) -> str:
    """``warm`` (every guest image from the cache), ``prepared`` (one at least prepared in the
    run: the cold budget applies), or ``-`` for a run without the drill."""
    images = ((entry.get("drill") or {}).get("images")) or {}
    if not images:
        return "-"
    return "warm" if all(image.get("cached") for image in images.values()) else "prepared"


def budget_of(entry: dict[str, Any]) -> tuple[float, str] | None:
    if entry.get("kind") == "check":
        return BUDGET_CHECK_S, "make check"
    state = images_state(entry)
    if state == "warm":
        return BUDGET_TEST_WARM_S, "make test, images cached"
    if state == "prepared":
        return BUDGET_TEST_COLD_S, "make test, images prepared in the run"
    return None


def cores_of(entry: dict[str, Any]) -> int:
    """The cores the run could use (recorded since 2026-12-06; older records were made on this
    machine, whose usable cores stand in)."""
    recorded = entry.get("cores")
    if isinstance(recorded, int) and recorded > 0:
        return recorded
    from tests.support.suite_record import usable_cores

    return usable_cores()


def cpu_floor(entry: dict[str, Any]) -> float | None:
    """The least wall time the run's CPU allows on its cores: CPU / cores."""
    cpu = entry.get("cpu_s")
    return round(float(cpu) / cores_of(entry), 1) if cpu is not None else None


def floor_verdict(entry: dict[str, Any], limit: float) -> str:
    """Whether the run's CPU alone rules ``limit`` out (then by how much it must fall), or
    not (then the idle CPU of the run, its tail among it, is what stands between)."""
    floor, cores = cpu_floor(entry), cores_of(entry)
    if floor is None:
        return "no CPU recorded"
    if floor <= limit:
        return (
            f"CPU / {cores} cores = {floor} s <= {limit:.0f} s: its CPU alone does not rule it out"
        )
    most = limit * cores
    cut = 100 * (1 - most / float(entry["cpu_s"]))
    return (
        f"CPU / {cores} cores = {floor} s > {limit:.0f} s: out of reach until the run's CPU "
        f"falls from {entry['cpu_s']} s to at most {most:.0f} s ({cut:.0f} % less)"
    )


def _load(entry: dict[str, Any]) -> str:
    load = entry.get("load_average") or {}
    start, end = load.get("start") or ["?"], load.get("end") or ["?"]
    return f"{start[0]} -> {end[0]}"


def _tests(entry: dict[str, Any]) -> str:
    counts = entry.get("tests") or {}
    failed = (counts.get("failed") or 0) + (counts.get("error") or 0)
    return f"{counts.get('passed', '?')} passed" + (f", {failed} failed" if failed else "")


def _row(entry: dict[str, Any]) -> list[Any]:
    drill = entry.get("drill") or {}
    boot = drill.get("plain_boot_s")
    wall, cpu = entry.get("wall_s"), entry.get("cpu_s")
    return [
        f"make {entry.get('kind')}",
        entry.get("started_at", "?"),
        entry.get("commit") or "?",
        _tests(entry),
        f"{wall} s",
        f"{cpu} s" if cpu is not None else "?",
        f"{cpu_floor(entry)} s" if cpu is not None else "?",
        f"{entry['tail_s']} s" if entry.get("tail_s") is not None else "-",
        _load(entry),
        images_state(entry),
        f"{boot} s" if boot else "-",
        times(ratio(wall, boot)) if wall and boot else "-",
    ]


def scenario_rows(entry: dict[str, Any]) -> list[list[Any]]:
    drill = entry.get("drill") or {}
    boot = drill.get("plain_boot_s")
    rows: list[list[Any]] = []
    for name, image in sorted((drill.get("images") or {}).items()):
        prepared = None if image.get("cached") else image.get("prepare_s")
        rows.append(
            [
                f"image `{name}`",
                "from the cache" if image.get("cached") else f"prepared: {prepared} s",
                times(ratio(prepared, boot)) if prepared and boot else "-",
            ]
        )
    for name, scenario in (drill.get("scenarios") or {}).items():
        seconds = scenario.get("scenario_s")
        rows.append(
            [
                name,
                ("passed" if scenario.get("passed") else "FAILED") + f", {seconds} s",
                times(ratio(seconds, boot)) if seconds and boot else "-",
            ]
        )
    return rows


def run(ctx: Context) -> dict[str, Any]:
    path = records_path(ctx)
    try:
        runs = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SkipError(
            f"not run: no suite records at {path} ({type(error).__name__}); "
            "run `make check` or `make test` (each records itself)"
        ) from None
    newest = {
        kind: list(reversed(runs.get(kind) or []))[:SHOWN]
        for kind in ("check", "test")
        if runs.get(kind)
    }
    if not newest:
        raise SkipError(f"not run: {path} holds no run of `make check` or `make test`")
    rows = [_row(entry) for kind in ("check", "test") for entry in newest.get(kind, [])]
    checks = []
    summary: dict[str, str] = {}
    for kind, entries in newest.items():
        passing = [entry for entry in entries if entry.get("exitstatus") == 0]
        if not passing:
            summary[f"make {kind}, newest"] = "no passing run among the newest"
            continue
        latest = passing[0]
        budget = budget_of(latest)
        summary[f"make {kind}, newest passing"] = (
            f"{latest.get('wall_s')} s wall, {latest.get('cpu_s')} s CPU, {_tests(latest)} "
            f"(load {_load(latest)}, {latest.get('started_at')}, {latest.get('commit')})"
        )
        if budget is not None and latest.get("wall_s") is not None:
            limit, what = budget
            summary[f"make {kind}, newest passing: its CPU floor"] = floor_verdict(latest, limit)
            checks.append(
                check(
                    f"{what}: at most {limit:.0f} s on a quiet 2-core machine (issue 24)",
                    float(latest["wall_s"]) <= limit,
                    f"{latest['wall_s']} s at load {_load(latest)}",
                )
            )
    tables = [
        table(
            f"The newest runs (from {path.name}; wall and CPU: every process the run started)",
            [
                "run",
                "started",
                "commit",
                "tests",
                "wall",
                "CPU",
                "CPU / cores (least wall)",
                "tail (a worker done, another not)",
                "load (1 min)",
                "guest images",
                "plain boot (same run)",
                "wall / a plain boot",
            ],
            rows,
        )
    ]
    latest_test = next((e for e in newest.get("test", []) if e.get("exitstatus") == 0), None)
    if latest_test and (latest_test.get("drill") or {}).get("plain_boot_s"):
        tables.append(
            table(
                "The newest make test: the drill's images and scenarios against its plain boot "
                f"({latest_test['drill']['plain_boot_s']} s, "
                f"{latest_test['drill']['plain_boot_of']})",
                ["", "result", "/ a plain boot"],
                scenario_rows(latest_test),
            )
        )
    return {
        "figures": {"source": str(path), "newest": newest},
        "summary": summary,
        "tables": tables,
        "checks": checks,
        "notes": [
            "Recorded by the runs themselves (tests/support/suite_record.py): a run of part of "
            "the suite records nothing. CPU is user + system time of the pytest processes and "
            "everything they started, QEMU included; on 2 cores, wall >= CPU / 2.",
            "The budgets are for a quiet machine; under load the wall time grows with it (the "
            "load column), the CPU far less.",
            "CPU / cores is the least wall time the run's CPU allows, however its tests are "
            "scheduled: when it exceeds a budget, only less CPU (or more cores) can meet it. "
            "The tail is the time between the first and the last worker's last test (recorded "
            "since 2026-12-06): a better schedule could win at most (N - 1) / N of it with N "
            "workers, half of it with 2.",
        ],
    }
