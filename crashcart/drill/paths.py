"""Where the drill keeps its images, runs and debug symbols."""

from __future__ import annotations

import os
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
