"""The parser's limits, through the job's launch path (crashcart.triage.sandbox.run_parser):
a crafted dump that makes the parser loop, balloon or fill the disk fails that one triage.

These run the launch path as the test's own user (``ParserUser(None, None)``): the limits do
not depend on the uid change, which tests/e2e/test_parser_isolation.py covers as root.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from crashcart.triage import sandbox

CURRENT = sandbox.ParserUser(None, None)


@pytest.fixture
def workspace() -> Iterator[sandbox.Workspace]:
    root = Path(tempfile.mkdtemp(prefix="crashcart-limits-"))
    yield sandbox.Workspace.create(root, CURRENT)
    shutil.rmtree(root, ignore_errors=True)


def _run(workspace: sandbox.Workspace, code: str, **limits: int) -> sandbox.ParserRun:
    settings = {"address_space_bytes": 1024 * sandbox.MIB, "cpu_seconds": 30, "wall_seconds": 30}
    settings.update(limits)
    return sandbox.run_parser(
        [sys.executable, "-c", code],
        workspace=workspace,
        user=CURRENT,
        limits=sandbox.Limits(**settings),
    )


def test_a_parser_that_loops_is_stopped_at_its_wall_clock(workspace: sandbox.Workspace) -> None:
    run = _run(workspace, "import time\nwhile True: time.sleep(0.1)", wall_seconds=2)
    assert run.stopped == "time" and run.returncode is None
    assert 2 <= run.seconds < 6


def test_a_parser_that_spins_is_stopped_by_its_cpu_limit(workspace: sandbox.Workspace) -> None:
    run = _run(workspace, "while True: pass", cpu_seconds=1, wall_seconds=20)
    assert run.stopped is None and run.returncode is not None and run.returncode < 0  # SIGXCPU
    assert run.seconds < 10


def test_a_parser_that_balloons_fails_with_no_memory(workspace: sandbox.Workspace) -> None:
    run = _run(
        workspace,
        "import sys\ntry:\n    b = bytearray(2 * 1024**3)\nexcept MemoryError:\n    sys.exit(7)",
    )
    assert run.returncode == 7


def test_a_parser_that_fills_the_disk_is_stopped(workspace: sandbox.Workspace) -> None:
    code = (
        "import itertools, os\n"
        "for i in itertools.count():\n"
        "    with open(f'f{i}', 'wb') as f: f.write(os.urandom(1 << 20))\n"
    )
    run = _run(workspace, code, output_bytes=16 * sandbox.MIB)
    assert run.stopped == "disk" and run.returncode is None
    assert sandbox.folder_bytes(workspace.output, limit=1 << 40) < 200 * sandbox.MIB


def test_one_file_is_bounded_by_the_file_size_limit(workspace: sandbox.Workspace) -> None:
    code = (
        "import sys\n"
        "try:\n"
        "    open('big', 'wb').write(b'x' * (8 << 20))\n"
        "except OSError:\n"
        "    sys.exit(9)\n"
    )
    run = _run(workspace, code, file_bytes=1 << 20)
    assert run.returncode == 9
    assert (workspace.output / "big").stat().st_size <= 1 << 20


def test_the_parser_output_is_kept_to_its_tail(workspace: sandbox.Workspace) -> None:
    run = _run(workspace, "print('x' * 100000); print('the end')")
    assert run.returncode == 0 and run.log_tail.endswith("the end\n")
    assert len(run.log_tail) <= 4096
