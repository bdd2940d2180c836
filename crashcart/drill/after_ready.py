"""What a scenario does once its guest is ready: the drill action, the interrupt, the dump,
the guest's reboot, the agent's upload and triage (:func:`after_ready`); and the forced run
of a negative control whose validation failed (:func:`forced_nmi`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crashcart.drill import diskfs
from crashcart.drill.boot import BootLog, StepFailedError, boot_until_ready, start_guest
from crashcart.drill.image import GUEST_STATE
from crashcart.drill.nmi import interrupt, observe_nmi, wait_unresponsive
from crashcart.drill.qemu import GuestError, Vm
from crashcart.drill.results import DrillError, ScenarioResult, finish
from crashcart.drill.scenarios import Scenario

#: A drill boot (validate, the agent's attestation) and the boot after the dump.
#: Measured at load 13-15: 117 s to ready, 178 s back up after the dump; 600 s is over 3x that
#: (and a silent guest fails sooner, see :func:`crashcart.drill.qemu.silence_limit`).
BOOT_TIMEOUT = float(os.environ.get("CRASHCART_DRILL_RUN_BOOT_TIMEOUT", "600"))


def forced_nmi(
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
    vm = start_guest(boot, disk=disk, workdir=workdir, label="forced", vm_options=vm_options)
    try:
        # the queue still holds the failed step: it fails again; then the guest is up
        vm.wait_for(
            lambda e: e.name in ("failed", "ready"), timeout=BOOT_TIMEOUT, what="the forced boot"
        )
        vm.inject_nmi()
        result.stage("interrupt", True, "NMI injected directly through QMP (forced run)")
        return observe_nmi(
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


def after_ready(
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
        return finish(
            result.fail("action", "QEMU exited before the drill action"), scenario, started
        )
    if scenario.action == "hang":
        try:
            last = wait_unresponsive(vm, quiet_seconds=5, timeout=120)
        except GuestError as error:
            return finish(result.fail("action", str(error)), scenario, started)
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
        injected_at = interrupt(result, vm, account=account, progress=progress)
    except DrillError as error:
        return finish(result.fail("remediation", str(error)), scenario, started)
    assert injected_at is not None
    outcome = observe_nmi(
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
        return finish(
            result.fail("reboot", f"the guest did not come back: {error}"), scenario, started
        )
    result.timings["reboot_to_ready_s"] = round(time.monotonic() - reboot_started, 1)
    result.stage(
        "reboot", True, "the guest booted again after the dump", time.monotonic() - reboot_started
    )
    again.stop()
    if account is not None and "in the image" in str(result.remediation.get("agent")):
        check_upload(result, account, progress)
    if triage:
        run_triage(result, progress, release)
    return finish(result, scenario, started)


def check_upload(result: ScenarioResult, account: Any, progress: Callable[[str], None]) -> None:
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


def run_triage(
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
