"""The parser runs apart from everything the triage job can reach: no credentials, bounded.

The triage job's container has two parts (``docs/threat-model.md``):

- the **supervisor** (:mod:`crashcart.triage.job`, root in the container): it validates the
  event's key, reads the dump's ``metadata.json``, downloads exactly that dump (and the debug
  vmlinux of its build id) into ``<work>/in/``, then starts the parser, then treats the
  parser's report as untrusted data (:mod:`crashcart.triage.report_check`) before it writes
  anything to S3, DynamoDB or SNS;
- the **parser** (:mod:`crashcart.triage.parser`): the only code that opens the dump with
  C libraries (drgn, libkdumpfile, elfutils, makedumpfile). It is started by
  :func:`run_parser` as another user (``nobody``, uid 65534), with:

  - an environment built from nothing (no ``AWS_*``, no
    ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI``: without that path the task's credential
    endpoint at 169.254.170.2 gives nothing; aws-assumption: fargate-task-role-credentials);
  - no capabilities and no way to gain any (``no_new_privs``; the image has no setuid files);
    the supervisor's ``/proc/<pid>/environ`` and memory are root's, mode 0400, so another
    uid cannot read them; Fargate has no instance metadata service to fall back on
    (aws-assumption: fargate-no-instance-metadata);
  - resource limits (:class:`Limits`, sized by :func:`limits_for`): address space,
    CPU seconds, largest file, open files, processes, no core file;
  - a wall-clock timeout after which its whole process group is killed, and a bound on all
    it writes (``out/`` is watched; no rlimit covers the total);
  - read access to ``in/`` and write access to ``out/`` only (the rest of the root file
    system is read-only, ``/scratch`` is root's).

A parser taken over by a crafted dump can therefore read the one dump it was given and
write one bounded file; the job's credentials, other dumps, the table and the topic are out
of its reach (``tests/e2e/test_parser_isolation.py`` shows it against moto).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import resource
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crashcart

GIB = 1024**3
MIB = 1024**2
#: The user the parser runs as unless ``CRASHCART_PARSER_USER`` says otherwise.
PARSER_USER = "65534"
#: ``CRASHCART_PARSER_USER`` value that keeps the supervisor's own user (local runs, tests
#: that cannot be root); the outcome's notes then say the parser was not isolated.
CURRENT_USER = "current"
#: Memory kept for the supervisor (Python, boto3) beside the parser.
SUPERVISOR_RESERVE_MIB = 512
#: The largest report the parser may write (the supervisor reads no more).
MAX_REPORT_BYTES = 4 * MIB
#: Largest file the parser may write: the report, and makedumpfile's copy of the kernel log
#: (the kernel's log buffer is at most 32 MiB).
MAX_FILE_BYTES = 64 * MIB
#: All the parser may write together: the report, makedumpfile's kernel log, drgn's temporaries.
MAX_OUTPUT_BYTES = 256 * MIB
#: How often the supervisor looks at the parser's output folder. A parser writing as fast as
#: it can (a few hundred MiB/s) gets past the bound by at most a tenth of a second's writing;
#: at 1 s it wrote 300 MiB past a 16 MiB bound in a test.
WATCH_SECONDS = 0.1
#: Open files: the dump, the vmlinux, Python's imports, makedumpfile's pipes.
MAX_OPEN_FILES = 64
#: Processes of the parser's user: the parser and makedumpfile, never a fork bomb.
MAX_PROCESSES = 16
#: Wall clock for the parser: a base, plus this much per GiB of dump and vmlinux.
BASE_SECONDS = 300
SECONDS_PER_GIB = 120
_PR_SET_NO_NEW_PRIVS = 38

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


class SandboxError(RuntimeError):
    """The parser could not be started as configured (a deployment fault, not a bad dump)."""


@dataclass(frozen=True)
class Limits:
    """What the parser may use; each is a hard limit it cannot raise."""

    address_space_bytes: int
    cpu_seconds: int
    wall_seconds: int
    file_bytes: int = MAX_FILE_BYTES
    open_files: int = MAX_OPEN_FILES
    processes: int = MAX_PROCESSES
    #: All the parser may write in ``out/`` (watched by the supervisor: no rlimit covers it).
    output_bytes: int = MAX_OUTPUT_BYTES


def limits_for(*, input_bytes: int, memory_mib: int, deadline_seconds: float | None) -> Limits:
    """The parser's limits for a dump (plus vmlinux) of ``input_bytes``.

    - address space: the task's memory less the supervisor's reserve (drgn reads the dump
      page by page, so memory follows the vmlinux's debug info and the number of tasks, not
      the dump's size; the limit keeps a ballooning parser from taking the supervisor down
      with it: it fails with MemoryError / ENOMEM and the supervisor records that);
    - wall clock: ``BASE_SECONDS`` plus ``SECONDS_PER_GIB`` per GiB read (drgn takes under a
      second on a 40 MB dump; makedumpfile scans a large one), and never past the job's own
      deadline less a minute for the supervisor to record the outcome;
    - CPU seconds: the wall clock (a loop ends there even if the timer were lost).
    """
    wall = BASE_SECONDS + SECONDS_PER_GIB * (input_bytes // GIB + 1)
    if deadline_seconds is not None:
        wall = min(wall, int(deadline_seconds) - 60)
    if wall < 30:
        raise SandboxError(
            f"the job has {deadline_seconds} s left, too little to parse the dump: raise the "
            "job's timeout"
        )
    budget = max(memory_mib - SUPERVISOR_RESERVE_MIB, 512) * MIB
    return Limits(address_space_bytes=budget, cpu_seconds=wall, wall_seconds=wall)


@dataclass(frozen=True)
class ParserUser:
    """Who the parser runs as: ``uid`` None keeps the supervisor's user (not isolated)."""

    uid: int | None
    gid: int | None

    @property
    def isolated(self) -> bool:
        return self.uid is not None

    @classmethod
    def resolve(cls, setting: str | None) -> ParserUser:
        """``CRASHCART_PARSER_USER``: a uid, a user name, or ``current``. Default: 65534.

        Isolation needs root (to change user): a supervisor that is not root refuses to
        start the parser rather than run it with the job's credentials in reach.
        """
        value = (setting or PARSER_USER).strip()
        if value == CURRENT_USER:
            return cls(None, None)
        try:
            uid = int(value)
            gid = uid
        except ValueError:
            try:
                entry = pwd.getpwnam(value)
            except KeyError:
                raise SandboxError(
                    f"CRASHCART_PARSER_USER={value!r}: no such user; give a uid (default "
                    f"{PARSER_USER}, nobody), a user name, or {CURRENT_USER!r}"
                ) from None
            uid, gid = entry.pw_uid, entry.pw_gid
        if uid == 0:
            raise SandboxError(
                f"CRASHCART_PARSER_USER={value!r}: the parser must not run as root (it reads "
                "untrusted memory images with C code)"
            )
        if os.geteuid() != 0:
            raise SandboxError(
                f"the supervisor runs as uid {os.geteuid()}, not root: it cannot start the "
                f"parser as uid {uid}, and will not start it with the job's credentials in "
                f"reach (set CRASHCART_PARSER_USER={CURRENT_USER} only outside AWS)"
            )
        return cls(uid, gid)


