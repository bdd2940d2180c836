"""The in-guest runner (``crashcart/drill/guest/runner.sh``) run on the host in a sandbox:
step order, Reboot, exit 194 (reboot, then the same step again), failure stops the queue.

Each call of :func:`boot` is one guest boot; a fake ``systemctl`` records reboot requests.
"""

from __future__ import annotations

import base64
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from crashcart.drill.component import parse_document
from crashcart.drill.paths import GUEST_DIR
from crashcart.drill.prepare import queue_text, step_files

DOCUMENT = textwrap.dedent(
    """\
    name: runner-test
    schemaVersion: 1.0
    phases:
      - name: build
        steps:
          - name: NeedsAReboot
            action: ExecuteBash
            inputs:
              commands:
                - echo "run $(( $(cat "$SANDBOX/runs" 2>/dev/null || echo 0) + 1 ))" >&2
                - echo $(( $(cat "$SANDBOX/runs" 2>/dev/null || echo 0) + 1 )) > "$SANDBOX/runs"
                - '[ "$(cat "$SANDBOX/runs")" -ge 2 ] || exit 194'
                - echo resumed
          - name: Restart
            action: Reboot
          - name: AfterReboot
            action: ExecuteBash
            inputs:
              commands:
                - echo after > "$SANDBOX/after"
      - name: validate
        steps:
          - name: Check
            action: ExecuteBash
            inputs:
              commands:
                - echo "checking"
                - exit "${CHECK_STATUS:-0}"
    """
)


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    document = parse_document(DOCUMENT)
    lib = tmp_path / "lib"
    (lib / "steps").mkdir(parents=True)
    for name, (content, mode) in step_files(document).items():
        path = lib / "steps" / name
        path.write_text(content)
        path.chmod(mode)
    state = tmp_path / "state"
    state.mkdir()
    (state / "queue").write_text(queue_text(document.steps("build", "validate")))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text(f'#!/bin/sh\necho "$*" >> "{tmp_path}/systemctl.log"\n')
    fake.chmod(0o755)
    (tmp_path / "channel").touch()  # the guest's /dev/ttyS1
    return tmp_path


def boot(sandbox: Path, **env: str) -> list[str]:
    """One boot: run the runner; returns its channel lines of this boot."""
    channel = sandbox / "channel"
    before = channel.read_text().splitlines() if channel.exists() else []
    environment = {
        "PATH": f"{sandbox / 'bin'}:{os.environ['PATH']}",
        "SANDBOX": str(sandbox),
        "CRASHCART_DRILL_LIB": str(sandbox / "lib"),
        "CRASHCART_DRILL_STATE": str(sandbox / "state"),
        "CRASHCART_DRILL_CHANNEL": str(channel),
        "CRASHCART_DRILL_NO_HEARTBEAT": "1",
        **env,
    }
    subprocess.run(["bash", str(GUEST_DIR / "runner.sh")], env=environment, check=False, timeout=60)
    lines = channel.read_text().splitlines()[len(before) :]
    return [line.removeprefix("CRASHCART-DRILL ") for line in lines]


def reboots(sandbox: Path) -> list[str]:
    log = sandbox / "systemctl.log"
    return log.read_text().splitlines() if log.exists() else []


def test_exit_194_reboots_and_runs_the_same_step_again(sandbox: Path) -> None:
    first = boot(sandbox)
    assert "step-start build-01-NeedsAReboot" in first
    assert "step-end build-01-NeedsAReboot 194" in first
    assert first[-1] == "reboot build-01-NeedsAReboot exit-194"
    assert reboots(sandbox) == ["reboot"]
    second = boot(sandbox)
    assert second[1] == "step-start build-01-NeedsAReboot"  # the same step, again
    assert "| resumed" in second
    assert "step-end build-01-NeedsAReboot 0" in second
    assert second[-1] == "reboot build-02-Restart Reboot action"
    assert reboots(sandbox) == ["reboot", "reboot"]
    assert not (sandbox / "after").exists(), "nothing runs after a Reboot step before the boot"
    third = boot(sandbox)
    assert (sandbox / "after").read_text() == "after\n"
    assert "step-end validate-01-Check 0" in third
    assert third[-2:] == ["ready", "action idle"]
    assert (sandbox / "state" / "queue").read_text() == ""
    # the step's output is kept in the guest too
    assert "resumed" in (sandbox / "state" / "logs" / "build-01-NeedsAReboot.log").read_text()


def test_a_failing_step_stops_the_queue_and_is_reported(sandbox: Path) -> None:
    boot(sandbox)
    boot(sandbox)
    lines = boot(sandbox, CHECK_STATUS="3")
    assert "step-end validate-01-Check 3" in lines
    assert lines[-1] == "failed validate-01-Check 3"
    assert "ready" not in lines
    # the failed step stays queued: the next boot runs it again
    assert (sandbox / "state" / "queue").read_text() == "validate-01-Check\n"


