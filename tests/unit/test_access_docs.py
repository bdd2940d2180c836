"""The minimal example of docs/access.md runs and does what it says."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT

ACCESS_DOC = REPO_ROOT / "docs" / "access.md"


def test_minimal_example_runs() -> None:
    text = ACCESS_DOC.read_text(encoding="utf-8")
    example = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert example is not None
    namespace: dict[str, object] = {}
    exec(compile(example.group(1), str(ACCESS_DOC), "exec"), namespace)
    import aws_cdk as cdk

    stack = namespace["stack"]
    assert isinstance(stack, cdk.Stack)
    template = namespace["app"].synth().get_stack_by_name("Example").template  # type: ignore[attr-defined]
    types = [resource["Type"] for resource in template["Resources"].values()]
    assert types.count("AWS::IAM::ManagedPolicy") == 1
    assert "ec2:SendDiagnosticInterrupt" in str(template)
    assert "aws:MultiFactorAuthPresent" in str(template)
