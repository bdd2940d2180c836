"""The agent's kdump attestation against fake /proc and /sys trees: armed, and each way of
not being armed; the tag value it publishes."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.dumps import AGENT, BUILD_ID, fake_host, load_module

TAG_VALUE = re.compile(r"^[A-Za-z0-9 _.:/=+\-@]{1,256}$")


@pytest.fixture(scope="module")
def agent() -> ModuleType:
    return load_module(AGENT, "crashcart_agent_attest")


def attest(agent: ModuleType, tmp_path: Path, **host: Any) -> dict[str, Any]:
    env = fake_host(tmp_path, **host)
    result: dict[str, Any] = agent.attest(agent.Config(env))
    return result


def test_armed(agent: ModuleType, tmp_path: Path) -> None:
    result = attest(agent, tmp_path)
    assert result["armed"] is True
    assert result["reasons"] == []
    assert result["kernel_release"] == "6.1.0-27-cloud-amd64"
    assert result["build_id"] == BUILD_ID
    assert result["crashkernel"] == "crashkernel=384M-:128M"
    value = agent.tag_value(result)
    assert re.fullmatch(r"armed \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value)


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ({"crash_loaded": "0"}, "capture-kernel-not-loaded"),
        ({"cmdline": "BOOT_IMAGE=/vmlinuz root=/dev/vda ro"}, "no-crashkernel"),
        ({"kexec_load_disabled": "1"}, "kexec_load_disabled=1"),
        ({"unknown_nmi_panic": "0"}, "unknown_nmi_panic=0"),
        ({"unknown_nmi_panic": None}, "unknown_nmi_panic=absent"),
        ({"mem_total_kb": 2**40}, "low-dump-space free="),
    ],
)
def test_not_armed(agent: ModuleType, tmp_path: Path, host: dict[str, Any], reason: str) -> None:
    result = attest(agent, tmp_path, **host)
    assert result["armed"] is False
    assert any(r.startswith(reason) for r in result["reasons"]), result["reasons"]
    value = agent.tag_value(result)
    assert value.startswith("not-armed ")
    assert TAG_VALUE.match(value), value


def test_missing_dump_directory(agent: ModuleType, tmp_path: Path) -> None:
    env = fake_host(tmp_path)
    env["CRASHCART_CRASH_DIR"] = str(tmp_path / "no-such-dir")
    result = agent.attest(agent.Config(env))
    assert "no-dump-dir" in result["reasons"]


def test_panic_zero_is_a_warning_not_a_failure(agent: ModuleType, tmp_path: Path) -> None:
    result = attest(agent, tmp_path, panic="0")
    assert result["armed"] is True
    assert any("kernel.panic=0" in w for w in result["warnings"])


def test_arm64_does_not_require_the_x86_nmi_sysctl(agent: ModuleType, tmp_path: Path) -> None:
    env = fake_host(tmp_path, unknown_nmi_panic=None)
    env["CRASHCART_ARCH"] = "aarch64"
    result = agent.attest(agent.Config(env))
    assert result["armed"] is True
    assert any("unverified" in w for w in result["warnings"])


def test_tag_value_is_sanitised_and_bounded(agent: ModuleType) -> None:
    result = {
        "armed": False,
        "checked_at": "2026-11-26T05:19:49Z",
        "reasons": ["weird<reason>!"] + ["x" * 50] * 10,
    }
    value = agent.tag_value(result)
    assert len(value) == 256
    assert TAG_VALUE.match(value)
    assert "weird_reason__" in value


def test_dump_format_from_magic(agent: ModuleType, tmp_path: Path) -> None:
    cases = {
        b"KDUMP   \x06": "kdump-compressed",
        b"makedumpfile\0": "flattened",
        b"\x7fELF\x02": "elf",
        b"garbage!": "unknown",
    }
    for magic, expected in cases.items():
        path = tmp_path / "f"
        path.write_bytes(magic + b"\0" * 32)
        assert agent.dump_format(path) == expected


def test_agent_runs_on_python_39_syntax() -> None:
    """AL2023's system python is 3.9: no match statements, no runtime X | Y unions."""
    source = AGENT.read_text()
    assert "from __future__ import annotations" in source
    ast.parse(source, filename=str(AGENT), feature_version=(3, 9))
