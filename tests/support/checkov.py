"""Run checkov (its own venv, .venv-checkov, made by `make setup`) offline on templates.

checkov is pinned with everything it imports in scripts/checkov-requirements.txt and lives
apart from .venv because its pins would downgrade boto3 there. It must make no network call:
``--skip-download`` keeps it from fetching policies and guidelines from its vendor's
platform, ``CKV_SKIP_PACKAGE_UPDATE_CHECK`` from asking PyPI for a newer version, and
``BC_SKIP_MAPPING`` from fetching the check-id mapping. Where the machine allows it (root,
as in CI, or unprivileged user namespaces), it runs in a network namespace of its own with
no interface but loopback, which proves it.

A report is kept per process for the same templates with the same content: a test that asks
for the summary and the report of one set of templates runs checkov once (each run costs
about 4 s of CPU; issue 24). A template written again with other content runs again.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
PINNED_VERSION = "3.3.30"

_OFFLINE_ENV = {
    "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
    "BC_SKIP_MAPPING": "TRUE",
    "NO_PROXY": "*",
}
#: Variables that would let checkov talk to its vendor's platform or a proxy.
_DROPPED_ENV = ("BC_API_KEY", "PRISMA_API_URL", "HTTPS_PROXY", "HTTP_PROXY", "https_proxy")


@functools.cache
def _no_network_prefix() -> tuple[str, ...]:
    """``unshare`` arguments that cut the network off, if this machine lets us use them."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    for prefix in ((unshare, "--net"), (unshare, "--net", "--map-root-user")):
        probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            return prefix
    return ()


def network_is_cut_off() -> bool:
    return bool(_no_network_prefix())


def run_checkov(templates: list[Path]) -> dict[str, Any]:
    """checkov's JSON report (framework cloudformation) over ``templates``."""
    reports = _run(templates)
    (cloudformation,) = [r for r in reports if r.get("check_type") == "cloudformation"]
    assert cloudformation["summary"]["checkov_version"] == PINNED_VERSION
    return dict(cloudformation)


def checkov_summary(templates: list[Path]) -> dict[str, Any]:
    """checkov's summary over ``templates``, also when none of its checks applies to them
    (then checkov prints only a summary, with ``resource_count`` 0)."""
    reports = _run(templates)
    summaries = [r.get("summary", r) for r in reports]
    assert all(s["checkov_version"] == PINNED_VERSION for s in summaries), summaries
    return {
        key: sum(int(s.get(key, 0)) for s in summaries)
        for key in ("passed", "failed", "skipped", "parsing_errors", "resource_count")
    }


def _run(templates: list[Path]) -> list[dict[str, Any]]:
    key = tuple((str(t), hashlib.sha256(t.read_bytes()).hexdigest()) for t in templates)
    return copy.deepcopy(_run_once(key))


@functools.cache
def _run_once(key: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    templates = [Path(path) for path, _ in key]
    if not CHECKOV.is_file():
        raise AssertionError(f"{CHECKOV} is missing: run `make setup` (scripts/setup.sh)")
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV} | _OFFLINE_ENV
    files = [arg for template in templates for arg in ("--file", str(template))]
    result = subprocess.run(
        [
            *_no_network_prefix(),
            str(CHECKOV),
            "--skip-download",
            "--framework",
            "cloudformation",
            "--output",
            "json",
            *files,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    # Exit code 1 means "failed checks" (the caller asserts on them); anything else is a crash.
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    return report if isinstance(report, list) else [report]
