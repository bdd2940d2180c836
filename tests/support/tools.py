"""Host tools some tests need, and what a test does when one is missing."""

from __future__ import annotations

import os
import shutil

import pytest


def on_ci() -> bool:
    """``$CI`` set to anything but empty / false / 0 (CI sets ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_shellcheck() -> None:
    """shellcheck, or: a skip with the reason on a developer machine (``make check`` needs no
    root, and shellcheck is a Debian package), a failure under CI, where the lint of every
    bash step must run (``make test`` installs shellcheck)."""
    if shutil.which("shellcheck") is not None:
        return
    if on_ci():
        pytest.fail("shellcheck is not installed and CI is set: scripts/setup.sh installs it")
    pytest.skip(
        "shellcheck is not installed (and CI is unset): `make check` installs it when it can "
        "be root, else `apt-get install shellcheck`; under CI this test fails instead"
    )
