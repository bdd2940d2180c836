"""The README leads with the user's path, and its architecture diagram is in step with the code.

- The Mermaid diagram shows the six steps in order and names every public construct class
  of ``crashcart.constructs``; a construct it names must exist. Its structure is checked
  (subgraphs closed, every edge between declared nodes) since nothing here renders it.
- The user's sections (install, quick start, deploy) come before the contributor's.
- Every ``crashcart ...`` command shown in a code block parses with the real CLI parser.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import constructs
import pytest

import crashcart.constructs as library
from crashcart import cli
from tests.conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS = [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]
STEPS = ["bake", "detect", "interrupt", "capture", "triage", "prove"]
#: CamelCase words in the diagram that are AWS names, not crashcart constructs.
AWS_WORDS = {"SendDiagnosticInterrupt"}

_NODE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(\[\(|\(\[|\[|\(|\{)")
_EDGE = re.compile(
    r"^\s*([A-Za-z0-9_]+)\s*(?:--\s*\"[^\"]*\"\s*-->|-\.\s*\"[^\"]*\"\s*\.->|-->|-\.->)\s*"
    r"([A-Za-z0-9_]+)\s*$"
)


def _diagram() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"```mermaid\n(.*?)```", text, re.S)
    assert match, "README has no ```mermaid block"
    return match.group(1)


def _construct_classes() -> list[str]:
    return [
        name
        for name in library.__all__
        if isinstance(getattr(library, name), type)
        and issubclass(getattr(library, name), constructs.Construct)
    ]


def test_the_diagram_comes_first_and_is_a_flowchart() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.index("```mermaid") < text.index("## ")
    assert _diagram().lstrip().startswith("flowchart LR")


def test_the_diagram_shows_the_six_steps_in_order() -> None:
    labels = re.findall(r'^\s*subgraph \w+\["\d ([a-z]+)"\]', _diagram(), re.M)
    assert labels == STEPS


def test_the_diagram_names_every_public_construct() -> None:
    diagram = _diagram()
    missing = [name for name in _construct_classes() if name not in diagram]
    assert missing == [], f"add to the README diagram: {missing}"
    assert len(_construct_classes()) >= 7


def test_every_construct_the_diagram_names_exists() -> None:
    named = set(re.findall(r"\b[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)+\b", _diagram()))
    unknown = named - set(library.__all__) - AWS_WORDS
    assert unknown == set(), f"the README diagram names what crashcart does not have: {unknown}"


def test_the_diagram_is_well_formed() -> None:
    lines = [line for line in _diagram().splitlines() if line.strip()]
    depth = 0
    declared: list[str] = []
    edges: list[tuple[str, str]] = []
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("subgraph "):
            depth += 1
        elif stripped == "end":
            depth -= 1
            assert depth >= 0, line
        elif edge := _EDGE.match(line):
            edges.append((edge.group(1), edge.group(2)))
        elif node := _NODE.match(line):
            declared.append(node.group(1))
        else:
            raise AssertionError(f"unrecognised diagram line: {line!r}")
    assert depth == 0, "a subgraph is not closed"
    assert len(declared) == len(set(declared)), "a node id is declared twice"
    undeclared = {end for edge in edges for end in edge} - set(declared)
    assert undeclared == set(), undeclared
    assert set(declared) <= {end for edge in edges for end in edge}, "a node has no edge"


def test_the_users_path_comes_before_the_contributors() -> None:
    text = README.read_text(encoding="utf-8")
    order = ["## Install", "## Quick start", "## Deploy", "## Contributing"]
    positions = [text.index(heading) for heading in order]
    assert positions == sorted(positions)
    deploy = text[text.index("## Deploy") : text.index("## Contributing")]
    for needed in ("cdk bootstrap", "cdk deploy", "docs/rollout.md", "docs/cost.md"):
        assert needed in deploy, needed
    assert "pip install" in text[text.index("## Install") : text.index("## Quick start")]


def _documented_cli_commands() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        fenced = False
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip().startswith("```"):
                fenced = not fenced
                continue
            in_code = fenced or line.startswith("    ")
            text = line.split(" #", 1)[0].strip()
            synopsis = "[" in text  # a usage line ("[--region R ...]"), not a command
            command = re.match(r"crashcart (check-permissions|attestation|triage)\b", text)
            if in_code and command and not synopsis:
                found.append((path.name, text))
    return found


def test_the_docs_show_cli_commands() -> None:
    assert {name for name, _ in _documented_cli_commands()} >= {"README.md", "rollout.md"}


@pytest.mark.parametrize(
    "command", [c for _, c in _documented_cli_commands()], ids=lambda c: c[:50]
)
def test_every_documented_cli_command_parses(command: str) -> None:
    args = cli.build_parser().parse_args(shlex.split(command)[1:])
    assert callable(args.handler)


def test_docs_link_to_files_that_exist() -> None:
    broken = []
    for path in [README, REPO_ROOT / "CHANGELOG.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
            if not (path.parent / target).exists():
                broken.append(f"{path.name}: {target}")
    assert broken == []


def test_quickstart_and_readme_name_the_same_install_extras() -> None:
    import tomllib

    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    install = README.read_text(encoding="utf-8").split("## Install", 1)[1].split("## ", 1)[0]
    for extra in ("triage", "nag"):
        assert extra in extras and f"`[{extra}]`" in install
    assert Path(REPO_ROOT / "examples" / "quickstart.py").is_file()
