"""Run cfn-lint on a synthesized template: the one place that says which checks are ignored.

W3005 is ignored: cfn-lint flags the DependsOn the CDK adds from a Lambda function to its
role's default policy as redundant, but that DependsOn is what makes the policy exist before
the function can be invoked (FACTS.md).

W3010 is ignored: in a stack with an account and region, the CDK writes a VPC's availability
zones by name (from the context lookup; ``dummy1a``/``dummy1b`` in tests, which make no
lookups). That is how the CDK places subnets in an environment-specific stack; an
environment-agnostic stack uses ``Fn::GetAZs`` instead (the reference app's templates).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CFN_LINT = Path(sys.executable).with_name("cfn-lint")
IGNORED_CHECKS = ("W3005", "W3010")


def cfn_lint(template: Path) -> subprocess.CompletedProcess[str]:
    """cfn-lint's verdict on ``template`` (exit code 0 = no error and no warning)."""
    return subprocess.run(
        [
            str(CFN_LINT),
            "--format",
            "parseable",
            "--ignore-checks",
            *IGNORED_CHECKS,
            "--",
            str(template),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
