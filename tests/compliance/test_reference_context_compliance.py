"""The reference app passes every compliance pack with its non-default settings too.

The default app is checked in test_reference_app_compliance.py; these settings add topic
subscriptions and per-instance alarms, arm the function and running instances, or drop the
triage job (and with it the cross-stack symbol-store references). Synth raises on any
unacknowledged finding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crashcart.compliance import NAG_PACKS
from crashcart.tools.acknowledgements import read_report, summarize
from crashcart.tools.reference_synth import synthesize_reference_app

SETTINGS: dict[str, dict[str, Any]] = {
    "armed-instances-notified": {
        "crashcart:dry-run": "false",
        "crashcart:instance-ids": "i-0123456789abcdef0,i-0fedcba9876543210",
        "crashcart:notify-email": "oncall@example.com",
        "crashcart:notify-url": "https://hooks.example.com/crashcart",
        "crashcart:arm-running-instances": "true",
    },
    "without-triage": {"crashcart:triage": "false"},
}
#: Warnings a setting must raise (the report lists construct warnings as violations of the
#: "Construct Annotations" plugin): ids from context cannot be tagged by crashcart.
EXPECTED_WARNINGS: dict[str, set[str]] = {
    "armed-instances-notified": {"Annotation::crashcart:remediation:instanceIdsMustBeTagged"},
    "without-triage": set(),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_pack_passes_with_these_settings(name: str, tmp_path: Path) -> None:
    synthesize_reference_app(tmp_path, context=SETTINGS[name])  # raises on a finding
    report = read_report(tmp_path)
    warnings = {
        str(violation.get("ruleName", ""))
        for plugin in report.get("pluginReports", [])
        if not any(plugin["pluginName"].startswith(pack) for pack in NAG_PACKS)
        for violation in plugin.get("violations", [])
    }
    assert warnings == EXPECTED_WARNINGS[name]
    summary = summarize(report)
    assert summary.violations == len(warnings)
    packs = {pack for pack in summary.packs if pack in NAG_PACKS}
    assert packs and set(summary.packs) - packs <= {"Construct Annotations"}
