"""The benchmarks' arithmetic and reporting, without running any benchmark."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks import detection_latency, drill_figures
from benchmarks.common import Context, SkipError, median, percentile, ratio
from benchmarks.report import render


def test_median_of_odd_and_even_counts() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ValueError):
        median([])


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_ratio_rounds_and_refuses_a_zero_baseline() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(1.0, 3.0) == 0.33
    assert ratio(1.0, 0.0) is None


def test_detection_window_counts_whole_periods_of_the_alarm() -> None:
    settings = {"period": 60, "datapoints_to_alarm": 3}
    native = detection_latency.window(settings, crashcart=False)
    ours = detection_latency.window(settings, crashcart=True)
    a = detection_latency.ASSUMPTIONS
    assert native["earliest"] == 120 + a["publication"][0] + a["native_action"][0]
    assert native["latest"] == 180 + a["publication"][1] + 60 + a["native_action"][1]
    assert ours["earliest"] == 120 + a["publication"][0] + sum(
        a[k][0] for k in ("delivery", "cold_start", "handler")
    )
    assert ours["latest"] > native["latest"] - a["native_action"][1]
    # One more datapoint to alarm costs exactly one more period at both ends.
    longer = detection_latency.window({"period": 60, "datapoints_to_alarm": 4}, crashcart=True)
    assert longer["earliest"] - ours["earliest"] == 60
    assert longer["latest"] - ours["latest"] == 60


def test_alarm_settings_read_a_metrics_insights_alarm() -> None:
    props = {
        "EvaluationPeriods": 3,
        "DatapointsToAlarm": 2,
        "TreatMissingData": "notBreaching",
        "Metrics": [{"Expression": "SELECT MAX(StatusCheckFailed_Instance) ...", "Period": 60}],
    }
    settings = detection_latency.alarm_settings(props)
    assert settings["period"] == 60
    assert (settings["evaluation_periods"], settings["datapoints_to_alarm"]) == (3, 2)
    assert settings["kind"].startswith("Metrics Insights")


def test_drill_figures_say_not_run_without_results(tmp_path: Path) -> None:
    ctx = Context(smoke=True, workdir=tmp_path, options={"drill_timings": tmp_path / "none.json"})
    with pytest.raises(SkipError, match=r"^not run: no drill results"):
        drill_figures.run(ctx)


def _drill_file(
    path: Path, *, e2e: bool, nmi: float, written_at: str | None = None, scenario: str = "idle"
) -> None:
    """A drill results file in the shape its writer uses (the drill: a list of scenarios;
    the e2e layer: a dict of scenarios by name, with ``written_at``)."""
    result = {
        "scenario": scenario,
        "passed": True,
        "failed_stage": None,
        "timings": {
            "boot_to_ready_s": 10.0,
            "nmi_to_dump_saved_s": nmi,
            "dump_mib": 30.0,
            "guest_ram_mib": 1024,
            "dump_to_ram_ratio": 0.03,
        },
    }
    data: dict[str, object] = {"image": {"cached": True}}
    if e2e:
        data |= {"scenarios": {scenario: result}, "written_at": written_at}
    else:
        data |= {"scenarios": [result], "started_at": "2026-11-26T05:00:00Z"}
    path.write_text(json.dumps(data))


def test_drill_figures_read_the_freshest_results_in_the_drill_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRASHCART_DRILL_CACHE", str(tmp_path))
    ctx = Context(smoke=True, workdir=tmp_path, options={})
    drill, e2e = tmp_path / "drill-results.json", tmp_path / "e2e-drill-results.json"
    _drill_file(drill, e2e=False, nmi=20.0)
    _drill_file(e2e, e2e=True, nmi=30.0, written_at="2026-11-26T08:00:00Z")
    os.utime(drill, (1_000_000_000, 1_000_000_000))  # the drill's file is the older one
    figures = drill_figures.run(ctx)["figures"]
    assert figures["source"] == str(e2e)
    assert figures["written_at"] == "2026-11-26T08:00:00Z"
    assert figures["scenarios"]["idle"]["nmi_to_dump_vs_boot"] == 3.0
    os.utime(e2e, (900_000_000, 900_000_000))  # now the drill's own file is fresher
    result = drill_figures.run(ctx)
    assert result["figures"]["source"] == str(drill)
    assert result["figures"]["written_at"] == "2001-09-09T01:46:40Z"  # its modification time
    assert result["figures"]["scenarios"]["idle"]["nmi_to_dump_vs_boot"] == 2.0
    assert str(drill.name) in result["summary"]["source"]
    assert any("e2e-drill-results.json" in note for note in result["notes"])


def test_drill_figures_skip_a_file_without_a_positive_scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRASHCART_DRILL_CACHE", str(tmp_path))
    ctx = Context(smoke=True, workdir=tmp_path, options={})
    (tmp_path / "e2e-drill-results.json").write_text(
        json.dumps({"scenarios": {"negative-kdump-disabled": {"scenario": "x"}}})
    )
    with pytest.raises(SkipError, match="has no idle or hung-cpus scenario"):
        drill_figures.run(ctx)
    _drill_file(tmp_path / "drill-results.json", e2e=False, nmi=20.0)
    os.utime(tmp_path / "drill-results.json", (1_000_000_000, 1_000_000_000))
    assert drill_figures.run(ctx)["figures"]["source"] == str(tmp_path / "drill-results.json")


def test_drill_figures_take_a_scenario_missing_from_the_freshest_file_from_an_older_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An e2e session that ran only hung-cpus leaves only hung-cpus in its file: idle comes
    from the drill's older file, says so, and no ratio mixes the two runs."""
    monkeypatch.setenv("CRASHCART_DRILL_CACHE", str(tmp_path))
    ctx = Context(smoke=True, workdir=tmp_path, options={})
    drill, e2e = tmp_path / "drill-results.json", tmp_path / "e2e-drill-results.json"
    _drill_file(e2e, e2e=True, nmi=30.0, written_at="2026-11-26T08:00:00Z", scenario="hung-cpus")
    result = drill_figures.run(ctx)
    assert set(result["figures"]["scenarios"]) == {"hung-cpus"}
    assert result["figures"]["missing_scenarios"] == ["idle"]
    assert result["summary"]["idle"] == "not in any drill results file found"
    _drill_file(drill, e2e=False, nmi=20.0)
    os.utime(drill, (1_000_000_000, 1_000_000_000))
    result = drill_figures.run(ctx)
    figures = result["figures"]
    assert figures["source"] == str(e2e)
    assert figures["scenarios"]["idle"]["source"] == str(drill)
    assert figures["scenarios"]["hung-cpus"]["source"] == str(e2e)
    assert figures["missing_scenarios"] == []
    assert "hung_vs_idle_nmi_to_dump" not in figures
    assert result["tables"][0]["columns"][-1] == "read from (written at)"
    assert "idle from" in result["summary"]["source"]


