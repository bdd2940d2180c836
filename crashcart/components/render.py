"""Render crashcart's EC2 Image Builder component documents.

Each document is a YAML template under ``templates/`` with ``@@NAME@@`` fields, plus shell /
PowerShell fragments under ``fragments/`` that several families share. A field alone on a
line (``@@FRAGMENT:validate@@``, ``@@AGENT_STEP@@``) is replaced by a block of lines indented
like the field; any other field is replaced inline. Rendering fails on a field it does not
know, so nothing half-rendered ships.

The rendered text is the single source of truth for what runs on an instance: the
:class:`~crashcart.constructs.kdump_image_pipeline.KdumpImagePipeline` ships it as an Image
Builder component, and the local NMI drill (``crashcart/drill/``) runs the Debian 12
document's steps in a real Debian guest::

    from crashcart.components.render import render_component
    from crashcart.kdump import KdumpSettings
    text = render_component("debian-12", "crash-dump", KdumpSettings())

The crashcart agent (``crashcart/components/agent/``) is embedded at render time as an
``InstallCrashcartAgent`` step: first the agent's runtime needs (an AWS CLI, see
``fragments/agent-prereqs-*.sh``), then each file as a quoted heredoc installed where the
folder's ``MANIFEST`` says (see :func:`agent_files`), then its systemd units enabled.
Without agent files the step is omitted, the document says so in its description, and
:func:`agent_files` returns an empty list (the construct turns that into a synth-time
warning).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from crashcart.components.families import (
    FAMILIES,
    UNAME_MACHINE,
    WINDOWS_ARCH,
    Architecture,
    FamilyInfo,
)
from crashcart.crashkernel_tiers import crashkernel_of, for_image
from crashcart.errors import ConfigurationError
from crashcart.kdump import KdumpSettings, WindowsCrashDumpSettings

COMPONENTS_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = COMPONENTS_DIR / "templates"
FRAGMENTS_DIR = COMPONENTS_DIR / "fragments"
#: Where the crashcart agent's on-instance files live (written by the crash-dump area).
AGENT_DIR = COMPONENTS_DIR / "agent"

#: The awscli (v1) pinned into /opt/crashcart/awscli for the agent where the OS has no
#: suitable AWS CLI (Debian, Ubuntu, RHEL); agent/MANIFEST names the same pin.
AGENT_AWSCLI_VERSION = "1.46.3"

PhaseSet = Literal["os-update", "crash-dump"]
PHASE_SETS: tuple[PhaseSet, ...] = ("os-update", "crash-dump")

#: The note that replaces the agent step when no agent files exist.
AGENT_MISSING_NOTE = (
    "crashcart agent NOT included: no agent files in crashcart/components/agent/ at render "
    "time (dumps stay in /var/crash and are not shipped)"
)

_FIELD_RE = re.compile(r"@@([A-Z_]+(?::[a-z0-9-]+)?)@@")
_BLOCK_FIELD_RE = re.compile(r"^(?P<indent>[ ]*)@@(?P<name>[A-Z_]+(?::[a-z0-9-]+)?)@@[ ]*\Z")
_SYSTEMD_SUFFIXES = (".service", ".timer", ".path", ".socket")
_MODE_RE = re.compile(r"^0?[0-7]{3}\Z")


@dataclass(frozen=True, kw_only=True)
class DocumentSpec:
    """One renderable document: a family, a phase set and its template."""

    family: str
    phase_set: PhaseSet
    template: Path
    platform: str


@dataclass(frozen=True, kw_only=True)
class AgentFile:
    """One crashcart agent file and where the agent step installs it."""

    source: Path
    destination: str
    mode: str
    systemd_unit: bool


def family_info(family: str) -> FamilyInfo:
    """The :class:`FamilyInfo` of ``family``; ConfigurationError for an unknown one."""
    try:
        return FAMILIES[family]
    except KeyError:
        raise ConfigurationError(
            f"OS family {family!r} is not supported; use one of {', '.join(FAMILIES)}"
        ) from None


def list_documents() -> list[DocumentSpec]:
    """Every document crashcart renders, by family and phase set.

    Windows has no ``os-update`` document: its images use the AWS-managed ``update-windows``
    component.
    """
    specs: list[DocumentSpec] = []
    for info in FAMILIES.values():
        templates: tuple[tuple[PhaseSet, str | None], ...] = (
            ("os-update", info.os_update_template),
            ("crash-dump", info.crash_dump_template),
        )
        specs.extend(
            DocumentSpec(
                family=info.family,
                phase_set=phase_set,
                template=TEMPLATES_DIR / name,
                platform=info.platform,
            )
            for phase_set, name in templates
            if name
        )
    return specs


def template_path(family: str, phase_set: PhaseSet) -> Path:
    """The template file of one document."""
    for spec in list_documents():
        if spec.family == family and spec.phase_set == phase_set:
            return spec.template
    family_info(family)
    raise ConfigurationError(
        f"family {family!r} has no {phase_set!r} document; phase sets: {', '.join(PHASE_SETS)}"
        " (Windows uses the AWS-managed update-windows component for OS updates)"
    )


def _parse_manifest(folder: Path) -> list[AgentFile]:
    manifest = folder / "MANIFEST"
    files: list[AgentFile] = []
    for number, raw in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3 or not parts[1].startswith("/") or not _MODE_RE.match(parts[2]):
            raise ConfigurationError(
                f"{manifest}:{number}: expected '<file> <absolute install path> <octal mode>', "
                f"got {line!r}"
            )
        source = folder / parts[0]
        if not source.is_file() or source.parent != folder:
            raise ConfigurationError(f"{manifest}:{number}: {parts[0]!r} is not a file in {folder}")
        files.append(
            AgentFile(
                source=source,
                destination=parts[1],
                mode=parts[2],
                systemd_unit=parts[0].endswith(_SYSTEMD_SUFFIXES),
            )
        )
    return files


def agent_files(agent_dir: Path | None = None) -> list[AgentFile]:
    """The crashcart agent files to embed (empty when there are none).

    With a ``MANIFEST`` in the folder (lines ``<file> <install path> <mode>``, ``#``
    comments), exactly the files it lists, in its order. Without one, every regular file by
    name: systemd units to ``/etc/systemd/system/`` (0644), files starting with ``#!`` to
    ``/usr/local/sbin/`` (0755), others to ``/etc/crashcart/`` (0644); ``*.md`` and dotfiles
    are skipped.
    """
    folder = AGENT_DIR if agent_dir is None else agent_dir
    if not folder.is_dir():
        return []
    if (folder / "MANIFEST").is_file():
        return _parse_manifest(folder)
    files: list[AgentFile] = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.suffix == ".md":
            continue
        if path.name.endswith(_SYSTEMD_SUFFIXES):
            destination, mode, unit = f"/etc/systemd/system/{path.name}", "0644", True
        elif path.read_bytes().startswith(b"#!"):
            destination, mode, unit = f"/usr/local/sbin/{path.name}", "0755", False
        else:
            destination, mode, unit = f"/etc/crashcart/{path.name}", "0644", False
        files.append(AgentFile(source=path, destination=destination, mode=mode, systemd_unit=unit))
    return files


def agent_script_lines(
    files: list[AgentFile], prerequisites: str = "", *, compress: bool = False
) -> list[str]:
    """The bash that installs the agent (one line per item), or [] without files.

    Shared by the Image Builder step (:func:`agent_step_lines`) and the running-instance
    document (:mod:`crashcart.components.arming`).

    :param prerequisites: bash run first (the agent's runtime needs: an AWS CLI).
    :param compress: embed each file gzip-compressed and base64-encoded (the SSM document
        has a 64 KB limit); the installed files are byte-for-byte the same.
    """
    if not files:
        return []
    script: list[str] = [
        "set -euo pipefail",
        "# Generated by crashcart/components/render.py from crashcart/components/agent/.",
    ]
    if prerequisites:
        script.extend(prerequisites.split("\n"))
    for agent_file in files:
        content = agent_file.source.read_text(encoding="utf-8")
        if not content.endswith("\n"):
            content += "\n"
        digest = hashlib.sha256(content.encode()).hexdigest()[:12]
        delimiter = f"CRASHCART_AGENT_{digest}_EOF"
        staged = f"/etc/crashcart/.staged-{agent_file.source.name}"
        script.append("install -d -m 0755 /etc/crashcart")
        if compress:
            packed = base64.b64encode(gzip.compress(content.encode(), mtime=0)).decode()
            script.append(f"base64 -d <<'{delimiter}' | gzip -dc >'{staged}'")
            script.extend(packed[i : i + 76] for i in range(0, len(packed), 76))
        else:
            script.append(f"cat >'{staged}' <<'{delimiter}'")
            script.extend(content.splitlines())
        script.append(delimiter)
        script.append(f"install -D -m {agent_file.mode} '{staged}' '{agent_file.destination}'")
        script.append(f"rm -f '{staged}'")
        script.append(f"echo 'crashcart: installed {agent_file.destination}'")
    units = [f.source.name for f in files if f.systemd_unit]
    if units:
        script.append("# Reload only where systemd runs (not in a chroot); enabling works in both.")
        script.append("if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi")
        script.append(f"systemctl enable {' '.join(units)}")
    return script


def agent_step_lines(files: list[AgentFile], prerequisites: str = "") -> list[str]:
    """The ``InstallCrashcartAgent`` step (YAML lines at column 0), or [] without files.

    :param prerequisites: bash run first (the agent's runtime needs: an AWS CLI).
    """
    script = agent_script_lines(files, prerequisites)
    if not script:
        return []
    lines = [
        "      - name: InstallCrashcartAgent",
        "        action: ExecuteBash",
        "        inputs:",
        "          commands:",
        "            - |",
    ]
    lines.extend(f"              {line}" if line else "" for line in script)
    return lines


def _sysctl_values(settings: KdumpSettings) -> tuple[str, str]:
    words = " ".join(f"{name}={value}" for name, value in settings.sysctls.items())
    lines = "\n".join(f"{name} = {value}" for name, value in settings.sysctls.items())
    return words, lines


def _fields(
    info: FamilyInfo,
    phase_set: PhaseSet,
    settings: KdumpSettings | WindowsCrashDumpSettings,
    architecture: Architecture,
    agent_note: str | None,
) -> dict[str, str]:
    fields: dict[str, str] = {"FAMILY": info.family, "AGENT_AWSCLI_VERSION": AGENT_AWSCLI_VERSION}
    if phase_set == "os-update":
        fields["DESCRIPTION"] = json.dumps(f"crashcart: OS update for {info.label}")
        fields["DNF_UPGRADE_ARGS"] = (
            "--releasever=latest" if info.family == "amazon-linux-2023" else ""
        )
        return fields
    if isinstance(settings, WindowsCrashDumpSettings):
        fields.update(
            DESCRIPTION=json.dumps(
                f"crashcart: crash-dump capture (capture-only) for {info.label}: "
                f"{settings.dump_type} memory dump, AutoReboot {int(settings.auto_reboot)}"
            ),
            CRASH_DUMP_ENABLED=str(settings.crash_dump_enabled),
            AUTO_REBOOT=str(int(settings.auto_reboot)),
            DUMP_FILE=settings.dump_file,
            PAGE_FILE_MIB=str(settings.page_file_mib or 0),
            WINDOWS_ARCH=WINDOWS_ARCH[architecture],
        )
        return fields
    words, lines = _sysctl_values(settings)
    crashkernel = crashkernel_of(settings)
    description = (
        f"crashcart: arm kdump on {info.label} (crashkernel={crashkernel}, "
        f"makedumpfile {settings.makedumpfile_args}, kernel.unknown_nmi_panic=1), install the "
        "crashcart agent, reboot, validate"
    )
    if agent_note:
        description += f". {agent_note}"
    fields.update(
        DESCRIPTION=json.dumps(description),
        CRASHKERNEL=crashkernel,
        MAKEDUMP_ARGS=settings.makedumpfile_args,
        PANIC_ON_OOPS=str(int(settings.panic_on_oops)),
        SYSCTL_WORDS=words,
        SYSCTL_LINES=lines,
        MIN_FREE_SPACE_MIB=str(settings.min_free_space_mib),
        UNAME_MACHINE=UNAME_MACHINE[architecture],
        KDUMP_SERVICE=info.kdump_service or "",
        PACKAGES=" ".join(info.kdump_packages),
        CAPTURE_MEMORY_HOOK=capture_memory_hook(info),
        KDUMPCTL_EXTRA=(
            "# RHEL 9: keep our crashkernel (kdumpctl would reset it to the kernel default).\n"
            "set_directive /etc/kdump.conf auto_reset_crashkernel no"
            if info.family == "rhel-9"
            else "# (no extra /etc/kdump.conf directives on this family)"
        ),
    )
    return fields


def capture_memory_hook(info: FamilyInfo) -> str:
    """The bash that installs the capture-memory hook and wires it into the family's kdump
    (``fragments/capture-memory-*.sh``)."""
    wiring = (
        "capture-memory-kdump-tools"
        if info.kdump_service == "kdump-tools.service"
        else "capture-memory-kdumpctl"
    )
    return _fragment_text("capture-memory-install") + "\n" + _fragment_text(wiring)


def _fragment_name(name: str, settings: object) -> str:
    if name in ("windows-page-file", "windows-page-file-check"):
        assert isinstance(settings, WindowsCrashDumpSettings)
        return f"{name}-{'fixed' if settings.page_file_mib else 'system-managed'}"
    return name


def _fragment_text(name: str) -> str:
    for suffix in (".sh", ".ps1"):
        path = FRAGMENTS_DIR / f"{name}{suffix}"
        if path.is_file():
            return path.read_text(encoding="utf-8").rstrip("\n")
    raise ConfigurationError(f"component fragment {name!r} not found in {FRAGMENTS_DIR}")


def _substitute(
    text: str, fields: dict[str, str], settings: object, agent_lines: list[str], depth: int = 0
) -> str:
    if depth > 5:
        raise ConfigurationError("component fragments nest too deeply (a fragment cycle?)")
    out: list[str] = []
    for line in text.split("\n"):
        block = _BLOCK_FIELD_RE.match(line)
        if block:
            indent, name = block.group("indent"), block.group("name")
            if name == "AGENT_STEP":
                replacement = "\n".join(agent_lines)
            elif name.startswith("FRAGMENT:"):
                fragment = _fragment_text(_fragment_name(name.partition(":")[2], settings))
                replacement = _substitute(fragment, fields, settings, agent_lines, depth + 1)
            elif name in fields:
                replacement = fields[name]
            else:
                raise ConfigurationError(f"unknown template field @@{name}@@")
            if replacement:
                out.extend(f"{indent}{part}" if part else "" for part in replacement.split("\n"))
            continue

        def inline(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in fields:
                raise ConfigurationError(f"unknown template field @@{name}@@")
            return fields[name]

        out.append(_FIELD_RE.sub(inline, line))
    return "\n".join(out)


def render_component(
    family: str,
    phase_set: PhaseSet = "crash-dump",
    settings: KdumpSettings | WindowsCrashDumpSettings | None = None,
    *,
    architecture: Architecture = "x86_64",
    agent_dir: Path | None = None,
) -> str:
    """Render one component document (YAML text).

    :param family: an OS family of :data:`crashcart.components.families.FAMILIES`.
    :param phase_set: ``"crash-dump"`` (kdump / crash-dump settings, the agent, reboot,
        validate and test phases) or ``"os-update"`` (Linux package upgrade).
    :param settings: :class:`KdumpSettings` for Linux, :class:`WindowsCrashDumpSettings` for
        Windows. Default: the defaults of the right one.
    :param architecture: what the validate phase expects ``uname -m`` to be.
    :param agent_dir: where the agent files are. Default: ``crashcart/components/agent/``.
    """
    info = family_info(family)
    template = template_path(family, phase_set)
    if settings is None:
        settings = KdumpSettings() if info.platform == "Linux" else WindowsCrashDumpSettings()
    if info.platform == "Windows" and isinstance(settings, KdumpSettings):
        raise ConfigurationError(
            f"{family} is a Windows family: KdumpSettings are Linux-only; give "
            "WindowsCrashDumpSettings (dump type, AutoReboot, page file, dump file)"
        )
    if info.platform == "Linux" and isinstance(settings, WindowsCrashDumpSettings):
        raise ConfigurationError(
            f"{family} is a Linux family: give KdumpSettings, not WindowsCrashDumpSettings"
        )
    if architecture not in UNAME_MACHINE:
        raise ConfigurationError(
            f"architecture {architecture!r} is not one of {', '.join(UNAME_MACHINE)}"
        )
    if isinstance(settings, KdumpSettings):
        settings = for_image(settings, family, architecture)
    files = agent_files(agent_dir) if phase_set == "crash-dump" and info.platform == "Linux" else []
    agent_note = (
        AGENT_MISSING_NOTE
        if phase_set == "crash-dump" and info.platform == "Linux" and not files
        else None
    )
    fields = _fields(info, phase_set, settings, architecture, agent_note)
    prerequisites = (
        _substitute(_fragment_text(info.agent_prerequisites), fields, settings, [])
        if files and info.agent_prerequisites
        else ""
    )
    agent_lines = agent_step_lines(files, prerequisites)
    text = template.read_text(encoding="utf-8")
    return _substitute(text, fields, settings, agent_lines).rstrip("\n") + "\n"
