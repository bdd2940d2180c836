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
class DebugSymbolsInfo:
    """How a Linux family gets the debug vmlinux of its running kernel, and rids itself of it.

    The bash snippets are spliced into the debug-symbols component document
    (``templates/debug-symbols.yaml``), which records the installed packages before and
    after ``install`` and hands the difference to ``remove``.
    """

    #: Bash run with ``release`` = ``uname -r``: install the running kernel's debug package
    #: and set ``package`` to its name (recorded as metadata.json's ``source_package``).
    install: str
    #: Bash run with the array ``added`` (possibly empty) = the packages ``install`` added:
    #: remove them, their downloaded archives and any repository set-up ``install`` made.
    remove: str
    #: Bash printing the names of the installed packages, one a line.
    list_packages: str
    #: Where the package puts the debug vmlinux (``{release}`` = ``uname -r``); the
    #: publisher looks there (and in the other standard place).
    vmlinux_path: str
    #: Why the family's path is unverified (a synth-time warning), or None.
    unverified: str | None = None


_APT_LIST = "dpkg-query -W -f='${Package}\\n'"
_APT_REMOVE = """if [ "${#added[@]}" -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -q "${added[@]}"
fi
apt-get clean"""
_DNF_LIST = "rpm -qa --qf '%{NAME}\\n' | grep -v '^gpg-pubkey$'"
_DNF_REMOVE = """if [ "${#added[@]}" -gt 0 ]; then
  dnf -y remove "${added[@]}"
fi
dnf clean packages"""


def _dnf_install(repositories: str) -> str:
    """Install ``<kernel source package>-debuginfo-<uname -r>`` from ``repositories`` (a glob).

    The debuginfo package is named after the kernel's *source* package (``kernel``, or
    ``kernel6.12`` for Amazon Linux's newer kernel series) and has the kernel's exact
    version-release.arch, which is what ``uname -r`` prints on these families.
    """
    return f'''kernel_file="/lib/modules/${{release}}/vmlinuz"
if [ ! -e "$kernel_file" ]; then
  kernel_file="/boot/vmlinuz-${{release}}"
fi
source_rpm=$(rpm -qf --qf '%{{SOURCERPM}}' "$kernel_file")
package="${{source_rpm%-*-*}}-debuginfo-${{release}}"
dnf -y --enablerepo='{repositories}' install "$package"'''


_DEBIAN_INSTALL = '''package="linux-image-${release}-dbg"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "$package"'''

_UBUNTU_INSTALL = '''package="linux-image-unsigned-${release}-dbgsym"
codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends ubuntu-dbgsym-keyring
printf 'deb http://ddebs.ubuntu.com %s main restricted universe multiverse\\n' \\
  "$codename" "${codename}-updates" >/etc/apt/sources.list.d/crashcart-ddebs.list
apt-get update -q
apt-get install -y -q --no-install-recommends "$package"'''

_UBUNTU_REMOVE = (
    _APT_REMOVE
    + """
rm -f /etc/apt/sources.list.d/crashcart-ddebs.list
apt-get update -q"""
)

_APT_VMLINUX = "/usr/lib/debug/boot/vmlinux-{release}"
_DNF_VMLINUX = "/usr/lib/debug/lib/modules/{release}/vmlinux"


def _dnf_symbols(repositories: str, unverified: str | None = None) -> DebugSymbolsInfo:
    """Debug symbols from the ``*-debuginfo`` package of the repositories ``repositories``."""
    return DebugSymbolsInfo(
        install=_dnf_install(repositories),
        remove=_DNF_REMOVE,
        list_packages=_DNF_LIST,
        vmlinux_path=_DNF_VMLINUX,
        unverified=unverified,
    )


_DEBIAN_DEBUG_SYMBOLS = DebugSymbolsInfo(
    install=_DEBIAN_INSTALL,
    remove=_APT_REMOVE,
    list_packages=_APT_LIST,
    vmlinux_path=_APT_VMLINUX,
)
_UBUNTU_DEBUG_SYMBOLS = DebugSymbolsInfo(
    install=_UBUNTU_INSTALL,
    remove=_UBUNTU_REMOVE,
    list_packages=_APT_LIST,
    vmlinux_path=_APT_VMLINUX,
    unverified="Ubuntu's kernel debug symbols come from the ddebs archive "
    "(http://ddebs.ubuntu.com, signed by ubuntu-dbgsym-keyring), which the build subnet "
    "must reach; linux-image-unsigned-<release>-dbgsym was not tried in a bake",
)


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
    #: How the debug-symbols component installs and removes the kernel's debug vmlinux
    #: (Linux), or None (Windows: dumps are read with WinDbg and Microsoft's symbol server).
    debug_symbols: DebugSymbolsInfo | None = None


@dataclass(frozen=True)
class _Packaging:
    """What the Linux families of one package manager share: their kdump service, the
    packages the kdump step installs, and their OS-update template."""

    kdump_service: str
    kdump_packages: tuple[str, ...]
    os_update_template: str


_DNF = _Packaging("kdump.service", ("kexec-tools",), "dnf.os-update.yaml")
_APT = _Packaging(
    "kdump-tools.service", ("kdump-tools", "kexec-tools", "makedumpfile"), "apt.os-update.yaml"
)
_UBUNTU_APT = _Packaging(
    _APT.kdump_service, ("linux-crashdump", *_APT.kdump_packages), _APT.os_update_template
)

Parents = dict[str, tuple[Literal["ssm", "managed"], str]]


