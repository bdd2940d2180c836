"""`make bench` cannot rot: every benchmark runs at its smallest size (``--smoke``).

One run of ``python -m benchmarks --smoke`` (the same entry point as ``make bench``, into a
temporary results file and Markdown, never the committed ones), then assertions on what it
counted: the invariants every benchmark checks must hold, and the figures must be there.
Times are never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

DRILL_RESULTS = {
    "started_at": "2026-11-26T05:00:00Z",
    "image": {"kernel_release": "6.1.0-test-cloud-amd64", "cached": True},
    "scenarios": [
        {
            "scenario": "idle",
            "positive": True,
            "passed": True,
            "failed_stage": None,
            "started_from": "cold boot of 0123456789abcdef",
            "timings": {
                "boot_to_ready_s": 90.0,
                "nmi_to_dump_saved_s": 70.0,
                "reboot_to_ready_s": 100.0,
                "scenario_s": 275.0,
                "beyond_nmi_dump_reboot_s": 105.0,
                "dump_mib": 30.0,
                "guest_ram_mib": 1024,
                "dump_to_ram_ratio": 0.0293,
            },
        },
        {
            "scenario": "hung-cpus",
            "positive": True,
            "passed": True,
            "failed_stage": None,
            "started_from": "restored: the saved guest abc of 0123456789abcdef",
            "timings": {
                "restore_to_ready_s": 20.0,
                "nmi_to_dump_saved_s": 60.0,
                "reboot_to_ready_s": 100.0,
                "scenario_s": 185.0,
                "beyond_nmi_dump_reboot_s": 25.0,
                "dump_mib": 32.0,
                "guest_ram_mib": 1024,
                "dump_to_ram_ratio": 0.0313,
            },
        },
    ],
}

SUITE_RUNS = {
    "check": [
        {
            "kind": "check",
            "run": "a",
            "started_at": "2026-12-06T05:00:00Z",
            "wall_s": 110.0,
            "cpu_s": 210.0,
            "tests": {"passed": 2500, "failed": 0, "error": 0, "skipped": 0},
            "load_average": {"start": [0.5, 0.5, 0.5], "end": [1.9, 1.2, 0.7]},
            "commit": "0123456789ab",
            "exitstatus": 0,
        }
    ],
    "test": [
        {
            "kind": "test",
            "run": "b",
            "started_at": "2026-12-06T05:10:00Z",
            "wall_s": 450.0,
            "cpu_s": 880.0,
            "tests": {"passed": 2550, "failed": 0, "error": 0, "skipped": 0},
            "load_average": {"start": [0.5, 0.5, 0.5], "end": [2.0, 1.8, 1.0]},
            "commit": "0123456789ab",
            "exitstatus": 0,
            "drill": {
                "plain_boot_s": 45.0,
                "plain_boot_of": "idle",
                "images": {"pipeline": {"cached": True, "prepare_s": 60.0}},
                "scenarios": {"idle": {"passed": True, "scenario_s": 150.0}},
            },
        }
    ],
}


@pytest.fixture(scope="module")
def smoke(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], str]:
    folder = tmp_path_factory.mktemp("bench-smoke")
    drill = folder / "drill-results.json"
    drill.write_text(json.dumps(DRILL_RESULTS))
    suite = folder / "suite-runs.json"
    suite.write_text(json.dumps(SUITE_RUNS))
    results = folder / "results.json"
    docs = folder / "benchmarks.md"
    env = {k: v for k, v in os.environ.items() if k != "CRASHCART_DRILL_CACHE"}
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--smoke",
            "--output",
            str(results),
            "--docs",
            str(docs),
            "--drill-timings",
            str(drill),
            "--suite-runs",
            str(suite),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    data = json.loads(results.read_text()) if results.exists() else {}
    markdown = docs.read_text() if docs.exists() else ""
    return process, data, markdown


def _bench(smoke: tuple[Any, dict[str, Any], str], name: str) -> dict[str, Any]:
    _, data, _ = smoke
    record: dict[str, Any] = data["benchmarks"][name]
    assert record["status"] == "ok", (
        f"{name}: {record.get('reason')}\n{record.get('traceback', '')}"
    )
    failed = [c for c in record.get("checks", []) if not c["ok"]]
    assert not failed, f"{name}: failed checks {failed}"
    return record


def test_smoke_run_exits_zero_and_runs_every_benchmark(
    smoke: tuple[Any, dict[str, Any], str],
) -> None:
    process, data, _ = smoke
    assert process.returncode == 0, process.stderr[-4000:]
    assert data["mode"] == "smoke"
    assert list(data["benchmarks"]) == [
        "synth_cost",
        "template_scale",
        "fleet_scale",
        "organisation_scale",
        "detection_latency",
        "remediation_latency",
        "burst",
        "drill_figures",
        "triage_speed",
        "suite_timings",
    ]
    for name in ("cores", "memory_gib", "cpu_model", "python", "node", "cdk_cli"):
        assert data["machine"][name], name


def test_synth_cost_compares_the_reference_app_with_an_empty_app(
    smoke: tuple[Any, dict[str, Any], str],
) -> None:
    figures = _bench(smoke, "synth_cost")["figures"]
    assert figures["empty"]["stacks"] == 1
    assert figures["reference"]["resources"] > figures["empty"]["resources"]
    assert figures["ratios"]["wall"] is not None and figures["ratios"]["cpu"] is not None
    assert figures["reference"]["peak_process_rss_mib"] > 0


def test_fleet_scale_templates_do_not_grow_with_the_declared_fleet(
    smoke: tuple[Any, dict[str, Any], str],
) -> None:
    figures = _bench(smoke, "fleet_scale")["figures"]
    first = figures["sizes"]["1000"]
    assert first["fleet"]["declared_capacity"] == 1000
    assert first["managed"]["resources"] > first["fleet"]["resources"]
    assert first["explicit"]["refused"] is True


def test_organisation_scale_member_stack_does_not_grow_with_the_fleet(
    smoke: tuple[Any, dict[str, Any], str],
) -> None:
    figures = _bench(smoke, "organisation_scale")["figures"]
    members = figures["member"]
    assert members["fleet-10"]["sha256"] == members["fleet-2000"]["sha256"]
    assert members["fleet-2000"]["declared_capacity"] == 2000
    assert figures["organisation"]["stack_instances"] == 200
    burst = figures["organisation_burst"]
    # every Region's breaker lets threshold - 1 of the simultaneous candidates through
    assert burst["interrupts"] == 4 * (burst["threshold"] - 1)
    assert all(r["unavailable"] == 0 for r in burst["regions"].values())


def test_template_scale_dynamic_is_constant_and_explicit_is_bounded(
    smoke: tuple[Any, dict[str, Any], str],
) -> None:
    figures = _bench(smoke, "template_scale")["figures"]
    assert figures["dynamic"]["10"]["status_alarms"] == 1
    assert figures["explicit"]["10"]["status_alarms"] == 10
    # Explicit mode: 9 more status alarms, but no partial-data watch, which only a Metrics
    # Insights alarm needs (queue, queue policy, rule and its two alarms, and the operations
    # monitoring's alarm on that queue: 6 resources).
    partial_data_watch = 6
    assert (
        figures["explicit"]["10"]["resources"]
        == figures["dynamic"]["10"]["resources"] + 9 - partial_data_watch
    )
    limit = figures["explicit_limit"]
    assert 0 < limit["max_instances"] < 500
    assert limit["one_more"]["refused"] is True
    assert "500" in limit["one_more"]["message"]


def test_detection_latency_reads_the_alarm_window_from_the_template(
    smoke: tuple[Any, dict[str, Any], str],
) -> None:
    figures = _bench(smoke, "detection_latency")["figures"]
    assert figures["alarms"], "no status-check alarm read"
    for alarm in figures["alarms"]:
        assert alarm["period"] == 60
        assert alarm["earliest"] < alarm["latest"]
        assert alarm["earliest"] >= (alarm["datapoints_to_alarm"] - 1) * 60
    native = figures["native_reboot_alarm"]
    assert (native["evaluation_periods"], native["datapoints_to_alarm"]) == (3, 3)


def test_remediation_latency_takes_the_whole_path_every_time(
    smoke: tuple[Any, dict[str, Any], str],
) -> None:
    figures = _bench(smoke, "remediation_latency")["figures"]
    assert figures["outcomes"] == {"interrupted": figures["warm_events"]}
    assert (
        figures["api_calls_per_event"]["median"] >= figures["http_requests_per_event"]["median"] > 0
    )
    assert figures["ratios"]["p50_vs_bare_interrupt"] > 1
    assert all(c["outcome"] == "interrupted" for c in figures["cold"])


def test_burst_never_interrupts_past_the_breaker_and_loses_nothing(
    smoke: tuple[Any, dict[str, Any], str],
) -> None:
    figures = _bench(smoke, "burst")["figures"]
    assert 0 < figures["interrupts_sent"] <= figures["breaker"]["interrupts_allowed"]
    assert figures["interrupts_after_fleet_breaker_opened"] == 0
    assert figures["duplicate_interrupts"] == 0
    assert figures["events_lost"] == 0
    assert figures["deliveries"] == figures["instances"] * (figures["duplicates_per_event"] + 1)
    assert figures["duplicate_delivery_outcomes"] == {
        "duplicate": figures["instances"] * figures["duplicates_per_event"]
    }
    assert "breaker#fleet" in figures["breakers_opened"]


def test_drill_figures_are_read_from_the_drill_results(
    smoke: tuple[Any, dict[str, Any], str],
) -> None:
    figures = _bench(smoke, "drill_figures")["figures"]
    assert set(figures["scenarios"]) == {"idle", "hung-cpus"}
    assert figures["scenarios"]["idle"]["nmi_to_dump_vs_boot"] == pytest.approx(70 / 90, abs=0.01)
    # a restored scenario does not boot: its ratio is against the run's plain (cold) boot
    hung = figures["scenarios"]["hung-cpus"]
    assert hung["reference_boot_of"] == "idle"
    assert hung["nmi_to_dump_vs_boot"] == pytest.approx(60 / 90, abs=0.01)
    assert hung["beyond_nmi_dump_reboot_s"] == 25.0
    assert figures["hung_vs_idle_nmi_to_dump"] == pytest.approx(60 / 70, abs=0.01)


def test_the_docs_have_a_section_per_benchmark_and_the_machine(
    smoke: tuple[Any, dict[str, Any], str],
) -> None:
    _, data, markdown = smoke
    assert markdown.startswith("# Benchmarks")
    assert "## Machine" in markdown and data["machine"]["cpu_model"] in markdown
    for record in data["benchmarks"].values():
        assert f"## {record['title']}" in markdown
    assert "FAILED" not in markdown


def test_triage_speed_runs_on_a_real_drill_dump_when_one_exists(
    smoke: tuple[Any, dict[str, Any], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks.triage_speed import drill_cache, find_dumps

    _, data, _ = smoke
    record = data["benchmarks"]["triage_speed"]
    # the drill cache the smoke run read: it runs without $CRASHCART_DRILL_CACHE (above), so
    # look where it looked, not in the cache this session's drill may be pointed at
    monkeypatch.delenv("CRASHCART_DRILL_CACHE", raising=False)
    if not find_dumps(drill_cache()):
        # a machine whose drill has never run: skipped, and it says why
        assert record["status"] == "skipped" and "no passed" in record["reason"]
        return
    figures = _bench(smoke, "triage_speed")["figures"]
    (dump,) = figures["dumps"]  # smoke: one dump, one run of each
    assert dump["full_report"]["reason"] == "nmi"
    assert dump["ratio_full_to_read"] is not None and dump["ratio_log_to_read"] is not None


def test_suite_timings_put_make_test_against_the_plain_boot_of_its_run(
    smoke: tuple[Any, dict[str, Any], str],
) -> None:
    record = _bench(smoke, "suite_timings")
    assert [c["name"].split(":")[0] for c in record["checks"]] == [
        "make check",
        "make test, images cached",
    ]
    rows = record["tables"][0]["rows"]
    assert rows[1][-1] == "10.00x"  # 450 s / the 45 s plain boot of the same run
    _, _, markdown = smoke
    assert "Suite timings" in markdown
