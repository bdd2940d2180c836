"""The running-instance arming script, run for real on stand-in instances.

Each test builds a fake instance (tests/support/arming_sandbox.py: a fake root, stand-in
commands first on PATH, chroot in a private mount namespace), runs the document's script
as Run Command would (``/bin/sh``, the parameter filled in), and checks the outcome line,
the exit status, the files and the commands called.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from crashcart.components.arming import FAILURE_CODES, REBOOT_EXIT_CODE, render_arming_script
from crashcart.kdump import KdumpSettings
from tests.support.arming_sandbox import RELEASE, Result, Sandbox, require_sandbox

SCRIPT = render_arming_script()
Factory = Callable[..., Sandbox]


@pytest.fixture(scope="module")
def namespace() -> list[str]:
    return require_sandbox()


@pytest.fixture
def instance(tmp_path: Path, namespace: list[str]) -> Factory:
    def make(family: str = "debian-12", script: str = SCRIPT) -> Sandbox:
        return Sandbox(tmp_path / "root", script, namespace, family=family)

    return make


def _changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {key for key in set(before) | set(after) if before.get(key) != after.get(key)}


def _failed(result: Result, reason: str) -> None:
    assert result.status == FAILURE_CODES[reason], result.output
    assert f"crashcart-arm: FAILED {reason}:" in result.output, result.output


def test_debian_instance_is_pending_until_rebooted_then_armed(instance: Factory) -> None:
    box = instance()
    first = box.run()
    assert first.status == 0, first.output
    assert "crashcart-arm: RESULT reboot-pending" in first.output
    assert first.called("apt-get install -y -q --no-install-recommends kdump-tools")
    assert first.called("update-grub")
    assert "crashkernel=768M-4G:192M,4G-64G:256M,64G-:512M" in box.read("boot/grub/grub.cfg")
    assert "USE_KDUMP=1" in box.read("etc/default/kdump-tools")
    assert (box.root / "usr-local/libexec/crashcart/crashcart-agent").read_bytes() == (
        Path("crashcart/components/agent/crashcart-agent.py").read_bytes()
    )
    # Configure is not validate: no attestation while the capture kernel is not loaded.
    assert not first.called("systemctl start --no-block crashcart-agent.service")
    assert not first.called("systemctl restart")

    box.reboot()
    armed = box.run()
    assert armed.status == 0, armed.output
    assert armed.output.rstrip().endswith("crashcart-arm: RESULT armed")
    assert "capture kernel loaded (/sys/kernel/kexec_crash_loaded = 1)" in armed.output
    assert armed.called("systemctl start --no-block crashcart-agent.service")


def test_a_fresh_debian_instance_refreshes_the_lists_once(instance: Factory) -> None:
    # the probe's apt-get update serves the family's step and the agent's: one refresh
    # (issue 24); kdump's packages and the agent's in two installs, so that kdump is armed
    # even where the agent's packages cannot be installed
    result = instance().run()
    assert result.status == 0, result.output
    apt = [call for call in result.calls if call.startswith("apt-get")]
    assert apt == [
        "apt-get update -q",
        "apt-get install -y -q --no-install-recommends kdump-tools kexec-tools makedumpfile",
        "apt-get install -y -q --no-install-recommends python3 python3-venv",
    ], result.calls


def test_the_image_components_apt_steps_still_refresh_the_lists(instance: Factory) -> None:
    """An Image Builder build runs no probe: its EnableKdump and InstallCrashcartAgent steps,
    the same fragments, each refresh the package lists before installing."""
    import yaml

    from crashcart.components.render import render_component

    document = yaml.safe_load(render_component("debian-12", "crash-dump", KdumpSettings()))
    commands = {
        step["name"]: "\n".join(step["inputs"]["commands"])
        for phase in document["phases"]
        for step in phase["steps"]
        if step["name"] in ("EnableKdump", "InstallCrashcartAgent")
    }
    box = instance()
    expected = {
        "EnableKdump": "kdump-tools kexec-tools makedumpfile",
        "InstallCrashcartAgent": "python3 python3-venv",
    }
    for name, packages in expected.items():
        box.script = f"#!/bin/bash\nexec /bin/bash -c {shlex.quote(commands[name])}\n"
        result = box.run()
        assert result.status == 0, result.output
        apt = [call for call in result.calls if call.startswith("apt-get")]
        assert apt == [
            "apt-get update -q",
            f"apt-get install -y -q --no-install-recommends {packages}",
        ], (name, result.calls)


def test_rerunning_changes_nothing(instance: Factory) -> None:
    box = instance()
    assert box.run().status == 0
    before = box.snapshot()
    again = box.run()
    assert again.status == 0 and "RESULT reboot-pending" in again.output
    assert _changed(before, box.snapshot()) == set()
    assert not again.called("apt-get")
    assert not again.called("update-grub")
    # enabled already: no unmask or enable (Debian's enable reruns update-rc.d)
    assert again.called("systemctl is-enabled kdump-tools.service")
    assert not again.called("systemctl enable kdump-tools.service"), again.calls
    assert not again.called("systemctl unmask"), again.calls

    box.reboot()
    assert box.run().status == 0
    before = box.snapshot()
    again = box.run()
    assert "RESULT armed" in again.output
    assert _changed(before, box.snapshot()) == set()
    assert not again.called("apt-get") and not again.called("update-grub")


def test_drift_is_repaired(instance: Factory) -> None:
    box = instance()
    box.run()
    box.reboot()
    assert "RESULT armed" in box.run().output
    armed = box.snapshot()
    (box.root / "etc/default/grub.d/zz-crashcart-kdump.cfg").unlink()
    box.write("etc/default/kdump-tools", "USE_KDUMP=0\n")
    box.write("etc/sysctl.d/zz-crashcart-kdump.conf", "kernel.unknown_nmi_panic = 0\n")
    (box.root / "stub-state/systemd/enabled/kdump-tools.service").unlink()

    repaired = box.run()
    assert repaired.called("update-grub")
    assert repaired.called("systemctl enable kdump-tools.service")
    changed = _changed(armed, box.snapshot())
    assert changed <= {"etc/default/kdump-tools"}, changed  # only key order may differ
    assert "USE_KDUMP=1" in box.read("etc/default/kdump-tools")


def test_a_masked_kdump_service_is_unmasked_and_enabled(instance: Factory) -> None:
    box = instance()
    box.run()
    box.reboot()
    assert "RESULT armed" in box.run().output
    box.write("stub-state/systemd/masked/kdump-tools.service", "")  # as a STIG profile does
    repaired = box.run()
    assert repaired.called("systemctl unmask kdump-tools.service"), repaired.calls
    assert repaired.called("systemctl enable kdump-tools.service"), repaired.calls
    assert not (box.root / "stub-state/systemd/masked/kdump-tools.service").exists()


def test_amazon_linux_uses_grubby_and_is_pending_then_armed(instance: Factory) -> None:
    box = instance("amazon-linux-2023")
    first = box.run()
    assert first.status == 0, first.output
    assert "RESULT reboot-pending" in first.output
    assert first.called("dnf -y install kexec-tools")
    assert first.called("grubby --update-kernel=ALL --args=crashkernel=768M-4G")
    assert (
        box.read("stub-state/grubby-args")
        .split()
        .count("crashkernel=768M-4G:192M,4G-64G:256M,64G-:512M")
        == 1
    )
    assert "crashkernel=auto" not in box.read("stub-state/grubby-args")

    before = box.snapshot()
    again = box.run()
    assert not again.called("grubby --update-kernel") and not again.called("dnf")
    assert _changed(before, box.snapshot()) == set()

    box.reboot()
    armed = box.run()
    assert armed.output.rstrip().endswith("RESULT armed"), armed.output


def test_memory_floor_refuses_with_its_reason_and_changes_nothing(instance: Factory) -> None:
    box = instance()
    box.set_memory_mib(950)  # a "1 GiB" instance type
    before = box.snapshot()
    result = box.run()
    _failed(result, "memory-floor")
    assert "950 MiB of memory is below the floor of 1536 MiB" in result.output
    assert "would take 192 MiB" in result.output
    assert _changed(before, box.snapshot()) == set()
    assert not result.called("apt-get")


def test_a_reservation_over_a_quarter_of_memory_is_refused(instance: Factory) -> None:
    script = render_arming_script(KdumpSettings(crashkernel="1G"), min_memory_mib=1024)
    box = instance(script=script)
    box.set_memory_mib(2048)
    result = box.run()
    _failed(result, "memory-floor")
    assert "takes 1024 MiB of 2048 MiB, more than 25%" in result.output


def test_kernel_updated_but_not_rebooted_into_is_named(instance: Factory) -> None:
    box = instance()
    (box.root / f"lib/modules/{RELEASE}").rmdir()
    (box.root / "lib/modules/6.1.0-30-cloud-amd64").mkdir()
    before = box.snapshot()
    result = box.run()
    _failed(result, "kernel-not-booted")
    assert f"the running kernel {RELEASE} has no /lib/modules/{RELEASE}" in result.output
    assert "reboot into the new kernel first" in result.output
    assert _changed(before, box.snapshot()) == set()


def test_unreachable_debian_mirror_is_named_although_apt_exits_0(instance: Factory) -> None:
    box = instance()
    box.write("stub-state/repos-down", "")
    result = box.run()
    _failed(result, "repositories-unreachable")
    assert "packages kdump-tools kexec-tools makedumpfile python3 python3-venv are missing" in (
        result.output
    )
    assert "Debian's mirrors" in result.output
    assert not result.called("apt-get install")


def test_kdump_is_armed_even_where_the_agents_packages_cannot_be_installed(
    instance: Factory,
) -> None:
    box = instance()
    box.write("stub-state/unavailable/python3-venv", "")
    first = box.run()
    _failed(first, "configure-failed")
    assert "Unable to locate package python3-venv" in first.output
    assert "installing the crashcart agent failed" in first.output
    assert "kdump: armed after the next reboot" in first.output
    # kdump's own install and configuration went through first
    assert (box.root / "stub-state/dpkg/kdump-tools").exists()
    assert "USE_KDUMP=1" in box.read("etc/default/kdump-tools")
    assert first.called("systemctl enable kdump-tools.service"), first.calls
    # after the reboot kdump is armed; the run still fails, for the agent, and starts no agent
    box.reboot()
    second = box.run()
    _failed(second, "configure-failed")
    assert "kdump: armed" in second.output and "RESULT armed" not in second.output
    assert not second.called("systemctl start --no-block crashcart-agent.service")


def test_a_rerun_missing_only_the_agents_packages_refreshes_once(instance: Factory) -> None:
    box = instance()
    assert box.run().status == 0
    (box.root / "stub-state/dpkg/python3-venv").unlink()
    again = box.run()
    assert again.status == 0, again.output
    apt = [call for call in again.calls if call.startswith("apt-get")]
    assert apt == [
        "apt-get update -q",  # the probe's
        "apt-get install -y -q --no-install-recommends python3-venv",
    ], again.calls


def test_unreachable_amazon_linux_repositories_name_the_s3_gateway_endpoint(
    instance: Factory,
) -> None:
    box = instance("amazon-linux-2023")
    box.write("stub-state/repos-down", "")
    result = box.run()
    _failed(result, "repositories-unreachable")
    assert "add an S3 gateway endpoint (com.amazonaws.<region>.s3)" in result.output


def test_installed_packages_need_no_repositories(instance: Factory) -> None:
    box = instance()
    for package in ("kdump-tools", "kexec-tools", "makedumpfile", "python3", "python3-venv"):
        (box.root / "stub-state/dpkg" / package).touch()
    box.write("stub-state/repos-down", "")
    box.run()  # the agent's venv is created on the first run
    result = box.run()
    assert result.status == 0, result.output
    assert not result.called("apt-get")


def test_unsupported_os_is_named(instance: Factory) -> None:
    result = instance("centos-9").run()
    _failed(result, "unsupported-os")
    assert "centos 9 is not one of: Amazon Linux 2023, Debian 12" in result.output


def test_auto_scaling_member_is_reported_and_never_rebooted(instance: Factory) -> None:
    box = instance()
    box.write("stub-state/tags/aws:autoscaling:groupName", "web-fleet\n")
    result = box.run(reboot_if_pending="yes")
    assert result.status == 0, result.output
    assert "AUTO-SCALING member of web-fleet" in result.output
    assert "not rebooting: an Auto Scaling member" in result.output
    assert "RESULT reboot-pending" in result.output
    assert not (box.root / "var/lib/crashcart/arming-reboot-boot-id").exists()


def test_unknown_auto_scaling_membership_is_not_rebooted(instance: Factory) -> None:
    box = instance()
    (box.root / "stub-state/tags").rmdir()  # instance tags not in the metadata
    result = box.run(reboot_if_pending="yes")
    assert result.status == 0, result.output
    assert "Auto Scaling membership is unknown" in result.output


def test_no_reboot_unless_asked(instance: Factory) -> None:
    result = instance().run()
    assert result.status == 0
    assert "RESULT reboot-requested" not in result.output


def test_opt_in_reboot_asks_once_then_names_a_boot_that_did_not_take(instance: Factory) -> None:
    box = instance()
    asked = box.run(reboot_if_pending="yes")
    assert asked.status == REBOOT_EXIT_CODE, asked.output
    assert "RESULT reboot-requested" in asked.output

    # A boot that ignores the new configuration: no second reboot, a named failure.
    box.write("proc/sys/kernel/random/boot_id", "another-boot\n")
    again = box.run(reboot_if_pending="yes")
    _failed(again, "rebooted-not-armed")

    box.reboot()
    armed = box.run(reboot_if_pending="yes")
    assert armed.status == 0 and "RESULT armed" in armed.output, armed.output
    assert not (box.root / "var/lib/crashcart/arming-reboot-boot-id").exists()


def test_reserved_but_unloaded_is_repaired_and_a_failing_check_is_named(
    instance: Factory,
) -> None:
    box = instance()
    box.run()
    box.reboot()
    # The reservation exists but the capture kernel is not loaded (the service stopped).
    (box.root / "stub-state/systemd/active/kdump-tools.service").unlink()
    box.write("sys/kernel/kexec_crash_loaded", "0\n")
    repaired = box.run()
    assert repaired.status == 0, repaired.output
    assert repaired.called("systemctl restart kdump-tools.service")
    assert "RESULT armed" in repaired.output

    box.write("proc/sys/kernel/unknown_nmi_panic", "0\n")  # overridden by another sysctl file
    failed = box.run()
    _failed(failed, "not-armed")
    assert "kernel.unknown_nmi_panic = 0, expected 1" in failed.output
    assert not failed.called("systemctl start --no-block crashcart-agent.service")


def test_a_command_failing_with_a_reboot_code_does_not_reboot(instance: Factory) -> None:
    box = instance()
    box.run()
    box.reboot()
    stub = box.root / "stubs/systemctl"
    lines = stub.read_text(encoding="utf-8").split("\n")
    lines.insert(1, '[ "${1:-} ${2:-}" = "start --no-block" ] && exit 194')
    stub.write_text("\n".join(lines), encoding="utf-8")
    result = box.run()
    assert result.status == 1, result.output
    assert "failed with 194 (a reboot request code): reported as 1" in result.output


def test_script_runs_under_sh_by_re_executing_bash(instance: Factory) -> None:
    # Sandbox.run starts the script with /bin/sh (dash on Debian), as Run Command may.
    result = instance().run()
    assert result.status == 0, result.output
    assert "RESULT reboot-pending" in result.output
