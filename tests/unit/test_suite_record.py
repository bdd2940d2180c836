"""A whole-suite run records what it cost (tests/support/suite_record.py; read by
benchmarks/suite_timings.py): run for real, with xdist's workers, in a scratch project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.support import suite_record

CONFTEST = """
import pytest
from tests.support import suite_record

def pytest_configure(config):
    suite_record.start(config)

@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session, exitstatus):
    yield
    suite_record.finish(session, exitstatus)
"""

TESTS = """
import subprocess, sys
import pytest

def test_burns_cpu_in_a_child():
    # about 0.4 s of CPU in a process the worker starts and waits for
    subprocess.run([sys.executable, "-c", "import time\\nt=time.process_time()\\n"
                    "while time.process_time() - t < 0.4: pass"], check=True)

def test_plain():
    assert True

@pytest.mark.e2e
def test_drill_like():
    assert True
"""


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(CONFTEST)
    (project / "pytest.ini").write_text("[pytest]\nmarkers =\n    e2e: the drill\n")
    (project / "test_some.py").write_text(TESTS)
    return project


def _pytest(project: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CRASHCART_DRILL_CACHE": str(cache),
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_XDIST_TESTRUNUID", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _runs(cache: Path) -> dict[str, list[dict[str, object]]]:
    data: dict[str, list[dict[str, object]]] = json.loads(
        (cache / suite_record.RECORD_FILE).read_text()
    )
    return data


def test_a_whole_run_records_its_wall_time_its_workers_cpu_and_the_drill_of_the_same_run(
    tmp_path: Path,
) -> None:
    project, cache = _project(tmp_path), tmp_path / "cache"
    cache.mkdir()
    (cache / "e2e-drill-results.json").write_text(
        json.dumps(
            {
                "run": "run-one",
                "scenarios": {
                    "negative-nmi-panic-off": {
                        "passed": True,
                        "positive": False,
                        "timings": {"boot_to_ready_s": 11.0, "scenario_s": 20.0},
                    },
                    "idle": {
                        "passed": True,
                        "timings": {"boot_to_ready_s": 42.5, "scenario_s": 150.0},
                    },
                },
                "images": {"pipeline": {"cached": False, "prepare_s": 63.7}},
            }
        )
    )
    done = _pytest(project, cache, "-n", "2", "--testrunuid", "run-one")
    assert done.returncode == 0, done.stdout + done.stderr
    [entry] = _runs(cache)["test"]
    assert entry["kind"] == "test" and entry["run"] == "run-one"
    assert entry["tests"] == {
        "passed": 3,
        "failed": 0,
        "error": 0,
        "skipped": 0,
        "xfailed": 0,
        "xpassed": 0,
    }
    assert entry["exitstatus"] == 0
    assert entry["workers"] == 2
    assert entry["cores"] == suite_record.usable_cores()
    # the worker's child burned 0.4 s: counted only if the workers were reaped first
    assert isinstance(entry["cpu_s"], float) and entry["cpu_s"] >= 0.4
    assert isinstance(entry["wall_s"], float) and entry["wall_s"] > 0
    # each worker's end and busy time, from its tests' reports; the tail between the two ends
    spans = entry["worker_spans"]
    assert isinstance(spans, dict) and sorted(spans) == ["gw0", "gw1"]
    ends = [span["ended_s"] for span in spans.values()]
    assert 0 < min(ends) <= max(ends) <= entry["wall_s"]
    assert entry["tail_s"] == round(max(ends) - min(ends), 1)
    # the test whose child burned 0.4 s of CPU took at least that long
    assert sum(span["busy_s"] for span in spans.values()) >= 0.4
    drill = entry["drill"]
    assert isinstance(drill, dict)
    assert drill["plain_boot_s"] == 42.5 and drill["plain_boot_of"] == "idle"
    assert drill["images"] == {"pipeline": {"cached": False, "prepare_s": 63.7}}
    assert drill["scenarios"]["idle"] == {"passed": True, "scenario_s": 150.0}

    done = _pytest(project, cache, "-m", "not e2e", "--testrunuid", "run-two")
    assert done.returncode == 0, done.stdout + done.stderr
    runs = _runs(cache)
    assert len(runs["test"]) == 1
    [check] = runs["check"]
    assert check["tests"]["passed"] == 2 and check["tests"]["failed"] == 0
    assert "drill" not in check


@pytest.mark.parametrize(
    "args",
    [
        ["-k", "plain"],
        ["test_some.py"],
        ["-m", "e2e"],
        ["--deselect", "test_some.py::test_plain"],
        ["--ignore", "test_other.py"],
        ["--collect-only"],
    ],
)
def test_a_selection_records_nothing(tmp_path: Path, args: list[str]) -> None:
    project, cache = _project(tmp_path), tmp_path / "cache"
    done = _pytest(project, cache, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (cache / suite_record.RECORD_FILE).exists()


def test_the_drill_of_another_run_is_not_taken(tmp_path: Path) -> None:
    results = tmp_path / "e2e-drill-results.json"
    results.write_text(json.dumps({"run": "earlier", "scenarios": {}}))
    assert suite_record.drill_of_run(results, "now") is None
    assert suite_record.drill_of_run(tmp_path / "missing.json", "now") is None


def test_each_kind_keeps_its_newest_runs() -> None:
    runs: dict[str, object] = {}
    for number in range(suite_record.KEEP + 3):
        runs = suite_record.add_entry(runs, {"kind": "check", "run": str(number)})
    runs = suite_record.add_entry(runs, {"kind": "test", "run": "t"})
    checks = runs["check"]
    assert isinstance(checks, list)
    assert [e["run"] for e in checks] == [str(n) for n in range(3, suite_record.KEEP + 3)]
    assert runs["test"] == [{"kind": "test", "run": "t"}]


def test_a_run_stopped_early_records_nothing_and_one_that_ran_to_the_end_records_its_failures(
    tmp_path: Path,
) -> None:
    project, cache = _project(tmp_path), tmp_path / "cache"
    (project / "test_failing.py").write_text("def test_fails():\n    assert False\n")
    done = _pytest(project, cache, "-x")
    assert done.returncode == 1
    assert not (cache / suite_record.RECORD_FILE).exists()
    done = _pytest(project, cache)
    assert done.returncode == 1
    [entry] = _runs(cache)["test"]
    assert entry["exitstatus"] == 1
    assert entry["tests"]["failed"] == 1 and entry["tests"]["passed"] == 3


def test_an_unwritable_cache_is_reported_and_the_run_keeps_its_outcome(tmp_path: Path) -> None:
    project = _project(tmp_path)
    done = _pytest(project, Path("/dev/null/cache"), "-m", "not e2e")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "suite timings not recorded: NotADirectoryError" in done.stdout


def test_without_workers_the_drill_of_the_same_run_is_found(tmp_path: Path) -> None:
    project, cache = _project(tmp_path), tmp_path / "cache"
    (project / "conftest.py").write_text(
        CONFTEST
        + """
