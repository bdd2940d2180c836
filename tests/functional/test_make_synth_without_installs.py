"""`make synth` works where nothing can be installed: no Debian package, no QEMU, no registry.

Issue 20: synthesizing is the user's first command and must need neither root nor the drill's
Debian packages. Once `make setup` has run (the venv, checkov's venv and the CDK CLI are
there), `make synth` runs with every way to install something broken: `apt-get`, `sudo`,
`dpkg` and QEMU replaced by stand-ins that record the call and fail, `dpkg-query` saying no
Debian package is installed, and pip and npm pointed at a registry on a closed port of
127.0.0.1. It must still synthesize every reference stack, never ask for a drill package,
and run no QEMU.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
STAND_INS = ("apt-get", "apt", "sudo", "dpkg", "qemu-system-x86_64", "qemu-img", "debootstrap")
#: Packages only the drill needs (scripts/setup.sh --drill): synth must never ask for them.
DRILL_ONLY = ("qemu-system-x86", "qemu-utils", "debootstrap", "kexec-tools", "makedumpfile")
CLOSED = "http://127.0.0.1:9"

pytestmark = pytest.mark.slow


def _stand_ins(folder: Path, calls: Path) -> None:
    folder.mkdir()
    for name in STAND_INS:
        tool = folder / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\nexit 97\n', encoding="utf-8")
        tool.chmod(0o755)
    nothing_installed = folder / "dpkg-query"
    nothing_installed.write_text("#!/bin/sh\nexit 1\n", encoding="utf-8")
    nothing_installed.chmod(0o755)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_synth_installs_nothing(tmp_path: Path) -> None:
    needed = [REPO_ROOT / ".venv/bin/python", REPO_ROOT / "node_modules/.bin/cdk"]
    if not all(path.exists() for path in needed):
        pytest.fail("run `make setup` first: the venv and the CDK CLI are set-up, not synth")
    calls = tmp_path / "calls.log"
    _stand_ins(tmp_path / "bin", calls)
    environment = {
        **os.environ,
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "PIP_INDEX_URL": CLOSED,
        "PIP_NO_INDEX": "1",
        "npm_config_registry": CLOSED,
        "npm_config_offline": "true",
    }
    result = subprocess.run(
        ["make", "--no-print-directory", "synth"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    called = calls.read_text(encoding="utf-8") if calls.exists() else ""
    # At most a best-effort attempt at shellcheck (for the compliance tests), which failed.
    assert not [package for package in DRILL_ONLY if package in called], called
    assert "qemu-system-x86_64" not in called and "debootstrap " not in called, called
    templates = {path.name for path in (REPO_ROOT / "cdk.out").glob("*.template.json")}
    assert {
        "CrashcartAccess.template.json",
        "CrashcartImagePipeline.template.json",
        "CrashcartRemediation.template.json",
    } <= templates
    assert "installing Python packages" not in result.stdout + result.stderr
    assert "npm ci" not in result.stdout + result.stderr