@dataclass(frozen=True)
class Workspace:
    """``in/`` (the supervisor writes, the parser reads) and ``out/`` (the parser writes)."""

    root: Path
    inputs: Path
    output: Path

    @classmethod
    def create(cls, root: Path, user: ParserUser) -> Workspace:
        root.chmod(0o711)  # the parser may pass through, not list
        inputs = root / "in"
        output = root / "out"
        inputs.mkdir(mode=0o755)
        output.mkdir(mode=0o700)
        if user.isolated:
            assert user.uid is not None and user.gid is not None
            os.chown(output, user.uid, user.gid)
        return cls(root, inputs, output)

    def seal_inputs(self) -> None:
        """The downloaded files, read-only for everyone (the parser cannot change them)."""
        for path in self.inputs.iterdir():
            path.chmod(0o444)


def parser_environment(output: Path) -> dict[str, str]:
    """The parser's whole environment: built from nothing, never copied from the job's.

    The job's environment holds ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` (the task role's
    credentials), the bucket, table and topic names and the ECS metadata endpoint: none of
    it is passed on.
    """
    return {
        "PATH": SAFE_PATH,
        "PYTHONPATH": str(Path(crashcart.__file__).resolve().parent.parent),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "HOME": str(output),
        "TMPDIR": str(output),
        "LANG": "C.UTF-8",
    }


def _limiter(limits: Limits) -> Callable[[], None]:
    """The function the child runs after it became the parser's user, before exec."""
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    pairs = [
        (resource.RLIMIT_AS, limits.address_space_bytes),
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_FSIZE, limits.file_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_NPROC, limits.processes),
        (resource.RLIMIT_CORE, 0),
    ]

    def apply() -> None:
        for which, value in pairs:
            resource.setrlimit(which, (value, value))
        if prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")

    return apply


@dataclass(frozen=True)
class ParserRun:
    """How the parser ended: its exit status (None: stopped by the supervisor, ``stopped``
    says why: ``"time"`` or ``"disk"``), how long it ran, the tail of its output."""

    returncode: int | None
    seconds: float
    log_tail: str
    stopped: str | None = None


