"""The README's reference-app command, run through the real CDK CLI (synth, not deploy).

`-c` values reach the app as strings through the CLI; this proves the documented flags
work there, not only in-process. Offline: scripts/cdk-offline hides every credential.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from tests.conftest import REPO_ROOT

CDK_OFFLINE = REPO_ROOT / "scripts" / "cdk-offline"


def _readme_command() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    (line,) = [
        line.strip()
        for line in readme.splitlines()
        if re.match(r"\s*node_modules/\.bin/cdk deploy --all -c crashcart:", line)
    ]
    return shlex.split(line)


def test_the_readme_command_synthesizes_through_the_cli(tmp_path: Path) -> None:
    words = _readme_command()
    flags = words[words.index("--all") + 1 :]
    done = subprocess.run(
        [str(CDK_OFFLINE), "synth", "--quiet", "--output", str(tmp_path), *flags],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    context = dict(flags[i + 1].split("=", 1) for i in range(0, len(flags), 2))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    remediation = manifest["artifacts"]["CrashcartRemediation"]
    assert remediation["environment"].endswith("/" + context["crashcart:region"])
    template = json.loads((tmp_path / "CrashcartRemediation.template.json").read_text())
    endpoints = [
        r["Properties"]["Endpoint"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::SNS::Subscription"
    ]
    assert endpoints == [context["crashcart:notify-email"]]
