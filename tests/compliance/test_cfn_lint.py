"""cfn-lint on every template of the reference app (ignored checks: tests/support/cfn_lint.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import cfn_lint as cfn_lint_support
from tests.support.cfn_lint import IGNORED_CHECKS
from tests.support.cfn_lint import cfn_lint as _lint


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


@pytest.mark.parametrize("check", IGNORED_CHECKS)
def test_only_justified_checks_are_ignored(check: str) -> None:
    assert check in (cfn_lint_support.__doc__ or "")
