"""No regular expression in crashcart ends with ``$`` (issue 14, defect 5).

``$`` also matches before a trailing newline, so ``re.match(r"^i-[0-9a-f]{17}$", value)``
accepts ``"i-0123456789abcdef0\\n"``: an id, name or key with a newline passes validation and
ends up in a table key, a log line or an IAM-scoped API call. Grammars are matched with
``fullmatch`` (no anchors); a pattern that must anchor at the end of a line or string uses
``\\Z``, or ``re.MULTILINE`` where "end of line" is really meant.

The walk covers every Python file of the package except the on-instance agent
(``crashcart/components/agent``, which ships to instances and is checked on its own).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "crashcart"
EXCLUDED = ("components/agent/",)
RE_FUNCTIONS = {
    "compile",
    "match",
    "search",
    "fullmatch",
    "sub",
    "subn",
    "findall",
    "finditer",
    "split",
}


def _pattern_text(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
        value = node.value
        return value.decode("latin-1") if isinstance(value, bytes) else value
    if isinstance(node, ast.JoinedStr):  # f-string: its literal tail decides
        tail = node.values[-1] if node.values else None
        if isinstance(tail, ast.Constant) and isinstance(tail.value, str):
            return tail.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _pattern_text(node.right)
    return None


def _multiline(call: ast.Call) -> bool:
    return "MULTILINE" in ast.unparse(call) or "(?m" in ast.unparse(call)


def _ends_with_dollar(pattern: str) -> bool:
    stripped = pattern.rstrip()
    if not stripped.endswith("$"):
        return False
    backslashes = len(stripped[:-1]) - len(stripped[:-1].rstrip("\\"))
    return backslashes % 2 == 0  # "\$" is a literal dollar


def offenders() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(EXCLUDED):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "re"
                and node.func.attr in RE_FUNCTIONS
                and node.args
            ):
                continue
            pattern = _pattern_text(node.args[0])
            if pattern is None or not _ends_with_dollar(pattern) or _multiline(node):
                continue
            found.append(f"{relative}:{node.lineno}: {pattern[-40:]!r}")
    return found


def test_no_pattern_ends_with_a_dollar() -> None:
    assert offenders() == []


def test_the_walk_finds_the_patterns_it_should() -> None:
    sources = [p for p in PACKAGE.rglob("*.py") if "components/agent" not in p.as_posix()]
    assert len(sources) > 50
    assert _ends_with_dollar(r"^i-[0-9a-f]{17}$")
    assert not _ends_with_dollar(r"cost \$")
    assert _ends_with_dollar(r"path\\$")
    assert not _ends_with_dollar(r"i-[0-9a-f]{17}\Z")


@pytest.mark.parametrize(
    ("pattern", "value"),
    [(r"^i-[0-9a-f]{17}$", "i-0123456789abcdef0\n")],
)
def test_why_dollar_is_not_enough(pattern: str, value: str) -> None:
    assert re.match(pattern, value)  # what the rule prevents
    assert not re.fullmatch(pattern.strip("^$"), value)
