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
    # the on-call policy, its kill-switch grant, the remediation function's, the
    # dump-arrival function's, the overdue sweep's and the triage job's three (task,
    # execution, EventBridge); no inline policy
    workload_template.resource_count_is("AWS::IAM::ManagedPolicy", 8)
    workload_template.resource_count_is("AWS::IAM::Policy", 0)
    workload_template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "oncall@example.com"}
    )
    workload_template.resource_count_is("AWS::ECS::TaskDefinition", 1)
    Template.from_stack(tooling).has_resource_properties(
        "AWS::ImageBuilder::Component",
        {"Name": Match.string_like_regexp("-debug-symbols$")},
    )
    workload_template.has_resource_properties(
        "AWS::IAM::ManagedPolicy",
        {"Roles": [{"Ref": Match.string_like_regexp("^OnCall")}]},
    )


def test_readme_shows_the_whole_quickstart_with_its_imports() -> None:
    """The README's quick start is examples/quickstart.py, every line, imports included."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    body = QUICKSTART.read_text(encoding="utf-8").strip()
    assert "import aws_cdk as cdk" in body and "from crashcart" in body
    assert f"```python\n{body}\n```" in readme


def test_the_quickstart_runs_as_a_cdk_app(tmp_path: Path) -> None:
    """`python quickstart.py` (what a cdk.json "app" runs) synthesizes both stacks."""
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(QUICKSTART)],
        env={**os.environ, "CDK_OUTDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "Tooling.template.json").is_file()
    assert (tmp_path / "Workload.template.json").is_file()