def test_an_empty_queue_is_ready_at_once(sandbox: Path) -> None:
    (sandbox / "state" / "queue").write_text("")
    (sandbox / "state" / "action").write_text("idle\n")
    lines = boot(sandbox)
    assert lines[0].startswith("boot ")
    assert lines[1:] == ["ready", "action idle"]


def test_an_unknown_step_fails_loudly(sandbox: Path) -> None:
    (sandbox / "state" / "queue").write_text("build-09-Missing\n")
    assert boot(sandbox)[-1] == "failed build-09-Missing no-such-step"


# --- a guest saved at "await", restored with a command ------------------------------------


@pytest.fixture
def saved(sandbox: Path) -> Path:
    """The state of a prepared guest: validated, its action "await", the validate queue kept
    for restores; a fake ``date`` (the runner sets the clock of a restored guest)."""
    (sandbox / "state" / "queue").write_text("")
    (sandbox / "state" / "queue.restore").write_text("validate-01-Check\n")
    (sandbox / "state" / "action").write_text("await\n")
    fake_date = sandbox / "bin" / "date"
    fake_date.write_text(f'#!/bin/sh\necho "$*" >> "{sandbox}/date.log"\n')
    fake_date.chmod(0o755)
    for fake in ("insmod", "sleep"):  # the hang action: never load anything on the host
        path = sandbox / "bin" / fake
        path.write_text(f'#!/bin/sh\necho "{fake} $*" >> "{sandbox}/{fake}.log"\n')
        path.chmod(0o755)
    (sandbox / "agent.env").write_text("CRASHCART_AWS=/opt/crashcart/awscli/bin/aws\n")
    return sandbox


def restore(sandbox: Path, command: str) -> list[str]:
    """One boot that reaches "await", then reads ``command`` from the command port (the test
    hands the whole run its command up front; in the guest only a restored copy reads it)."""
    commands = sandbox / "commands"
    commands.write_text(command + "\n")
    return boot(
        sandbox,
        CRASHCART_DRILL_COMMANDS=str(commands),
        CRASHCART_DRILL_AGENT_ENV=str(sandbox / "agent.env"),
        CRASHCART_DRILL_AGENT_ENABLED=str(sandbox / "agent-enabled"),
    )


def test_a_restored_guest_takes_its_settings_validates_again_and_acts(saved: Path) -> None:
    settings = base64.b64encode(b"CRASHCART_INSTANCE_ID=i-0123\nAWS_MAX_ATTEMPTS=2\n").decode()
    lines = restore(saved, f"go 1767225600 hang {settings}")
    assert lines[:2] == [lines[0], "ready"] and lines[0].startswith("boot ")
    assert lines[2:5] == ["awaiting", f"restored {os.uname().release}", "agent 0"]
    assert "step-end validate-01-Check 0" in lines  # the validate phase, again
    assert lines[-3:] == ["ready", "action hang", "hanging"]
    assert (saved / "insmod.log").read_text().endswith("crashcart_hang.ko all_cpus=1\n")
    # the clock is the host's, the agent got this run's settings and was started
    assert (saved / "date.log").read_text() == "-u -s @1767225600\n"
    assert (saved / "agent.env").read_text() == (
        "CRASHCART_AWS=/opt/crashcart/awscli/bin/aws\n"
        "CRASHCART_INSTANCE_ID=i-0123\nAWS_MAX_ATTEMPTS=2\n"
    )
    assert (saved / "agent-enabled").exists()
    assert reboots(saved) == ["start crashcart-agent.service"]
    assert (saved / "state" / "action").read_text() == "hang\n"  # the after-dump boot's


def test_a_restored_guest_without_the_agent_leaves_it_alone(saved: Path) -> None:
    lines = restore(saved, "go 1767225600 idle -")
    assert "agent 0" not in lines and not (saved / "agent-enabled").exists()
    assert reboots(saved) == []
    assert lines[-2:] == ["ready", "action idle"]


def test_a_restored_guest_that_fails_validation_stops(saved: Path) -> None:
    commands = saved / "commands"
    commands.write_text("go 1767225600 idle -\n")
    lines = boot(saved, CRASHCART_DRILL_COMMANDS=str(commands), CHECK_STATUS="1")
    assert lines[-1] == "failed validate-01-Check 1"
    assert "action idle" not in lines


def test_await_ignores_unknown_commands_and_reports_a_closed_port(saved: Path) -> None:
    commands = saved / "commands"
    commands.write_text("hello there\n")
    lines = boot(saved, CRASHCART_DRILL_COMMANDS=str(commands))
    assert lines[-2:] == ["unknown-command hello", "failed await command-port-closed"]
