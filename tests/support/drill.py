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
    if not _RESULTS["scenarios"]:
        return None
    from crashcart.drill.cli import load_average, summarize
    from crashcart.drill.paths import cache_dir

    _RESULTS["written_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _RESULTS.setdefault("load_average", {})["end"] = load_average()
    flat = {
        "image": _RESULTS.get("image", {}),
        "scenarios": list(_RESULTS["scenarios"].values()),
    }
    _RESULTS["timings"] = summarize(flat)
    path = cache_dir() / "e2e-drill-results.json"
    path.write_text(json.dumps(_RESULTS, indent=2, default=str))
    return path


def stage(result: Any, name: str) -> Any:
    """The result's stage called ``name`` (fails the test if there is none)."""
    for item in result.stages:
        if item.name == name:
            return item
    pytest.fail(f"no stage {name!r} in {[s.name for s in result.stages]}: {result.reason}")
