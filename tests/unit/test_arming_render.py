"""The running-instance document: its shape, its limits, and that it is rendered from the
image pipeline's fragments (the same source of truth), not from a copy."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from crashcart.components import render
from crashcart.components.arming import (
    DOCUMENT_SIZE_LIMIT,
    FAILURE_CODES,
    NO_CAPTURE_MEMORY_HOOK,
    OS_RELEASE,
    REBOOT_PARAMETER,
    STEP_NAME,
    armable_families,
    render_arming_document,
    render_arming_script,
    running_instance_settings,
)
from crashcart.components.families import FAMILIES
from crashcart.errors import ConfigurationError
from crashcart.kdump import KdumpSettings, WindowsCrashDumpSettings


def test_document_shape() -> None:
    document = render_arming_document()
    assert document["schemaVersion"] == "2.2"
    assert set(document["parameters"]) == {REBOOT_PARAMETER}
    parameter = document["parameters"][REBOOT_PARAMETER]
    assert parameter["default"] == "no"
    assert parameter["allowedValues"] == ["no", "yes"]
    (step,) = document["mainSteps"]
    assert step["action"] == "aws:runShellScript"
    assert step["name"] == STEP_NAME
    assert step["precondition"] == {"StringEquals": ["platformType", "Linux"]}
    assert "\n".join(step["inputs"]["runCommand"]) + "\n" == render_arming_script()


def test_document_fits_ssm_limit() -> None:
    size = len(json.dumps(render_arming_document(), separators=(",", ":")).encode())
    assert size < DOCUMENT_SIZE_LIMIT * 0.9, size  # room for the agent to grow


def test_only_parameter_references_are_double_braced() -> None:
    # SSM substitutes {{ name }} everywhere in the document: anything else would break it.
    script = render_arming_script()
    assert re.findall(r"\{\{.*?\}\}", script) == [f"{{{{ {REBOOT_PARAMETER} }}}}"]


def test_every_linux_family_is_detected_and_no_windows() -> None:
    linux = {f for f, info in FAMILIES.items() if info.platform == "Linux"}
    assert {info.family for info in armable_families()} == linux == set(OS_RELEASE)
    script = render_arming_script()
    for family, (os_id, version) in OS_RELEASE.items():
        assert f"  {os_id}:{version}) family={family} ;;" in script


def test_failure_codes_never_ask_for_a_reboot() -> None:
    codes = list(FAILURE_CODES.values())
    assert len(set(codes)) == len(codes)
    assert not {0, 1, 194, 3010} & set(codes)


def test_settings_reach_the_script() -> None:
    settings = KdumpSettings(crashkernel="512M", dump_level=17, compression="zlib")
    script = render_arming_script(settings, min_memory_mib=4096)
    assert "crashkernel='512M'" in script
    assert "min_memory_mib=4096" in script
    assert "MAKEDUMP_ARGS '\"-c -d 17\"'" in script
    assert "'makedumpfile -c -d 17 --message-level 7'" in script


def test_the_fragments_are_the_source_of_truth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fragments = tmp_path / "fragments"
    shutil.copytree(render.FRAGMENTS_DIR, fragments)
    for name in ("kdump-tools-enable.sh", "kdumpctl-enable.sh", "validate.sh"):
        path = fragments / name
        path.write_text(path.read_text() + f"\necho 'marker from {name}'\n")
    monkeypatch.setattr(render, "FRAGMENTS_DIR", fragments)
    script = render_arming_script()
    for name in ("kdump-tools-enable.sh", "kdumpctl-enable.sh", "validate.sh"):
        assert f"echo 'marker from {name}'" in script


def test_each_family_runs_its_image_components_step() -> None:
    script = render_arming_script()
    # grubby on the kdumpctl families, grub.d + update-grub on the kdump-tools families
    assert "grubby --update-kernel=ALL --args='crashkernel=" in script
    assert "update-grub" in script
    assert "set_directive /etc/kdump.conf auto_reset_crashkernel no" in script  # RHEL 9
    branch = re.search(r"  rhel-9\)\n(.*?)\n    ;;", script, re.S)
    assert branch is not None and "configure_rhel_9" in branch.group(1)
    branch = re.search(r"  ubuntu-24.04\)\n(.*?)\n    ;;", script, re.S)
    assert branch is not None
    assert "kdump_packages=(linux-crashdump kdump-tools kexec-tools makedumpfile)" in (
        branch.group(1)
    )
    assert "configure_debian_12" in branch.group(1)  # the same steps, its own packages


def test_agent_payload_is_the_agent_folder() -> None:
    import base64
    import gzip

    script = render_arming_script()
    for agent_file in render.agent_files():
        match = re.search(
            rf"base64 -d <<'(CRASHCART_AGENT_\w+_EOF)' \| gzip -dc >"
            rf"'/etc/crashcart/\.staged-{re.escape(agent_file.source.name)}'\n(.*?)\n\1",
            script,
            re.S,
        )
        assert match is not None, agent_file.source.name
        payload = gzip.decompress(base64.b64decode(match.group(2)))
        assert payload == agent_file.source.read_bytes()


def test_without_agent_the_agent_step_is_a_no_op() -> None:
    script = render_arming_script(include_agent=False)
    assert "crashcart-agent" not in script.replace("crashcart-agent.service", "")
    assert "awscli" not in script
    assert "agent_installed=0" in script


@pytest.mark.parametrize("value", [0, 511, 1_048_577, True, "2048"])
def test_fails_on_a_bad_memory_floor(value: object) -> None:
    with pytest.raises(ConfigurationError, match="min_memory_mib"):
        render_arming_script(min_memory_mib=value)  # type: ignore[arg-type]


def test_fails_on_windows_settings() -> None:
    with pytest.raises(ConfigurationError, match="Linux-only"):
        render_arming_script(WindowsCrashDumpSettings())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("family", "function"),
    [
        ("debian-12", "configure_debian_12"),
        ("ubuntu-24.04", "configure_debian_12"),  # the same steps, its own package list
        ("amazon-linux-2023", "configure_amazon_linux_2023"),
        ("rhel-9", "configure_rhel_9"),
    ],
)
def test_each_family_runs_exactly_its_image_components_kdump_step(
    family: str, function: str
) -> None:
    """The function is the component's EnableKdump step, but for two runtime values: the
    package list (set per family) and the architecture (the instance's)."""
    import yaml

    script = render_arming_script()
    match = re.search(rf"^{function}\(\) \(\n(.*?)\n\)$", script, re.S | re.M)
    assert match is not None
    # the same settings: the document arms every family with one crashkernel
    settings = running_instance_settings(KdumpSettings())
    document = yaml.safe_load(render.render_component(family, "crash-dump", settings))
    (step,) = [s for p in document["phases"] for s in p["steps"] if s["name"] == "EnableKdump"]
    packages = " ".join(FAMILIES[family].kdump_packages)
    expected = (
        "\n".join(step["inputs"]["commands"])
        .rstrip("\n")
        .replace(f"packages=({packages})", 'packages=("${kdump_packages[@]}")')
        .replace("CRASHCART_ARCHITECTURE='x86_64'", "CRASHCART_ARCHITECTURE='${crashcart_machine}'")
        # the capture-memory hook does not fit in SSM's 64 KB document
        .replace(
            render.capture_memory_hook(FAMILIES[family]),
            NO_CAPTURE_MEMORY_HOOK,
        )
    )
    assert match.group(1) == expected
    assert f"kdump_packages=({packages})" in script


def test_the_drill_runner_accepts_the_running_instance_path() -> None:
    """The local drill's runner (which refuses what it does not implement) can run it."""
    from crashcart.components.arming import render_arming_drill_document
    from crashcart.drill.component import parse_document

    text = render_arming_drill_document(min_memory_mib=768)
    document = parse_document(text)
    build = document.steps("build")
    assert [(s.name, s.action) for s in build] == [
        ("ArmRunningInstance", "ExecuteBash"),
        ("RebootByTheOperator", "Reboot"),
        ("ArmRunningInstanceAfterReboot", "ExecuteBash"),
    ]
    expected = render_arming_script(min_memory_mib=768).replace(
        f"{{{{ {REBOOT_PARAMETER} }}}}", "no"
    )
    assert build[0].script.rstrip("\n") == expected.rstrip("\n")
    assert build[2].script == build[0].script
    (validate,) = document.steps("validate")
    assert "crashcart-validate: kdump armed" in validate.script
    with pytest.raises(ConfigurationError, match="reboot_if_pending 'maybe'"):
        render_arming_drill_document(reboot_if_pending="maybe")
