"""The default ``crashkernel=`` reservation per OS family and architecture.

Each default follows what the family's own kdump tooling documents, with one crashcart rule on
top: every default starts at 768M, so that "1 GiB" instance types (whose usable RAM is just
under 1 GiB) still get a reservation and attest armed. Sources (see docs/canary-drill.md,
"Crashkernel sizing"):

- RHEL 9, "Memory requirements for kdump" (Managing, monitoring and updating the kernel,
  table "Minimum amount of reserved memory required for kdump"): x86_64 1-4 GB: 192 MB,
  4-64 GB: 256 MB, 64 GB and more: 512 MB; 64-bit ARM (4k pages) 1-4 GB: 256 MB, 4-64 GB:
  320 MB, 64 GB and more: 576 MB (kexec-tools' ``crashkernel=1G-4G:256M,4G-64G:320M,64G-:576M``
  on arm64). EC2's RHEL 9 and Amazon Linux 2023 arm64 kernels use 4k pages.
- Amazon Linux 2023: its kdump is Fedora's kexec-tools (``kdumpctl``), the same tooling
  and defaults as RHEL 9; AWS publishes no tiers of its own, so the RHEL 9 tiers apply.
- Debian 12: kdump-tools ships ``crashkernel=384M-:128M`` (``/etc/default/grub.d/
  kdump-tools.cfg``): one flat size for every machine and architecture, the classic cause of
  a capture kernel running out of memory on large machines, and 128 MiB under Red Hat's
  arm64 minimum. Debian documents no tiers, so its images get the RHEL 9 tiers of their
  architecture (the same capture-kernel work: makedumpfile over a cloud kernel).
- Ubuntu 22.04 / 24.04: Canonical's tiered default from kdump-tools in 24.04,
  ``2G-4G:320M,4G-32G:512M,32G-64G:1024M,64G-128G:2048M,128G-:4096M`` (the same on both
  architectures), below 2G the RHEL 9 size of the architecture.

A ``KdumpSettings(crashkernel=...)`` the user sets wins over all of this (it is validated,
and a warning names an arm64 value under the documented arm64 minimum).
"""

from __future__ import annotations

from dataclasses import replace

from crashcart.kdump import KdumpSettings, parse_crashkernel

_GIB = 1024**3
_MIB = 1024**2

#: RHEL 9's x86_64 tiers (first range from 768M: see the module docstring).
RHEL9_X86_64 = "768M-4G:192M,4G-64G:256M,64G-:512M"
#: RHEL 9's 64-bit ARM (4k pages) tiers (first range from 768M).
# aws-assumption: graviton-ami-kernel-page-size
RHEL9_ARM64 = "768M-4G:256M,4G-64G:320M,64G-:576M"
_UBUNTU_TIERS = "2G-4G:320M,4G-32G:512M,32G-64G:1024M,64G-128G:2048M,128G-:4096M"

#: The default per (family, architecture); Windows families have no crashkernel.
DEFAULT_CRASHKERNEL: dict[tuple[str, str], str] = {
    ("amazon-linux-2023", "x86_64"): RHEL9_X86_64,
    ("amazon-linux-2023", "arm64"): RHEL9_ARM64,
    ("rhel-9", "x86_64"): RHEL9_X86_64,
    ("rhel-9", "arm64"): RHEL9_ARM64,
    ("debian-12", "x86_64"): RHEL9_X86_64,
    ("debian-12", "arm64"): RHEL9_ARM64,
    ("ubuntu-22.04", "x86_64"): f"768M-2G:192M,{_UBUNTU_TIERS}",
    ("ubuntu-22.04", "arm64"): f"768M-2G:256M,{_UBUNTU_TIERS}",
    ("ubuntu-24.04", "x86_64"): f"768M-2G:192M,{_UBUNTU_TIERS}",
    ("ubuntu-24.04", "arm64"): f"768M-2G:256M,{_UBUNTU_TIERS}",
}

#: Red Hat's documented minimum reservation for 64-bit ARM (4k pages), as
#: ``(from bytes, to bytes or None, minimum bytes)``: what no arm64 default may go under.
ARM64_DOCUMENTED_MINIMUM: tuple[tuple[int, int | None, int], ...] = (
    (1 * _GIB, 4 * _GIB, 256 * _MIB),
    (4 * _GIB, 64 * _GIB, 320 * _MIB),
    (64 * _GIB, None, 576 * _MIB),
)


def default_crashkernel(family: str, architecture: str) -> str:
    """The documented default for ``family`` on ``architecture`` (KeyError: not Linux)."""
    return DEFAULT_CRASHKERNEL[(family, architecture)]


def reservation_bytes(crashkernel: str, memory_bytes: int) -> int:
    """What ``crashkernel`` reserves on a machine with ``memory_bytes`` of RAM (0: none).

    The kernel takes the range holding the machine's RAM (start inclusive, end exclusive).
    """
    for start, end, size in parse_crashkernel(crashkernel.partition("@")[0]):
        if start <= memory_bytes and (end is None or memory_bytes < end):
            return size
    return 0


def under_arm64_minimum(crashkernel: str) -> list[str]:
    """Where ``crashkernel`` reserves less than Red Hat's documented arm64 minimum.

    Checked at every documented range's start, and just under its end.
    """
    problems: list[str] = []
    for start, end, minimum in ARM64_DOCUMENTED_MINIMUM:
        for memory in (start, (end or start * 16) - _MIB):
            reserved = reservation_bytes(crashkernel, memory)
            if reserved < minimum:
                problems.append(
                    f"{reserved // _MIB}M at {memory / _GIB:g} GiB of RAM "
                    f"(arm64 minimum {minimum // _MIB}M)"
                )
    return problems


def for_image(settings: KdumpSettings, family: str, architecture: str) -> KdumpSettings:
    """``settings`` with its crashkernel filled in: the user's value, else the default of
    ``family`` on ``architecture``."""
    if settings.crashkernel is not None:
        return settings
    return replace(settings, crashkernel=default_crashkernel(family, architecture))


def crashkernel_of(settings: KdumpSettings) -> str:
    """The crashkernel of settings already passed through :func:`for_image`."""
    if settings.crashkernel is None:
        raise ValueError("crashkernel not resolved: pass the settings through for_image()")
    return settings.crashkernel
