"""The built wheel works on its own: installed into a fresh venv, it synthesizes a stack.

The Lambda code and component documents must ship as package data and be found from
``Path(__file__)``: the test builds the wheel from a copy of the sources, installs it into a
new venv, runs from a directory where no source tree is importable and checks the assets.
"""

from __future__ import annotations

import json
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, TEST_ACCOUNT, TEST_REGION

#: Among the longest modules: sent out first (tests/conftest.py), not left for last.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("wheel-src")
    shutil.copytree(
        REPO_ROOT / "crashcart",
        src / "crashcart",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, src / name)
    dist = tmp_path_factory.mktemp("wheel-dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)],
        cwd=src,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = dist.glob("crashcart-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A new venv with the wheel installed; its dependencies come from the test venv via a
    .pth path entry (no network, and no editable crashcart: .pth files in a path added by a
    .pth file are not processed). The venv gets no pip of its own (ensurepip costs about
    3 s of CPU): the test venv's pip installs into it (``--python``)."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(python), "install", "-q"),
            *("--disable-pip-version-check", "--no-deps", "--no-index", str(wheel)),
        ],
        check=True,
        timeout=120,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "crashcart-test-deps.pth").write_text(site.getsitepackages()[0] + "\n")
    return python


def test_wheel_ships_lambda_code_and_components(wheel: Path) -> None:
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    for function in ("remediation", "dump_arrival", "incident_sweep", "kill_switch"):
        assert f"crashcart/functions/{function}/handler.py" in names, names
    assert "crashcart/runtime/incident.py" in names
    assert "crashcart/py.typed" in names
    assert not any("__pycache__" in n for n in names)


def test_installed_wheel_synthesizes_the_reference_app(fresh_venv: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        import aws_cdk as cdk
        import crashcart
        from crashcart.stacks import build_reference_app, CONTEXT_ACCOUNT, CONTEXT_REGION
        assert "site-packages" in crashcart.__file__, crashcart.__file__
        app = cdk.App(outdir="out", context={{CONTEXT_ACCOUNT: "{TEST_ACCOUNT}",
                                              CONTEXT_REGION: "{TEST_REGION}"}})
        build_reference_app(app)
        assembly = app.synth()
        print(json.dumps({{"file": crashcart.__file__,
                           "stacks": [s.stack_name for s in assembly.stacks]}}))
        """
    )
    result = subprocess.run(
        [str(fresh_venv), "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert str(tmp_path) not in summary["file"]
    assert summary["stacks"]
    # Every Lambda asset was staged from the installed package and carries its handler.
    handlers = sorted((tmp_path / "out").glob("asset.*/crashcart/functions/*/handler.py"))
    assert handlers, sorted(p.name for p in (tmp_path / "out").iterdir())
