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

checkov is imported once per test process, not once per run: a server in checkov's venv
(``tests/support/checkov_fork_server.py``, started on first use, in the network namespace
and offline environment above) forks a child per run, which runs checkov as its command does
with the same arguments; importing checkov was about 2 of those 4 s. The server stops with
the test process (its CPU then counts in the suite's record).
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import functools
import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
CHECKOV_PYTHON = CHECKOV.with_name("python")
FORK_SERVER = Path(__file__).with_name("checkov_fork_server.py")
TIMEOUT_S = 300
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
    files = [arg for template in templates for arg in ("--file", str(template))]
    result = checkov_command(
        ["--skip-download", "--framework", "cloudformation", "--output", "json", *files]
    )
    # Exit code 1 means "failed checks" (the caller asserts on them); anything else is a crash.
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    return report if isinstance(report, list) else [report]


def checkov_command(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``checkov <argv>``, run by this process's fork server: exit status, stdout, stderr."""
    server = _server()
    assert server.stdin is not None and server.stdout is not None
    with tempfile.TemporaryDirectory(prefix="checkov-run-") as folder:
        stdout, stderr = Path(folder, "stdout"), Path(folder, "stderr")
        request = {"argv": argv, "stdout": str(stdout), "stderr": str(stderr)}
        try:
            server.stdin.write(json.dumps(request) + "\n")
            server.stdin.flush()
        except BrokenPipeError:
            raise _failed(server, "had ended before this run") from None
        ready, _, _ = select.select([server.stdout], [], [], TIMEOUT_S)
        answer = server.stdout.readline() if ready else ""
        if not answer:
            raise _failed(
                server, "ended during the run" if ready else f"no answer in {TIMEOUT_S} s"
            )
        return subprocess.CompletedProcess(
            [str(CHECKOV), *argv],
            int(json.loads(answer)["exit"]),
            stdout.read_text() if stdout.exists() else "",
            stderr.read_text() if stderr.exists() else "",
        )


def checkov_cli(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``checkov <argv>`` as its own process (its console script), set up as the server is:
    what the server's runs are checked against (tests/compliance/test_checkov.py)."""
    return subprocess.run(
        [*_no_network_prefix(), str(CHECKOV), *argv],
        capture_output=True,
        text=True,
        env=_offline_env(),
        check=False,
        timeout=TIMEOUT_S,
    )


def _offline_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV} | _OFFLINE_ENV


#: Each server's stderr (its own errors: an import that fails, a traceback), by process id.
_SERVER_LOGS: dict[int, Path] = {}


@functools.cache
def _server() -> subprocess.Popen[str]:
    with tempfile.NamedTemporaryFile(
        "w", prefix="checkov-server-", suffix=".log", delete=False
    ) as log:
        server = subprocess.Popen(
            # -P: not this folder on its path, whose checkov.py would hide checkov's package
            [*_no_network_prefix(), str(CHECKOV_PYTHON), "-P", str(FORK_SERVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=_offline_env(),
            start_new_session=True,  # its own process group: a stuck run goes with it
        )
    _SERVER_LOGS[server.pid] = Path(log.name)
    atexit.register(_stop, server)
    return server


def _failed(server: subprocess.Popen[str], why: str) -> AssertionError:
    """Stop a server that did not answer, and the run it forked; the next run starts a new one.
    The error says why, with the end of the server's stderr."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()
    _server.cache_clear()
    log = _SERVER_LOGS.get(server.pid)
    tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
    return AssertionError(
        f"checkov's fork server {why} (exit {server.returncode}); its stderr:\n{tail}"
    )


def _stop(server: subprocess.Popen[str]) -> None:
    """End of input: the server returns; waited for, so its CPU counts as this process's."""
    if server.stdin is not None:
        with contextlib.suppress(BrokenPipeError):  # a server that ended early
            server.stdin.close()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    log = _SERVER_LOGS.pop(server.pid, None)
    if log is not None:
        log.unlink(missing_ok=True)
