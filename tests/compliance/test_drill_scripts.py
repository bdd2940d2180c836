"""The drill's own shell scripts pass shellcheck: the in-guest step runner and the host-side
sandbox in which the component's install steps run as root."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from crashcart.drill.hostphase import SANDBOX
from crashcart.drill.paths import GUEST_DIR, REPO_ROOT
from tests.support.tools import require_shellcheck

SCRIPTS = [GUEST_DIR / "runner.sh", SANDBOX, REPO_ROOT / "scripts" / "setup.sh"]


@pytest.mark.parametrize("script", SCRIPTS, ids=[path.name for path in SCRIPTS])
def test_script_passes_shellcheck(script: Path) -> None:
    require_shellcheck()
    result = subprocess.run(
        ["shellcheck", "-s", "bash", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_the_sandbox_drops_the_capabilities_that_reach_the_hosts_kernel() -> None:
    text = SANDBOX.read_text()
    bounding = next(line for line in text.splitlines() if "--bounding-set=" in line)
    for capability in ("sys_boot", "sys_module", "sys_time", "sys_admin", "sys_rawio"):
        assert f"-{capability}" in bounding, capability
    assert 'remount,bind,ro "${merged}/proc/sys"' in text
