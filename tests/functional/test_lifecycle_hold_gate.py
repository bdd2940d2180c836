"""A held node stays out of service after its post-dump reboot: the agent's boot gate.

The agent runs as the systemd drop-in runs it (``crashcart-agent gate`` as the cluster
agent's ExecStartPre) against a fake instance metadata service on 127.0.0.1 that answers
IMDSv2 tokens and ``autoscaling/target-lifecycle-state``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.dumps import AGENT, run_agent
from tests.support.imds import FakeImds

AGENT_DIR = AGENT.parent
INSTALLED = "/usr/local/libexec/crashcart/crashcart-agent"


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
