"""The organisation example is real code: it synthesizes, and the rollout page shows it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from tests.conftest import REPO_ROOT
from tests.support.remediation import new_app

EXAMPLE = REPO_ROOT / "examples" / "organisation_rollout.py"
PAGE = REPO_ROOT / "docs" / "organisation" / "rollout.md"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crashcart_organisation_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_synthesizes_the_rollout_the_buckets_and_the_management_account(
    tmp_path: Path,
) -> None:
    app = new_app(str(tmp_path))
    stacks = _load().build(app)
    assembly = app.synth()
    names = sorted(stack.stack_name for stack in stacks)
    assert names == [
        "CrashcartAssets-eu-west-1",
        "CrashcartAssets-us-east-1",
        "CrashcartManagementAccount-eu-west-1",
        "CrashcartManagementAccount-us-east-1",
        "CrashcartRollout",
    ]
    rollout = assembly.get_stack_by_name("CrashcartRollout").template
    (stack_set,) = [
        r for r in rollout["Resources"].values() if r["Type"] == "AWS::CloudFormation::StackSet"
    ]
    assert stack_set["Properties"]["StackInstancesGroup"][0]["Regions"] == [
        "eu-west-1",
        "us-east-1",
    ]
    # the rollout depends on the asset buckets: they exist before the copies
    rollout_artifact = assembly.get_stack_by_name("CrashcartRollout")
    assert {d.id for d in rollout_artifact.dependencies} >= {
        "CrashcartAssets-eu-west-1",
        "CrashcartAssets-us-east-1",
    }
    management = assembly.get_stack_by_name("CrashcartManagementAccount-us-east-1").template
    assert "CrashcartCentral" in json.dumps(management["Mappings"])


def test_the_rollout_page_shows_the_whole_example() -> None:
    page = PAGE.read_text(encoding="utf-8")
    body = EXAMPLE.read_text(encoding="utf-8").strip()
    assert f"```python\n{body}\n```" in page
