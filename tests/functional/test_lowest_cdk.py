"""The examples and the reference app synthesize at the lowest CDK the install range allows.

``pyproject.toml`` lets a user's app bring its own ``aws-cdk-lib`` and ``constructs`` within
ranges; the floors of those ranges are a promise. This test installs exactly the floors (from
the package registry, with pip) into a virtual environment of its own, cached between runs,
and synthesizes ``examples/quickstart.py`` and the reference app there with this checkout on
the path. It is skipped only outside CI when the registry cannot be reached; in CI (``CI``
set) that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

#: Synthesizes the quick start and the reference app; prints the CDK version and the stacks.
SYNTH = r"""
import importlib, json, sys, tempfile
import aws_cdk as cdk
import importlib.metadata as metadata
from crashcart.stacks import build_reference_app
from crashcart.tools.reference_synth import cdk_json_context
stacks = []
app = cdk.App(outdir=tempfile.mkdtemp())
importlib.import_module("examples.quickstart").build(app)
stacks += [s.stack_name for s in app.synth().stacks]
app = cdk.App(outdir=tempfile.mkdtemp(), context=cdk_json_context())
build_reference_app(app)
stacks += [s.stack_name for s in app.synth().stacks]
print(json.dumps({"aws-cdk-lib": metadata.version("aws-cdk-lib"),
                  "constructs": metadata.version("constructs"), "stacks": stacks}))
"""


def floors() -> dict[str, str]:
    """``{"aws-cdk-lib": "2.x.y", "constructs": "10.x.y"}``: the ``>=`` of each range."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for requirement in project["project"]["dependencies"]:
        match = re.fullmatch(r"(aws-cdk-lib|constructs)>=([0-9.]+),<([0-9]+)", requirement)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def test_the_cdk_requirements_are_ranges_and_the_dev_extra_pins_them() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert set(floors()) == {"aws-cdk-lib", "constructs"}, project["project"]["dependencies"]
    dev = project["project"]["optional-dependencies"]["dev"]
    assert any(re.fullmatch(r"aws-cdk-lib==[0-9.]+", d) for d in dev), dev
    assert any(re.fullmatch(r"constructs==[0-9.]+", d) for d in dev), dev


@pytest.fixture(scope="module")
def floor_python() -> Path:
    """A cached venv with exactly the floors installed (built on first use)."""
    versions = floors()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "crashcart"
    venv = cache / f"lowest-cdk-{versions['aws-cdk-lib']}-{versions['constructs']}"
    python = venv / "bin" / "python"
    stamp = venv / ".crashcart-installed"
    if stamp.is_file():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"aws-cdk-lib=={versions['aws-cdk-lib']}",
            f"constructs=={versions['constructs']}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if install.returncode != 0:
        reason = f"could not install the CDK floors {versions}: {install.stderr[-600:]}"
        if os.environ.get("CI"):
            pytest.fail(reason)  # in CI the floor must be proven
        pytest.skip(reason)
    stamp.write_text(json.dumps(versions), encoding="utf-8")
    return python


def test_examples_and_reference_app_synthesize_at_the_floors(
    floor_python: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [str(floor_python), "-c", SYNTH],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    versions = floors()
    assert summary["aws-cdk-lib"] == versions["aws-cdk-lib"]
    assert summary["constructs"] == versions["constructs"]
    assert {"Tooling", "Workload", "CrashcartRemediation"} <= set(summary["stacks"])
