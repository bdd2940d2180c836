"""The running-instance document's script passes shellcheck and bash's own parser."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from crashcart.components.arming import render_arming_document
from crashcart.kdump import KdumpSettings
from tests.support.tools import require_shellcheck

SCRIPTS = {
    "defaults": "\n".join(render_arming_document()["mainSteps"][0]["inputs"]["runCommand"]),
    "all-settings": "\n".join(
        render_arming_document(
            KdumpSettings(crashkernel="256M", compression="none", hung_task_panic=True),
            min_memory_mib=4096,
        )["mainSteps"][0]["inputs"]["runCommand"]
    ),
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_passes_shellcheck(name: str, tmp_path: Path) -> None:
    require_shellcheck()
    path = tmp_path / "arm.sh"
    path.write_text(SCRIPTS[name] + "\n", encoding="utf-8")
    result = subprocess.run(
        ["shellcheck", "-s", "bash", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_is_valid_bash_and_posix_sh_can_start_it(name: str) -> None:
    script = SCRIPTS[name]
    assert script.startswith("#!/bin/bash\n")
    result = subprocess.run(
        ["bash", "-n"], input=script, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    # The first command is POSIX: /bin/sh (dash) reaches the re-exec under bash.
    first = next(line for line in script.split("\n") if line.strip() and not line.startswith("#"))
    assert first == '[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"'
