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
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crashcart.drill import capture_memory, diskfs
from crashcart.drill.image import GUEST_STATE, guest_files
from crashcart.drill.paths import RUN_FREE_BYTES, cache_dir, prune_runs, require_free_space
from crashcart.drill.prepare import (
    VM_OPTIONS,
    BootLog,
    PreparedImage,
    Snapshot,
    StepFailedError,
    boot_until_ready,
    queue_text,
)
from crashcart.drill.qemu import GUEST_MEMORY_MIB, Event, GuestError, Vm
from crashcart.drill.scenarios import SCENARIOS, Scenario

NMI_MARKER = "NMI: Not continuing"
#: How long after the NMI a guest that still sends heartbeats counts as "survived the NMI".
SURVIVAL_SECONDS = 30.0
#: How long the drill waits for panic -> capture kernel -> dump -> reboot.
DUMP_TIMEOUT = 600.0
#: A drill boot (validate, the agent's attestation) and the boot after the dump.
#: Measured at load 13-15: 117 s to ready, 178 s back up after the dump; 600 s is over 3x that
#: (and a silent guest fails sooner, see :func:`crashcart.drill.qemu.silence_limit`).
BOOT_TIMEOUT = float(os.environ.get("CRASHCART_DRILL_RUN_BOOT_TIMEOUT", "600"))
#: How long QEMU may take to load a saved guest (about 1 GiB of RAM, mostly zero pages).
RESTORE_TIMEOUT = 300.0
_DUMP_ID_RE = re.compile(r"^\d{12}\Z")


@dataclass
class Stage:
    name: str
    ok: bool
    detail: str
    seconds: float | None = None


@dataclass
class ScenarioResult:
    scenario: str
    description: str
    positive: bool
    passed: bool
    #: Where a failing run stopped (validate / action / remediation / nmi / dump / reboot /
    #: upload / triage) and why; for negative controls, what they are expected to be.
    failed_stage: str | None = None
    reason: str = ""
    stages: list[Stage] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    cmdline: str = ""
    validate_output: list[str] = field(default_factory=list)
    remediation: dict[str, Any] = field(default_factory=dict)
    dump_dir: str | None = None
    dump_files: dict[str, int] = field(default_factory=dict)
    dmesg_excerpt: list[str] = field(default_factory=list)
    #: The capture kernel's memory against the reservation (crashcart.drill.capture_memory).
    capture_memory: dict[str, Any] = field(default_factory=dict)
    triage: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    workdir: str = ""
    #: "cold boot of <image>" or "restored: the saved guest <vm key> of <image>".
    started_from: str = ""

    def stage(self, name: str, ok: bool, detail: str, seconds: float | None = None) -> None:
        self.stages.append(Stage(name, ok, detail, None if seconds is None else round(seconds, 1)))

    def fail(self, stage: str, reason: str) -> ScenarioResult:
        self.failed_stage = stage
        self.reason = reason
        self.stage(stage, False, reason)
        return self

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class DrillError(RuntimeError):
    pass


