"""The full-report triage job: one shipped crash dump -> report.md + report.json, incident updated.

Runs as an ECS Fargate task (``DumpTriageJob``), started by EventBridge when a dump's
``metadata.json`` is written (the agent writes it last, so the dump is complete). The task's
environment names the dump and where things go:

- ``CRASHCART_METADATA_KEY``: ``dumps/<role id>:<instance id>/<dump id>/metadata.json``, as
  the S3 event names it (URL-decoded once, then checked);
- ``CRASHCART_DUMP_BUCKET``: the crash-dump bucket (reports go to its ``reports/`` prefix);
- ``CRASHCART_SYMBOL_BUCKET``: the debug-symbol store (``symbols/<build id>/vmlinux``),
  optional: without it (or without symbols for the dump's build id) the report is made from
  the dump's own kernel log, and says what is missing;
- ``CRASHCART_TABLE_NAME``, ``CRASHCART_TOPIC_ARN``: the incident table and topic;
- ``CRASHCART_WORK_DIR``: scratch space for the dump and the vmlinux (the task's ephemeral
  storage). Default: the system's temporary directory.

- ``CRASHCART_PARSER_USER``, ``CRASHCART_TASK_MEMORY_MIB``: who the parser runs as and
  the task's memory, which sizes the parser's limits (:mod:`crashcart.triage.sandbox`).

Two parts (``docs/threat-model.md``). The **supervisor** (this module, root in the
container, holding the task role's credentials) checks the key -> reads and checks
metadata.json -> makes sure the dump (and the symbols) fit on disk -> downloads exactly that
vmcore (checksum verified) and dmesg, and the debug vmlinux of its build id -> starts the
**parser** (:mod:`crashcart.triage.parser`: drgn, as uid 65534, no credentials, resource
limits, :mod:`crashcart.triage.sandbox`) -> reads its report as untrusted data
(:mod:`crashcart.triage.report_check`) -> writes the report under
``reports/<owner>/<dump id>/`` -> adds its keys to the incident that links the dump (waiting
for the dump-arrival function to link it) -> notifies. A vmlinux that does not match the
dump is dropped by the parser, not fatal.

Exit codes: 0 a report was written; 2 bad input (the key, the metadata, the dump itself, a
parser that failed, overran its limits or wrote no valid report), the reason logged and,
where the instance is known, recorded on its incident and notified; 3 an unexpected failure
(AWS errors after retries, a parser that could not be started). The dump is never modified
or deleted.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crashcart.runtime import environment as variables
from crashcart.runtime import untrusted
from crashcart.runtime.dumps import DumpKey
from crashcart.runtime.incident import iso
from crashcart.symbol_layout import symbol_key
from crashcart.triage import sandbox
from crashcart.triage.job_aws import Adapter
from crashcart.triage.job_input import (
    DISK_HEADROOM_BYTES,
    MAX_METADATA_BYTES,
    BadInputError,
    DumpMetadata,
    Outcome,
    Settings,
    ShippedFile,
    check_room,
    parse_key,
    parse_metadata,
    sha256_of,
)
from crashcart.triage.report import Report, render_markdown, to_json
from crashcart.triage.report_check import BadReportError, parse_parser_output

__all__ = [
    "DISK_HEADROOM_BYTES",
    "MAX_METADATA_BYTES",
    "Adapter",
    "BadInputError",
    "DumpMetadata",
    "Outcome",
    "Settings",
    "ShippedFile",
    "check_room",
    "link_incident",
    "main",
    "parse_key",
    "parse_metadata",
    "process",
    "record_failure",
]

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_FAILURE = 3

FRAMES_IN_NOTIFICATION = 12
#: The most an incident's ``report_summary`` / ``report_error`` quotes.
SUMMARY_CHARS = 400
ERROR_CHARS = 1000

ParserCommand = Callable[..., Sequence[str]]


def find_vmlinux(
    adapter: Adapter, metadata: DumpMetadata, scratch: Path, outcome: Outcome
) -> Path | None:
    """Download the debug vmlinux of the dump's build id from the symbol store, if it has one."""
    bucket = adapter.settings.symbol_bucket
    if bucket is None:
        outcome.notes.append("no symbol store configured: report from the dump's kernel log")
        return None
    if metadata.build_id is None:
        outcome.notes.append("metadata.json has no build_id: the symbol store cannot be asked")
        return None
    key = symbol_key(metadata.build_id)
    size = adapter.size_of(bucket, key)
    if size is None:
        outcome.notes.append(
            f"no debug symbols for build id {metadata.build_id} "
            f"({metadata.kernel_release or 'unknown release'}) in s3://{bucket}/symbols/: "
            "was this AMI baked with debug_symbols?"
        )
        return None
    check_room(size, scratch)
    target = scratch / "vmlinux"
    adapter.download(bucket, key, target)
    outcome.vmlinux = f"s3://{bucket}/{key}"
    return target


