"""The drill's scenarios and negative controls are pinned: none is dropped to save time.

The drill is what proves the kdump path on a real kernel, and the suite has a time budget. A
scenario that disappears, turns from positive to negative, loses its expected failure reason
or stops being run by the e2e layer fails here. Adding a scenario means adding it to
``PINNED`` (and to the e2e layer).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from crashcart.drill import cli
from crashcart.drill.scenarios import NEGATIVE, POSITIVE, SCENARIOS

E2E = Path(__file__).resolve().parents[1] / "e2e"

#: name -> (positive, action, where a negative must stop, a phrase of its reason, image)
PINNED: dict[str, tuple[bool, str, str, str, str]] = {
    "idle": (True, "idle", "", "", "pipeline"),
    "hung-cpus": (True, "hang", "", "", "pipeline"),
    # issue 19: a guest the pipeline did not build, armed in place by the SSM document
    "running-instance": (True, "idle", "", "", "running-instance"),
    "negative-nmi-panic-off": (
        False,
        "idle",
        "validate",
        "kernel.unknown_nmi_panic = 0, expected 1",
        "pipeline",
    ),
    "negative-kdump-disabled": (
        False,
        "idle",
        "validate",
        "capture kernel not loaded",
        "pipeline",
    ),
    "negative-crashkernel-missing": (
        False,
        "idle",
        "validate",
        "/proc/cmdline has 'no crashkernel='",
        "pipeline",
    ),
}


def test_the_scenarios_are_exactly_the_pinned_ones() -> None:
    assert list(SCENARIOS) == list(PINNED)
    for name, (positive, action, stage, reason, image) in PINNED.items():
        scenario = SCENARIOS[name]
        assert scenario.positive is positive, name
        assert scenario.action == action, name
        assert scenario.expect_stage == stage, name
        assert scenario.expect_reason == reason, name
        assert scenario.image == image, name
    assert POSITIVE == ("idle", "hung-cpus", "running-instance")
    assert NEGATIVE == (
        "negative-nmi-panic-off",
        "negative-kdump-disabled",
        "negative-crashkernel-missing",
    )


def _strings_in_e2e() -> set[str]:
    found: set[str] = set()
    for path in sorted(E2E.glob("test_drill_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
    return found


def test_the_e2e_layer_runs_every_scenario() -> None:
    missing = sorted(set(PINNED) - _strings_in_e2e())
    assert not missing, (
        f"scenarios the e2e layer (tests/e2e/test_drill_*.py) never names: {missing}"
    )


def test_make_drill_runs_every_scenario_by_default() -> None:
    # `python -m crashcart.drill` without --scenario runs list(SCENARIOS); only positive
    # scenarios ever start from the saved guest, and never the first one
    assert cli.restores(list(SCENARIOS), "auto") == {
        "idle": False,
        "hung-cpus": True,
        "running-instance": True,
        "negative-nmi-panic-off": False,
        "negative-kdump-disabled": False,
        "negative-crashkernel-missing": False,
    }
    assert not any(cli.restores(list(SCENARIOS), "cold").values())
    assert [n for n, r in cli.restores(list(SCENARIOS), "restore").items() if r] == list(POSITIVE)
    assert cli.restores(["hung-cpus", "idle"], "auto") == {"hung-cpus": False, "idle": True}


def test_each_scenario_image_is_a_document_the_drill_prepares() -> None:
    from crashcart.drill import agent
    from crashcart.drill.component import parse_document
    from crashcart.drill.prepare import IMAGES, RUNNING_INSTANCE_MIN_MEMORY_MIB
    from crashcart.drill.qemu import GUEST_MEMORY_MIB

    assert set(IMAGES) == {scenario.image for scenario in SCENARIOS.values()}
    pipeline, running = IMAGES["pipeline"](), IMAGES["running-instance"]()
    assert pipeline != running  # two prepared images, each cached under its own key
    # both install the agent: the drill lets it attest and ship (no stand-in attestation)
    assert agent.has_agent(pipeline) and agent.has_agent(running)
    # the guest is smaller than the document's default floor: the drill lowers it knowingly,
    # to no more than the guest has
    (first, *_) = parse_document(running).steps("build")
    assert f"\nmin_memory_mib={RUNNING_INSTANCE_MIN_MEMORY_MIB}\n" in first.script
    assert RUNNING_INSTANCE_MIN_MEMORY_MIB <= GUEST_MEMORY_MIB


def test_the_agent_is_found_only_where_a_document_installs_it() -> None:
    from crashcart.drill import agent

    assert agent.has_agent("crashcart-agent.service ... agent_installed=1\\n")
    assert not agent.has_agent("crashcart-agent.service ... agent_installed=0\\n")
    assert not agent.has_agent("crashcart-agent.service ... agent_installed=10")
    assert not agent.has_agent("agent_installed=1")  # no agent unit


def test_the_running_instance_image_may_take_its_longer_first_boot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from crashcart.drill.prepare import default_boot_timeout

    monkeypatch.delenv("CRASHCART_DRILL_BOOT_TIMEOUT", raising=False)
    # its first boot runs the whole arming script under TCG: about 630 s at load 6-7
    assert default_boot_timeout("running-instance") >= 4 * 630
    assert default_boot_timeout() == default_boot_timeout("pipeline") == 900
    monkeypatch.setenv("CRASHCART_DRILL_BOOT_TIMEOUT", "77")
    assert default_boot_timeout("running-instance") == 77