def _run_dir(name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = cache_dir() / "runs" / f"{stamp}-{name}"
    path.mkdir(parents=True, exist_ok=True)
    prune_runs()  # the new folder counts as the newest
    require_free_space(RUN_FREE_BYTES, f"the drill run {path.name}")
    return path


def _validate_failures(log: BootLog) -> list[str]:
    lines: list[str] = []
    for result in log.steps.values():
        lines.extend(line for line in result.output if "FAIL" in line or "failed" in line)
    return lines


def _wait_unresponsive(vm: Vm, *, quiet_seconds: float, timeout: float) -> float:
    """Wait until the guest's heartbeat stopped for ``quiet_seconds``; returns the last beat."""
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    hanging_seen = False
    while time.monotonic() < deadline:
        for event in vm.poll_events():
            if event.name == "heartbeat":
                last = event.at
            elif event.name == "hanging":
                hanging_seen = True
                last = event.at
        if hanging_seen and time.monotonic() - last >= quiet_seconds:
            return last
        if not vm.running:
            raise GuestError(f"QEMU exited (code {vm.exit_code}) while the CPUs were hung")
        time.sleep(0.2)
    raise GuestError(
        f"the guest kept sending heartbeats {timeout:.0f}s after the hang module was loaded"
        if hanging_seen
        else "the guest never reported loading the hang module"
    )


def _interrupt(
    result: ScenarioResult,
    vm: Vm,
    *,
    account: Any,
    progress: Callable[[str], None],
) -> float | None:
    """Deliver the NMI (through the remediation function when possible); returns the time."""
    from crashcart.drill import agent, remediation

    if account is None:
        vm.inject_nmi()
        result.stage("interrupt", True, "NMI injected directly through QMP (--direct-nmi)")
        return time.monotonic()
    attested = agent.attestation(account)
    result.remediation["attestation"] = attested
    if attested is None:
        raise DrillError(
            "no kdump attestation tag on the drill's instance: the crashcart agent did not "
            "attest at boot (see the console log), so the remediation would refuse"
        )
    bridge = remediation.InterruptBridge(
        instance_id=account.instance_id,
        inject=vm.inject_nmi,
        impaired_since=datetime.now(UTC) - timedelta(minutes=3),
    )
    started = time.monotonic()
    outcome = remediation.run_remediation(account, bridge)
    incidents = account.incidents()
    result.remediation |= {
        "instance_id": account.instance_id,
        "outcome": outcome,
        "interrupt_calls": bridge.calls,
        "incident_states": [item.get("state") for item in incidents],
    }
    progress(f"  remediation: {outcome.get('outcome')}: {outcome.get('reason')}")
    if outcome.get("outcome") != "interrupted" or bridge.injected_at is None:
        raise DrillError(
            f"the remediation function did not interrupt the guest: {outcome} "
            f"(SendDiagnosticInterrupt calls: {bridge.calls})"
        )
    result.stage(
        "remediation",
        True,
        f"handler outcome interrupted ({outcome.get('reason')}); SendDiagnosticInterrupt "
        f"{account.instance_id} -> QMP inject-nmi; incident state "
        f"{', '.join(str(s) for s in result.remediation['incident_states'])}",
        time.monotonic() - started,
    )
    return bridge.injected_at


def _dump_evidence(vm: Vm) -> str:
    console = vm.console_text()
    keep = [
        line.strip()
        for line in console.splitlines()
        if any(
            marker in line
            for marker in (
                "Kernel panic",
                "NMI",
                "Rebooting in",
                "kdump",
                "crashkernel",
                "Dazed and confused",
            )
        )
    ]
    return " | ".join(keep[-6:])


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
    vm = Vm(
        disk=disk,
        kernel=snapshot.kernel,
        initrd=snapshot.initrd,
        cmdline=snapshot.cmdline,
        workdir=workdir,
        label="restored",
        incoming=snapshot.state,
        **vm_options,
    ).start()
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
            failed = log.failed
            assert failed is not None
            raise StepFailedError(
                f"component step {failed.key} failed (exit {failed.status})",
                step=failed.key,
                status=failed.status,
                output=failed.output,
            )
    except BaseException:
        vm.stop()
        raise
    return vm


def _last_cmdline(workdir: Path) -> str:
    commands = sorted(workdir.glob("*.qemu-command"), key=lambda p: p.stat().st_mtime)
    if not commands:
        return ""
    text = commands[-1].read_text()
    match = re.search(r"-append '([^']*)'", text)
    return match.group(1) if match else ""


def _forced_nmi(
    result: ScenarioResult,
    scenario: Scenario,
    workdir: Path,
    disk: Path,
    vm_options: dict[str, Any],
    started: float,
    progress: Callable[[str], None],
) -> ScenarioResult:
    from crashcart.drill.bootcfg import read_boot_config

    boot = read_boot_config(disk, workdir / "boot")
    vm = Vm(
        disk=disk,
        kernel=boot.kernel,
        initrd=boot.initrd,
        cmdline=boot.cmdline,
        workdir=workdir,
        label="forced",
        **vm_options,
    ).start()
    try:
        # the queue still holds the failed step: it fails again; then the guest is up
        vm.wait_for(
            lambda e: e.name in ("failed", "ready"), timeout=BOOT_TIMEOUT, what="the forced boot"
        )
        vm.inject_nmi()
        result.stage("interrupt", True, "NMI injected directly through QMP (forced run)")
        return _observe_nmi(
            result,
            scenario,
            vm,
            workdir,
            disk,
            time.monotonic(),
            started,
            progress=progress,
            expect_heartbeats=False,
        )
    finally:
        vm.stop()


def _after_ready(
    result: ScenarioResult,
    scenario: Scenario,
    vm: Vm,
    workdir: Path,
    disk: Path,
    vm_options: dict[str, Any],
    started: float,
    *,
    account: Any,
    triage: bool,
    progress: Callable[[str], None],
    release: str | None = None,
) -> ScenarioResult:
    action = vm.wait_for(lambda e: e.name == "action", timeout=60, what="the drill action")
    if action is None:
        return _finish(
            result.fail("action", "QEMU exited before the drill action"), scenario, started
        )
    if scenario.action == "hang":
        try:
            last = _wait_unresponsive(vm, quiet_seconds=5, timeout=120)
        except GuestError as error:
            return _finish(result.fail("action", str(error)), scenario, started)
        result.stage(
            "action",
            True,
            f"crashcart_hang.ko loaded: no heartbeat for {time.monotonic() - last:.0f}s "
            "(every CPU spinning with interrupts disabled)",
        )
        progress("  guest unresponsive: CPUs hung with interrupts disabled")
    else:
        vm.wait_for(lambda e: e.name == "heartbeat", timeout=30, what="a heartbeat")
        result.stage("action", True, "guest idle, heartbeat running")
    try:
        injected_at = _interrupt(result, vm, account=account, progress=progress)
    except DrillError as error:
        return _finish(result.fail("remediation", str(error)), scenario, started)
    assert injected_at is not None
    outcome = _observe_nmi(
        result,
        scenario,
        vm,
        workdir,
        disk,
        injected_at,
        started,
        progress=progress,
        expect_heartbeats=scenario.action != "hang",
    )
    if result.failed_stage is not None:
        return outcome
    # -- reboot: the guest comes back --------------------------------------------------
    # (as itself: no drill action this time, e.g. no second hang)
    diskfs.DiskEditor(disk).write(f"{GUEST_STATE}/action", "idle\n").apply()
    reboot_started = time.monotonic()
    log = BootLog.empty()
    try:
        again = boot_until_ready(
            disk,
            workdir,
            label="after-dump",
            timeout=BOOT_TIMEOUT,
            log=log,
            vm_options=vm_options,
            max_boots=1,
            progress=progress,
        )
    except (GuestError, StepFailedError) as error:
        return _finish(
            result.fail("reboot", f"the guest did not come back: {error}"), scenario, started
        )
    result.timings["reboot_to_ready_s"] = round(time.monotonic() - reboot_started, 1)
    result.stage(
        "reboot", True, "the guest booted again after the dump", time.monotonic() - reboot_started
    )
    again.stop()
    if account is not None and "in the image" in str(result.remediation.get("agent")):
        _check_upload(result, account, progress)
    if triage:
        _triage(result, progress, release)
    return _finish(result, scenario, started)


def _observe_nmi(
    result: ScenarioResult,
    scenario: Scenario,
    vm: Vm,
    workdir: Path,
    disk: Path,
    injected_at: float,
    started: float,
    *,
    progress: Callable[[str], None],
    expect_heartbeats: bool,
) -> ScenarioResult:
    """After the NMI: the guest must stop (panic) and QEMU exit at the reboot after the dump."""
    progress("  NMI injected; waiting for panic -> capture kernel -> dump -> reboot")
    deadline = injected_at + DUMP_TIMEOUT
    last_beat: float | None = None
    while vm.running and time.monotonic() < deadline:
        for event in vm.poll_events():
            if event.name == "heartbeat":
                last_beat = event.at
        if last_beat is not None and last_beat - injected_at > SURVIVAL_SECONDS:
            console = _dump_evidence(vm)
            vm.stop()
            return _finish(
                result.fail(
                    "nmi",
                    f"the guest survived the NMI: still running {SURVIVAL_SECONDS:.0f}s later "
                    f"(no panic; is kernel.unknown_nmi_panic 1?). Console: {console}",
                ),
                scenario,
                started,
            )
        time.sleep(0.2)
    if vm.running:
        vm.stop()
        return _finish(
            result.fail(
                "nmi", f"no reboot {DUMP_TIMEOUT:.0f}s after the NMI; console: {_dump_evidence(vm)}"
            ),
            scenario,
            started,
        )
    exited_at = time.monotonic()
    result.timings["nmi_to_reboot_s"] = round(exited_at - injected_at, 1)
    console = vm.console_text()
    saved = re.search(r"saved vmcore in (\S+)", console)
    # -- read the dump off the disk ------------------------------------------------------
    diskfs.recover(disk)
    crash = diskfs.copy_out(disk, "/var/crash", workdir / "guest")
    dump_dirs = sorted(
        p for p in (crash.iterdir() if crash else []) if p.is_dir() and _DUMP_ID_RE.match(p.name)
    )
    if not dump_dirs:
        return _finish(
            result.fail(
                "dump",
                "no dump: the guest rebooted without kdump saving anything in /var/crash "
                f"(capture kernel not loaded?). Console: {_dump_evidence(vm)}",
            ),
            scenario,
            started,
        )
    dump_dir = dump_dirs[-1]
    files = {p.name: p.stat().st_size for p in dump_dir.iterdir() if p.is_file()}
    result.dump_dir = str(dump_dir)
    result.dump_files = files
    vmcores = [name for name in files if name.startswith("dump.")]
    dmesgs = [name for name in files if name.startswith("dmesg.")]
    if not vmcores:
        return _finish(
            result.fail("dump", f"{dump_dir.name} has no vmcore: {sorted(files)}"),
            scenario,
            started,
        )
    result.timings["nmi_to_dump_saved_s"] = result.timings["nmi_to_reboot_s"]
    if saved:
        result.stage("dump", True, f"kdump-tools: saved vmcore in {saved.group(1)}")
    dump_bytes = files[vmcores[0]]
    result.timings["dump_mib"] = round(dump_bytes / 2**20, 1)
    result.timings["guest_ram_mib"] = GUEST_MEMORY_MIB
    result.timings["dump_to_ram_ratio"] = round(dump_bytes / (GUEST_MEMORY_MIB * 2**20), 4)
    dmesg_text = (dump_dir / dmesgs[0]).read_text(errors="replace") if dmesgs else ""
    hits = [line.strip() for line in dmesg_text.splitlines() if NMI_MARKER in line]
    result.dmesg_excerpt = [
        line.strip()
        for line in dmesg_text.splitlines()
        if any(k in line for k in ("NMI", "Kernel panic", "crashcart_hang", "CPU:"))
    ][:20]
    if not hits:
        return _finish(
            result.fail("dump", f"the dump's dmesg has no '{NMI_MARKER}' line"), scenario, started
        )
    result.capture_memory = capture_memory.analyse(
        dump_dir, dmesg_text=dmesg_text, cmdline=result.cmdline, ram_mib=GUEST_MEMORY_MIB
    )
    result.stage(
        "capture-memory",
        result.capture_memory["file"],
        capture_memory.summary(result.capture_memory),
    )
    result.stage(
        "panic",
        True,
        f"{hits[0]} (from {dump_dir.name}/{dmesgs[0]}); vmcore {dump_bytes / 2**20:.1f} MiB",
        exited_at - injected_at,
    )
    progress(f"  dump {dump_dir.name}: {dump_bytes / 2**20:.1f} MiB; dmesg: {hits[0]}")
    return result


def _check_upload(result: ScenarioResult, account: Any, progress: Callable[[str], None]) -> None:
    from crashcart.drill import agent

    assert result.dump_dir is not None
    dump_id = Path(result.dump_dir).name
    started = time.monotonic()
    objects = agent.wait_uploaded(account, dump_id, timeout=120)
    result.timings["upload_wait_s"] = round(time.monotonic() - started, 1)
    if not any(key.endswith("/metadata.json") for key in objects):
        result.fail(
            "upload",
            f"the crashcart agent did not ship dump {dump_id} to s3://{account.dump_bucket} "
            f"(objects: {sorted(objects)}); see the after-dump console log",
        )
        return
    names = sorted(key.rsplit("/", 1)[1] for key in objects)
    result.stage(
        "upload",
        True,
        f"the agent shipped {dump_id}: {', '.join(names)} "
        f"to s3://{account.dump_bucket}/{next(iter(objects)).rsplit('/', 2)[0]}/",
    )
    progress(f"  agent upload: {names}")


def _triage(
    result: ScenarioResult, progress: Callable[[str], None], release: str | None = None
) -> None:
    try:
        from crashcart.drill import triage_bridge
    except ImportError:
        result.stage("triage", True, "skipped: crashcart.drill.triage_bridge unavailable")
        return
    report = triage_bridge.triage_dump(result, release=release, progress=progress)
    if report is None:
        return
    result.triage = report


def _finish(result: ScenarioResult, scenario: Scenario, started: float) -> ScenarioResult:
    result.timings["scenario_s"] = round(time.monotonic() - started, 1)
    nmi_to_dump = result.timings.get("nmi_to_dump_saved_s")
    back = result.timings.get("reboot_to_ready_s")
    if nmi_to_dump is not None and back is not None:
        # what the scenario cost beyond its own NMI -> dump -> reboot (the budget: 30 s for
        # a restored one): copying the disk, the boot or restore, validation, the action,
        # the remediation, reading the dump, the upload check, triage
        result.timings["beyond_nmi_dump_reboot_s"] = round(
            result.timings["scenario_s"] - nmi_to_dump - back, 1
        )
    if scenario.positive:
        result.passed = result.failed_stage is None
    else:
        reason_ok = scenario.expect_reason in result.reason or (
            scenario.expect_nmi_reason
            and scenario.expect_nmi_reason in result.reason
            and result.failed_stage in ("nmi", "dump")
        )
        result.passed = result.failed_stage is not None and bool(reason_ok)
    workdir = Path(result.workdir)
    (workdir / "result.json").write_text(json.dumps(result.as_dict(), indent=2))
    if result.passed and not os.environ.get("CRASHCART_DRILL_KEEP_DISKS"):
        # The run's disk copy (hundreds of MiB; the dump was copied out of it) and boot files:
        # kept only when the scenario did not do what it must, for a look at what happened.
        (workdir / "disk.img").unlink(missing_ok=True)
        shutil.rmtree(workdir / "boot", ignore_errors=True)
    return result


__all__ = ["SCENARIOS", "Event", "ScenarioResult", "run_scenario"]