def fetch_dump(adapter: Adapter, dump: DumpKey, metadata: DumpMetadata, scratch: Path) -> Path:
    """Download the vmcore (and the dmesg beside it); verify sizes and the vmcore's checksum.

    The sizes metadata.json claims are checked against what S3 holds before anything is
    downloaded: a dump that claims less than it has would otherwise fill the scratch disk.
    """
    if metadata.vmcore is None:
        raise BadInputError(f"{dump.key}: no vmcore was shipped (only a kernel log)")
    bucket = adapter.settings.dump_bucket
    shipped = [("vmcore", metadata.vmcore, scratch / "vmcore")]
    if metadata.dmesg is not None:
        shipped.append(("dmesg.txt", metadata.dmesg, scratch / "dmesg"))
    for name, claimed, _target in shipped:
        held = adapter.size_of(bucket, dump.prefix + name)
        if held is None:
            raise BadInputError(f"{dump.prefix}{name} is named in metadata.json but not in S3")
        if held != claimed.size:
            raise BadInputError(
                f"{dump.prefix}{name}: metadata.json claims {claimed.size} bytes, S3 holds "
                f"{held}: the upload is incomplete or was replaced"
            )
    check_room(sum(claimed.size for _name, claimed, _target in shipped), scratch)
    for name, _claimed, target in shipped:
        adapter.download(bucket, dump.prefix + name, target)
    vmcore = scratch / "vmcore"
    if metadata.vmcore.sha256 and sha256_of(vmcore) != metadata.vmcore.sha256:
        raise BadInputError(
            f"{dump.prefix}vmcore does not match the sha256 in its metadata.json: the upload "
            "is damaged or was replaced"
        )
    return vmcore


def run_sandboxed(
    settings: Settings,
    workspace: sandbox.Workspace,
    user: sandbox.ParserUser,
    vmcore: Path,
    vmlinux: Path | None,
    outcome: Outcome,
    *,
    started: float,
    command: ParserCommand = sandbox.parser_command,
) -> Report:
    """Run the parser on the downloaded files; its report, checked as untrusted data."""
    inputs = [vmcore, *([vmlinux] if vmlinux else [])]
    remaining = (
        settings.timeout_seconds - (time.monotonic() - started)
        if settings.timeout_seconds
        else None
    )
    limits = sandbox.limits_for(
        input_bytes=sum(path.stat().st_size for path in inputs),
        memory_mib=settings.task_memory_mib,
        deadline_seconds=remaining,
    )
    report_path = workspace.output / "report.json"
    args = ["--vmcore", str(vmcore), "--report", str(report_path)]
    if vmlinux is not None:
        args += ["--vmlinux", str(vmlinux)]
    dmesg = workspace.inputs / "dmesg"
    if dmesg.is_file():
        args += ["--dmesg", str(dmesg)]
    workspace.seal_inputs()
    run = sandbox.run_parser(command(*args), workspace=workspace, user=user, limits=limits)
    if not user.isolated:
        outcome.notes.append(
            "the parser ran as the job's own user (CRASHCART_PARSER_USER=current): not isolated"
        )
    if run.stopped == "time":
        raise BadInputError(
            f"the parser did not finish within {limits.wall_seconds} s (its limit for a dump "
            "this size) and was stopped: a crafted or damaged dump?"
        )
    if run.stopped == "disk":
        raise BadInputError(
            f"the parser wrote more than {limits.output_bytes // sandbox.MIB} MiB and was "
            "stopped: a crafted or damaged dump?"
        )
    try:
        report, vmlinux_used, notes, error = parse_parser_output(
            sandbox.read_report_file(report_path, user)
        )
    except (BadReportError, ValueError) as failure:
        raise BadInputError(
            f"{failure} (parser exit status {run.returncode}; its last words: "
            f"{untrusted.line(run.log_tail[-300:], 300)})"
        ) from None
    if error is not None or report is None:
        raise BadInputError(error or "the parser gave no report")
    outcome.notes.extend(notes)
    if not vmlinux_used:
        outcome.vmlinux = None
    return report


