"""The suite-timings benchmark (benchmarks/suite_timings.py) reads the suite's own records and
checks issue 24's budgets; here on records written for the test, without running a suite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import suite_timings
from benchmarks.common import Context, SkipError
from tests.support.suite_record import usable_cores


def _entry(kind: str, wall: float, **extra: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "run": f"{kind}-{wall}",
        "started_at": "2026-12-06T05:00:00Z",
        "wall_s": wall,
        "cpu_s": wall * 1.8,
        "tests": {"passed": 10, "failed": 0, "error": 0, "skipped": 0},
        "load_average": {"start": [0.4, 0.5, 0.6], "end": [1.9, 1.0, 0.8]},
        "commit": "abc",
        "exitstatus": 0,
        **extra,
    }


def _drill(*, cached: bool) -> dict[str, Any]:
    return {
        "plain_boot_s": 50.0,
        "plain_boot_of": "idle",
        "images": {
            "pipeline": {"cached": True, "prepare_s": 60.0},
            "running-instance": {"cached": cached, "prepare_s": 600.0},
        },
        "scenarios": {"idle": {"passed": True, "scenario_s": 175.0}},
    }


def _run(tmp_path: Path, runs: dict[str, Any]) -> dict[str, Any]:
    path = tmp_path / "suite-runs.json"
    path.write_text(json.dumps(runs))
    ctx = Context(smoke=True, workdir=tmp_path, options={"suite_runs": path})
    return suite_timings.run(ctx)


def test_the_newest_run_of_each_kind_is_checked_against_its_budget(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        {
            "check": [_entry("check", 100.0), _entry("check", 130.0)],
            "test": [_entry("test", 700.0, drill=_drill(cached=False))],
        },
    )
    checks = {c["name"].split(":")[0]: c["ok"] for c in result["checks"]}
    # the newest make check (130 s) is over 120 s; a run that prepared an image has 720 s
    assert checks == {"make check": False, "make test, images prepared in the run": True}
    rows = result["tables"][0]["rows"]
    assert [row[4] for row in rows] == ["130.0 s", "100.0 s", "700.0 s"]
    assert rows[2][-3:] == ["prepared", "50.0 s", "14.00x"]
    images = result["tables"][1]["rows"]
    assert images[1] == ["image `running-instance`", "prepared: 600.0 s", "12.00x"]
    assert images[2] == ["idle", "passed, 175.0 s", "3.50x"]


def test_a_warm_make_test_has_the_eight_minute_budget(tmp_path: Path) -> None:
    result = _run(tmp_path, {"test": [_entry("test", 500.0, drill=_drill(cached=True))]})
    [only] = result["checks"]
    assert only["name"].startswith("make test, images cached: at most 480 s")
    assert only["ok"] is False


def test_no_records_is_not_run_with_the_reason(tmp_path: Path) -> None:
    ctx = Context(smoke=True, workdir=tmp_path, options={"suite_runs": tmp_path / "none.json"})
    with pytest.raises(SkipError, match="run `make check` or `make test`"):
        suite_timings.run(ctx)
    with pytest.raises(SkipError, match="holds no run"):
        _run(tmp_path, {"other": []})


def test_a_run_with_failures_is_shown_but_the_budget_is_checked_on_the_newest_passing_one(
    tmp_path: Path,
) -> None:
    failed = _entry("check", 90.0, exitstatus=1)
    failed["tests"] = {"passed": 9, "failed": 1, "error": 0, "skipped": 0}
    result = _run(tmp_path, {"check": [_entry("check", 150.0), failed]})
    [only] = result["checks"]
    assert only["ok"] is False and only["detail"].startswith("150.0 s")
    assert result["tables"][0]["rows"][0][3] == "9 passed, 1 failed"


def test_the_cpu_floor_says_whether_scheduling_alone_could_meet_the_budget(
    tmp_path: Path,
) -> None:
    # 100 s wall but 300 s of CPU on 2 cores: no schedule finishes under 150 s.
    over = _entry("check", 100.0, cores=2)
    over["cpu_s"] = 300.0
    result = _run(tmp_path, {"check": [over]})
    verdict = result["summary"]["make check, newest passing: its CPU floor"]
    assert verdict == (
        "CPU / 2 cores = 150.0 s > 120 s: out of reach until the run's CPU falls from 300.0 s "
        "to at most 240 s (20 % less)"
    )
    assert result["tables"][0]["rows"][0][6:8] == ["150.0 s", "-"]  # no tail recorded
    # the same CPU on 4 cores: 75 s, under the budget if the cores are kept busy
    roomy = _entry("check", 100.0, cores=4)
    roomy["cpu_s"] = 300.0
    verdict = _run(tmp_path, {"check": [roomy]})["summary"][
        "make check, newest passing: its CPU floor"
    ]
    assert verdict == "CPU / 4 cores = 75.0 s <= 120 s: its CPU alone does not rule it out"


def test_a_record_without_cores_takes_this_machines(tmp_path: Path) -> None:
    entry = _entry("check", 100.0)
    entry["cpu_s"] = 240.0
    cores = usable_cores()
    assert suite_timings.cores_of(entry) == cores
    assert suite_timings.cpu_floor(entry) == round(240.0 / cores, 1)


def test_the_tail_between_the_workers_ends_is_shown(tmp_path: Path) -> None:
    entry = _entry("test", 500.0, tail_s=31.5, drill=_drill(cached=True))
    row = _run(tmp_path, {"test": [entry]})["tables"][0]["rows"][0]
    assert row[7] == "31.5 s"
