"""Benchmark 5 - drill figures: read the QEMU drill's timings (the drill is not run here).

The drill (``make drill``, ``python -m crashcart.drill``) writes its results and timings to
``$CRASHCART_DRILL_CACHE/drill-results.json`` (default ``.drill/drill-results.json``). This
benchmark reports them: boot to ready, NMI to dump saved, dump size against guest RAM, for
the idle and hung-CPU scenarios. It takes minutes, so ``make bench`` only runs it when asked
(``python -m benchmarks --run-drill``); without results it reports "not run".
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.common import (
    REPO_ROOT,
    VENV_PYTHON,
    Context,
    SkipError,
    check,
    log,
    offline_env,
    ratio,
    table,
    times,
)

NAME = "drill_figures"
TITLE = "Drill figures: the kdump path on a real kernel under QEMU"

RESULTS_FILE = "drill-results.json"
POSITIVE = ("idle", "hung-cpus")
DRILL_TIMEOUT = 1800.0


def results_path(ctx: Context) -> Path:
    configured = ctx.options.get("drill_timings")
    if configured:
        return Path(configured)
    cache = os.environ.get("CRASHCART_DRILL_CACHE")
    return (Path(cache) if cache else REPO_ROOT / ".drill") / RESULTS_FILE


def _run_drill(path: Path) -> None:
    command = [str(VENV_PYTHON), "-m", "crashcart.drill", "--json", str(path)]
    for name in POSITIVE:
        command += ["--scenario", name]
    log(f"drill_figures: running the drill ({' '.join(command[1:])}); this takes minutes")
    result = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=DRILL_TIMEOUT,
        check=False,
    )
    if result.returncode not in (0, 1):  # 1: a scenario failed; its results are still written
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-10:])
        raise RuntimeError(f"the drill could not run (exit {result.returncode}): {tail}")


def run(ctx: Context) -> dict[str, Any]:
    path = results_path(ctx)
    if ctx.options.get("run_drill") and not ctx.smoke:
        _run_drill(path)
    if not path.exists():
        shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
        raise SkipError(
            f"not run: no drill results at {shown} (run `make drill`, or "
            "`python -m benchmarks --run-drill`)"
        )
    data = json.loads(path.read_text())
    scenarios = {s.get("scenario"): s for s in data.get("scenarios", [])}
    present = [name for name in POSITIVE if name in scenarios]
    if not present:
        raise SkipError(f"not run: {path} has no idle or hung-cpus scenario")
    rows: list[list[Any]] = []
    figures: dict[str, Any] = {
        "source": str(path),
        "drill_started_at": data.get("started_at"),
        "image": data.get("image", {}),
        "scenarios": {},
    }
    for name in present:
        s = scenarios[name]
        t = s.get("timings", {})
        boot = t.get("boot_to_ready_s")
        nmi = t.get("nmi_to_dump_saved_s")
        entry = {
            "passed": s.get("passed"),
            "failed_stage": s.get("failed_stage"),
            "boot_to_ready_s": boot,
            "nmi_to_dump_saved_s": nmi,
            "reboot_to_ready_s": t.get("reboot_to_ready_s"),
            "dump_mib": t.get("dump_mib"),
            "guest_ram_mib": t.get("guest_ram_mib"),
            "dump_to_ram_ratio": t.get("dump_to_ram_ratio"),
            "nmi_to_dump_vs_boot": ratio(nmi, boot) if nmi and boot else None,
        }
        figures["scenarios"][name] = entry
        rows.append(
            [
                name,
                "passed" if s.get("passed") else f"FAILED at {s.get('failed_stage')}",
                f"{boot} s" if boot is not None else "-",
                f"{nmi} s" if nmi is not None else "-",
                times(entry["nmi_to_dump_vs_boot"]),
                f"{entry['dump_mib']} / {entry['guest_ram_mib']} MiB"
                if entry["dump_mib"] is not None
                else "-",
                f"{entry['dump_to_ram_ratio']:.3f}" if entry["dump_to_ram_ratio"] else "-",
            ]
        )
    idle = figures["scenarios"].get("idle", {})
    hung = figures["scenarios"].get("hung-cpus", {})
    if idle.get("nmi_to_dump_saved_s") and hung.get("nmi_to_dump_saved_s"):
        figures["hung_vs_idle_nmi_to_dump"] = ratio(
            hung["nmi_to_dump_saved_s"], idle["nmi_to_dump_saved_s"]
        )
    passed = [n for n in present if figures["scenarios"][n]["passed"]]
    checks = [
        check(
            f"{name}: the dump is smaller than the guest's RAM (makedumpfile filtering)",
            (figures["scenarios"][name]["dump_to_ram_ratio"] or 0) < 1,
            f"dump / RAM = {figures['scenarios'][name]['dump_to_ram_ratio']}",
        )
        for name in passed
        if figures["scenarios"][name]["dump_to_ram_ratio"] is not None
    ]
    summary = {
        name: f"{'passed' if e['passed'] else 'FAILED'}; NMI to dump saved "
        f"{e['nmi_to_dump_saved_s']} s ({times(e['nmi_to_dump_vs_boot'])} a boot); dump / RAM "
        f"{e['dump_to_ram_ratio']}"
        for name, e in figures["scenarios"].items()
    }
    if "hung_vs_idle_nmi_to_dump" in figures:
        summary["hung-CPU vs idle, NMI to dump saved"] = times(figures["hung_vs_idle_nmi_to_dump"])
    image = figures["image"]
    return {
        "figures": figures,
        "summary": summary,
        "tables": [
            table(
                f"From {path.name} (drill run started {data.get('started_at', '?')})",
                [
                    "scenario",
                    "result",
                    "boot to ready",
                    "NMI to dump saved",
                    "NMI to dump / boot to ready",
                    "dump / guest RAM",
                    "ratio",
                ],
                rows,
            )
        ],
        "checks": checks,
        "notes": [
            "QEMU TCG (software emulation; /dev/kvm here cannot boot a stock guest), Debian 12 "
            "cloud kernel, the component's kdump set-up, NMI through QMP answered for the "
            "remediation function's SendDiagnosticInterrupt call. Absolute times are "
            "TCG-slow; the ratios compare steps of the same run.",
            f"Guest image: kernel {image.get('kernel_release', '?')}, "
            f"{'cached' if image.get('cached') else 'built in that run'} "
            f"(base build {image.get('base_build_s', '?')} s, component applied in "
            f"{image.get('prepare_s', '?')} s).",
            "These figures are read from the drill's last run; run `make drill` (or "
            "`python -m benchmarks --run-drill`) to refresh them.",
        ],
    }
