"""The minimal example in docs/remediation.md runs and synthesizes what it says."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "remediation.md"


def test_minimal_example_runs(tmp_path: object) -> None:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert blocks, "docs/remediation.md has no python example"
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)
    remediation = namespace["remediation"]
    assert remediation.alarms and remediation.dry_run is True  # type: ignore[attr-defined]
    assert remediation.alarm_name_prefix.startswith("crashcart-Watch-")  # type: ignore[attr-defined]


def test_docs_name_every_default_the_construct_uses() -> None:
    text = DOC.read_text(encoding="utf-8")
    for phrase in (
        "3 of 3 one-minute",
        "`dry_run` | `bool` | `True`",
        "`reserved_concurrency` | `int \\| None` | `None`",
        "`boot_grace` 15 min, `cooldown` 6 h, `daily_budget` 1",
        "`fleet_threshold` 5",
        "at most 500 time series",
        "200 Metrics Insights alarms per account and region",
    ):
        assert phrase in text, phrase
