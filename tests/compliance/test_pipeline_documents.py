"""Every component document: structure, shellcheck on every bash step, PowerShell syntax.

PowerShell: no PowerShell (pwsh) or Microsoft parser is available from the Debian, PyPI or
npm registries here; the tree-sitter PowerShell grammar from PyPI (``tree-sitter-powershell``)
is, and it finds syntax errors (unbalanced blocks, broken strings, bad expressions). It is not
PowerShell's own parser, so a structural check runs as well.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from crashcart.components.families import FAMILIES
from crashcart.components.render import DocumentSpec, list_documents, render_component
from tests.support.tools import require_shellcheck

KNOWN_INPUTS = {
    "ExecuteBash": {"commands"},
    "ExecutePowerShell": {"commands"},
    "Reboot": {"delaySeconds"},
}
PLATFORM_ACTIONS = {"Linux": {"ExecuteBash", "Reboot"}, "Windows": {"ExecutePowerShell", "Reboot"}}
SPECS = list_documents()


def _id(spec: DocumentSpec) -> str:
    return f"{spec.family}-{spec.phase_set}"


def _document(spec: DocumentSpec) -> dict[str, Any]:
    parsed = yaml.safe_load(render_component(spec.family, spec.phase_set))
    assert isinstance(parsed, dict)
    return parsed


def _scripts(action: str) -> list[tuple[str, str]]:
    """``(id, script)`` for every step with ``action`` in every document."""
    found: list[tuple[str, str]] = []
    for spec in SPECS:
        for phase in _document(spec)["phases"]:
            for step in phase["steps"]:
                if step["action"] == action:
                    script = "\n".join(step["inputs"]["commands"])
                    found.append((f"{_id(spec)}:{phase['name']}:{step['name']}", script))
    return found


@pytest.mark.parametrize("spec", SPECS, ids=_id)
def test_document_structure(spec: DocumentSpec) -> None:
    document = _document(spec)
    assert str(document["schemaVersion"]) == "1.0"
    assert document["name"].startswith("crashcart-")
    assert document["description"]
    phases = [phase["name"] for phase in document["phases"]]
    assert phases[0] == "build"
    assert set(phases) <= {"build", "validate", "test"}
    assert len(phases) == len(set(phases))
    if spec.phase_set == "crash-dump":
        assert phases == ["build", "validate", "test"]
    names: list[str] = []
    for phase in document["phases"]:
        assert phase["steps"], phase["name"]
        for step in phase["steps"]:
            assert set(step) <= {
                "name",
                "action",
                "inputs",
                "onFailure",
                "timeoutSeconds",
                "maxAttempts",
            }
            assert step["action"] in PLATFORM_ACTIONS[spec.platform], step
            inputs = step.get("inputs", {})
            assert set(inputs) <= KNOWN_INPUTS[step["action"]], step["name"]
            if step["action"] in ("ExecuteBash", "ExecutePowerShell"):
                commands = inputs["commands"]
                assert isinstance(commands, list) and commands
                assert all(isinstance(c, str) and c.strip() for c in commands)
            names.append(step["name"])
            assert step["name"].isidentifier(), step["name"]
    assert len(names) == len(set(names)), names


@pytest.mark.parametrize("spec", [s for s in SPECS if s.phase_set == "crash-dump"], ids=_id)
def test_crash_dump_documents_reboot_before_validating(spec: DocumentSpec) -> None:
    build = _document(spec)["phases"][0]["steps"]
    assert build[-1]["action"] == "Reboot"
    assert all(step["action"] != "Reboot" for step in build[:-1])


def test_every_family_is_covered() -> None:
    assert {s.family for s in SPECS} == set(FAMILIES)


# --- bash -----------------------------------------------------------------------------------------

BASH_STEPS = _scripts("ExecuteBash")


def _shellcheck(script: str, tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"{name.replace(':', '_')}.sh"
    path.write_text(script, encoding="utf-8")
    return subprocess.run(
        ["shellcheck", "-s", "bash", str(path)], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def shellcheck_available() -> None:
    require_shellcheck()


@pytest.mark.parametrize(("name", "script"), BASH_STEPS, ids=[n for n, _ in BASH_STEPS])
def test_bash_step_passes_shellcheck(
    name: str, script: str, tmp_path: Path, shellcheck_available: None
) -> None:
    assert script.startswith("set -euo pipefail\n"), name
    result = _shellcheck(script, tmp_path, name)
    assert result.returncode == 0, result.stdout


def test_shellcheck_does_find_problems(tmp_path: Path, shellcheck_available: None) -> None:
    result = _shellcheck("set -euo pipefail\nrm -rf $1/*\n", tmp_path, "bad")
    assert result.returncode != 0
    assert "SC2086" in result.stdout


@pytest.mark.parametrize(("name", "script"), BASH_STEPS, ids=[n for n, _ in BASH_STEPS])
def test_bash_step_is_valid_bash(name: str, script: str) -> None:
    result = subprocess.run(
        ["bash", "-n"], input=script, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


# --- PowerShell -----------------------------------------------------------------------------------

POWERSHELL_STEPS = _scripts("ExecutePowerShell")


def _parse_powershell(script: str) -> bool:
    """True if the tree-sitter PowerShell grammar parses ``script`` without errors."""
    tree_sitter = pytest.importorskip("tree_sitter")
    grammar = pytest.importorskip("tree_sitter_powershell")
    parser = tree_sitter.Parser(tree_sitter.Language(grammar.language()))
    return not parser.parse(script.encode("utf-8")).root_node.has_error


def test_there_are_powershell_steps() -> None:
    assert len(POWERSHELL_STEPS) >= 6  # 3 per Windows family


@pytest.mark.parametrize(("name", "script"), POWERSHELL_STEPS, ids=[n for n, _ in POWERSHELL_STEPS])
def test_powershell_step_parses(name: str, script: str) -> None:
    assert _parse_powershell(script), name


def test_powershell_parser_does_find_errors() -> None:
    assert not _parse_powershell("if ($x -eq 1 {\n  Write-Output 'x'\n")
    assert _parse_powershell("if ($x -eq 1) {\n  Write-Output 'x'\n}\n")


@pytest.mark.parametrize(("name", "script"), POWERSHELL_STEPS, ids=[n for n, _ in POWERSHELL_STEPS])
def test_powershell_step_structure(name: str, script: str) -> None:
    """Without a real parser, at least: errors stop the step, brackets balance, quotes close."""
    assert script.startswith("$ErrorActionPreference = 'Stop'\n"), name
    for line in script.splitlines():
        assert line.count("'") % 2 == 0, line
        assert line.count('"') % 2 == 0, line
    for opening, closing in ("{}", "()", "[]"):
        assert script.count(opening) == script.count(closing), (name, opening)
