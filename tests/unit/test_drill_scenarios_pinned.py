"""The drill's scenarios and negative controls are pinned: none is dropped to save time.

The drill is what proves the kdump path on a real kernel, and the suite has a time budget. A
scenario that disappears, turns from positive to negative, loses its expected failure reason
or stops being run by the e2e layer fails here. Adding a scenario means adding it to
``PINNED`` (and to the e2e layer).
"""

from __future__ import annotations

import ast
from pathlib import Path

from crashcart.drill import cli
from crashcart.drill.scenarios import NEGATIVE, POSITIVE, SCENARIOS

E2E = Path(__file__).resolve().parents[1] / "e2e"

#: name -> (positive, action, where a negative must stop, a phrase of its reason)
PINNED: dict[str, tuple[bool, str, str, str]] = {
    "idle": (True, "idle", "", ""),
    "hung-cpus": (True, "hang", "", ""),
    "negative-nmi-panic-off": (
        False,
        "idle",
        "validate",
        "kernel.unknown_nmi_panic = 0, expected 1",
    ),
    "negative-kdump-disabled": (False, "idle", "validate", "capture kernel not loaded"),
    "negative-crashkernel-missing": (
        False,
        "idle",
        "validate",
        "/proc/cmdline has 'no crashkernel='",
    ),
}


def test_the_scenarios_are_exactly_the_pinned_ones() -> None:
    assert list(SCENARIOS) == list(PINNED)
    for name, (positive, action, stage, reason) in PINNED.items():
        scenario = SCENARIOS[name]
        assert scenario.positive is positive, name
        assert scenario.action == action, name
        assert scenario.expect_stage == stage, name
        assert scenario.expect_reason == reason, name
    assert POSITIVE == ("idle", "hung-cpus")
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
        "negative-nmi-panic-off": False,
        "negative-kdump-disabled": False,
        "negative-crashkernel-missing": False,
    }
    assert not any(cli.restores(list(SCENARIOS), "cold").values())
    assert [n for n, r in cli.restores(list(SCENARIOS), "restore").items() if r] == list(POSITIVE)
    assert cli.restores(["hung-cpus", "idle"], "auto") == {"hung-cpus": False, "idle": True}
