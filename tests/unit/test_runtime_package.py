"""The shared runtime (crashcart.runtime) keeps the rules that let it ship everywhere.

It is copied into every Lambda asset and the triage image, so it may import only the
standard library and itself, and importing it must not do anything.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from crashcart.functions._asset import RUNTIME_ROOT


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_runtime_modules_import_only_the_standard_library_and_the_runtime() -> None:
    modules = sorted(RUNTIME_ROOT.rglob("*.py"))
    assert modules
    offenders = {
        f"{path.relative_to(RUNTIME_ROOT)}: {name}"
        for path in modules
        for name in _imports(path)
        if name != "__future__"
        and name.split(".")[0] not in sys.stdlib_module_names
        and not (name == "crashcart.runtime" or name.startswith("crashcart.runtime."))
    }
    assert not offenders, sorted(offenders)


def test_the_checker_sees_a_third_party_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("import boto3\nfrom crashcart.constructs import x\nimport json\n")
    assert _imports(module) == ["boto3", "crashcart.constructs", "json"]


def test_importing_the_whole_runtime_loads_nothing_else_of_crashcart() -> None:
    names = sorted(
        "crashcart.runtime" + ("." + ".".join(p.with_suffix("").relative_to(RUNTIME_ROOT).parts))
        for p in RUNTIME_ROOT.rglob("*.py")
        if p.name != "__init__.py"
    )
    code = (
        "import importlib, json, sys\n"
        "import crashcart\n"
        "before = set(sys.modules)\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    added = json.loads(result.stdout)
    assert names, "the runtime has modules"
    assert set(names) <= set(added)
    foreign = [m for m in added if m.startswith(("crashcart", "boto", "aws_cdk", "jsii"))]
    assert all(m.startswith("crashcart.runtime") for m in foreign), foreign
