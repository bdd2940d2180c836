"""From the drill action to the dump: the hung guest, the NMI (through the real remediation
function, or straight through QMP) and what the guest left on its disk afterwards (the dump
folder, its vmcore and the dmesg with the NMI panic)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crashcart.drill import capture_memory, diskfs
from crashcart.drill.qemu import GUEST_MEMORY_MIB, GuestError, Vm
from crashcart.drill.results import DrillError, ScenarioResult, finish
from crashcart.drill.scenarios import Scenario

NMI_MARKER = "NMI: Not continuing"
#: How long after the NMI a guest that still sends heartbeats counts as "survived the NMI".
SURVIVAL_SECONDS = 30.0
#: How long the drill waits for panic -> capture kernel -> dump -> reboot.
DUMP_TIMEOUT = 600.0
_DUMP_ID_RE = re.compile(r"^\d{12}\Z")


def wait_unresponsive(vm: Vm, *, quiet_seconds: float, timeout: float) -> float:
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


def interrupt(
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


def dump_evidence(vm: Vm) -> str:
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


def observe_nmi(
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
            console = dump_evidence(vm)
            vm.stop()
            return finish(
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
        return finish(
            result.fail(
                "nmi", f"no reboot {DUMP_TIMEOUT:.0f}s after the NMI; console: {dump_evidence(vm)}"
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
        return finish(
            result.fail(
                "dump",
                "no dump: the guest rebooted without kdump saving anything in /var/crash "
                f"(capture kernel not loaded?). Console: {dump_evidence(vm)}",
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
        return finish(
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
        return finish(
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