def run_parser(
    argv: Sequence[str],
    *,
    workspace: Workspace,
    user: ParserUser,
    limits: Limits,
    log_bytes: int = 4096,
) -> ParserRun:
    """Run ``argv`` (``python -m crashcart.triage.parser ...`` in the job) as the parser.

    Its stdout and stderr go to a file only the supervisor can open (the parser gets the
    descriptor, bounded by ``RLIMIT_FSIZE``); the last ``log_bytes`` are returned.
    """
    started = time.monotonic()
    with tempfile.TemporaryFile(dir=workspace.root) as log:
        try:
            process = _start(argv, log, workspace, user, limits)
        except PermissionError as error:
            raise SandboxError(
                f"the parser's user (uid {user.uid}) may not run {argv[0]} ({error.strerror}): "
                "the interpreter and crashcart must be readable by every user"
            ) from None
        code, stopped = _watch(process, workspace.output, limits, started)
        _kill_group(process)  # anything it left running in its session
        if user.isolated:
            reap(user)  # and anything that left the session (setsid, double fork)
        log.seek(0, os.SEEK_END)
        size = log.tell()
        log.seek(max(0, size - log_bytes))
        tail = log.read().decode("utf-8", errors="replace")
    return ParserRun(code, round(time.monotonic() - started, 3), tail, stopped)


def _watch(
    process: subprocess.Popen[bytes], output: Path, limits: Limits, started: float
) -> tuple[int | None, str | None]:
    """Wait for the parser; stop it at the wall clock or when ``out/`` grows past its bound."""
    while True:
        left = limits.wall_seconds - (time.monotonic() - started)
        if left <= 0:
            _kill_group(process)
            return None, "time"
        try:
            return process.wait(timeout=min(WATCH_SECONDS, left)), None
        except subprocess.TimeoutExpired:
            pass
        if folder_bytes(output, limit=limits.output_bytes) > limits.output_bytes:
            _kill_group(process)
            return None, "disk"


def folder_bytes(folder: Path, *, limit: int, max_entries: int = 100_000) -> int:
    """Bytes under ``folder`` (not following links), counted until past ``limit``; a folder
    with more than ``max_entries`` entries counts as past it."""
    total = 0
    entries = 0
    pending = [str(folder)]
    while pending:
        try:
            with os.scandir(pending.pop()) as listing:
                for entry in listing:
                    entries += 1
                    if entries > max_entries:
                        return limit + 1
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                    else:
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
                    if total > limit:
                        return total
        except OSError:
            continue
    return total


def _start(
    argv: Sequence[str], log: Any, workspace: Workspace, user: ParserUser, limits: Limits
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        cwd=str(workspace.output),
        env=parser_environment(workspace.output),
        close_fds=True,
        start_new_session=True,
        umask=0o077,
        user=user.uid,
        group=user.gid,
        extra_groups=[] if user.isolated else None,
        preexec_fn=_limiter(limits),
    )


def reap(user: ParserUser) -> None:
    """Kill every process of the parser's user: ``kill(-1, SIGKILL)`` sent as that user
    reaches all of its processes (one that left the parser's session included) and none of
    root's. The uid is the parser's alone in the container. A forked child does it (no exec:
    the parser's user need not be able to run anything)."""
    assert user.uid is not None and user.gid is not None
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child, measured by the e2e test
        try:
            os.setgroups([])
            os.setgid(user.gid)
            os.setuid(user.uid)
            os.kill(-1, signal.SIGKILL)
        except BaseException:  # noqa: S110 - nothing to report from here
            pass
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def read_report_file(path: Path, user: ParserUser, limit: int = MAX_REPORT_BYTES) -> bytes:
    """The parser's report, read as root without following what the parser may have planted.

    ``O_NOFOLLOW`` (a symlink to /proc/1/environ is refused), a regular file (not a FIFO
    that blocks), owned by the parser's user with one link (not a hard link to a file of
    root's), at most ``limit`` bytes.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ValueError("the parser wrote no report") from None
    except OSError as error:
        raise ValueError(
            f"the parser's report cannot be opened safely ({error.strerror})"
        ) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("the parser's report is not a regular file")
        if user.isolated and (info.st_uid != user.uid or info.st_nlink != 1):
            raise ValueError("the parser's report is not a file of the parser's own")
        if info.st_size > limit:
            raise ValueError(f"the parser's report has {info.st_size} bytes, over {limit}")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"the parser's report is over {limit} bytes")
    return data


def parser_command(*args: str) -> list[str]:
    """The real parser: this interpreter, isolated from user site-packages."""
    return [sys.executable, "-s", "-m", "crashcart.triage.parser", *args]
