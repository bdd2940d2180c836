"""Run cfn-lint on a synthesized template: the one place that says which checks are ignored.

W3005 is ignored: cfn-lint flags the DependsOn the CDK adds from a Lambda function to its
role's default policy as redundant, but that DependsOn is what makes the policy exist before
the function can be invoked (FACTS.md).

W3010 is ignored: in a stack with an account and region, the CDK writes a VPC's availability
zones by name (from the context lookup; ``dummy1a``/``dummy1b`` in tests, which make no
lookups). That is how the CDK places subnets in an environment-specific stack; an
environment-agnostic stack uses ``Fn::GetAZs`` instead (the reference app's templates).

cfn-lint runs in the test process, through the entry point its ``cfn-lint`` command calls
(``cfnlint.runner.main``) with the command's arguments: the same rules, output and exit
status, but its import and the resource schemas it reads are paid once per process, not once
per template (a subprocess per template cost 0.6-1.4 s of CPU more each; issue 24).
``tests/compliance/test_cfn_lint.py`` checks the verdict against the command's.
"""

from __future__ import annotations

import contextlib
import io
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

CFN_LINT = Path(sys.executable).with_name("cfn-lint")
IGNORED_CHECKS = ("W3005", "W3010")


def cfn_lint_arguments(template: Path) -> list[str]:
    """The command line: parseable output, the ignored checks, one template."""
    return ["--format", "parseable", "--ignore-checks", *IGNORED_CHECKS, "--", str(template)]


def cfn_lint(template: Path) -> subprocess.CompletedProcess[str]:
    """cfn-lint's verdict on ``template`` (exit code 0 = no error and no warning)."""
    from cfnlint.runner import main

    arguments = cfn_lint_arguments(template)
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        _as_the_command(arguments),
        _logger_kept(),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        code = _exit_status(main)
    return subprocess.CompletedProcess(
        [str(CFN_LINT), *arguments], code, stdout.getvalue(), stderr.getvalue()
    )


def _exit_status(main: Callable[[], None]) -> int:
    """What the command would exit with: ``main`` always ends in ``sys.exit``."""
    try:
        main()
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            return done.code or 0
        print(done.code, file=sys.stderr)  # sys.exit("message"): exit status 1
        return 1
    return 0


@contextlib.contextmanager
def _as_the_command(arguments: list[str]) -> Iterator[None]:
    saved = sys.argv
    sys.argv = [str(CFN_LINT), *arguments]
    try:
        yield
    finally:
        sys.argv = saved


@contextlib.contextmanager
def _logger_kept() -> Iterator[None]:
    """The command sets up its logger (a handler on the stderr of the moment): undone after."""
    logger = logging.getLogger("cfnlint")
    handlers, level = list(logger.handlers), logger.level
    try:
        yield
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)