def test_report_shows_skips_and_failed_checks() -> None:
    results = {
        "generated_at": "2026-11-26T06:00:00Z",
        "mode": "full",
        "machine": {"cores": 2, "cores_usable": 2, "cpu_model": "Test CPU"},
        "load_average_before": [5.0, 1.0, 1.0],
        "load_average_after": [1.0, 1.0, 1.0],
        "benchmarks": {
            "drill_figures": {"title": "Drill", "status": "skipped", "reason": "not run: x"},
            "burst": {
                "title": "Burst",
                "status": "ok",
                "summary": {"events lost": "0"},
                "checks": [{"name": "no duplicate interrupts", "ok": False, "detail": "1"}],
                "tables": [{"title": "t", "columns": ["a", "b"], "rows": [["x|y", 1]]}],
            },
        },
    }
    text = render(results)
    assert "**skipped: not run: x**" in text
    assert "**FAILED**: no duplicate interrupts (1)" in text
    assert "| x\\|y | 1 |" in text
    assert "the machine was busy" in text
    assert "Test CPU" in text


def test_drill_figures_check_the_drills_budgets(tmp_path: Path) -> None:
    """NMI -> dump against a plain boot of the same run, the dump against RAM, and what a
    restored scenario costs beyond its own NMI -> dump -> reboot: each a check that fails."""
    path = tmp_path / "drill-results.json"
    ctx = Context(smoke=True, workdir=tmp_path, options={"drill_timings": path})

    def write(nmi: float, beyond: float, dump_ratio: float) -> dict[str, bool]:
        idle = {
            "scenario": "idle",
            "positive": True,
            "passed": True,
            "started_from": "cold boot of k",
            "timings": {"boot_to_ready_s": 100.0, "nmi_to_dump_saved_s": 80.0},
        }
        hung = {
            "scenario": "hung-cpus",
            "positive": True,
            "passed": True,
            "started_from": "restored: the saved guest v of k",
            "timings": {
                "restore_to_ready_s": 15.0,
                "nmi_to_dump_saved_s": nmi,
                "beyond_nmi_dump_reboot_s": beyond,
                "dump_to_ram_ratio": dump_ratio,
            },
        }
        path.write_text(json.dumps({"image": {}, "scenarios": [idle, hung]}))
        return {c["name"]: c["ok"] for c in drill_figures.run(ctx)["checks"]}

    checks = write(nmi=80.0, beyond=30.0, dump_ratio=0.05)
    assert len(checks) == 4 and all(checks.values()), checks
    checks = write(nmi=86.0, beyond=31.0, dump_ratio=0.051)
    assert [name for name, ok in checks.items() if not ok] == [
        "hung-cpus: the dump is at most 5% of the guest's RAM (makedumpfile filtering)",
        "hung-cpus: NMI to dump saved takes at most 0.85x a plain boot of the same run",
        "hung-cpus (restored): costs at most 30 s beyond its own NMI -> dump -> reboot",
    ]
