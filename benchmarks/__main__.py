"""``python -m benchmarks``: run the benchmarks, write results.json, regenerate the docs.

    python -m benchmarks                      # everything, full size (make bench)
    python -m benchmarks --smoke              # every benchmark at its smallest size
    python -m benchmarks --only burst --only template_scale
    python -m benchmarks --output /tmp/r.json --docs /tmp/b.md
    python -m benchmarks --render-only        # docs/benchmarks.md from results.json

Exit status: 0 when every benchmark ran or was skipped with a reason and every check held;
1 when a benchmark failed with an error or a check did not hold; 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.common import (
    DEFAULT_DOCS,
    DEFAULT_RESULTS,
    REPO_ROOT,
    Context,
    SkipError,
    git_revision,
    load_average,
    log,
    machine_info,
    make_process_offline,
    utc_now,
    write_json,
)

#: The benchmarks in run order (detection reads the templates template_scale synthesized).
MODULES = (
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
)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--smoke", action="store_true", help="smallest size of every benchmark")
    parser.add_argument(
        "--only", action="append", choices=MODULES, metavar="NAME", help=f"one of {MODULES}"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_RESULTS, help="results JSON")
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="generated Markdown")
    parser.add_argument("--no-docs", action="store_true", help="do not write the Markdown")
    parser.add_argument(
        "--render-only", action="store_true", help="only regenerate the docs from --output"
    )
    parser.add_argument("--synth-runs", type=int, help="runs per app in synth_cost")
    parser.add_argument("--burst-instances", type=int, help="instances in burst (default 1000)")
    parser.add_argument(
        "--burst-duplicates", type=int, help="duplicates per event in burst (default 10)"
    )
    parser.add_argument(
        "--drill-timings", type=Path, help="the drill's timings JSON (default: look for it)"
    )
    parser.add_argument(
        "--suite-runs",
        type=Path,
        help="the suite's own records (default: <drill cache>/suite-runs.json)",
    )
    parser.add_argument(
        "--run-drill",
        action="store_true",
        help="run the QEMU drill first (minutes) so drill_figures has fresh figures",
    )
    return parser.parse_args(argv)


def _run_one(name: str, ctx: Context) -> dict[str, Any]:
    import importlib
    import resource

    module = importlib.import_module(f"benchmarks.{name}")
    cpu_before = _cpu(resource)
    started = time.perf_counter()
    log(f"{name}: start")
    record: dict[str, Any] = {
        "title": module.TITLE,
        "ran_at": utc_now(),
        "load_average": load_average(),
    }
    try:
        record.update(module.run(ctx))
        record["status"] = "ok"
    except SkipError as skip:
        record.update(status="skipped", reason=str(skip))
    except Exception as error:  # recorded; the run goes on with the next benchmark
        record.update(
            status="error",
            reason=f"{type(error).__name__}: {error}",
            traceback=traceback.format_exc(limit=8),
        )
    record["seconds"] = round(time.perf_counter() - started, 1)
    # CPU of this process and of every child it waited for (CDK CLI, moto server, ...):
    # on a busy machine, a better guide than wall time to how long it takes on an idle one.
    record["cpu_seconds"] = round(_cpu(resource) - cpu_before, 1)
    checks = record.get("checks", [])
    failed = [c["name"] for c in checks if not c["ok"]]
    log(
        f"{name}: {record['status']}"
        + (f" ({record['reason']})" if record.get("reason") else "")
        + f" in {record['seconds']} s"
        + (f"; FAILED CHECKS: {failed}" if failed else "")
    )
    return record


def _cpu(resource: Any) -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    from benchmarks.report import render

    if args.render_only:
        args.docs.write_text(render(json.loads(args.output.read_text())))
        log(f"wrote {args.docs}")
        return 0
    make_process_offline()
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    names = [m for m in MODULES if not args.only or m in args.only]
    workdir = Path(tempfile.mkdtemp(prefix="crashcart-bench-"))
    ctx = Context(
        smoke=args.smoke,
        workdir=workdir,
        options={
            "synth_runs": args.synth_runs,
            "burst_instances": args.burst_instances,
            "burst_duplicates": args.burst_duplicates,
            "drill_timings": args.drill_timings,
            "suite_runs": args.suite_runs,
            "run_drill": args.run_drill,
        },
    )
    results: dict[str, Any] = {
        "schema": 1,
        "generated_at": utc_now(),
        "mode": "smoke" if args.smoke else "full",
        "revision": git_revision(),
        "machine": machine_info(),
        "load_average_before": load_average(),
        "benchmarks": {},
    }
    if args.only and args.output.exists():
        # Re-running some benchmarks updates their entries and keeps the others' (each
        # entry says when it ran and under what load).
        try:
            previous = json.loads(args.output.read_text())
        except ValueError:
            previous = {}
        kept = {
            name: record
            for name, record in previous.get("benchmarks", {}).items()
            if name not in names and name in MODULES
        }
        results["benchmarks"] = kept
        results["partial_rerun"] = sorted(names)
    started = time.perf_counter()
    try:
        for name in names:
            results["benchmarks"][name] = _run_one(name, ctx)
            write_json(args.output, results)  # partial results survive an interrupted run
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ordered = {m: results["benchmarks"][m] for m in MODULES if m in results["benchmarks"]}
    results["benchmarks"] = ordered
    results["load_average_after"] = load_average()
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["total_cpu_seconds"] = round(
        sum(r.get("cpu_seconds", 0.0) for r in results["benchmarks"].values()), 1
    )
    results["finished_at"] = utc_now()
    write_json(args.output, results)
    log(f"wrote {args.output}")
    if not args.no_docs:
        args.docs.parent.mkdir(parents=True, exist_ok=True)
        args.docs.write_text(render(results))
        log(f"wrote {args.docs}")
    bad = [
        name
        for name, record in results["benchmarks"].items()
        if record["status"] == "error" or any(not c["ok"] for c in record.get("checks", []))
    ]
    if bad:
        log(f"failed: {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
