"""Every `aws ...` command the operator docs show is a valid AWS CLI command.

The AWS CLI (a dev dependency) parses each one with ``--generate-cli-skeleton``, which checks
the service, the operation and every option name and value syntax, then prints a skeleton
instead of calling AWS: no request is made (and the endpoint is 127.0.0.1 in any case).
Commands built with shell substitution (``$(...)``) are skipped. Operations with a streaming
output (``aws lambda invoke ... OUTFILE``) have no skeleton: their option names are checked
against the botocore service model instead.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

AWS_CLI = Path(sys.executable).parent / "aws"
DOCS = [
    REPO_ROOT / "README.md",
    REPO_ROOT / "docs" / "operations.md",
    REPO_ROOT / "docs" / "rollout.md",
    REPO_ROOT / "docs" / "remediation.md",
]


def _documented() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        candidates = re.findall(r"`(aws [a-z0-9-]+ [a-z0-9-]+[^`]*)`", text)
        candidates += [
            line.strip() for line in text.splitlines() if re.match(r"\s*aws [a-z0-9-]+ ", line)
        ]
        for command in candidates:
            if "$(" not in command:
                found.append((path.name, command.split(" #", 1)[0].strip()))
    return sorted(set(found))


def test_the_docs_show_aws_commands() -> None:
    names = {name for name, _ in _documented()}
    assert {"operations.md", "rollout.md"} <= names
    assert len(_documented()) >= 8


@pytest.mark.parametrize(("doc", "command"), _documented(), ids=lambda value: str(value)[:60])
def test_each_documented_aws_command_parses(doc: str, command: str, tmp_path: Path) -> None:
    (tmp_path / "event.json").write_text("{}")
    words = shlex.split(command)
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    done = subprocess.run(
        [str(AWS_CLI), *words[1:], "--generate-cli-skeleton"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if "Unknown options: --generate-cli-skeleton" in done.stderr:
        _check_against_the_model(words)
        return
    assert done.returncode == 0, f"{doc}: {command}\n{done.stderr}"


def _check_against_the_model(words: list[str]) -> None:
    import botocore.session

    service, operation = words[1], words[2]
    model = botocore.session.get_session().get_service_model(service)
    names = {re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower(): name for name in model.operation_names}
    assert operation in names, f"{service} has no operation {operation}"
    members = model.operation_model(names[operation]).input_shape.members
    known = {re.sub(r"(?<!^)(?=[A-Z])", "-", member).lower() for member in members}
    options = [word[2:] for word in words[3:] if word.startswith("--")]
    assert set(options) <= known, (set(options) - known, sorted(known))
