"""What a drill scenario run records, and where: its stages, timings and evidence
(:class:`ScenarioResult`), its folder under the cache's ``runs/`` (:func:`run_dir`) and the
verdict written to ``result.json`` when it ends (:func:`finish`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crashcart.drill.boot import BootLog
from crashcart.drill.paths import RUN_FREE_BYTES, cache_dir, prune_runs, require_free_space
from crashcart.drill.scenarios import Scenario


@dataclass
class Stage:
    name: str
    ok: bool
    detail: str
    seconds: float | None = None


@dataclass
class ScenarioResult:
    scenario: str
    description: str
    positive: bool
    passed: bool
    #: Where a failing run stopped (validate / action / remediation / nmi / dump / reboot /
    #: upload / triage) and why; for negative controls, what they are expected to be.
    failed_stage: str | None = None
    reason: str = ""
    stages: list[Stage] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    cmdline: str = ""
    validate_output: list[str] = field(default_factory=list)
    remediation: dict[str, Any] = field(default_factory=dict)
    dump_dir: str | None = None
    dump_files: dict[str, int] = field(default_factory=dict)
    dmesg_excerpt: list[str] = field(default_factory=list)
    #: The capture kernel's memory against the reservation (crashcart.drill.capture_memory).
    capture_memory: dict[str, Any] = field(default_factory=dict)
    triage: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    workdir: str = ""
    #: "cold boot of <image>" or "restored: the saved guest <vm key> of <image>".
    started_from: str = ""

    def stage(self, name: str, ok: bool, detail: str, seconds: float | None = None) -> None:
        self.stages.append(Stage(name, ok, detail, None if seconds is None else round(seconds, 1)))

    def fail(self, stage: str, reason: str) -> ScenarioResult:
        self.failed_stage = stage
        self.reason = reason
        self.stage(stage, False, reason)
        return self

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class DrillError(RuntimeError):
    pass


def run_dir(name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = cache_dir() / "runs" / f"{stamp}-{name}"
    path.mkdir(parents=True, exist_ok=True)
    prune_runs()  # the new folder counts as the newest
    require_free_space(RUN_FREE_BYTES, f"the drill run {path.name}")
    return path


def validate_failures(log: BootLog) -> list[str]:
    lines: list[str] = []
    for result in log.steps.values():
        lines.extend(line for line in result.output if "FAIL" in line or "failed" in line)
    return lines


def last_cmdline(workdir: Path) -> str:
    commands = sorted(workdir.glob("*.qemu-command"), key=lambda p: p.stat().st_mtime)
    if not commands:
        return ""
    text = commands[-1].read_text()
    match = re.search(r"-append '([^']*)'", text)
    return match.group(1) if match else ""


def finish(result: ScenarioResult, scenario: Scenario, started: float) -> ScenarioResult:
    result.timings["scenario_s"] = round(time.monotonic() - started, 1)
    nmi_to_dump = result.timings.get("nmi_to_dump_saved_s")
    back = result.timings.get("reboot_to_ready_s")
    if nmi_to_dump is not None and back is not None:
        # what the scenario cost beyond its own NMI -> dump -> reboot (the budget: 30 s for
        # a restored one): copying the disk, the boot or restore, validation, the action,
        # the remediation, reading the dump, the upload check, triage
        result.timings["beyond_nmi_dump_reboot_s"] = round(
            result.timings["scenario_s"] - nmi_to_dump - back, 1
        )
    if scenario.positive:
        result.passed = result.failed_stage is None
    else:
        reason_ok = scenario.expect_reason in result.reason or (
            scenario.expect_nmi_reason
            and scenario.expect_nmi_reason in result.reason
            and result.failed_stage in ("nmi", "dump")
        )
        result.passed = result.failed_stage is not None and bool(reason_ok)
    workdir = Path(result.workdir)
    (workdir / "result.json").write_text(json.dumps(result.as_dict(), indent=2))
    if result.passed and not os.environ.get("CRASHCART_DRILL_KEEP_DISKS"):
        # The run's disk copy (hundreds of MiB; the dump was copied out of it) and boot files:
        # kept only when the scenario did not do what it must, for a look at what happened.
        (workdir / "disk.img").unlink(missing_ok=True)
        shutil.rmtree(workdir / "boot", ignore_errors=True)
    return result
