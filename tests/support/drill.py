"""Helpers for the drill's e2e tests (``tests/e2e/test_drill_*.py``).

The e2e layer runs the real drill: one prepared guest image per session (built from an empty
cache on CI: debootstrap; the Debian 12 component's install steps on the host in a sandboxed
chroot, the first boot and validation in the guest, the validated guest saved), then one
fresh copy of its disk per scenario, booted or restored. Results are collected and written,
with their timings, to ``<drill cache>/e2e-drill-results.json`` at the end of the session
(the benchmarks read it).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

REQUIRED_TOOLS = (
    "qemu-system-x86_64",
    "debootstrap",
    "mkfs.ext4",
    "debugfs",
    "busybox",
    "unshare",
    "setpriv",
)

_RESULTS: dict[str, Any] = {"scenarios": {}}


def check_host() -> None:
    """Fail (not skip) when the host cannot run the drill: a skipped e2e layer proves nothing.

    Deselect the layer explicitly with ``-m 'not e2e'`` instead.
    """
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the drill needs {missing}: run scripts/setup.sh (or -m 'not e2e')")
    if os.geteuid() != 0:
        pytest.fail("the drill builds its guest with debootstrap/chroot: run as root")


def run(image: Any, name: str, moto_url: str, **options: Any) -> Any:
    """Run scenario ``name`` on the prepared ``image`` and record its result."""
    from crashcart.drill.run import run_scenario
    from crashcart.drill.scenarios import SCENARIOS

    result = run_scenario(image, SCENARIOS[name], moto_url=moto_url, **options)
    record(name, result)
    return result


def record(name: str, result: Any) -> None:
    _RESULTS["scenarios"][name] = result.as_dict() if hasattr(result, "as_dict") else result


def record_image(info: dict[str, Any], *, image: str = "pipeline") -> None:
    """The prepared image's figures; the pipeline's image is the run's ``image``."""
    from crashcart.drill.cli import load_average

    _RESULTS.setdefault("images", {})[image] = info
    if image == "pipeline":
        _RESULTS["image"] = info
    _RESULTS.setdefault("load_average", {"start": load_average()})


def write_results() -> Path | None:
    """Write this process's results into ``<drill cache>/e2e-drill-results.json``.

    The e2e layer's modules may run on different xdist workers at once (each a process with
    its own results): one run's modules merge into the same file, under a lock; a file from
    another run is replaced.
    """
    if not _RESULTS["scenarios"]:
        return None
    from crashcart.drill.cli import load_average, summarize
    from crashcart.drill.paths import cache_dir, cache_lock

    path = cache_dir() / "e2e-drill-results.json"
    with cache_lock("e2e-drill-results"):
        merged = merge_results(read_json(path), _RESULTS, run=_run_id())
        merged["written_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        merged.setdefault("load_average", {})["end"] = load_average()
        flat = {
            "image": merged.get("image", {}),
            "scenarios": list(merged["scenarios"].values()),
        }
        merged["timings"] = summarize(flat)
        path.write_text(json.dumps(merged, indent=2, default=str))
    return path


def _run_id() -> str:
    """The same for every worker of one pytest run (xdist's run id), else this process."""
    return os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid-{os.getpid()}"


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; {} when it is missing, unreadable or not an object."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def merge_results(earlier: dict[str, Any], ours: dict[str, Any], *, run: str) -> dict[str, Any]:
    """``ours`` added to ``earlier`` when both come from ``run``; else ``ours`` alone.

    Scenarios and images are keyed by name (ours win), the pipeline's image is the run's
    ``image``, and the load average at the start is the one the run wrote first.
    """
    mine = json.loads(json.dumps(ours, default=str))
    mine["run"] = run
    if earlier.get("run") != run:
        return mine
    merged = {**earlier, **mine}
    merged["scenarios"] = {**earlier.get("scenarios", {}), **mine["scenarios"]}
    merged["images"] = {**earlier.get("images", {}), **mine.get("images", {})}
    if "pipeline" in merged["images"]:
        merged["image"] = merged["images"]["pipeline"]
    start = earlier.get("load_average", {}).get("start") or mine.get("load_average", {}).get(
        "start"
    )
    merged["load_average"] = {"start": start}
    return merged


def stage(result: Any, name: str) -> Any:
    """The result's stage called ``name`` (fails the test if there is none)."""
    for item in result.stages:
        if item.name == name:
            return item
    pytest.fail(f"no stage {name!r} in {[s.name for s in result.stages]}: {result.reason}")
