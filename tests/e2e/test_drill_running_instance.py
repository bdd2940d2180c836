"""The running-instance path (issue 19), end to end under QEMU, on its own prepared image: the
base image (not built by the pipeline's document) armed in place by the SSM document's
script: reboot pending, the operator's reboot, armed; restored, it then takes the NMI to a
dump the agent ships (pinned in tests/unit/test_drill_scenarios_pinned.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import drill as support

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_running_instance_armed_in_place_pending_then_armed_then_dump(
    running_instance_image: Any, moto_server: str
) -> None:
    steps = running_instance_image.build_log["steps"]
    # every step ran in the guest (the script reads the running kernel), in document order,
    # with the operator's reboot between the two runs of the script
    assert list(steps) == [
        "build-01-ArmRunningInstance",
        "build-03-ArmRunningInstanceAfterReboot",
        "validate-01-ValidateKdumpArmed",
    ], steps
    assert {step["where"] for step in steps.values()} == {"guest"}
    assert all(step["status"] == "0" for step in steps.values()), steps
    first = steps["build-01-ArmRunningInstance"]["output"]
    # configured, not armed: no reservation in the running kernel yet; never rebooted by itself
    assert any(
        "RESULT reboot-pending: /proc/cmdline has 'no crashkernel='" in line for line in first
    ), first[-10:]
    assert not any("RESULT armed" in line for line in first)
    # the instance has what a Debian 12 AMI has (python3, installed on the host side); the
    # script installs, in the guest, what such an instance lacks
    assert running_instance_image.build_log["platform_packages"] == ["python3"]
    missing = [line for line in first if "crashcart-arm: missing packages:" in line]
    assert missing and missing[0].split("missing packages:")[1].split() == [
        "kdump-tools",
        "kexec-tools",
        "makedumpfile",
        "python3-venv",
    ], missing
    reboots = running_instance_image.build_log["reboots"]
    assert reboots == ["build-02-RebootByTheOperator Reboot action"], reboots
    # kdump-tools' capture initrd was built on the host while the guest was off, between its
    # boots (issue 24): the second boot found it and only loaded it
    log = running_instance_image.build_log
    assert log["kdump_initrd_built_in_guest"] is False
    initrd = f"/var/lib/kdump/initrd.img-{running_instance_image.kernel_release}"
    assert f"after boot 1: {initrd}" in log["kdump_initrd_between_boots"], log
    second = steps["build-03-ArmRunningInstanceAfterReboot"]["output"]
    assert any("RESULT armed" in line for line in second), second[-10:]
    validate = steps["validate-01-ValidateKdumpArmed"]["output"]
    assert "crashcart-validate: kdump armed" in validate

    # then the ordinary path: the agent attests, the remediation's NMI ends in a dump that the
    # agent ships and triage reads
    result = support.run(running_instance_image, "running-instance", moto_server, restore=True)
    assert result.passed, f"{result.failed_stage}: {result.reason}"
    assert "crashkernel=" in result.cmdline
    assert result.remediation["agent"].startswith("in the image")
    assert result.remediation["attestation"].startswith("armed ")
    assert result.remediation["outcome"]["outcome"] == "interrupted"
    assert any("NMI: Not continuing" in line for line in result.dmesg_excerpt)
    assert support.stage(result, "upload").ok
    assert result.triage is not None and "NMI" in (result.triage["panic_message"] or "")
