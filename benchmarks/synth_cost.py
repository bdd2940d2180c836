"""Benchmark 1 - synth cost: the reference app vs an empty CDK app, both through the real CLI.

Both apps run through the same CLI binary (``node_modules/.bin/cdk synth --no-notices
--quiet -o <tmp>``) with the same feature flags (the empty app's ``cdk.json`` is the
repository's, with its own ``app``). The runs are interleaved in ABBA order (empty,
reference, reference, empty, ...) after one untimed warm-up synth, so drift in machine load
hits both alike. Figures: the median wall-time ratio and the median CPU-time ratio (user +
system of the whole process tree: less sensitive to other load on the machine), and peak
memory, measured two ways (see :func:`benchmarks.common.run_measured`):

- ``wait4()``'s ``ru_maxrss``: the peak RSS of the largest single process of the tree (the
  Node CLI, the Python app or jsii's Node runtime), exact;
- the summed RSS of the whole tree, sampled from /proc every 0.2 s (a lower bound).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CDK_CLI,
    REPO_ROOT,
    VENV_PYTHON,
    Context,
    Measured,
    SkipError,
    check,
    log,
    median,
    offline_env,
    ratio,
    run_measured,
    table,
    times,
)

NAME = "synth_cost"
TITLE = "Synth cost: reference app vs an empty CDK app (real CLI)"

RUNS_FULL = 3
RUNS_SMOKE = 1
TIMEOUT = 900.0

EMPTY_APP = """\
import aws_cdk as cdk

