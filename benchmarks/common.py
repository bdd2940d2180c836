"""Shared pieces of the benchmarks: environment, timing, statistics, machine facts, results.

Conventions every benchmark follows:

- a figure is a count, or a ratio against a baseline measured in the same run; absolute
  times are recorded and shown, never asserted;
- medians for "typical" figures, percentiles by linear interpolation between closest ranks
  (the same as ``numpy.percentile``'s default);
- nothing talks to the network: AWS calls go to moto on 127.0.0.1 with fake credentials,
  the CDK CLI runs with telemetry, notices and version checks off.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
CDK_CLI = REPO_ROOT / "node_modules" / ".bin" / "cdk"
DEFAULT_RESULTS = REPO_ROOT / "benchmarks" / "results.json"
DEFAULT_DOCS = REPO_ROOT / "docs" / "benchmarks.md"

#: Environment for this process and every child: offline, quiet, fake AWS credentials.
OFFLINE_ENV: Mapping[str, str] = {
    "CDK_DISABLE_CLI_TELEMETRY": "1",
    "CDK_DISABLE_VERSION_CHECK": "1",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "PYTHONDONTWRITEBYTECODE": "1",
}
#: Variables that could point a child at a real account or endpoint.
_DROP = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


def offline_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` made offline and fake-credentialed (for child processes)."""
    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    env.update(OFFLINE_ENV)
    if extra:
        env.update(extra)
    return env


def make_process_offline() -> None:
    """Apply :data:`OFFLINE_ENV` to this process (before boto3 or the CDK are imported)."""
    for name in _DROP:
        os.environ.pop(name, None)
    os.environ.update(OFFLINE_ENV)


def log(message: str) -> None:
    """Progress on stderr (results go to files)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------
# Run context and result shapes


@dataclass
class Context:
    """What every benchmark's ``run`` gets."""

    smoke: bool
    workdir: Path
    #: results of benchmarks that ran earlier in this run (e.g. synthesized templates)
    shared: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


class SkipError(Exception):
    """Raised by a benchmark whose dependency is missing: recorded as ``skipped: <reason>``."""


def check(name: str, ok: bool, detail: str = "") -> dict[str, Any]:
    """An invariant the run verified (a failed one makes the run exit non-zero)."""
    return {"name": name, "ok": bool(ok), "detail": detail}


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """A table for docs/benchmarks.md."""
    return {"title": title, "columns": list(columns), "rows": [list(r) for r in rows]}


# ------------------------------------------------------------------------------------------
# Statistics


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return (ordered[middle - 1] + ordered[middle]) / 2.0


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100), linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} outside 0-100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(value: float, baseline: float) -> float | None:
    """``value / baseline`` rounded to 2 decimals (None when the baseline is 0)."""
    if baseline == 0:
        return None
    return round(value / baseline, 2)


def summary(values: Sequence[float]) -> dict[str, float | int]:
    """n, median, p50/p90/p99, min, max of ``values`` (seconds)."""
    return {
        "n": len(values),
        "median": median(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "min": min(values),
        "max": max(values),
    }


def ms(seconds: float | None) -> str:
    """Seconds -> a human string in ms or s."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


# ------------------------------------------------------------------------------------------
# Measuring a child process: wall time, CPU time, peak memory


@dataclass
class Measured:
    """One child process run."""

    wall: float
    cpu_user: float
    cpu_system: float
    #: ru_maxrss from wait4(): the peak RSS of the *largest single process* of the tree
    #: (the child or any descendant it waited for), in KiB
    max_rss_kib: int
    #: the peak of the *summed* RSS of the whole tree, sampled from /proc (a lower bound)
    tree_rss_kib: int
    returncode: int
    stdout: str
    stderr: str

    @property
    def cpu(self) -> float:
        return self.cpu_user + self.cpu_system


_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _tree_rss_kib(root: int) -> int:
    """Summed RSS (KiB) of ``root`` and all its descendants, from /proc/<pid>/stat."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as handle:
                text = handle.read()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        if len(fields) < 22:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        rss[pid] = int(fields[21]) * _PAGE_KIB
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, ()))
    return total


def run_measured(
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    sample_every: float = 0.2,
) -> Measured:
    """Run ``command`` to completion; measure it with ``wait4`` and a /proc sampler."""
    import tempfile

    out_fd, out_name = tempfile.mkstemp(prefix="crashcart-bench-", suffix=".out")
    err_fd, err_name = tempfile.mkstemp(prefix="crashcart-bench-", suffix=".err")
    os.close(out_fd)
    os.close(err_fd)
    out_path, err_path = Path(out_name), Path(err_name)
    peak = 0
    done = threading.Event()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            list(command), cwd=cwd, env=dict(env), stdout=out, stderr=err, start_new_session=True
        )

        def sample() -> None:
            nonlocal peak
            while not done.wait(sample_every):
                peak = max(peak, _tree_rss_kib(process.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        killer = threading.Timer(timeout, _kill_group, args=(process.pid,))
        killer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            killer.cancel()
            done.set()
        wall = time.perf_counter() - start
        sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    out_path.unlink(missing_ok=True)
    err_path.unlink(missing_ok=True)
    return Measured(
        wall=wall,
        cpu_user=usage.ru_utime,
        cpu_system=usage.ru_stime,
        max_rss_kib=int(usage.ru_maxrss),
        tree_rss_kib=peak,
        returncode=process.returncode,
        stdout=stdout,
        stderr=stderr,
    )


def _kill_group(pid: int) -> None:
    import signal

    with suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """``with stopwatch() as elapsed: ...; elapsed()`` -> seconds since the block began."""
    start = time.perf_counter()
    end: list[float] = []

    def elapsed() -> float:
        return (end[0] if end else time.perf_counter()) - start

    try:
        yield elapsed
    finally:
        end.append(time.perf_counter())


# ------------------------------------------------------------------------------------------
# The machine


def _command_version(command: Sequence[str]) -> str:
    try:
        result = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=offline_env(),
            cwd=REPO_ROOT,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unavailable ({type(error).__name__})"
    text = (result.stdout or result.stderr).strip().splitlines()
    return text[0] if text else f"unavailable (exit {result.returncode})"


def _package(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else (platform.processor() or "unknown")


def memory_gib() -> float | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    match = re.search(r"^MemTotal:\s+(\d+) kB", text, re.MULTILINE)
    return round(int(match.group(1)) / 1024 / 1024, 1) if match else None


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine_info() -> dict[str, Any]:
    """The facts that make the figures comparable: cores, memory, CPU, versions."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "memory_gib": memory_gib(),
        "cpu_model": cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "node": _command_version(["node", "--version"]),
        "cdk_cli": _command_version([str(CDK_CLI), "--version"]),
        "aws_cdk_lib": _package("aws-cdk-lib"),
        "constructs": _package("constructs"),
        "cdk_nag": _package("cdk-nag"),
        "boto3": _package("boto3"),
        "moto": _package("moto"),
    }


def git_revision() -> str:
    """The checked-out commit (read-only git), with "+changes" if the tree is dirty."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if head.returncode != 0:
            return "no commit"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)
