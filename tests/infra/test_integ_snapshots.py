"""The in-account integ tests (``make integ``) synthesize offline and match their snapshots.

``make integ`` is never run here (it needs an account); this keeps what it would deploy and
assert in step with the code. After a deliberate change: ``python -m tests.integ.snapshot``.
"""

from __future__ import annotations

import json

from tests.integ.snapshot import SNAPSHOT_DIR, synthesize


def test_the_integ_app_matches_its_snapshots() -> None:
    templates = synthesize()
    stored = {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(SNAPSHOT_DIR.glob("*.template.json"))
    }
    assert sorted(templates) == sorted(stored), "run: python -m tests.integ.snapshot"
    for name, template in templates.items():
        assert template == stored[name], f"{name} drifted; run: python -m tests.integ.snapshot"


def test_the_assertions_build_drill_and_check_promotion() -> None:
    (assertions,) = [t for n, t in synthesize().items() if "DeployAssert" in n]
    calls = {
        r["Properties"]["api"]: r["Properties"]
        for r in assertions["Resources"].values()
        if r["Type"].startswith("Custom::DeployAssert@SdkCall")
    }
    assert set(calls) == {
        "startImagePipelineExecution",
        "getImage",
        "startExecution",
        "describeExecution",
        "getParameter",
    }
    expected = {api: props.get("expected") for api, props in calls.items()}
    assert "AVAILABLE" in str(expected["getImage"])
    assert "SUCCEEDED" in str(expected["describeExecution"])
    assert "Parameter" in str(expected["getParameter"])