def summary_line(report: Report) -> str:
    """One line for the incident and the subject (the report's fields are already checked)."""
    message = report.panic_message or "no panic message found"
    return untrusted.line(f"{report.reason}: {message}", SUMMARY_CHARS)


def notification(dump: DumpKey, report: Report, outcome: Outcome, bucket: str) -> str:
    """The notification body: what crashed, where, and where the report is."""
    lines = [
        f"crashcart: full triage report for {dump.instance_id}",
        "",
        f"kernel:   {report.kernel_release or '?'} (build id {report.build_id or '?'})",
        f"crashed:  {report.crash_time or '?'}",
        f"reason:   {report.reason}",
        f"panic:    {report.panic_message or '(none found)'}",
        f"symbols:  {outcome.vmlinux or 'none: stacks are the ones the kernel printed'}",
        f"incident: {outcome.incident or 'none links this dump'}",
    ]
    if report.crashing_cpu is not None:
        stack = report.crashing_cpu
        lines += ["", f"crashing CPU {stack.cpu} ({stack.comm or '?'}, pid {stack.pid}):"]
        lines += [f"  {frame}" for frame in stack.frames[:FRAMES_IN_NOTIFICATION]]
    if report.blocked_tasks:
        lines += ["", f"tasks in D state: {len(report.blocked_tasks)}"]
    lines += ["", "report:", *[f"  s3://{bucket}/{key}" for key in outcome.report_keys]]
    if outcome.notes:
        lines += ["", "notes:", *[f"  - {note}" for note in outcome.notes]]
    return "\n".join(lines)


def link_incident(
    adapter: Adapter,
    dump: DumpKey,
    values: dict[str, Any],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """Record ``values`` on the incident linking the dump; wait for the link to appear.

    The dump-arrival function links the dump within seconds of the same event; the job has
    just spent longer than that downloading. Polls for ``link_wait_seconds`` at most.
    """
    from botocore.exceptions import ClientError

    deadline = time.monotonic() + adapter.settings.link_wait_seconds
    delay = 2.0
    while True:
        sk = adapter.incident_linking(dump)
        if sk is not None:
            try:
                adapter.record(dump, sk, values)
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
            else:
                return sk
        if time.monotonic() + delay > deadline:
            return None
        sleep(delay)
        delay = min(delay * 2, 30.0)


def process(
    adapter: Adapter,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
    command: ParserCommand = sandbox.parser_command,
) -> Outcome:
    """Triage the dump the settings name; raises BadInputError for a dump it cannot triage.

    ``command`` builds the parser's command line from its arguments (the real parser unless
    a test substitutes one); it always runs through :func:`crashcart.triage.sandbox.run_parser`.
    """
    started = time.monotonic()
    settings = adapter.settings
    user = sandbox.ParserUser.resolve(settings.parser_user)
    dump = parse_key(settings.metadata_key)
    outcome = Outcome("reported", dump.key, dump.instance_id)
    raw = adapter.read_small(settings.dump_bucket, dump.key, MAX_METADATA_BYTES)
    if raw is None:
        raise BadInputError(
            f"{dump.key} does not exist in s3://{settings.dump_bucket} (deleted, or a "
            "replayed event)"
        )
    metadata = parse_metadata(raw, dump)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="crashcart-triage-", dir=settings.work_dir) as tmp:
        workspace = sandbox.Workspace.create(Path(tmp), user)
        vmcore = fetch_dump(adapter, dump, metadata, workspace.inputs)
        vmlinux = find_vmlinux(adapter, metadata, workspace.inputs, outcome)
        report = run_sandboxed(
            settings, workspace, user, vmcore, vmlinux, outcome, started=started, command=command
        )
    report.vmcore = f"s3://{settings.dump_bucket}/{dump.prefix}vmcore"
    report.vmlinux = outcome.vmlinux
    report.missing.extend(outcome.notes)
    markdown_key = dump.report_prefix + "report.md"
    json_key = dump.report_prefix + "report.json"
    adapter.put_report(json_key, to_json(report) + "\n", "application/json")
    adapter.put_report(markdown_key, render_markdown(report) + "\n", "text/markdown")
    outcome.report_keys = [markdown_key, json_key]
    outcome.reason = summary_line(report)
    outcome.incident = link_incident(
        adapter,
        dump,
        {
            "report_keys": outcome.report_keys,
            "report_summary": outcome.reason,
            "report_symbols": outcome.vmlinux or "none",
            "triaged_at": iso(now()),
        },
        sleep=sleep,
    )
    if outcome.incident is None:
        outcome.notes.append(
            f"no incident links {dump.key} after {settings.link_wait_seconds:.0f} s: the "
            "report is in S3 only (is the dump-arrival function deployed?)"
        )
    adapter.notify(
        f"crashcart: report for {dump.instance_id}: {outcome.reason}",
        notification(dump, report, outcome, settings.dump_bucket),
    )
    return outcome


