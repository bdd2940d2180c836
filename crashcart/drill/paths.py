"""Where the drill keeps its images, runs and debug symbols."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent.parent
GUEST_DIR = PACKAGE_DIR / "guest"
HANG_MODULE_DIR = PACKAGE_DIR / "hang_module"


def cache_dir() -> Path:
    """``$CRASHCART_DRILL_CACHE``, default ``$XDG_CACHE_HOME/crashcart/drill`` (or
    ``~/.cache/crashcart/drill``): outside the work tree, so every clone on a machine shares
    the guest images (minutes of emulated first-boot work), which are keyed by the hash of
    their inputs and rebuilt when those change."""
    configured = os.environ.get("CRASHCART_DRILL_CACHE")
    if configured:
        path = Path(configured)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "crashcart" / "drill"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


#: Run folders kept under ``<cache>/runs`` (results, console logs): the newest ones, about two
#: sessions' worth of scenarios. Older folders are removed whole.
KEEP_RUNS = 12
#: Among the kept runs, the newest ones whose disk copy stays (a failed run keeps its disk, a
#: few hundred MiB, for a look at what happened; a passed run drops it at once).
KEEP_RUN_DISKS = 3
#: ``prepared-<key>`` folders kept (each a prepared disk of about 1 GiB), the one in use
#: included: the drill's two images (the pipeline's, the running-instance path's; one session
#: uses both) and one more, so that a component or agent change, which makes a new key,
#: leaves the other image and a previous revision's in place.
KEEP_PREPARED = 3


def prune_runs(*, keep: int = KEEP_RUNS, keep_disks: int = KEEP_RUN_DISKS) -> list[Path]:
    """Remove all but the newest ``keep`` run folders, and the disk copies and extracted boot
    files of all but the newest ``keep_disks`` of those; returns what was removed.

    Run folders are named ``<UTC stamp>-<scenario>``, so their names sort by age."""
    runs = cache_dir() / "runs"
    if not runs.is_dir():
        return []
    folders = sorted((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.name)
    removed: list[Path] = []
    for index, folder in enumerate(reversed(folders)):
        if index >= keep:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        elif index >= keep_disks:
            for big in (folder / "disk.img", folder / "boot"):
                if big.is_dir():
                    shutil.rmtree(big, ignore_errors=True)
                    removed.append(big)
                elif big.exists():
                    big.unlink(missing_ok=True)
                    removed.append(big)
    return removed


def prune_prepared(in_use: str, *, keep: int = KEEP_PREPARED) -> list[Path]:
    """Remove ``prepared-<key>`` folders beyond the newest ``keep`` (by last use), never the
    one ``in_use``; returns what was removed."""
    root = cache_dir()
    current = root / f"prepared-{in_use}"
    others = sorted(
        (p for p in root.glob("prepared-*") if p.is_dir() and p != current),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    removed = others[max(0, keep - 1) :]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed


@contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Hold ``<cache>/<name>.lock`` (``flock``): two drill runs sharing the cache (two clones'
    ``make test`` at once) build a base or prepared image one after the other, and the
    second finds it built, instead of each deleting what the other is building."""
    path = cache_dir() / f"{name}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: Free space the cache's file system must have before an image is prepared (the base's root
#: file system, the overlay, a disk image, the saved guest) and before a run (its disk copy
#: and the dump read out of it). QEMU pauses a guest whose disk write fails for lack of
#: space: the boot would sit silent instead of failing.
PREPARE_FREE_BYTES = 5 << 30
RUN_FREE_BYTES = 2 << 30


class DiskSpaceError(RuntimeError):
    """The drill cache's file system has too little free space for the next step."""


def require_free_space(needed: int, what: str) -> None:
    """Raise :class:`DiskSpaceError` when the cache's file system has less than ``needed``
    bytes free (checked before the step that would fill it, not in the middle of a boot)."""
    root = cache_dir()
    free = shutil.disk_usage(root).free
    if free < needed:
        raise DiskSpaceError(
            f"{what} needs {needed / 2**30:.1f} GiB free in {root}, which has "
            f"{free / 2**30:.1f} GiB: free some space (old runs are pruned already; other "
            "files on that disk are not the drill's) or point $CRASHCART_DRILL_CACHE elsewhere"
        )
