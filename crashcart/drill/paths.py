"""Where the drill keeps its images, runs and debug symbols."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent.parent
GUEST_DIR = PACKAGE_DIR / "guest"
HANG_MODULE_DIR = PACKAGE_DIR / "hang_module"


def cache_dir() -> Path:
    """``$CRASHCART_DRILL_CACHE``, default ``<repo>/.drill/`` (git-ignored)."""
    configured = os.environ.get("CRASHCART_DRILL_CACHE")
    path = Path(configured) if configured else REPO_ROOT / ".drill"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()
