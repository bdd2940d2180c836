"""The running-instance path: one SSM Command document that arms kdump without a new AMI.

The document is rendered from the *same* fragments as the Image Builder components
(``fragments/kdumpctl-enable.sh`` with ``grubby`` on Amazon Linux 2023 and RHEL 9,
``fragments/kdump-tools-enable.sh`` with ``grub.d`` + ``update-grub`` on Debian and Ubuntu,
``fragments/validate.sh`` as the "armed" judge, the agent step of
:func:`crashcart.components.render.agent_script_lines`), so a change to what an image arms is
a change to what a running instance arms. One ``aws:runShellScript`` step detects the family
from ``/etc/os-release`` and runs that family's fragment, because one State Manager
association targets the opt-in tag across a mixed fleet.

Configure is not validate: the crashkernel reservation exists only after a reboot. The
script's outcomes (its last line, and its exit status, which is what State Manager reports):

- ``RESULT armed`` (exit 0): :func:`validate` passes, including
  ``/sys/kernel/kexec_crash_loaded`` = 1; only then is the agent started to attest.
- ``RESULT reboot-pending`` (exit 0, not a failure): configured; armed after the next reboot.
  Auto Scaling members are named here and never rebooted by crashcart.
- ``RESULT reboot-requested`` (exit 194, only with ``RebootIfPending=yes``, the opt-in
  maintenance window): SSM Agent reboots the instance and runs the script again.
- ``FAILED <reason>`` (exit :data:`FAILURE_CODES`): a named trap (see the table).

Render::

    from crashcart.components.arming import render_arming_document
    document = render_arming_document(KdumpSettings(), min_memory_mib=1536)
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from crashcart.components.families import FAMILIES, FamilyInfo
from crashcart.components.render import (
    TEMPLATES_DIR,
    _fields,
    _fragment_text,
    _substitute,
    agent_files,
    agent_script_lines,
)
from crashcart.crashkernel_tiers import RHEL9_X86_64, crashkernel_of
from crashcart.errors import ConfigurationError
from crashcart.kdump import KdumpSettings, parse_crashkernel

#: The document's one step.
STEP_NAME = "ArmKdumpOnRunningInstance"
#: The script's template (``templates/``).
TEMPLATE = "running-instance.sh"
#: Its parameter that turns a pending reboot into a reboot (the maintenance-window task).
REBOOT_PARAMETER = "RebootIfPending"
#: Run Command's Linux exit code for "reboot, then run the script again".
# aws-assumption: ssm-run-command-reboot-exit-codes
REBOOT_EXIT_CODE = 194
#: A named failure per trap, with its own exit status (never 194 or 3010: a reboot request).
FAILURE_CODES: dict[str, int] = {
    "unsupported-os": 20,
    "memory-floor": 21,
    "kernel-not-booted": 22,
    "repositories-unreachable": 23,
    "configure-failed": 24,
    "not-armed": 25,
    "rebooted-not-armed": 26,
}
#: The largest share of memory the reservation may take on a running instance.
MAX_RESERVATION_PERCENT = 25
#: SSM's limit on a document's content.
# aws-assumption: ssm-command-document-limits
DOCUMENT_SIZE_LIMIT = 64 * 1024
#: Default memory floor (MiB of physical memory, as seen by the kernel).
DEFAULT_MIN_MEMORY_MIB = 1536

#: ``/etc/os-release`` ``ID`` and a ``VERSION_ID`` glob per Linux family.
OS_RELEASE: dict[str, tuple[str, str]] = {
    "amazon-linux-2023": ("amzn", "2023"),
    "debian-12": ("debian", "12"),
    "ubuntu-22.04": ("ubuntu", "22.04"),
    "ubuntu-24.04": ("ubuntu", "24.04"),
    "rhel-9": ("rhel", "9.*"),
}

#: What to check when a family's package repositories are unreachable.
# aws-assumption: al2023-repositories-in-s3
_REPOSITORY_HINTS: dict[str, str] = {
    "amazon-linux-2023": "Amazon Linux 2023 repositories are served from Amazon S3: in a "
    "private subnet, add an S3 gateway endpoint (com.amazonaws.<region>.s3) to the "
    "subnet's route table, or give it a NAT gateway",
    "debian-12": "Debian's mirrors (deb.debian.org, or the mirror in /etc/apt) must be "
    "reachable: a NAT gateway, a proxy, or a mirror in the VPC",
    "ubuntu-22.04": "Ubuntu's archive (the mirror in /etc/apt) must be reachable: a NAT "
    "gateway, a proxy, or a mirror in the VPC",
    "ubuntu-24.04": "Ubuntu's archive (the mirror in /etc/apt) must be reachable: a NAT "
    "gateway, a proxy, or a mirror in the VPC",
    "rhel-9": "RHEL's RHUI repositories must be reachable: a NAT gateway or a proxy",
}

_MACHINE_MARK = "CRASHCART_RUNTIME_MACHINE"
_SERVICE_MARK = "CRASHCART_RUNTIME_KDUMP_SERVICE"
_MIB = 1024 * 1024


def armable_families() -> list[FamilyInfo]:
    """The families the document arms (every Linux family)."""
    return [info for info in FAMILIES.values() if info.platform == "Linux"]


def _function_name(prefix: str, family: str) -> str:
    return f"{prefix}_{family.replace('-', '_').replace('.', '_')}"


def _render(name: str, fields: dict[str, str], settings: KdumpSettings) -> str:
    text = _substitute(_fragment_text(name), fields, settings, [])
    # The architecture is the instance's, known only when the script runs.
    # validate.sh compares with it in single quotes; the settings heredoc expands it as is.
    text = text.replace(f"= '{_MACHINE_MARK}' ]", '= "${crashcart_machine}" ]')
    return text.replace(_MACHINE_MARK, "${crashcart_machine}")


#: What stands for the capture-memory hook in the running-instance document's family steps.
NO_CAPTURE_MEMORY_HOOK = (
    "# (no capture-memory hook in the running-instance document: SSM's 64 KB limit)"
)


def _family_fields(info: FamilyInfo, settings: KdumpSettings) -> dict[str, str]:
    fields = _fields(info, "crash-dump", settings, "x86_64", None)
    fields["UNAME_MACHINE"] = _MACHINE_MARK
    # SSM's 64 KB document limit leaves no room for the hook (the image components have it).
    fields["CAPTURE_MEMORY_HOOK"] = NO_CAPTURE_MEMORY_HOOK
    return fields


def _subshell_function(name: str, body: str) -> list[str]:
    """``name() ( body )``: its own ``set -e`` and ``exit`` stay inside the subshell."""
    return [f"{name}() (", *body.split("\n"), ")"]


def running_instance_settings(settings: KdumpSettings) -> KdumpSettings:
    """``settings`` with a crashkernel: the user's, else RHEL 9's x86_64 tiers.

    The document arms every family on both architectures with one value, chosen at render
    time; without a value of yours it is the x86_64 tiers, which are under Red Hat's arm64
    minimum: give ``KdumpSettings(crashkernel=RHEL9_ARM64)`` for Graviton instances.
    """
    if settings.crashkernel is not None:
        return settings
    return replace(settings, crashkernel=RHEL9_X86_64)


def _ranges_mib(crashkernel: str) -> tuple[str, str, str]:
    starts, ends, sizes = [], [], []
    for start, end, size in parse_crashkernel(crashkernel):
        starts.append(str(start // _MIB))
        ends.append(str(end // _MIB) if end is not None else "-1")
        sizes.append(str(size // _MIB))
    return " ".join(starts), " ".join(ends), " ".join(sizes)


def render_arming_script(
    settings: KdumpSettings | None = None,
    *,
    min_memory_mib: int = DEFAULT_MIN_MEMORY_MIB,
    include_agent: bool = True,
) -> str:
    """The bash the document runs (``{{ RebootIfPending }}`` left for SSM to fill in).

    The template is ``templates/running-instance.sh``; each family's steps come from its
    image component's fragments.

    :param settings: what to arm. Default: ``KdumpSettings()``.
    :param min_memory_mib: refuse instances with less memory (see :data:`FAILURE_CODES`).
    :param include_agent: install the crashcart agent too. Default: True.
    """
    settings = settings or KdumpSettings()
    if not isinstance(settings, KdumpSettings):
        raise ConfigurationError(
            f"settings must be KdumpSettings (running-instance arming is Linux-only), "
            f"got {type(settings).__name__}"
        )
    settings = running_instance_settings(settings)
    if isinstance(min_memory_mib, bool) or not isinstance(min_memory_mib, int):
        raise ConfigurationError(f"min_memory_mib must be a whole number, got {min_memory_mib!r}")
    if not 512 <= min_memory_mib <= 1_048_576:
        raise ConfigurationError(
            f"min_memory_mib {min_memory_mib!r}: use 512-1048576 MiB; below 512 MiB no "
            "capture kernel fits beside a workload"
        )
    families = armable_families()
    missing = [info.family for info in families if info.family not in OS_RELEASE]
    if missing:
        raise ConfigurationError(f"no /etc/os-release match for {', '.join(missing)}")
    files = agent_files() if include_agent else []

    functions: list[str] = []
    bodies: dict[str, str] = {}  # rendered body -> function name: identical ones are shared

    def function_for(prefix: str, family: str, body: str) -> str:
        if body not in bodies:
            bodies[body] = _function_name(prefix, family)
            functions.extend(_subshell_function(bodies[body], body))
        return bodies[body]

    cases: list[str] = []
    for info in families:
        fields = _family_fields(info, settings)
        # The package list is the family's (set in its case branch), so that families whose
        # steps differ only in it share one function. Only kdump's packages: kdump is armed
        # even where the agent's cannot be installed (the run then fails, naming the agent).
        fields["PACKAGES"] = '"${kdump_packages[@]}"'
        kdump_tools = info.kdump_service == "kdump-tools.service"
        enable = "kdump-tools-enable" if kdump_tools else "kdumpctl-enable"
        configure = function_for("configure", info.family, _render(enable, fields, settings))
        prerequisites = "true"
        if info.agent_prerequisites and files:
            prerequisites = _render(info.agent_prerequisites, fields, settings)
        prerequisites_function = function_for(
            "agent_prerequisites", info.family, "set -euo pipefail\n" + prerequisites
        )
        packages = list(info.kdump_packages)
        if info.agent_prerequisites == "agent-prereqs-apt" and files:
            packages += ["python3", "python3-venv"]
        cases += [
            f"  {info.family})",
            f"    kdump_service={info.kdump_service}",
            f"    kdump_packages=({' '.join(info.kdump_packages)})",
            f"    packages=({' '.join(packages)})",
            f"    configure_family() {{ {configure}; }}",
            f"    install_agent_prerequisites() {{ {prerequisites_function}; }}",
            "    ;;",
        ]
    # validate.sh is the same for every family but for the service name: it reads the
    # service from the family's branch.
    validate_fields = _family_fields(FAMILIES["debian-12"], settings)
    validate_fields["KDUMP_SERVICE"] = _SERVICE_MARK
    validate = _render("validate", validate_fields, settings)
    for verb in ("is-active", "is-enabled"):
        validate = validate.replace(f"{verb} {_SERVICE_MARK}", f'{verb} "${{kdump_service}}"')
    validate = validate.replace(_SERVICE_MARK, "${kdump_service}")
    functions += _subshell_function("validate_armed", validate)
    agent = agent_script_lines(files, compress=True)
    functions += _subshell_function("install_agent", "\n".join(agent) if agent else "true")

    starts, ends, sizes = _ranges_mib(crashkernel_of(settings))
    template_fields = {
        "REBOOT_EXIT_CODE": str(REBOOT_EXIT_CODE),
        "REBOOT_PARAMETER": REBOOT_PARAMETER,
        "REBOOT_PARAMETER_REFERENCE": f"{{{{ {REBOOT_PARAMETER} }}}}",
        "FAILURE_TABLE": "\n".join(
            f"#   {code}   FAILED {name}" for name, code in FAILURE_CODES.items()
        ),
        "CRASHKERNEL": crashkernel_of(settings),
        "MIN_MEMORY_MIB": str(min_memory_mib),
        "MAX_RESERVATION_PERCENT": str(MAX_RESERVATION_PERCENT),
        "CK_STARTS": starts,
        "CK_ENDS": ends,
        "CK_SIZES": sizes,
        "OS_CASES": "\n".join(
            f"  {OS_RELEASE[info.family][0]}:{OS_RELEASE[info.family][1]}) family={info.family} ;;"
            for info in families
        ),
        "SUPPORTED": ", ".join(info.label for info in families),
        "APT_FAMILIES": " | ".join(
            info.family for info in families if info.kdump_service == "kdump-tools.service"
        ),
        "REPOSITORY_HINTS": "\n".join(
            f"    {info.family}) echo {json.dumps(_REPOSITORY_HINTS[info.family])} ;;"
            for info in families
        ),
        "FAMILY_FUNCTIONS": "\n".join(functions),
        "FAMILY_CASES": "\n".join(cases),
        "AGENT_INSTALLED": "1" if files else "0",
    }
    for name, code in FAILURE_CODES.items():
        template_fields[f"CODE_{name.upper().replace('-', '_')}"] = str(code)
    text = (TEMPLATES_DIR / TEMPLATE).read_text(encoding="utf-8")
    return _substitute(text, template_fields, settings, []).rstrip("\n") + "\n"


def render_arming_document(
    settings: KdumpSettings | None = None,
    *,
    min_memory_mib: int = DEFAULT_MIN_MEMORY_MIB,
    include_agent: bool = True,
    execution_timeout_seconds: int = 3600,
) -> dict[str, Any]:
    """The SSM Command document (schema 2.2) as a dict, for ``AWS::SSM::Document`` content.

    :raises ConfigurationError: for bad settings, or a document over SSM's size limit.
    """
    script = render_arming_script(
        settings, min_memory_mib=min_memory_mib, include_agent=include_agent
    )
    settings = running_instance_settings(settings or KdumpSettings())
    # aws-assumption: ssm-command-document-limits
    document: dict[str, Any] = {
        "schemaVersion": "2.2",
        "description": (
            f"crashcart: arm kdump (crashkernel={settings.crashkernel}, makedumpfile "
            f"{settings.makedumpfile_args}) and install the crashcart agent on a running "
            f"{' / '.join(info.label for info in armable_families())} instance. Reports "
            "'reboot pending' (exit 0) until a reboot; never reboots unless "
            f"{REBOOT_PARAMETER}=yes."
        ),
        "parameters": {
            REBOOT_PARAMETER: {
                "type": "String",
                "description": "yes: when the reservation needs a reboot, ask SSM Agent for "
                "one (exit 194) unless the instance is, or may be, in an Auto Scaling group. "
                "no: report 'reboot pending' and leave the reboot to you.",
                "default": "no",
                "allowedValues": ["no", "yes"],
            }
        },
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": STEP_NAME,
                "precondition": {"StringEquals": ["platformType", "Linux"]},
                "inputs": {
                    "timeoutSeconds": str(execution_timeout_seconds),
                    "runCommand": script.rstrip("\n").split("\n"),
                },
            }
        ],
    }
    size = len(json.dumps(document, separators=(",", ":")).encode())
    if size > DOCUMENT_SIZE_LIMIT:
        raise ConfigurationError(
            f"the arming document is {size} bytes, over SSM's {DOCUMENT_SIZE_LIMIT}-byte "
            "limit for document content"
        )
    return document


def render_arming_drill_document(
    settings: KdumpSettings | None = None,
    *,
    min_memory_mib: int = DEFAULT_MIN_MEMORY_MIB,
    reboot_if_pending: str = "no",
) -> str:
    """The running-instance path for the local drill's component runner (YAML text).

    :mod:`crashcart.drill.component` runs Image Builder-style documents (``ExecuteBash``,
    ``Reboot``, exit 194) inside a QEMU guest. This wraps :func:`render_arming_script` (with
    ``RebootIfPending`` filled in, as Run Command would) for a guest the pipeline did not
    build: the build phase runs it (expected ``RESULT reboot-pending``), reboots as the
    operator would, and runs it again (expected ``RESULT armed``); the validate phase is the
    Debian 12 image component's own validate step. See docs/running-instances.md.
    """
    import yaml

    from crashcart.components.render import render_component

    if reboot_if_pending not in ("no", "yes"):
        raise ConfigurationError(
            f"reboot_if_pending {reboot_if_pending!r} is not 'no' or 'yes' (the document's "
            f"{REBOOT_PARAMETER} parameter)"
        )
    script = render_arming_script(settings, min_memory_mib=min_memory_mib).replace(
        f"{{{{ {REBOOT_PARAMETER} }}}}", reboot_if_pending
    )
    component = yaml.safe_load(render_component("debian-12", "crash-dump", settings))
    (validate,) = [phase for phase in component["phases"] if phase["name"] == "validate"]

    def arm(name: str) -> dict[str, Any]:
        return {"name": name, "action": "ExecuteBash", "inputs": {"commands": [script]}}

    document = {
        "name": "crashcart-running-instance-drill",
        "description": "crashcart: the running-instance arming script on a guest the "
        "pipeline did not build: pending, reboot, armed",
        "schemaVersion": "1.0",
        "phases": [
            {
                "name": "build",
                "steps": [
                    arm("ArmRunningInstance"),
                    {"name": "RebootByTheOperator", "action": "Reboot"},
                    arm("ArmRunningInstanceAfterReboot"),
                ],
            },
            validate,
        ],
    }
    return str(yaml.safe_dump(document, sort_keys=False, width=1_000_000))
