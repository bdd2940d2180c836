"""The OS families crashcart bakes images for, and what differs between them.

Facts that depend on AWS naming (managed image names, public SSM parameters, the STIG
component's name) are kept here, in one table, so that a reviewer can check them in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal[
    "amazon-linux-2023",
    "debian-12",
    "ubuntu-22.04",
    "ubuntu-24.04",
    "rhel-9",
    "windows-server-2022",
    "windows-server-2025",
]
Architecture = Literal["x86_64", "arm64"]
Platform = Literal["Linux", "Windows"]


@dataclass(frozen=True, kw_only=True)
class FamilyInfo:
    """What crashcart needs to know about one OS family."""

    family: Family
    label: str
    platform: Platform
    #: kdump service (Linux) — what the validate phase checks.
    kdump_service: str | None
    #: Packages the kdump step installs when missing (Linux).
    kdump_packages: tuple[str, ...]
    #: The template that renders the crash-dump document.
    crash_dump_template: str
    #: The template that renders the OS-update document (None: an AWS-managed component).
    os_update_template: str | None
    #: Default parent image per architecture: ``("ssm", name)`` or ``("managed", image name)``
    #: (an Image Builder-managed image, used with the ``x.x.x`` version wildcard).
    default_parent: dict[str, tuple[Literal["ssm", "managed"], str]]
    #: Root device name of the family's AMIs (the recipe encrypts it with the customer key).
    root_device_name: str
    #: Default root volume size (GiB); room for the OS plus a crash dump.
    root_volume_gib: int
    #: Whether AWS publishes a managed STIG hardening component for the family.
    aws_stig: bool
    #: Fragment that provides the crashcart agent's runtime needs (an AWS CLI), or None.
    agent_prerequisites: str | None = None


FAMILIES: dict[str, FamilyInfo] = {
    info.family: info
    for info in (
        FamilyInfo(
            family="amazon-linux-2023",
            label="Amazon Linux 2023",
            platform="Linux",
            kdump_service="kdump.service",
            kdump_packages=("kexec-tools",),
            crash_dump_template="amazon-linux-2023.crash-dump.yaml",
            os_update_template="dnf.os-update.yaml",
            default_parent={
                "x86_64": ("managed", "amazon-linux-2023-x86"),
                "arm64": ("managed", "amazon-linux-2023-arm64"),
            },
            root_device_name="/dev/xvda",
            root_volume_gib=20,
            aws_stig=True,
            agent_prerequisites="agent-prereqs-al2023",
        ),
        FamilyInfo(
            family="debian-12",
            label="Debian 12",
            platform="Linux",
            kdump_service="kdump-tools.service",
            kdump_packages=("kdump-tools", "kexec-tools", "makedumpfile"),
            crash_dump_template="debian-12.crash-dump.yaml",
            os_update_template="apt.os-update.yaml",
            default_parent={
                "x86_64": ("ssm", "/aws/service/debian/release/12/latest/amd64"),
                "arm64": ("ssm", "/aws/service/debian/release/12/latest/arm64"),
            },
            root_device_name="/dev/xvda",
            root_volume_gib=20,
            aws_stig=False,  # there is no DISA STIG for Debian
            agent_prerequisites="agent-prereqs-apt",
        ),
        FamilyInfo(
            family="ubuntu-22.04",
            label="Ubuntu 22.04",
            platform="Linux",
            kdump_service="kdump-tools.service",
            kdump_packages=("linux-crashdump", "kdump-tools", "kexec-tools", "makedumpfile"),
            crash_dump_template="ubuntu-22.04.crash-dump.yaml",
            os_update_template="apt.os-update.yaml",
            default_parent={
                "x86_64": (
                    "ssm",
                    "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id",
                ),
                "arm64": (
                    "ssm",
                    "/aws/service/canonical/ubuntu/server/22.04/stable/current/arm64/hvm/ebs-gp2/ami-id",
                ),
            },
            root_device_name="/dev/sda1",
            root_volume_gib=20,
            aws_stig=True,
            agent_prerequisites="agent-prereqs-apt",
        ),
        FamilyInfo(
            family="ubuntu-24.04",
            label="Ubuntu 24.04",
            platform="Linux",
            kdump_service="kdump-tools.service",
            kdump_packages=("linux-crashdump", "kdump-tools", "kexec-tools", "makedumpfile"),
            crash_dump_template="ubuntu-24.04.crash-dump.yaml",
            os_update_template="apt.os-update.yaml",
            default_parent={
                "x86_64": (
                    "ssm",
                    "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
                ),
                "arm64": (
                    "ssm",
                    "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id",
                ),
            },
            root_device_name="/dev/sda1",
            root_volume_gib=20,
            aws_stig=True,
            agent_prerequisites="agent-prereqs-apt",
        ),
        FamilyInfo(
            family="rhel-9",
            label="Red Hat Enterprise Linux 9",
            platform="Linux",
            kdump_service="kdump.service",
            kdump_packages=("kexec-tools",),
            crash_dump_template="rhel-9.crash-dump.yaml",
            os_update_template="dnf.os-update.yaml",
            default_parent={
                "x86_64": ("managed", "red-hat-enterprise-linux-9-x86"),
                "arm64": ("managed", "red-hat-enterprise-linux-9-arm64"),
            },
            root_device_name="/dev/sda1",
            root_volume_gib=20,
            aws_stig=True,
            agent_prerequisites="agent-prereqs-venv",
        ),
        FamilyInfo(
            family="windows-server-2022",
            label="Windows Server 2022",
            platform="Windows",
            kdump_service=None,
            kdump_packages=(),
            crash_dump_template="windows.crash-dump.yaml",
            os_update_template=None,
            default_parent={
                "x86_64": (
                    "ssm",
                    "/aws/service/ami-windows-latest/Windows_Server-2022-English-Full-Base",
                ),
            },
            root_device_name="/dev/sda1",
            root_volume_gib=60,
            aws_stig=True,
        ),
        FamilyInfo(
            family="windows-server-2025",
            label="Windows Server 2025",
            platform="Windows",
            kdump_service=None,
            kdump_packages=(),
            crash_dump_template="windows.crash-dump.yaml",
            os_update_template=None,
            default_parent={
                "x86_64": (
                    "ssm",
                    "/aws/service/ami-windows-latest/Windows_Server-2025-English-Full-Base",
                ),
            },
            root_device_name="/dev/sda1",
            root_volume_gib=60,
            aws_stig=True,
        ),
    )
}

#: The default family.
DEFAULT_FAMILY: Family = "amazon-linux-2023"

#: ``uname -m`` per architecture prop.
UNAME_MACHINE: dict[str, str] = {"x86_64": "x86_64", "arm64": "aarch64"}
#: ``$env:PROCESSOR_ARCHITECTURE`` per architecture prop.
WINDOWS_ARCH: dict[str, str] = {"x86_64": "AMD64", "arm64": "ARM64"}
