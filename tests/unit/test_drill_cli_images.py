"""``python -m crashcart.drill`` prepares each image its chosen scenarios run on, once, and
runs every scenario on its own image (the pipeline's, or the running-instance path's)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from crashcart.drill import cli


class _Moto:
    url = "http://127.0.0.1:1"

    def __enter__(self) -> _Moto:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _fake_prepared(image: str) -> Any:
    return SimpleNamespace(
        key=f"key-{image}",
        kernel_release="6.1.0-test",
        document=SimpleNamespace(name=f"doc-{image}"),
        base_seconds=0.0,
        prepare_seconds=1.0,
        build_log={},
        cached=True,
    )


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, list[Any]]:
    from crashcart.drill import prepare, remediation, run

    monkeypatch.setenv("CRASHCART_DRILL_CACHE", str(tmp_path))
    seen: dict[str, list[Any]] = {"prepare": [], "run": []}

    def fake_prepare(*, force: bool, snapshot: bool, image: str) -> Any:
        seen["prepare"].append((image, snapshot))
        return _fake_prepared(image)

    def fake_run(prepared: Any, scenario: Any, **options: Any) -> Any:
        seen["run"].append((scenario.name, prepared.key, options["restore"]))
        return SimpleNamespace(
            passed=True, failed_stage=None, reason="", as_dict=lambda: {"scenario": scenario.name}
        )

    monkeypatch.setattr(prepare, "prepare", fake_prepare)
    monkeypatch.setattr(run, "run_scenario", fake_run)
    monkeypatch.setattr(remediation, "MotoServer", _Moto)
    return seen


def test_each_image_is_prepared_once_and_each_scenario_runs_on_its_own(
    calls: dict[str, list[Any]], tmp_path: Path
) -> None:
    out = tmp_path / "results.json"
    names = ["idle", "running-instance", "negative-kdump-disabled"]
    assert cli.run(names, json_path=out) == 0
    # the running-instance image restores (a positive scenario after the first)
    assert calls["prepare"] == [("pipeline", False), ("running-instance", True)]
    assert calls["run"] == [
        ("idle", "key-pipeline", False),
        ("running-instance", "key-running-instance", True),
        ("negative-kdump-disabled", "key-pipeline", False),
    ]
    results = json.loads(out.read_text())
    assert set(results["images"]) == {"pipeline", "running-instance"}
    assert results["image"]["prepared_key"] == "key-pipeline"


def test_only_the_running_instance_scenario_prepares_only_its_image(
    calls: dict[str, list[Any]], tmp_path: Path
) -> None:
    assert cli.run(["running-instance"], json_path=tmp_path / "r.json", boot="restore") == 0
    assert calls["prepare"] == [("running-instance", True)]
    assert calls["run"] == [("running-instance", "key-running-instance", True)]