import json, os
from crashcart.drill.paths import cache_dir

def pytest_sessionstart(session):
    # what tests/support/drill.py writes: the run id from PYTEST_XDIST_TESTRUNUID
    (cache_dir() / "e2e-drill-results.json").write_text(json.dumps({
        "run": os.environ["PYTEST_XDIST_TESTRUNUID"],
        "scenarios": {"idle": {"passed": True, "timings": {"boot_to_ready_s": 40.0}}},
    }))
"""
    )
    done = _pytest(project, cache)
    assert done.returncode == 0, done.stdout + done.stderr
    [entry] = _runs(cache)["test"]
    # one process: its span is "main", and a run of one has no tail
    assert list(entry["worker_spans"]) == ["main"] and entry["tail_s"] is None
    drill = entry["drill"]
    assert isinstance(drill, dict) and drill["plain_boot_s"] == 40.0


class _Report:
    def __init__(self, start: float, stop: float, worker: str | None) -> None:
        self.start, self.stop = start, stop
        if worker is not None:
            self.node = type("Node", (), {"gateway": type("Gateway", (), {"id": worker})})()


def test_a_worker_that_ran_nothing_has_zeros_and_makes_the_tail() -> None:
    started = 1000.0
    stats = {
        "passed": [_Report(1010.0, 1030.0, "gw0"), _Report(1030.0, 1100.0, "gw0")],
        "": [_Report(1005.0, 1010.0, "gw0"), _Report(0.0, 0.0, None)],  # no times: skipped
    }
    spans = suite_record.worker_spans(stats, started, workers=2)
    assert spans == {
        "gw0": {"ended_s": 100.0, "busy_s": 95.0},
        "gw1": {"ended_s": 0.0, "busy_s": 0.0},
    }
    assert suite_record.tail_seconds(spans) == 100.0


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000\n", None),
        ("150000 100000\n", 2),
        ("50000 100000\n", 1),
        ("", None),
        ("abc 100000\n", None),
        ("100000 0\n", None),
    ],
)
def test_usable_cores_follow_a_cgroup_quota(
    tmp_path: Path, cpu_max: str, expected: int | None
) -> None:
    affinity = len(os.sched_getaffinity(0))
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    want = affinity if expected is None else min(affinity, expected)
    assert suite_record.usable_cores(path) == want
    assert suite_record.usable_cores(tmp_path / "absent") == affinity