def record_failure(adapter: Adapter, key: str, reason: str) -> Outcome:
    """A dump that cannot be triaged: say so on its incident (if any) and to on-call."""
    reason = untrusted.line(reason, ERROR_CHARS)
    outcome = Outcome("rejected", key, reason=reason)
    try:
        dump = parse_key(key)
    except BadInputError:
        return outcome  # no instance to tell about; the log line carries the reason
    outcome.instance_id = dump.instance_id
    sk = adapter.incident_linking(dump)
    if sk is not None:
        from botocore.exceptions import ClientError

        try:
            adapter.record(dump, sk, {"report_error": reason})
            outcome.incident = sk
        except ClientError as error:
            outcome.notes.append(f"incident not updated: {error}")
    adapter.notify(
        f"crashcart: no report for {dump.instance_id}: triage failed",
        "\n".join(
            [
                f"crashcart: the crash dump s3://{adapter.settings.dump_bucket}/{dump.prefix} "
                "could not be triaged.",
                "",
                f"reason:   {reason}",
                f"incident: {outcome.incident or 'none links this dump'}",
                "",
                "The dump itself is untouched. Triage it by hand: crashcart triage <vmcore> "
                "--vmlinux <debug vmlinux>",
            ]
        ),
    )
    return outcome


def log(outcome: Outcome) -> None:
    print(json.dumps({"crashcart": "triage-job", **outcome.__dict__}), flush=True)


class JobTimeoutError(Exception):
    """The job ran longer than CRASHCART_TIMEOUT_SECONDS."""


def _arm_timeout(env: dict[str, str] | os._Environ[str]) -> None:
    raw = env.get(variables.TIMEOUT_SECONDS)
    if not raw:
        return
    seconds = int(raw)

    def expired(signum: int, frame: object) -> None:
        raise JobTimeoutError(f"triage took longer than {seconds} s")

    signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)


def main(env: dict[str, str] | None = None) -> int:
    """Run the job for the environment's dump; the exit code."""
    import boto3

    environ = os.environ if env is None else env
    key = environ.get(variables.METADATA_KEY, "")
    try:
        settings = Settings.from_env(env)
        _arm_timeout(environ)
    except (BadInputError, ValueError) as error:
        log(Outcome("rejected", key, reason=str(error)))
        return EXIT_BAD_INPUT
    adapter = Adapter(settings, boto3.client("s3"), boto3.client("dynamodb"), boto3.client("sns"))
    try:
        log(process(adapter))
        return EXIT_OK
    except BadInputError as error:
        try:
            log(record_failure(adapter, key, str(error)))
        except Exception as failure:  # the reason still reaches the log
            log(Outcome("rejected", key, reason=str(error), notes=[f"not recorded: {failure}"]))
        return EXIT_BAD_INPUT
    except sandbox.SandboxError as error:  # a deployment fault: the parser never started
        log(Outcome("failed", key, reason=f"parser not started: {error}"))
        return EXIT_FAILURE
    except Exception as error:  # one line in the log, never a traceback
        log(Outcome("failed", key, reason=f"{type(error).__name__}: {error}"))
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
