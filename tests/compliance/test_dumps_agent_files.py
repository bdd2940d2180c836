"""The agent's install files: the manifest names every file, systemd accepts the units."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.dumps import AGENT

AGENT_DIR = AGENT.parent
INSTALLED = "/usr/local/libexec/crashcart/crashcart-agent"


def manifest() -> list[tuple[str, str, str]]:
    rows = []
    for line in (AGENT_DIR / "MANIFEST").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            source, target, mode = line.split()
            rows.append((source, target, mode))
    return rows


def test_manifest_lists_every_file_with_an_absolute_path_and_mode() -> None:
    rows = manifest()
    assert {source for source, _, _ in rows} == {
        p.name for p in AGENT_DIR.iterdir() if p.is_file() and p.name != "MANIFEST"
    }
    for _source, target, mode in rows:
        assert target.startswith("/")
        assert mode in ("0755", "0644")
    assert ("crashcart-agent.py", INSTALLED, "0755") in rows


def test_units_run_the_installed_agent() -> None:
    service = (AGENT_DIR / "crashcart-agent.service").read_text()
    assert f"ExecStart={INSTALLED} run" in service
    assert "Type=oneshot" in service
    assert "After=network-online.target" in service


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    service = (AGENT_DIR / "crashcart-agent.service").read_text().replace(INSTALLED, str(AGENT))
    (tmp_path / "crashcart-agent.service").write_text(service)
    shutil.copy(AGENT_DIR / "crashcart-agent.timer", tmp_path)
    result = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",
            str(tmp_path / "crashcart-agent.service"),
            str(tmp_path / "crashcart-agent.timer"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "crashcart-agent" not in result.stderr  # no warnings about our units
