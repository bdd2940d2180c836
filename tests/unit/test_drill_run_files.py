"""What the drill leaves in its cache: a finished run keeps its results and logs; its disk
copy (hundreds of MiB, the dump already copied out) only when the scenario did not do what it
must, or when asked (``$CRASHCART_DRILL_KEEP_DISKS``); old run folders and prepared images are
pruned so that the cache does not grow with every session (it reached 20 GB)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from crashcart.drill import paths
from crashcart.drill.run import ScenarioResult, _finish, _run_dir
from crashcart.drill.scenarios import SCENARIOS


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CRASHCART_DRILL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CRASHCART_DRILL_KEEP_DISKS", raising=False)
    return paths.cache_dir()


def _run(workdir: Path, name: str) -> ScenarioResult:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "disk.img").write_bytes(b"\0" * 4096)
    (workdir / "boot").mkdir()
    (workdir / "boot" / "vmlinuz").write_bytes(b"k")
    (workdir / "drill-1.console.log").write_text("console\n")
    return ScenarioResult(
        scenario=name,
        description="",
        positive=SCENARIOS[name].positive,
        passed=False,
        workdir=str(workdir),
    )


def test_a_passed_run_keeps_its_results_and_logs_not_its_disk(cache: Path) -> None:
    workdir = cache / "runs" / "20260101T000000-idle"
    result = _finish(_run(workdir, "idle"), SCENARIOS["idle"], started=0.0)
    assert result.passed
    assert not (workdir / "disk.img").exists() and not (workdir / "boot").exists()
    assert (workdir / "drill-1.console.log").exists()
    assert json.loads((workdir / "result.json").read_text())["scenario"] == "idle"


def test_a_failed_run_keeps_its_disk(cache: Path) -> None:
    workdir = cache / "runs" / "20260101T000000-idle"
    result = _run(workdir, "idle").fail("dump", "no dump")
    assert not _finish(result, SCENARIOS["idle"], started=0.0).passed
    assert (workdir / "disk.img").exists() and (workdir / "boot").is_dir()


def test_disks_are_kept_when_asked(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRASHCART_DRILL_KEEP_DISKS", "1")
    workdir = cache / "runs" / "20260101T000000-idle"
    assert _finish(_run(workdir, "idle"), SCENARIOS["idle"], started=0.0).passed
    assert (workdir / "disk.img").exists()


def test_a_new_run_prunes_old_run_folders_and_old_failed_disks(cache: Path) -> None:
    names = [f"20260101T0000{second:02d}-idle" for second in range(paths.KEEP_RUNS + 5)]
    for name in names:
        _run(cache / "runs" / name, "idle")  # failed runs: each still has its disk
    new = _run_dir("idle")
    kept = sorted(p.name for p in (cache / "runs").iterdir())
    # the new folder and the newest KEEP_RUNS - 1 of the old ones
    assert kept == sorted([*names[-(paths.KEEP_RUNS - 1) :], new.name])
    with_disks = sorted(p.parent.name for p in (cache / "runs").glob("*/disk.img"))
    # the new run has no disk yet: the newest KEEP_RUN_DISKS - 1 old ones keep theirs
    assert with_disks == names[-(paths.KEEP_RUN_DISKS - 1) :]
    assert not any(
        (cache / "runs" / name / "boot").exists()
        for name in names[: -(paths.KEEP_RUN_DISKS - 1)]
        if (cache / "runs" / name).exists()
    )
    assert all((cache / "runs" / name / "drill-1.console.log").exists() for name in kept[:-1])


def test_prepared_images_beyond_the_newest_are_pruned_never_the_one_in_use(cache: Path) -> None:
    for age, key in enumerate(["in-use", "newer", "older", "oldest"]):
        folder = cache / f"prepared-{key}"
        folder.mkdir()
        (folder / "disk.img").write_bytes(b"\0")
        stamp = 1_700_000_000 - age * 3600 - (10**6 if key == "in-use" else 0)
        os.utime(folder, (stamp, stamp))  # the image in use is the oldest of all
    removed = paths.prune_prepared("in-use")
    assert sorted(p.name for p in removed) == ["prepared-oldest"]
    # the drill's two images (pipeline, running instance) and one previous revision
    assert paths.KEEP_PREPARED == 3
    assert sorted(p.name for p in cache.glob("prepared-*")) == [
        "prepared-in-use",
        "prepared-newer",
        "prepared-older",
    ]


def test_pruning_an_empty_cache_removes_nothing(cache: Path) -> None:
    assert paths.prune_runs() == []
    assert paths.prune_prepared("any") == []


def test_a_run_refuses_to_start_on_a_nearly_full_disk(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # QEMU pauses a guest whose disk write fails (ENOSPC): the boot would sit silent
    usage = paths.shutil.disk_usage(cache)
    monkeypatch.setattr(paths.shutil, "disk_usage", lambda _path: usage._replace(free=300 << 20))
    with pytest.raises(paths.DiskSpaceError, match=r"needs 2\.0 GiB free in .* has 0\.3 GiB"):
        _run_dir("idle")
