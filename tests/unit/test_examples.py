"""The README's quick start is real code: it synthesizes, and the README shows it verbatim."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import aws_cdk as cdk
from aws_cdk.assertions import Match, Template

from tests.conftest import REPO_ROOT

QUICKSTART = REPO_ROOT / "examples" / "quickstart.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crashcart_quickstart", QUICKSTART)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_synthesizes_every_part(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path))
    tooling, workload = _load().build(app)
    app.synth()
    Template.from_stack(tooling).resource_count_is("AWS::ImageBuilder::ImagePipeline", 1)
    workload_template = Template.from_stack(workload)
    workload_template.resource_count_is("AWS::DynamoDB::Table", 1)
    workload_template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Environment": {"Variables": {"CRASHCART_DRY_RUN": "true"}}},
    )
    # the on-call policy, the dump-arrival function's, the overdue sweep's and the triage
    # job's three (task, execution, EventBridge)
    workload_template.resource_count_is("AWS::IAM::ManagedPolicy", 6)
    workload_template.resource_count_is("AWS::ECS::TaskDefinition", 1)
    Template.from_stack(tooling).has_resource_properties(
        "AWS::ImageBuilder::Component",
        {"Name": Match.string_like_regexp("-debug-symbols$")},
    )
    workload_template.has_resource_properties(
        "AWS::IAM::ManagedPolicy",
        {"Roles": [{"Ref": Match.string_like_regexp("^OnCall")}]},
    )


def test_readme_shows_the_quickstart_verbatim() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    body = QUICKSTART.read_text(encoding="utf-8")
    start = body.index("def build(")
    assert body[start:].strip() in readme
