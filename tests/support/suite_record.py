"""What a whole-suite run cost: ``make check`` and ``make test``, recorded by the run itself.

Issue 24 measures the suite in ``make bench`` (``benchmarks/suite_timings.py``), not in
assertions. Each run of the whole suite — every test (``make test``) or every test but the
drill (``make check``, ``-m "not e2e"``) — writes one entry into
``<drill cache>/suite-runs.json``: its wall time, the CPU of every process it started
(workers, CDK CLIs, QEMU: counted once they have exited), its tests, the load average
around it, the commit, and, for a run with the drill, the drill's own figures from the same
run (its plain guest boot, whether each image was prepared in it), so the benchmark can put
the suite against a plain boot measured in the same run. A run of a selection (paths,
``-k``, another marker expression) records nothing: it is not the suite.

Only the process that runs the session records (xdist's controller, or a run without
workers); workers never do.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.drill import read_json

RECORD_FILE = "suite-runs.json"
#: Marker expression -> the kind of run it makes (with no other selection).
KINDS = {"": "test", "not e2e": "check"}
#: Runs kept per kind, newest last.
KEEP = 10

_started: dict[str, Any] = {}


def suite_kind(config: pytest.Config) -> str | None:
    """``test``, ``check``, or None for a run that selected part of the suite."""
    option = config.option
    root = Path(config.rootpath)
    given = config.args_source == pytest.Config.ArgsSource.ARGS
    whole = not given or all(
        (root / arg).resolve() in (root, root / "tests") for arg in config.args
    )
    selected = any(
        getattr(option, name, None)
        for name in ("keyword", "deselect", "ignore", "ignore_glob", "lf", "stepwise")
    )
    if not whole or selected or getattr(option, "collectonly", False):
        return None
    return KINDS.get((getattr(option, "markexpr", "") or "").strip())


def is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def ensure_run_id(config: pytest.Config) -> str:
    """The run's id, shared with xdist's workers (their ``PYTEST_XDIST_TESTRUNUID``, which the
    drill's e2e results carry as ``run``): set here when xdist would make one up later, and
    exported for a run without workers, whose drill runs in this process."""
    if getattr(config.option, "testrunuid", None) is None and hasattr(config.option, "testrunuid"):
        config.option.testrunuid = uuid.uuid4().hex
    run = str(getattr(config.option, "testrunuid", None) or uuid.uuid4().hex)
    # this run's, even if an outer pytest left its own in the environment
    os.environ["PYTEST_XDIST_TESTRUNUID"] = run
    return run


def cpu_seconds() -> float:
    """User + system CPU of this process and of its children that have exited."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def start(config: pytest.Config) -> None:
    if not is_controller(config) or suite_kind(config) is None:
        return
    _started.update(
        kind=suite_kind(config),
        run=ensure_run_id(config),
        started_at=_utc(time.time()),
        epoch=time.time(),
        monotonic=time.monotonic(),
        cpu=cpu_seconds(),
        load_start=_load(),
    )


#: Exit statuses of a run that ran the whole suite (all passed, or some failed).
FINISHED = (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)


def ran_to_the_end(session: pytest.Session, exitstatus: int) -> bool:
    """Not interrupted, not stopped early (``-x``, ``--maxfail``), not an internal error."""
    return exitstatus in FINISHED and not (session.shouldstop or session.shouldfail)


def counts_of(stats: dict[str, list[Any]]) -> dict[str, int]:
    """Tests by outcome; errors at set-up and teardown included."""
    return {
        name: len(
            [
                r
                for r in stats.get(name, [])
                if name == "error" or getattr(r, "when", "") != "teardown"
            ]
        )
        for name in ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
    }


def worker_spans(
    stats: dict[str, list[Any]], started: float, workers: int | None = None
) -> dict[str, dict[str, float]]:
    """Per worker (``main`` without xdist): when its last test phase ended, in seconds from the
    run's start, and the seconds its test phases (set-up, call, teardown) took. Each of
    ``workers`` xdist workers has an entry, one that ran nothing with zeros."""
    spans: dict[str, dict[str, float]] = {
        f"gw{index}": {"ended_s": 0.0, "busy_s": 0.0} for index in range(workers or 0)
    }
    for reports in stats.values():
        for report in reports:
            begin, end = getattr(report, "start", 0.0), getattr(report, "stop", 0.0)
            if not (begin and end):  # collection reports carry no times
                continue
            if isinstance(report, pytest.SubtestReport):  # within its test's call phase
                continue
            gateway = getattr(getattr(report, "node", None), "gateway", None)
            span = spans.setdefault(getattr(gateway, "id", "main"), {"ended_s": 0.0, "busy_s": 0.0})
            span["ended_s"] = max(span["ended_s"], end - started)
            span["busy_s"] += end - begin
    return {
        worker: {name: round(value, 1) for name, value in span.items()}
        for worker, span in sorted(spans.items())
    }


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The cores this process may run on: its CPU affinity, lowered by a cgroup v2 CPU quota
    (``cpu.max``: quota and period in microseconds, or ``max``) when one is set."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()[:2]
        limit = -(-int(quota) // int(period))  # "max" (no quota) raises too
    except (OSError, ValueError, ZeroDivisionError):
        return cores
    return max(1, min(cores, limit))


def tail_seconds(spans: dict[str, dict[str, float]]) -> float | None:
    """Seconds between the first and the last worker's end: the run's tail, when not every
    worker had a test to run."""
    ends = [span["ended_s"] for span in spans.values()]
    return round(max(ends) - min(ends), 1) if len(ends) > 1 else None


def finish(session: pytest.Session, exitstatus: int) -> Path | None:
    """Write this run's entry (after xdist's workers exited, so their CPU is counted).

    A record that cannot be written (no writable drill cache) is reported in one line and
    changes nothing of the run's outcome.
    """
    if not _started or not is_controller(session.config):
        return None
    if not ran_to_the_end(session, exitstatus):
        return None
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = getattr(reporter, "stats", {}) if reporter is not None else {}
    workers = getattr(session.config.option, "numprocesses", None)
    spans = worker_spans(stats, _started["epoch"], workers if isinstance(workers, int) else None)
    entry = {
        "kind": _started["kind"],
        "run": _started["run"],
        "started_at": _started["started_at"],
        "wall_s": round(time.monotonic() - _started["monotonic"], 1),
        "cpu_s": round(cpu_seconds() - _started["cpu"], 1),
        "tests": counts_of(stats),
        "exitstatus": int(exitstatus),
        "workers": workers,
        "cores": usable_cores(),
        "worker_spans": spans,
        "tail_s": tail_seconds(spans),
        "load_average": {"start": _started["load_start"], "end": _load()},
        "commit": _commit(session.config.rootpath),
    }
    try:
        return _write(entry)
    except (OSError, ValueError) as error:
        if reporter is not None:
            reporter.write_line(f"suite timings not recorded: {type(error).__name__}: {error}")
        return None


def _write(entry: dict[str, Any]) -> Path:
    from crashcart.drill.paths import cache_dir, cache_lock

    path = cache_dir() / RECORD_FILE
    with cache_lock("suite-runs"):
        if entry["kind"] == "test":
            entry["drill"] = drill_of_run(cache_dir() / "e2e-drill-results.json", entry["run"])
        runs = add_entry(read_json(path), entry)
        path.write_text(json.dumps(runs, indent=2))
    return path


def drill_of_run(results: Path, run: str) -> dict[str, Any] | None:
    """The drill's figures from the e2e results of run ``run`` (None if that run wrote none)."""
    data = read_json(results)
    if data.get("run") != run:
        return None
    scenarios = data.get("scenarios") or {}
    boot, boot_of = None, None
    for name, scenario in scenarios.items():
        seconds = (scenario.get("timings") or {}).get("boot_to_ready_s")
        if seconds and scenario.get("passed") and scenario.get("positive", True):
            boot, boot_of = float(seconds), name
            break
    images = {
        name: {
            "cached": image.get("cached"),
            "prepare_s": image.get("prepare_s"),
        }
        for name, image in (data.get("images") or {}).items()
    }
    return {
        "plain_boot_s": boot,
        "plain_boot_of": boot_of,
        "images": images,
        "scenarios": {
            name: {
                "passed": scenario.get("passed"),
                "scenario_s": (scenario.get("timings") or {}).get("scenario_s"),
            }
            for name, scenario in scenarios.items()
        },
    }


def add_entry(runs: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """``runs`` with ``entry`` appended to its kind's list (the newest ``KEEP`` kept)."""
    kept = [e for e in runs.get(entry["kind"], []) if isinstance(e, dict)]
    return {**runs, entry["kind"]: [*kept, entry][-KEEP:]}


def _load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _commit(root: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None
