"""A held node stays out of service after its post-dump reboot: the agent's boot gate.

The agent runs as the systemd drop-in runs it (``crashcart-agent gate`` as the cluster
agent's ExecStartPre) against a fake instance metadata service on 127.0.0.1 that answers
IMDSv2 tokens and ``autoscaling/target-lifecycle-state``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.dumps import AGENT, run_agent

AGENT_DIR = AGENT.parent
INSTALLED = "/usr/local/libexec/crashcart/crashcart-agent"


class FakeImds:
    """IMDSv2 on 127.0.0.1: a token, then the target lifecycle state (None: 404)."""

    def __init__(self) -> None:
        self.state: str | None = None
        self.tokenless_requests = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                self._answer(200, "token-1" if self.path == "/latest/api/token" else "")

            def do_GET(self) -> None:
                if self.headers.get("X-aws-ec2-metadata-token") != "token-1":
                    fake.tokenless_requests += 1
                    self._answer(401, "")
                elif (
                    self.path == "/latest/meta-data/autoscaling/target-lifecycle-state"
                    and fake.state is not None
                ):
                    self._answer(200, fake.state)
                else:
                    self._answer(404, "")

            def _answer(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def imds() -> Iterator[FakeImds]:
    fake = FakeImds()
    yield fake
    fake.close()


def gate(url: str) -> Any:
    return run_agent({"CRASHCART_IMDS_ENDPOINT": url}, "gate", timeout=60)


@pytest.mark.parametrize("state", ["Terminated", "Warmed:Terminated"])
def test_a_node_its_group_is_terminating_keeps_its_cluster_agent_stopped(
    imds: FakeImds, state: str
) -> None:
    imds.state = state
    result = gate(imds.url)
    assert result.returncode == 3, result.stderr
    assert "must not rejoin its cluster" in result.stderr
    assert imds.tokenless_requests == 0


@pytest.mark.parametrize("state", ["InService", "Standby", None])
def test_any_other_node_starts_normally(imds: FakeImds, state: str | None) -> None:
    imds.state = state
    result = gate(imds.url)
    assert result.returncode == 0, result.stderr
    assert "must not rejoin" not in result.stderr


def test_a_gate_that_cannot_tell_lets_the_node_start() -> None:
    result = gate("http://127.0.0.1:9")  # nothing listens there
    assert result.returncode == 0
    assert "not answering" in result.stderr


def test_the_drop_in_gates_kubelet_and_the_ecs_agent() -> None:
    drop_in = (AGENT_DIR / "crashcart-hold-gate.conf").read_text()
    assert f"ExecStartPre={INSTALLED} gate" in drop_in.splitlines()
    assert drop_in.splitlines()[-2] == "[Service]"
    manifest = (AGENT_DIR / "MANIFEST").read_text().split()
    for unit in ("kubelet", "ecs"):
        assert f"/etc/systemd/system/{unit}.service.d/crashcart-hold-gate.conf" in manifest
