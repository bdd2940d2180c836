"""Offline IAM decisions from ``@cloud-copilot/iam-simulate`` (npm, pinned in package.json).

:func:`decide` sends simulations to ``tests/support/iam_simulate.mjs`` (node, no network) in
one batch and returns one decision each: ``Allowed``, ``ExplicitlyDenied``,
``ImplicitlyDenied`` or ``Error`` (the simulator refused the input: a test bug).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("iam_simulate.mjs")
PACKAGE = ROOT / "node_modules" / "@cloud-copilot" / "iam-simulate"


def available() -> bool:
    return PACKAGE.is_dir() and shutil.which("node") is not None


def simulation(
    *,
    action: str,
    principal: str,
    resource: str,
    resource_account: str,
    context: dict[str, Any],
    identity: list[dict[str, Any]],
    resource_policy: dict[str, Any] | None,
) -> dict[str, Any]:
    """One request with its principal's identity policies and the resource's policy."""
    return {
        "request": {
            "action": action,
            "principal": principal,
            "resource": {"resource": resource, "accountId": resource_account},
            "contextVariables": context,
        },
        "identityPolicies": [
            {"name": f"identity{i}", "policy": policy} for i, policy in enumerate(identity)
        ],
        "serviceControlPolicies": [],
        "resourceControlPolicies": [],
        "resourcePolicy": resource_policy,
    }


def decide(simulations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The simulator's answer for each simulation, in order."""
    result = subprocess.run(
        ["node", str(SCRIPT)],
        input=json.dumps(simulations),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    answers: list[dict[str, Any]] = json.loads(result.stdout)
    return answers
