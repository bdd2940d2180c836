"""Rendering the component documents: fields, families, the agent step, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from crashcart.components import render as render_module
from crashcart.components.families import FAMILIES
from crashcart.components.render import (
    AGENT_AWSCLI_VERSION,
    AGENT_MISSING_NOTE,
    agent_files,
    list_documents,
    render_component,
    template_path,
)
from crashcart.errors import ConfigurationError
from crashcart.kdump import KdumpSettings, WindowsCrashDumpSettings

LINUX = [f for f, info in FAMILIES.items() if info.platform == "Linux"]
WINDOWS = [f for f, info in FAMILIES.items() if info.platform == "Windows"]


def _steps(document: str, phase: str) -> list[dict[str, object]]:
    parsed = yaml.safe_load(document)
    for entry in parsed["phases"]:
        if entry["name"] == phase:
            return list(entry["steps"])
    return []


def _bash(document: str, phase: str, step: str) -> str:
    for entry in _steps(document, phase):
        if entry["name"] == step:
            inputs = entry["inputs"]
            assert isinstance(inputs, dict)
            return "\n".join(inputs["commands"])
    raise AssertionError(f"no step {step} in phase {phase}")


def test_every_family_has_a_crash_dump_document_and_linux_an_os_update_one() -> None:
    specs = {(s.family, s.phase_set) for s in list_documents()}
    assert {(f, "crash-dump") for f in FAMILIES} <= specs
    assert {(f, "os-update") for f in LINUX} <= specs
    assert not {(f, "os-update") for f in WINDOWS} & specs
    for spec in list_documents():
        assert spec.template.is_file()


@pytest.mark.parametrize("spec", list_documents(), ids=lambda s: f"{s.family}-{s.phase_set}")
def test_no_template_field_is_left_unrendered(spec: render_module.DocumentSpec) -> None:
    text = render_component(spec.family, spec.phase_set)
    assert "@@" not in text
    yaml.safe_load(text)


def test_settings_reach_the_debian_document() -> None:
    settings = KdumpSettings(
        crashkernel="512M-:160M",
        dump_level=1,
        compression="zlib",
        panic_reboot_seconds=42,
        softlockup_panic=True,
        min_free_space_mib=777,
    )
    text = render_component("debian-12", "crash-dump", settings)
    enable = _bash(text, "build", "EnableKdump")
    assert "crashkernel=512M-:160M" in enable
    assert "set_kv /etc/default/kdump-tools MAKEDUMP_ARGS '\"-c -d 1\"'" in enable
    assert "kernel.panic = 42" in enable
    assert "kernel.softlockup_panic = 1" in enable
    assert "systemctl unmask kdump-tools.service" in enable
    assert "systemctl enable kdump-tools.service" in enable
    validate = _bash(text, "validate", "ValidateKdumpArmed")
    assert "expected_crashkernel='crashkernel=512M-:160M'" in validate
    assert "kernel.panic=42" in validate
    assert "-ge 777" in validate
    assert "/sys/kernel/kexec_crash_loaded" in validate
    assert "kexec_load_disabled" in validate
    # the test phase repeats the same checks after a cold boot
    assert _bash(text, "test", "TestKdumpArmedAfterColdBoot") == validate


def test_default_settings_differ_from_custom_ones() -> None:
    assert render_component("debian-12") != render_component(
        "debian-12", settings=KdumpSettings(panic_reboot_seconds=11)
    )


def test_debian_document_is_runnable_by_the_drill() -> None:
    """Only ExecuteBash and Reboot; no Image Builder variables, loops or step options."""
    text = render_component("debian-12", "crash-dump", KdumpSettings())
    assert "{{" not in text
    for phase in ("build", "validate", "test"):
        for step in _steps(text, phase):
            assert step["action"] in {"ExecuteBash", "Reboot"}
            assert set(step) <= {"name", "action", "inputs"}, step["name"]
            if step["action"] == "ExecuteBash":
                commands = step["inputs"]["commands"]  # type: ignore[index]
                assert len(commands) == 1
                assert commands[0].startswith("set -euo pipefail\n")
    names = [s["name"] for s in _steps(text, "build")]
    assert names[0] == "EnableKdump"
    assert names[-1] == "RebootToArmKdump"


def test_architecture_is_what_validate_expects() -> None:
    assert "[ \"$machine\" = 'aarch64' ]" in render_component("rhel-9", architecture="arm64")
    assert "[ \"$machine\" = 'x86_64' ]" in render_component("rhel-9")
    assert "'ARM64'" in render_component(
        "windows-server-2025", settings=WindowsCrashDumpSettings(), architecture="arm64"
    )


def test_rhel_keeps_its_crashkernel_and_al2023_does_not_set_that_directive() -> None:
    assert "auto_reset_crashkernel no" in render_component("rhel-9")
    assert "auto_reset_crashkernel" not in render_component("amazon-linux-2023")
    assert "--releasever=latest" in render_component("amazon-linux-2023", "os-update")
    assert "--releasever" not in render_component("rhel-9", "os-update")


def test_ubuntu_installs_linux_crashdump() -> None:
    assert "packages=(linux-crashdump kdump-tools" in render_component("ubuntu-24.04")


def test_windows_settings_reach_the_windows_document() -> None:
    text = render_component(
        "windows-server-2022",
        settings=WindowsCrashDumpSettings(
            dump_type="complete",
            auto_reboot=False,
            dump_file="D:\\dumps\\MEMORY.DMP",
            page_file_mib=8192,
        ),
    )
    assert "-Name CrashDumpEnabled -Value 1 -Type DWord" in text
    assert "-Name AutoReboot -Value 0 -Type DWord" in text
    assert "'D:\\dumps\\MEMORY.DMP'" in text
    assert "InitialSize = [uint32]8192" in text
    assert "AutomaticManagedPagefile = $true" not in text
    default = render_component("windows-server-2022")
    assert "AutomaticManagedPagefile = $true" in default
    assert "capture-only" in default


def test_fails_linux_settings_on_windows_and_the_reverse() -> None:
    with pytest.raises(ConfigurationError, match="Linux-only"):
        render_component("windows-server-2022", settings=KdumpSettings())
    with pytest.raises(ConfigurationError, match="give KdumpSettings"):
        render_component("debian-12", settings=WindowsCrashDumpSettings())


def test_fails_unknown_family_phase_set_and_architecture() -> None:
    with pytest.raises(ConfigurationError, match="not supported"):
        render_component("centos-7")
    with pytest.raises(ConfigurationError, match="no 'os-update' document"):
        template_path("windows-server-2022", "os-update")
    with pytest.raises(ConfigurationError, match="architecture 'ppc64le'"):
        render_component("debian-12", architecture="ppc64le")  # type: ignore[arg-type]


def test_fails_unknown_template_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "debian-12.crash-dump.yaml").write_text("name: x\ndescription: @@NOPE@@\n")
    monkeypatch.setattr(render_module, "TEMPLATES_DIR", tmp_path)
    with pytest.raises(ConfigurationError, match="unknown template field @@NOPE@@"):
        render_component("debian-12")


# --- the crashcart agent step -----------------------------------------------------------------


def _write_agent(folder: Path, manifest: bool = True) -> None:
    folder.mkdir()
    (folder / "crashcart-agent.py").write_text("#!/usr/bin/python3\nprint('EOF')\n")
    (folder / "crashcart-agent.service").write_text("[Unit]\n[Service]\nExecStart=/x\n[Install]\n")
    (folder / "README.md").write_text("docs\n")
    if manifest:
        (folder / "MANIFEST").write_text(
            "# comment\n"
            "crashcart-agent.py  /usr/local/libexec/crashcart/crashcart-agent  0755\n"
            "crashcart-agent.service  /etc/systemd/system/crashcart-agent.service  0644\n"
        )


def test_agent_files_from_a_manifest(tmp_path: Path) -> None:
    _write_agent(tmp_path / "agent")
    files = agent_files(tmp_path / "agent")
    assert [(f.source.name, f.destination, f.mode, f.systemd_unit) for f in files] == [
        ("crashcart-agent.py", "/usr/local/libexec/crashcart/crashcart-agent", "0755", False),
        ("crashcart-agent.service", "/etc/systemd/system/crashcart-agent.service", "0644", True),
    ]


def test_agent_files_without_a_manifest_follow_the_naming_rule(tmp_path: Path) -> None:
    _write_agent(tmp_path / "agent", manifest=False)
    (tmp_path / "agent" / "agent.conf").write_text("x=1\n")
    files = {f.source.name: (f.destination, f.mode) for f in agent_files(tmp_path / "agent")}
    assert files == {
        "agent.conf": ("/etc/crashcart/agent.conf", "0644"),
        "crashcart-agent.py": ("/usr/local/sbin/crashcart-agent.py", "0755"),
        "crashcart-agent.service": ("/etc/systemd/system/crashcart-agent.service", "0644"),
    }


def test_fails_a_manifest_naming_a_missing_file(tmp_path: Path) -> None:
    _write_agent(tmp_path / "agent")
    (tmp_path / "agent" / "MANIFEST").write_text("gone.py /usr/local/bin/gone 0755\n")
    with pytest.raises(ConfigurationError, match=r"'gone\.py' is not a file"):
        agent_files(tmp_path / "agent")
    (tmp_path / "agent" / "MANIFEST").write_text("crashcart-agent.py relative/path 0755\n")
    with pytest.raises(ConfigurationError, match="absolute install path"):
        agent_files(tmp_path / "agent")


@pytest.mark.parametrize("family", LINUX)
def test_agent_step_embeds_the_agent_files_between_kdump_and_reboot(
    family: str, tmp_path: Path
) -> None:
    _write_agent(tmp_path / "agent")
    text = render_component(family, agent_dir=tmp_path / "agent")
    names = [s["name"] for s in _steps(text, "build")]
    assert names == ["EnableKdump", "InstallCrashcartAgent", "RebootToArmKdump"]
    step = _bash(text, "build", "InstallCrashcartAgent")
    assert "print('EOF')" in step  # the file's content, verbatim
    assert "'/usr/local/libexec/crashcart/crashcart-agent'" in step
    assert "systemctl enable crashcart-agent.service" in step
    assert "docs" not in step  # README.md is not installed
    assert AGENT_MISSING_NOTE not in text
    # the heredoc delimiter cannot occur in the embedded content
    delimiters = re.findall(r"<<'(CRASHCART_AGENT_[0-9a-f]+_EOF)'", step)
    assert len(delimiters) == 2
    for delimiter in delimiters:
        assert step.count(delimiter) == 2


def test_agent_step_installs_an_aws_cli_where_the_os_has_none(tmp_path: Path) -> None:
    _write_agent(tmp_path / "agent")
    debian = _bash(
        render_component("debian-12", agent_dir=tmp_path / "agent"),
        "build",
        "InstallCrashcartAgent",
    )
    assert f"'awscli=={AGENT_AWSCLI_VERSION}'" in debian
    assert "CRASHCART_AWS=/opt/crashcart/awscli/bin/aws" in debian
    al2023 = _bash(
        render_component("amazon-linux-2023", agent_dir=tmp_path / "agent"),
        "build",
        "InstallCrashcartAgent",
    )
    assert "awscli-2" in al2023
    assert "awscli==" not in al2023


@pytest.mark.parametrize("family", LINUX)
def test_without_agent_files_the_step_is_omitted_with_a_visible_note(
    family: str, tmp_path: Path
) -> None:
    text = render_component(family, agent_dir=tmp_path / "no-such-folder")
    names = [s["name"] for s in _steps(text, "build")]
    assert names == ["EnableKdump", "RebootToArmKdump"]
    assert AGENT_MISSING_NOTE in yaml.safe_load(text)["description"]
    assert agent_files(tmp_path / "no-such-folder") == []


def test_the_repository_agent_is_embedded_when_present() -> None:
    """crashcart/components/agent/ is the crash-dump area's; when it exists, it ships."""
    files = agent_files()
    text = render_component("debian-12")
    if not files:
        pytest.skip("no agent files in crashcart/components/agent/ yet (note in description)")
    step = _bash(text, "build", "InstallCrashcartAgent")
    for agent_file in files:
        assert agent_file.destination in step
    manifest = render_module.AGENT_DIR / "MANIFEST"
    if manifest.is_file() and "awscli==" in manifest.read_text():
        assert f"awscli=={AGENT_AWSCLI_VERSION}" in manifest.read_text()
