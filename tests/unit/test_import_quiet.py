"""Importing crashcart prints nothing: no jsii Node end-of-life banner on stderr.

The banner comes from the jsii runtime that ``aws_cdk`` starts; crashcart sets jsii's own
silencing variables before the constructs import ``aws_cdk`` (crashcart/__init__.py), and
leaves alone any the user has set. Each check runs in a fresh interpreter with the
variables removed, as a user's shell would have them.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

JSII_VARIABLES = (
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION",
    "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION",
    "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION",
)


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in JSII_VARIABLES}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.parametrize(
    "code",
    [
        "import crashcart",
        "import crashcart.constructs",
        "from crashcart import UnresponsiveInstanceRemediation",
        "import crashcart.stacks; import aws_cdk; aws_cdk.App()",
    ],
)
def test_import_prints_nothing(code: str) -> None:
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout == ""


def test_a_variable_the_user_set_is_left_alone() -> None:
    code = (
        "import os, crashcart; "
        "print(repr(os.environ['JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION']), "
        "os.environ['JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION'])"
    )
    done = _python(code, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["''", "1"]


def test_the_default_covers_the_node_the_cdk_runs_on() -> None:
    """The end-of-life variable lists major versions; it must name the one installed here."""
    import shutil

    node = shutil.which("node")
    if node is None:
        pytest.skip("no node on PATH")
    major = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    done = _python(
        "import os, crashcart; print(os.environ['JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION'])"
    )
    listed = done.stdout.strip().split(",")
    number = major.lstrip("v").split(".")[0]
    if int(number) % 2 == 1 or int(number) <= 20:  # end-of-life (or odd, short-lived) lines
        assert number in listed, (major, listed)
