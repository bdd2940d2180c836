"""Reading the CDK validation report that cdk-nag writes at synth (``validation-report.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crashcart.compliance import NAG_PACKS


def validation_report(outdir: str | Path) -> dict[str, Any]:
    """The report of a synthesized assembly; it must exist (a missing one proves nothing)."""
    report: dict[str, Any] = json.loads((Path(outdir) / "validation-report.json").read_text())
    return report


def assert_every_pack_ran_clean(outdir: str | Path) -> None:
    """All five packs reported (each has acknowledged findings here) and none found anything
    unacknowledged."""
    plugins = validation_report(outdir)["pluginReports"]
    assert sorted(plugin["pluginName"] for plugin in plugins) == sorted(NAG_PACKS)
    violations = [
        (plugin["pluginName"], violation["ruleName"])
        for plugin in plugins
        for violation in plugin.get("violations", [])
    ]
    assert violations == []
