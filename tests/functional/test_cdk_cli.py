"""`make synth`'s core: the real CDK CLI synthesizes the reference app, offline and quiet.

One run of the CLI (``scripts/cdk-offline synth``, as `make synth` runs it) with the README's
reference-app flags, shared by every test here: each real-CLI synth costs about 20 s of CPU
(issue 24). The tests on it prove the run offline, quiet and complete, and that the README's
`-c` values reach the app as strings through the CLI, not only in-process.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

#: Among the longest modules: sent out first (tests/conftest.py), not left for last.
pytestmark = pytest.mark.slow

CDK_OFFLINE = REPO_ROOT / "scripts" / "cdk-offline"  # what `make synth` runs


def _readme_command() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    (line,) = [
        line.strip()
        for line in readme.splitlines()
        if re.match(r"\s*node_modules/\.bin/cdk deploy --all -c crashcart:", line)
    ]
    return shlex.split(line)


def _readme_flags() -> list[str]:
    words = _readme_command()
    return words[words.index("--all") + 1 :]


class _RecordingProxy(socketserver.ThreadingTCPServer):
    """A proxy on 127.0.0.1 that records every request line and answers 403."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.requests: list[str] = []
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(socketserver.StreamRequestHandler):
    server: _RecordingProxy

    def handle(self) -> None:
        line = self.rfile.readline().decode("latin-1").strip()
        self.server.requests.append(line)
        self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture(scope="module")
def proxy() -> Iterator[_RecordingProxy]:
    server = _RecordingProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def cli_synth(
    tmp_path_factory: pytest.TempPathFactory, proxy: _RecordingProxy
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    outdir = tmp_path_factory.mktemp("cli-cdk-out")
    proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}"
    env = {
        **os.environ,
        "HTTPS_PROXY": proxy_url,
        "HTTP_PROXY": proxy_url,
        "https_proxy": proxy_url,
        "http_proxy": proxy_url,
        "NO_PROXY": "",
    }
    # The settings under test come from cdk.json and scripts/cdk-offline, not from the test
    # environment: drop the variables that would hide a missing setting. The fake AWS
    # credentials of the test session stay: the wrapper must keep the CLI from using them.
    for var in (
        "CDK_DISABLE_CLI_TELEMETRY",
        "CDK_DISABLE_VERSION_CHECK",
        "AWS_EC2_METADATA_DISABLED",
        "AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION",
        "CI",
    ):
        env.pop(var, None)
    result = subprocess.run(
        [str(CDK_OFFLINE), "synth", "--quiet", "--output", str(outdir), *_readme_flags()],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    return outdir, result


def test_cli_synthesizes_every_reference_stack(
    cli_synth: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    outdir, result = cli_synth
    assert result.returncode == 0, result.stderr
    manifest = json.loads((outdir / "manifest.json").read_text())
    stacks = [a for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack"]
    assert stacks
    for stack in stacks:
        template = json.loads((outdir / stack["properties"]["templateFile"]).read_text())
        assert template["Resources"]
    assert (outdir / "validation-report.json").is_file()


def test_cli_templates_carry_no_version_reporting(
    cli_synth: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    """cdk.json turns version reporting off: no AWS::CDK::Metadata (library usage) resource."""
    outdir, result = cli_synth
    assert result.returncode == 0, result.stderr
    templates = list(outdir.glob("*.template.json"))
    assert templates
    for path in templates:
        types = {r["Type"] for r in json.loads(path.read_text())["Resources"].values()}
        assert "AWS::CDK::Metadata" not in types, path.name


def test_cli_makes_no_network_request(
    cli_synth: tuple[Path, subprocess.CompletedProcess[str]], proxy: _RecordingProxy
) -> None:
    _, result = cli_synth
    assert result.returncode == 0, result.stderr
    assert proxy.requests == []


def test_cli_output_is_quiet(cli_synth: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, result = cli_synth
    noise = result.stdout + result.stderr
    for banner in ("end-of-life", "NOTICES", "telemetry", "newer version", "Warning"):
        assert banner.lower() not in noise.lower(), noise


def test_cdk_json_turns_telemetry_and_notices_off() -> None:
    config = json.loads((REPO_ROOT / "cdk.json").read_text())
    assert config["notices"] is False
    assert config["context"]["cli-telemetry"] is False
    assert config["versionReporting"] is False


def test_synth_summary_names_templates_and_reports(
    cli_synth: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    outdir, _ = cli_synth
    result = subprocess.run(
        [sys.executable, "-m", "crashcart.tools.synth_summary", str(outdir)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert ".template.json" in result.stdout
    assert "unacknowledged findings: 0" in result.stdout
    assert (outdir / "compliance-report.md").is_file()


def test_the_readme_command_synthesizes_through_the_cli(
    cli_synth: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    outdir, done = cli_synth
    assert done.returncode == 0, done.stderr
    flags = _readme_flags()
    context = dict(flags[i + 1].split("=", 1) for i in range(0, len(flags), 2))
    manifest = json.loads((outdir / "manifest.json").read_text())
    remediation = manifest["artifacts"]["CrashcartRemediation"]
    assert remediation["environment"].endswith("/" + context["crashcart:region"])
    template = json.loads((outdir / "CrashcartRemediation.template.json").read_text())
    endpoints = [
        r["Properties"]["Endpoint"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::SNS::Subscription"
    ]
    assert endpoints == [context["crashcart:notify-email"]]
