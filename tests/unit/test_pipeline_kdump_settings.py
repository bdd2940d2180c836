"""KdumpSettings / WindowsCrashDumpSettings: defaults, derived values, validation."""

from __future__ import annotations

import dataclasses
import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crashcart.errors import ConfigurationError
from crashcart.kdump import (
    CRASHKERNEL_SYNTAX,
    KdumpSettings,
    WindowsCrashDumpSettings,
    parse_crashkernel,
)

G = 1024**3
M = 1024**2


def test_defaults_are_the_documented_ones() -> None:
    settings = KdumpSettings()
    # None: the documented tiers of the image's family and architecture
    # (tests/unit/test_crashkernel_tiers.py pins them)
    assert settings.crashkernel is None
    assert settings.makedumpfile_args == "-l -d 31"
    assert settings.sysctls == {
        "kernel.unknown_nmi_panic": 1,
        "kernel.panic": 10,
        "kernel.panic_on_oops": 1,
        "kernel.softlockup_panic": 0,
        "kernel.hung_task_panic": 0,
    }


def test_settings_are_frozen_and_keyword_only() -> None:
    settings = KdumpSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.crashkernel = "256M"  # type: ignore[misc]
    with pytest.raises(TypeError):
        KdumpSettings("256M")  # type: ignore[call-arg]


def test_lockup_panics_and_compression_change_the_derived_values() -> None:
    settings = KdumpSettings(
        softlockup_panic=True,
        hung_task_panic=True,
        panic_on_oops=False,
        compression="zstd",
        dump_level=17,
        panic_reboot_seconds=30,
    )
    assert settings.sysctls["kernel.softlockup_panic"] == 1
    assert settings.sysctls["kernel.hung_task_panic"] == 1
    assert settings.sysctls["kernel.panic_on_oops"] == 0
    assert settings.sysctls["kernel.panic"] == 30
    assert settings.makedumpfile_args == "-z -d 17"
    assert KdumpSettings(compression="none").makedumpfile_args == "-d 31"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("256M", [(0, None, 256 * M)]),
        ("256M@16M", [(0, None, 256 * M)]),
        (
            "1G-4G:192M,4G-64G:256M,64G-:512M",
            [(G, 4 * G, 192 * M), (4 * G, 64 * G, 256 * M), (64 * G, None, 512 * M)],
        ),
        ("384M-:128M", [(384 * M, None, 128 * M)]),
        ("512M-2G:64M,2G-:128M@16M", [(512 * M, 2 * G, 64 * M), (2 * G, None, 128 * M)]),
    ],
)
def test_valid_crashkernel_values_parse(
    value: str, expected: list[tuple[int, int | None, int]]
) -> None:
    assert parse_crashkernel(value) == expected
    assert KdumpSettings(crashkernel=value).crashkernel == value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "empty"),
        ("crashkernel=256M", "without the 'crashkernel=' prefix"),
        ("256", "not a size"),
        ("256MB", "not a size"),
        ("auto", "not a size"),
        ("0M", "reserves nothing"),
        ("4G-1G:128M", "ends before it starts"),
        ("1G-4G:192M,2G-8G:256M", "not ascending"),
        ("1G-:192M,4G-:256M", "open-ended"),
        ("1G-4G192M", "not <start>-[<end>]:<size>"),
        ("1G-4G:0M", "reserves 0"),
        ("256M@16", "offset"),
        ("1G-4G:192M,,4G-:256M", "not <start>"),
    ],
)
def test_fails_invalid_crashkernel_shows_the_expected_syntax(value: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        KdumpSettings(crashkernel=value)
    message = str(excinfo.value)
    assert problem in message
    assert CRASHKERNEL_SYNTAX in message
    assert repr(value) in message


@given(
    st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=4, unique=True),
    st.integers(min_value=64, max_value=512),
)
def test_any_ascending_range_list_is_accepted(bounds: list[int], size: int) -> None:
    bounds = sorted(bounds)
    parts = [f"{a}G-{b}G:{size}M" for a, b in itertools.pairwise(bounds)]
    parts.append(f"{bounds[-1]}G-:{size}M")
    ranges = parse_crashkernel(",".join(parts))
    assert [r[0] for r in ranges] == [b * G for b in bounds]
    assert ranges[-1][1] is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dump_level": 32}, "dump_level 32"),
        ({"dump_level": -1}, "dump_level -1"),
        ({"compression": "gzip"}, "compression 'gzip'"),
        ({"panic_reboot_seconds": 0}, "hanging forever"),
        ({"min_free_space_mib": -5}, "min_free_space_mib"),
    ],
)
def test_fails_other_invalid_kdump_settings(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        KdumpSettings(**kwargs)  # type: ignore[arg-type]


def test_windows_defaults_and_values() -> None:
    settings = WindowsCrashDumpSettings()
    assert settings.crash_dump_enabled == 2
    assert settings.auto_reboot is True
    assert WindowsCrashDumpSettings(dump_type="complete").crash_dump_enabled == 1
    assert WindowsCrashDumpSettings(dump_type="automatic").crash_dump_enabled == 7


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dump_type": "full"}, "dump_type 'full'"),
        ({"dump_file": "MEMORY.DMP"}, "not a Windows file path"),
        ({"dump_file": "C:\\dumps\\it's.dmp"}, "not a Windows file path"),
        ({"page_file_mib": 10}, "page_file_mib 10"),
    ],
)
def test_fails_invalid_windows_settings(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        WindowsCrashDumpSettings(**kwargs)  # type: ignore[arg-type]


def test_the_canary_drill_docs_state_the_default_reservation_for_every_linux_family() -> None:
    """Issue 18, part 2: the default follows each family's documented tiers per architecture;
    docs/canary-drill.md shows every one, its source, and how to size it from the drill."""
    import typing

    from crashcart.components.families import Family
    from tests.conftest import REPO_ROOT

    text = (REPO_ROOT / "docs" / "canary-drill.md").read_text(encoding="utf-8")
    start = text.index("\n## Sizing the crashkernel reservation")
    section = text[start : text.index("\n## ", start + 1)]
    from crashcart.crashkernel_tiers import DEFAULT_CRASHKERNEL

    for (family, architecture), value in DEFAULT_CRASHKERNEL.items():
        row = next(line for line in section.splitlines() if f"`{family}`" in line)
        assert f"{architecture} `{value}`" in row, (family, architecture)
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {
        name for row in rows for name in re.findall(r"`([a-z0-9.-]+)`", row.split(" | ")[0])
    }
    linux = {f for f in typing.get_args(Family) if not f.startswith("windows")}
    assert documented == linux
    for command in ("kdumpctl estimate", "kdump-config show", "KdumpSettings(crashkernel="):
        assert command in section, command
