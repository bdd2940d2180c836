"""Run drill scenarios against the prepared image and report what happened, with timings.

One run (:func:`run_scenario`) starts in one of two ways:

- **cold boot** (every negative control; a positive scenario unless ``restore``): a fresh
  copy of the prepared disk; the scenario's changes (negative controls), the agent's settings
  and the queue of the component's ``validate`` steps written into it; boot with the command
  line computed from the guest's boot configuration; the runner runs the validate phase: a
  failure stops the run here with the failing checks;
- **restored** (a positive scenario with ``restore``): a fresh copy of the saved guest's disk
  and its saved state (:mod:`crashcart.drill.prepare`): QEMU loads the booted, validated guest
  and the drill sends it a command on its third serial port: the clock, the action and the
  agent's settings; the guest runs the agent as at boot and the validate phase again.

Then, either way:

3. the drill action (idle, or hang every CPU with interrupts off and watch the guest's
   heartbeat stop);
4. the real remediation function handles a status-check ALARM for the guest; its
   SendDiagnosticInterrupt is answered by a QMP ``inject-nmi``;
5. QEMU ends when the guest reboots (``-no-reboot``): kdump-tools rebooted after saving the
   dump, or the kernel rebooted after ``kernel.panic`` seconds without a capture kernel. The
   drill reads /var/crash from the disk: a dump folder, its dmesg with
   "NMI: Not continuing", the dump's size;
6. boot again: the guest comes back (and, when the image carries the crashcart agent and the
   guest can run it, the agent ships the dump to the local S3);
7. triage of the vmcore when ``crashcart.triage`` and the debug vmlinux are available.

The pieces after the start live beside this module: the drill action, interrupt and dump
(:mod:`crashcart.drill.nmi`), the reboot, upload and triage
(:mod:`crashcart.drill.after_ready`) and the result's record (:mod:`crashcart.drill.results`).
Their names used before the split are also importable from here.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crashcart.drill import diskfs
from crashcart.drill.after_ready import BOOT_TIMEOUT
from crashcart.drill.after_ready import after_ready as _after_ready
from crashcart.drill.after_ready import forced_nmi as _forced_nmi
from crashcart.drill.boot import start_guest, step_failed
from crashcart.drill.image import GUEST_STATE, guest_files
from crashcart.drill.nmi import DUMP_TIMEOUT, NMI_MARKER, SURVIVAL_SECONDS
from crashcart.drill.prepare import (
    VM_OPTIONS,
    BootLog,
    PreparedImage,
    Snapshot,
    StepFailedError,
    boot_until_ready,
    queue_text,
)
from crashcart.drill.qemu import Event, GuestError, Vm
from crashcart.drill.results import DrillError, ScenarioResult, Stage
from crashcart.drill.results import finish as _finish
from crashcart.drill.results import last_cmdline as _last_cmdline
from crashcart.drill.results import run_dir as _run_dir
from crashcart.drill.results import validate_failures as _validate_failures
from crashcart.drill.scenarios import SCENARIOS, Scenario

#: How long QEMU may take to load a saved guest (about 1 GiB of RAM, mostly zero pages).
RESTORE_TIMEOUT = 300.0


def run_scenario(
    prepared: PreparedImage,
    scenario: Scenario,
    *,
    use_remediation: bool = True,
    force: bool = False,
    moto_url: str | None = None,
    triage: bool = True,
    restore: bool = False,
    progress: Callable[[str], None] = print,
) -> ScenarioResult:
    """Run one scenario on a fresh copy of the prepared image.

    ``restore``: a positive scenario starts from the prepared image's saved guest (booted,
    validated, waiting for a command) instead of booting; it re-runs the validate phase
    before its action. Negative controls always boot cold: their changes act at boot.
    ``force``: go on to the NMI even when validation fails (negative controls use it to show
    that the dump really does not come, and why).
    """
    workdir = _run_dir(scenario.name)
    result = ScenarioResult(
        scenario=scenario.name,
        description=scenario.description,
        positive=scenario.positive,
        passed=False,
        workdir=str(workdir),
    )
    progress(f"drill: scenario {scenario.name}: {scenario.description}")
    disk = workdir / "disk.img"
    started = time.monotonic()
    snapshot = prepared.snapshot if restore and scenario.positive else None
    if restore and scenario.positive and snapshot is None:
        progress("  no saved guest for this image and QEMU: booting cold")
    # The disk is copied while the account is set up (a copy of a few hundred MiB, and a
    # dozen calls to moto: one need not wait for the other).
    source = snapshot.disk if snapshot is not None else prepared.disk
    copying = subprocess.Popen(
        ["cp", "--sparse=always", "--reflink=auto", str(source), str(disk)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        account, forwards, with_agent = _account(prepared, result, use_remediation, moto_url)
    finally:
        _, copy_error = copying.communicate()
    if copying.returncode != 0:
        raise DrillError(f"copying {source} failed: {copy_error.decode(errors='replace')}")
    if use_remediation and account is None:
        return _finish(result, scenario, started)
    agent_settings = "-"
    if snapshot is not None:
        # The saved guest's disk, exactly as it was when it was saved: nothing may touch it
        # before the guest's own memory is back (the guest applies this run's settings).
        editor = None
        result.started_from = f"restored: the saved guest {snapshot.vm_key} of {prepared.key}"
        if with_agent:
            from crashcart.drill import agent

            agent_settings = agent.command_settings(account)
    else:
        diskfs.recover(disk)
        editor = diskfs.DiskEditor(disk)
        result.changes = scenario.modify(editor, disk)
        result.started_from = f"cold boot of {prepared.key}"
        if with_agent:
            from crashcart.drill import agent

            agent.configure(editor, disk, account)
    vm_options: dict[str, Any] = {**VM_OPTIONS, "forwards": forwards}
    log = BootLog.empty()
    boot_started = time.monotonic()
    if snapshot is not None:
        try:
            vm = _restore(
                snapshot,
                workdir,
                disk,
                vm_options,
                log=log,
                command=f"go {int(time.time())} {scenario.action} {agent_settings}",
                result=result,
                progress=progress,
            )
        except GuestError as error:
            return _finish(result.fail("restore", str(error)), scenario, started)
        except StepFailedError as error:
            result.validate_output = [line for r in log.steps.values() for line in r.output]
            reason = f"{error}: " + "; ".join(_validate_failures(log) or error.output[-5:])
            return _finish(result.fail("validate", reason), scenario, started)
        result.cmdline = snapshot.cmdline
        result.timings["restore_to_ready_s"] = round(time.monotonic() - boot_started, 1)
        ready_what = f"restored guest ready after {result.timings['restore_to_ready_s']}s"
    else:
        assert editor is not None
        # The validate phase runs on every drill boot. The test phase is not run: its first
        # step repeats the validate script and its other step tags the AMI through IMDS +
        # EC2, which exist only on EC2 (the in-account drill runs it).
        editor.write(f"{GUEST_STATE}/queue", queue_text(prepared.document.steps("validate")))
        for path, (content, mode) in guest_files().items():  # the runner of this drill version
            editor.write(path, content, mode=mode)
        editor.write(f"{GUEST_STATE}/action", f"{scenario.action}\n")
        editor.apply()
        for change in result.changes:
            progress(f"  changed: {change}")
        try:
            vm = boot_until_ready(
                disk,
                workdir,
                label="drill",
                timeout=BOOT_TIMEOUT,
                log=log,
                vm_options=vm_options,
                max_boots=1,
                progress=progress,
            )
        except GuestError as error:
            result.cmdline = _last_cmdline(workdir)
            return _finish(result.fail("boot", str(error)), scenario, started)
        except StepFailedError as error:
            result.validate_output = [line for r in log.steps.values() for line in r.output]
            failures = _validate_failures(log) or error.output[-5:]
            result.cmdline = _last_cmdline(workdir)
            reason = f"{error}: " + "; ".join(failures)
            progress(f"  validate FAILED: {reason}")
            if not force:
                result.fail("validate", reason)
                return _finish(result, scenario, started)
            result.stage("validate", False, reason + " (forced on to the NMI)")
            # the runner stopped at the failed step; boot once more and inject anyway
            return _forced_nmi(result, scenario, workdir, disk, vm_options, started, progress)
        result.cmdline = _last_cmdline(workdir)
        result.timings["boot_to_ready_s"] = round(time.monotonic() - boot_started, 1)
        ready_what = f"ready after {result.timings['boot_to_ready_s']}s"
    result.validate_output = [line for r in log.steps.values() for line in r.output]
    result.stage(
        "validate",
        True,
        f"{len(log.steps)} component validate/test step(s) passed in the guest",
        time.monotonic() - boot_started,
    )
    progress(f"  {ready_what}; cmdline: {result.cmdline}")
    try:
        return _after_ready(
            result,
            scenario,
            vm,
            workdir,
            disk,
            vm_options,
            started,
            account=account,
            triage=triage,
            release=prepared.kernel_release,
            progress=progress,
        )
    finally:
        vm.stop()


def _account(
    prepared: PreparedImage,
    result: ScenarioResult,
    use_remediation: bool,
    moto_url: str | None,
) -> tuple[Any, tuple[Any, ...], bool]:
    """The drill's "AWS account" in moto for this run (None without the remediation, or when
    the function is missing: then ``result`` says why), the guest's forwards to it, and
    whether the image carries the crashcart agent."""
    if not use_remediation:
        return None, (), False
    from crashcart.drill import agent, remediation

    if not remediation.available():
        result.fail(
            "remediation",
            "the remediation function (crashcart/functions/remediation/handler.py) is "
            "missing; run with --direct-nmi to inject the NMI without it",
        )
        return None, (), False
    assert moto_url is not None
    with_agent = agent.has_agent(prepared.document_text)
    # Without the agent in the image, the drill stands in for its attestation.
    stand_in = None if with_agent else f"armed {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"
    account = remediation.DrillAccount(url=moto_url).setup(attestation=stand_in)
    if not with_agent:
        result.remediation["agent"] = "not in the image: attestation tag set by the drill"
        return account, (), False
    result.remediation["agent"] = "in the image: attests at boot, ships after the dump"
    return account, (agent.forward(int(moto_url.rsplit(":", 1)[1])),), True


def _restore(
    snapshot: Snapshot,
    workdir: Path,
    disk: Path,
    vm_options: dict[str, Any],
    *,
    log: BootLog,
    command: str,
    result: ScenarioResult,
    progress: Callable[[str], None],
) -> Vm:
    """Start QEMU on the saved guest's state, hand the guest this run's command and wait
    until it ran the validate phase again (``ready``). Returns the running VM."""
    started = time.monotonic()
    vm = start_guest(
        snapshot,
        disk=disk,
        workdir=workdir,
        label="restored",
        vm_options=vm_options,
        incoming=snapshot.state,
    )
    try:
        vm.wait_running(RESTORE_TIMEOUT)
        result.timings["restore_s"] = round(time.monotonic() - started, 1)
        progress(f"  restored the saved guest in {result.timings['restore_s']}s")
        vm.send_command(command)

        def show(event: Event) -> None:
            log.feed(event)
            if event.name in ("restored", "agent", "step-start", "step-end", "failed", "ready"):
                progress(f"    guest: {event.line}")

        event = vm.wait_for(
            lambda e: e.name in ("ready", "failed"),
            timeout=BOOT_TIMEOUT,
            what="the restored guest to validate again",
            on_event=show,
        )
        agent_runs = [e for e in vm.events if e.name == "agent"]
        if agent_runs:
            result.remediation["agent_at_restore"] = f"exit {agent_runs[-1].words[0]}"
        if event is None:
            raise GuestError(
                f"QEMU exited (code {vm.exit_code}) in the restored guest; console: "
                f"{vm.console_log}"
            )
        if event.name == "failed":
            raise step_failed(log)
    except BaseException:
        vm.stop()
        raise
    return vm


#: This module's names and, as before the split, those of the modules it was split into.
__all__ = [
    "BOOT_TIMEOUT",
    "DUMP_TIMEOUT",
    "NMI_MARKER",
    "RESTORE_TIMEOUT",
    "SCENARIOS",
    "SURVIVAL_SECONDS",
    "DrillError",
    "Event",
    "ScenarioResult",
    "Stage",
    "run_scenario",
]
