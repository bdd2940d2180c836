"""Every Lambda function asset is self-contained: its code plus the shared runtime, nothing else.

A function asset cannot import the crashcart library, so the shared runtime
(``crashcart.runtime``) is copied into each asset at synth by local bundling (no Docker).
These tests synthesize the remediation stack and look into the staged assets: each one holds
the runtime and a stub ``crashcart/__init__.py``, no caches or tests, and its handler imports
in a fresh interpreter whose only crashcart is the asset's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crashcart.constructs._internal.function_code import LIFECYCLE_HOLD
from crashcart.functions._asset import RUNTIME_ROOT, STUB_INIT
from crashcart.runtime import environment as variables
from crashcart.stacks.remediation import CrashcartRemediationStack
from tests.support.remediation import env, new_app

#: Function -> the other function packages its asset carries (and nothing else does).
INCLUDES = {LIFECYCLE_HOLD.name: LIFECYCLE_HOLD.includes}


@pytest.fixture(scope="module")
def outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("function-assets")
    app = new_app(str(folder))
    CrashcartRemediationStack(app, "Assets", env=env(), full_triage=False)
    app.synth()
    return folder


@pytest.fixture(scope="module")
def template(outdir: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((outdir / "Assets.template.json").read_text())
    return loaded


@pytest.fixture(scope="module")
def assets(outdir: Path, template: dict[str, Any]) -> dict[str, tuple[str, Path]]:
    """Function logical id -> (handler, staged asset folder)."""
    manifest: dict[str, Any] = json.loads((outdir / "Assets.assets.json").read_text())
    # object key in the bootstrap bucket -> staged folder (CDK names objects by asset hash)
    staged = {
        destination["objectKey"]: outdir / asset["source"]["path"]
        for asset in manifest["files"].values()
        for destination in asset["destinations"].values()
    }
    found: dict[str, tuple[str, Path]] = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        key = resource["Properties"]["Code"].get("S3Key")
        if key is None:
            continue  # inline code
        found[logical_id] = (resource["Properties"]["Handler"], staged[key])
    return found


def test_the_stack_has_five_crashcart_functions(assets: dict[str, tuple[str, Path]]) -> None:
    assert len(assets) == 5, sorted(assets)


def test_every_asset_carries_the_shared_runtime_and_a_stub_package(
    assets: dict[str, tuple[str, Path]],
) -> None:
    expected = sorted(
        p.relative_to(RUNTIME_ROOT).as_posix()
        for p in RUNTIME_ROOT.rglob("*.py")
        if "__pycache__" not in p.parts
    )
    for logical_id, (handler, folder) in assets.items():
        runtime = folder / "crashcart" / "runtime"
        shipped = sorted(p.relative_to(runtime).as_posix() for p in runtime.rglob("*.py"))
        assert shipped == expected, logical_id
        for name in expected:
            assert (runtime / name).read_bytes() == (RUNTIME_ROOT / name).read_bytes()
        assert (folder / "crashcart" / "__init__.py").read_text() == STUB_INIT
        # Exactly: the stub, the runtime, the functions package's __init__ and one function
        # (plus the function packages it declares it imports: the lifecycle hold's guards).
        top = sorted(p.relative_to(folder).as_posix() for p in (folder / "crashcart").iterdir())
        assert top == ["crashcart/__init__.py", "crashcart/functions", "crashcart/runtime"]
        functions = sorted(p.name for p in (folder / "crashcart" / "functions").iterdir())
        name = handler.split(".")[2]
        included = list(INCLUDES.get(name, ()))
        assert functions == sorted(["__init__.py", name, *included]), (logical_id, functions)
        assert sorted(p.name for p in folder.iterdir()) == ["crashcart"], logical_id
        junk = [p for p in folder.rglob("*") if p.name in ("__pycache__", "tests", ".mypy_cache")]
        assert not junk, (logical_id, junk)


def test_every_handler_imports_from_its_asset_alone(
    assets: dict[str, tuple[str, Path]], tmp_path: Path
) -> None:
    """A fresh interpreter with the asset first on sys.path, as the Lambda runtime has it."""
    for logical_id, (handler, folder) in assets.items():
        module, _, function = handler.rpartition(".")
        code = (
            "import importlib, json, sys\n"
            f"m = importlib.import_module({module!r})\n"
            f"assert callable(getattr(m, {function!r}))\n"
            "import crashcart\n"
            "print(json.dumps({'crashcart': crashcart.__file__, 'module': m.__file__}))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(folder)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, (logical_id, result.stderr)
        files = json.loads(result.stdout.strip().splitlines()[-1])
        for name, file in files.items():
            assert Path(file).is_relative_to(folder), (logical_id, name, file)


#: Function logical-id prefix -> the unit's environment table.
UNITS = {
    "RemediationFunction": variables.REMEDIATION,
    "CrashDumpsDumpArrivalFunction": variables.DUMP_ARRIVAL,
    "DumpOverdueSweepFunction": variables.INCIDENT_SWEEP,
    "HoldFunction": variables.LIFECYCLE_HOLD,
    "KillSwitchReachFunction": variables.KILL_SWITCH_REACH,
}


def test_every_function_sets_only_its_contract_variables_and_all_required_ones(
    assets: dict[str, tuple[str, Path]], template: dict[str, Any]
) -> None:
    seen: set[str] = set()
    for logical_id in assets:
        (prefix,) = [p for p in UNITS if logical_id.startswith(p)]
        seen.add(prefix)
        contract = UNITS[prefix]
        variables_set = set(
            template["Resources"][logical_id]["Properties"]["Environment"]["Variables"]
        )
        assert variables_set <= set(contract), (logical_id, variables_set - set(contract))
        required = {name for name, default in contract.items() if default is None}
        assert required <= variables_set, (logical_id, required - variables_set)
    assert seen == set(UNITS)