def _managed_parents(prefix: str) -> Parents:
    """Image Builder-managed parents ``<prefix>-x86`` and ``<prefix>-arm64``."""
    return {"x86_64": ("managed", f"{prefix}-x86"), "arm64": ("managed", f"{prefix}-arm64")}


def _ssm_parents(parameter: str) -> Parents:
    """Public SSM parameters, ``{arch}`` in ``parameter`` being ``amd64`` or ``arm64``."""
    return {
        "x86_64": ("ssm", parameter.format(arch="amd64")),
        "arm64": ("ssm", parameter.format(arch="arm64")),
    }


def _linux(
    family: Family,
    label: str,
    packaging: _Packaging,
    *,
    parents: Parents,
    root_device_name: str,
    aws_stig: bool,
    agent_prerequisites: str,
    debug_symbols: DebugSymbolsInfo,
) -> FamilyInfo:
    """A Linux family: its own crash-dump template, a 20 GiB root volume."""
    return FamilyInfo(
        family=family,
        label=label,
        platform="Linux",
        kdump_service=packaging.kdump_service,
        kdump_packages=packaging.kdump_packages,
        crash_dump_template=f"{family}.crash-dump.yaml",
        os_update_template=packaging.os_update_template,
        default_parent=parents,
        root_device_name=root_device_name,
        root_volume_gib=20,
        aws_stig=aws_stig,
        agent_prerequisites=agent_prerequisites,
        debug_symbols=debug_symbols,
    )


def _windows(family: Family, label: str) -> FamilyInfo:
    """A Windows Server family (``windows-server-<version>``): the shared crash-dump template,
    AWS-managed OS updates, an x86_64 parent from the public SSM parameter, 60 GiB."""
    version = family.removeprefix("windows-server-")
    return FamilyInfo(
        family=family,
        label=label,
        platform="Windows",
        kdump_service=None,
        kdump_packages=(),
        crash_dump_template="windows.crash-dump.yaml",
        os_update_template=None,
        default_parent={
            "x86_64": (
                "ssm",
                f"/aws/service/ami-windows-latest/Windows_Server-{version}-English-Full-Base",
            ),
        },
        root_device_name="/dev/sda1",
        root_volume_gib=60,
        aws_stig=True,
    )


def _ubuntu(family: Family, *, volume_type: str) -> FamilyInfo:
    """An Ubuntu LTS family (``ubuntu-<release>``): the releases differ only in their number
    and the volume type of Canonical's AMIs (in the public SSM parameter's name)."""
    release = family.removeprefix("ubuntu-")
    return _linux(
        family,
        f"Ubuntu {release}",
        _UBUNTU_APT,
        parents=_ssm_parents(
            f"/aws/service/canonical/ubuntu/server/{release}/stable/current/{{arch}}/hvm/"
            f"{volume_type}/ami-id"
        ),
        root_device_name="/dev/sda1",
        aws_stig=True,
        agent_prerequisites="agent-prereqs-apt",
        debug_symbols=_UBUNTU_DEBUG_SYMBOLS,
    )


# Default parents: aws-assumption: imagebuilder-managed-parent-images, public-ami-ssm-parameters
# Which families AWS publishes a STIG component for: aws-assumption: imagebuilder-stig-components
FAMILIES: dict[str, FamilyInfo] = {
    info.family: info
    for info in (
        _linux(
            "amazon-linux-2023",
            "Amazon Linux 2023",
            _DNF,
            parents=_managed_parents("amazon-linux-2023"),
            root_device_name="/dev/xvda",
            aws_stig=True,
            agent_prerequisites="agent-prereqs-al2023",
            debug_symbols=_dnf_symbols("*debuginfo*"),
        ),
        _linux(
            "debian-12",
            "Debian 12",
            _APT,
            parents=_ssm_parents("/aws/service/debian/release/12/latest/{arch}"),
            root_device_name="/dev/xvda",
            aws_stig=False,  # there is no DISA STIG for Debian
            agent_prerequisites="agent-prereqs-apt",
            debug_symbols=_DEBIAN_DEBUG_SYMBOLS,
        ),
        _ubuntu("ubuntu-22.04", volume_type="ebs-gp2"),
        _ubuntu("ubuntu-24.04", volume_type="ebs-gp3"),
        _linux(
            "rhel-9",
            "Red Hat Enterprise Linux 9",
            _DNF,
            parents=_managed_parents("red-hat-enterprise-linux-9"),
            root_device_name="/dev/sda1",
            aws_stig=True,
            agent_prerequisites="agent-prereqs-venv",
            debug_symbols=_dnf_symbols(
                "*-debug-rpms",
                unverified="RHEL's kernel-debuginfo comes from the RHUI debug repositories "
                "(rhel-9-*-rhui-debug-rpms) of the EC2 RHEL images; enabling them by the "
                "'*-debug-rpms' glob was not tried in a bake",
            ),
        ),
        _windows("windows-server-2022", "Windows Server 2022"),
        _windows("windows-server-2025", "Windows Server 2025"),
    )
}

#: The default family.
DEFAULT_FAMILY: Family = "amazon-linux-2023"

#: ``uname -m`` per architecture prop.
UNAME_MACHINE: dict[str, str] = {"x86_64": "x86_64", "arm64": "aarch64"}
#: ``$env:PROCESSOR_ARCHITECTURE`` per architecture prop.
WINDOWS_ARCH: dict[str, str] = {"x86_64": "AMD64", "arm64": "ARM64"}