app = cdk.App()
stack = cdk.Stack(app, "Empty")
# One placeholder resource: CloudFormation (and the CDK's validation) refuses a template
# without resources, and with version reporting off the stack would have none.
cdk.CfnWaitConditionHandle(stack, "Placeholder")
app.synth()
"""


def _empty_app_dir(parent: Path) -> Path:
    folder = parent / "empty-app"
    folder.mkdir()
    (folder / "app.py").write_text(EMPTY_APP)
    config = json.loads((REPO_ROOT / "cdk.json").read_text())
    config["app"] = f"{VENV_PYTHON} app.py"
    config.pop("output", None)
    (folder / "cdk.json").write_text(json.dumps(config, indent=2))
    return folder


def _synth(app_dir: Path, outdir: Path) -> Measured:
    if outdir.exists():
        shutil.rmtree(outdir)
    command = [str(CDK_CLI), "synth", "--no-notices", "--quiet", "-o", str(outdir)]
    result = run_measured(command, cwd=app_dir, env=offline_env(), timeout=TIMEOUT)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-15:]
        raise RuntimeError(
            f"cdk synth in {app_dir} failed (exit {result.returncode}):\n" + "\n".join(tail)
        )
    return result


def _assembly_counts(outdir: Path) -> dict[str, int]:
    manifest = json.loads((outdir / "manifest.json").read_text())
    stacks = resources = size = 0
    for artifact in manifest.get("artifacts", {}).values():
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        template = outdir / artifact["properties"]["templateFile"]
        stacks += 1
        resources += len(json.loads(template.read_text()).get("Resources", {}))
        size += template.stat().st_size
    return {"stacks": stacks, "resources": resources, "template_bytes": size}


def run(ctx: Context) -> dict[str, Any]:
    if not CDK_CLI.exists():
        raise SkipError(f"{CDK_CLI.relative_to(REPO_ROOT)} is missing (run make setup)")
    if not VENV_PYTHON.exists():
        raise SkipError(f"{VENV_PYTHON.relative_to(REPO_ROOT)} is missing (run make setup)")
    runs = int(ctx.options.get("synth_runs") or (RUNS_SMOKE if ctx.smoke else RUNS_FULL))
    warmup = not ctx.smoke
    base = Path(tempfile.mkdtemp(prefix="synth-", dir=ctx.workdir))
    empty_dir = _empty_app_dir(base)
    apps = {"empty": empty_dir, "reference": REPO_ROOT}
    samples: dict[str, list[Measured]] = {"empty": [], "reference": []}
    if warmup:  # the first synth on a machine also pays for loading aws-cdk-lib from disk
        log("synth_cost: warm-up (empty app, untimed)")
        _synth(empty_dir, base / "out-empty")
    order: list[str] = []
    for i in range(runs):
        order += ["empty", "reference"] if i % 2 == 0 else ["reference", "empty"]
    for step, name in enumerate(order, 1):
        result = _synth(apps[name], base / f"out-{name}")
        samples[name].append(result)
        log(
            f"synth_cost: {step}/{len(order)} {name}: {result.wall:.1f} s wall, "
            f"{result.cpu:.1f} s CPU, {result.max_rss_kib // 1024} MiB max RSS"
        )
    reference_out = base / "out-reference"
    ctx.shared["reference_assembly"] = reference_out
    counts = {name: _assembly_counts(base / f"out-{name}") for name in apps}

    def med(name: str, attr: str) -> float:
        return median([float(getattr(m, attr)) for m in samples[name]])

    figures: dict[str, Any] = {}
    for name in apps:
        figures[name] = {
            "runs": len(samples[name]),
            "wall_seconds": [round(m.wall, 3) for m in samples[name]],
            "cpu_seconds": [round(m.cpu, 3) for m in samples[name]],
            "median_wall_seconds": round(med(name, "wall"), 3),
            "median_cpu_seconds": round(med(name, "cpu"), 3),
            "peak_process_rss_mib": round(max(m.max_rss_kib for m in samples[name]) / 1024, 1),
            "peak_tree_rss_mib": round(max(m.tree_rss_kib for m in samples[name]) / 1024, 1),
            **counts[name],
        }
    ref, empty = figures["reference"], figures["empty"]
    ratios = {
        "wall": ratio(ref["median_wall_seconds"], empty["median_wall_seconds"]),
        "cpu": ratio(ref["median_cpu_seconds"], empty["median_cpu_seconds"]),
        "peak_process_rss": ratio(ref["peak_process_rss_mib"], empty["peak_process_rss_mib"]),
        "peak_tree_rss": ratio(ref["peak_tree_rss_mib"], empty["peak_tree_rss_mib"]),
    }
    rows = [
        [
            label,
            f["stacks"],
            f["resources"],
            f"{f['template_bytes']:,}",
            f"{f['median_wall_seconds']:.2f} s",
            f"{f['median_cpu_seconds']:.2f} s",
            f"{f['peak_process_rss_mib']:.0f} MiB",
            f"{f['peak_tree_rss_mib']:.0f} MiB",
        ]
        for label, f in (
            ("empty app (1 stack, 1 placeholder resource)", empty),
            ("reference app", ref),
        )
    ]
    rows.append(
        [
            "**ratio reference / empty**",
            "",
            "",
            "",
            f"**{times(ratios['wall'])}**",
            f"**{times(ratios['cpu'])}**",
            f"**{times(ratios['peak_process_rss'])}**",
            f"**{times(ratios['peak_tree_rss'])}**",
        ]
    )
    return {
        "figures": {**figures, "ratios": ratios, "order": order, "warmup": warmup},
        "summary": {
            "synth wall time, reference / empty (median)": times(ratios["wall"]),
            "synth CPU time, reference / empty (median)": times(ratios["cpu"]),
            "peak memory of the largest process, reference / empty": times(
                ratios["peak_process_rss"]
            ),
        },
        "tables": [
            table(
                f"{runs} interleaved runs each (ABBA order"
                + (", after one untimed warm-up synth)" if warmup else ", no warm-up)"),
                [
                    "app",
                    "stacks",
                    "resources",
                    "template bytes",
                    "median wall",
                    "median CPU (tree)",
                    "peak RSS, largest process",
                    "peak RSS, whole tree (sampled)",
                ],
                rows,
            )
        ],
        "checks": [
            check(
                "reference app synthesizes through the CLI",
                ref["stacks"] >= 1 and ref["resources"] > 0,
                f"{ref['stacks']} stacks, {ref['resources']} resources",
            ),
            check(
                "empty app is the baseline (one stack, no resources besides metadata)",
                empty["stacks"] == 1 and empty["resources"] <= 1,
                f"{empty['stacks']} stack(s), {empty['resources']} resource(s)",
            ),
        ],
        "notes": [
            "Command: `node_modules/.bin/cdk synth --no-notices --quiet -o <tmp>`, for the "
            "reference app from the repository root (its cdk.json: `.venv/bin/python app.py`, "
            "cdk-nag packs on), for the empty app from a temporary folder whose cdk.json has "
            "the same context and its own `app`.",
            "CPU time is user + system of the CLI and every descendant (wait4 rusage); peak "
            "RSS of the largest process is wait4's ru_maxrss; the whole-tree figure sums "
            "/proc/<pid>/stat RSS of all descendants every 0.2 s (psutil is not installed).",
        ],
    }
