"""Issue 18, part 2: the default crashkernel reservation follows the documented tiers of the
image's family and architecture; a value the user sets wins (validated)."""

from __future__ import annotations

import typing

import pytest
import yaml

from crashcart.components.families import FAMILIES, Family
from crashcart.components.render import render_component
from crashcart.crashkernel_tiers import (
    ARM64_DOCUMENTED_MINIMUM,
    DEFAULT_CRASHKERNEL,
    crashkernel_of,
    default_crashkernel,
    for_image,
    reservation_bytes,
    under_arm64_minimum,
)
from crashcart.errors import ConfigurationError
from crashcart.kdump import KdumpSettings

G = 1024**3
M = 1024**2
LINUX = [f for f in typing.get_args(Family) if FAMILIES[f].platform == "Linux"]
RHEL9_X86 = "768M-4G:192M,4G-64G:256M,64G-:512M"
RHEL9_ARM = "768M-4G:256M,4G-64G:320M,64G-:576M"
UBUNTU = "2G-4G:320M,4G-32G:512M,32G-64G:1024M,64G-128G:2048M,128G-:4096M"

#: The pinned tiers: a change here is a change of what every image reserves.
PINNED = {
    ("amazon-linux-2023", "x86_64"): RHEL9_X86,
    ("amazon-linux-2023", "arm64"): RHEL9_ARM,
    ("rhel-9", "x86_64"): RHEL9_X86,
    ("rhel-9", "arm64"): RHEL9_ARM,
    ("debian-12", "x86_64"): RHEL9_X86,
    ("debian-12", "arm64"): RHEL9_ARM,
    ("ubuntu-22.04", "x86_64"): f"768M-2G:192M,{UBUNTU}",
    ("ubuntu-22.04", "arm64"): f"768M-2G:256M,{UBUNTU}",
    ("ubuntu-24.04", "x86_64"): f"768M-2G:192M,{UBUNTU}",
    ("ubuntu-24.04", "arm64"): f"768M-2G:256M,{UBUNTU}",
}


def test_the_tiers_are_pinned_per_family_and_architecture() -> None:
    assert DEFAULT_CRASHKERNEL == PINNED
    assert {family for family, _ in PINNED} == set(LINUX)


@pytest.mark.parametrize(("family", "architecture"), sorted(PINNED))
def test_every_default_is_valid_and_starts_at_768m(family: str, architecture: str) -> None:
    value = default_crashkernel(family, architecture)
    KdumpSettings(crashkernel=value)  # validated like a user's value
    # a "1 GiB" type (just under 1 GiB usable) gets a reservation
    assert reservation_bytes(value, 1 * G - 64 * M) > 0


@pytest.mark.parametrize("family", [f for f in LINUX])
def test_no_arm64_default_is_under_the_documented_arm64_minimum(family: str) -> None:
    value = default_crashkernel(family, "arm64")
    assert under_arm64_minimum(value) == []
    for start, end, minimum in ARM64_DOCUMENTED_MINIMUM:
        for memory in (start, start + G, (end or 2048 * G) - M):
            assert reservation_bytes(value, memory) >= minimum, (memory, value)


def test_the_arm64_check_catches_the_old_one_size_default() -> None:
    # The x86_64 tiers, once applied to every architecture, are 64 MiB short in every range.
    problems = under_arm64_minimum(RHEL9_X86)
    assert len(problems) == 6
    assert problems[0] == "192M at 1 GiB of RAM (arm64 minimum 256M)"
    assert under_arm64_minimum("384M-:128M")  # Debian's packaged flat default


def test_reservation_follows_the_kernel_range_rules() -> None:
    assert reservation_bytes(RHEL9_X86, 512 * M) == 0  # no range holds it: no reservation
    assert reservation_bytes(RHEL9_X86, 768 * M) == 192 * M  # start inclusive
    assert reservation_bytes(RHEL9_X86, 4 * G) == 256 * M  # end exclusive
    assert reservation_bytes(RHEL9_X86, 1024 * G) == 512 * M  # open-ended
    assert reservation_bytes("256M", 1 * G) == 256 * M
    assert reservation_bytes("256M@16M", 1 * G) == 256 * M


@pytest.mark.parametrize(("family", "architecture"), sorted(PINNED))
def test_the_component_arms_the_default_of_its_family_and_architecture(
    family: str, architecture: str
) -> None:
    document = render_component(family, "crash-dump", architecture=architecture)
    description = yaml.safe_load(document)["description"]
    assert f"crashkernel={PINNED[(family, architecture)]}," in description
    assert f"crashkernel={PINNED[(family, architecture)]}" in document.split("phases:")[1]


def test_a_value_the_user_sets_wins_on_every_family_and_architecture() -> None:
    mine = KdumpSettings(crashkernel="1G-:448M")
    for family, architecture in PINNED:
        assert for_image(mine, family, architecture) is mine
        document = render_component(family, "crash-dump", mine, architecture=architecture)
        assert "crashkernel=1G-:448M" in document
        assert "768M-" not in document


def test_a_value_the_user_sets_is_still_validated() -> None:
    with pytest.raises(ConfigurationError, match=r"invalid crashkernel '4G-1G:256M'"):
        KdumpSettings(crashkernel="4G-1G:256M")


def test_unresolved_settings_are_refused_where_a_value_is_needed() -> None:
    with pytest.raises(ValueError, match="for_image"):
        crashkernel_of(KdumpSettings())
    assert crashkernel_of(for_image(KdumpSettings(), "rhel-9", "arm64")) == RHEL9_ARM
