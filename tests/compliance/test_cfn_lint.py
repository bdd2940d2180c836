"""cfn-lint on every template of the reference app.

W3005 is ignored: cfn-lint flags the DependsOn the CDK adds from a Lambda function to its
role's default policy as redundant, but that DependsOn is what makes the policy exist before
the function can be invoked (FACTS.md).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CFN_LINT = Path(sys.executable).with_name("cfn-lint")
IGNORED = ["W3005"]


def _lint(template: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CFN_LINT), "--format", "parseable", "--ignore-checks", *IGNORED, "--", str(template)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_cfn_lint_passes_every_reference_template(reference_templates: dict[str, Path]) -> None:
    assert reference_templates, "the reference app synthesized no stack"
    failures = {}
    for name, template in reference_templates.items():
        result = _lint(template)
        if result.returncode != 0:
            failures[name] = result.stdout + result.stderr
    assert not failures, failures


def test_cfn_lint_can_fail(tmp_path: Path) -> None:
    """The gate is real: a template with a typo in a property is an error."""
    broken = tmp_path / "broken.json"
    broken.write_text(
        '{"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"KmsMasterKeyIdd": "x"}}}}'
    )
    result = _lint(broken)
    assert result.returncode != 0
    assert "E3002" in result.stdout or "E3" in result.stdout, result.stdout


@pytest.mark.parametrize("check", IGNORED)
def test_only_justified_checks_are_ignored(check: str) -> None:
    assert check in (__doc__ or "")
