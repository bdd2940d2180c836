"""cfn-lint on every template of the reference app (ignored checks: tests/support/cfn_lint.py)."""

from __future__ import annotations

import subprocess
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


def test_the_verdict_is_the_commands(tmp_path: Path) -> None:
    """In this process (tests/support/cfn_lint.py) cfn-lint says what its command says: the
    same exit status (an error and a warning: 2 | 4) and the same lines, ignored checks
    left out."""
    template = tmp_path / "error-and-warning.json"
    template.write_text(
        '{"Parameters": {"Unused": {"Type": "String"}},'
        ' "Resources": {"Q": {"Type": "AWS::SQS::Queue",'
        ' "Properties": {"KmsMasterKeyIdd": "x"}}}}'
    )
    command = subprocess.run(
        [str(cfn_lint_support.CFN_LINT), *cfn_lint_support.cfn_lint_arguments(template)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert command.returncode == 2 | 4, command.stdout + command.stderr
    in_process = _lint(template)
    assert (in_process.returncode, in_process.stdout) == (command.returncode, command.stdout)
    assert "W2001" in in_process.stdout and "E3002" in in_process.stdout, in_process.stdout
