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
from typing import Any

from crashcart.components.families import FAMILIES, FamilyInfo
from crashcart.components.render import (
    _fields,
    _fragment_text,
    _substitute,
    agent_files,
    agent_script_lines,
)
from crashcart.errors import ConfigurationError
from crashcart.kdump import KdumpSettings, parse_crashkernel

#: The document's one step.
STEP_NAME = "ArmKdumpOnRunningInstance"
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

_MACHINE_TOKEN = "CRASHCART_RUNTIME_MACHINE"
_SERVICE_TOKEN = "CRASHCART_RUNTIME_KDUMP_SERVICE"
_MIB = 1024 * 1024


def armable_families() -> list[FamilyInfo]:
    """The families the document arms (every Linux family)."""
    return [info for info in FAMILIES.values() if info.platform == "Linux"]


def _function_name(prefix: str, family: str) -> str:
    return f"{prefix}_{family.replace('-', '_').replace('.', '_')}"


def _render(name: str, fields: dict[str, str], settings: KdumpSettings) -> str:
    text = _substitute(_fragment_text(name), fields, settings, [])
    # The architecture is the instance's, known only when the script runs.
    text = text.replace(f"'{_MACHINE_TOKEN}'", '"${crashcart_machine}"')
    return text.replace(_MACHINE_TOKEN, "${crashcart_machine}")


def _family_fields(info: FamilyInfo, settings: KdumpSettings) -> dict[str, str]:
    fields = _fields(info, "crash-dump", settings, "x86_64", None)
    fields["UNAME_MACHINE"] = _MACHINE_TOKEN
    return fields


def _subshell_function(name: str, body: str) -> list[str]:
    """``name() ( body )``: its own ``set -e`` and ``exit`` stay inside the subshell."""
    return [f"{name}() (", *body.split("\n"), ")"]


def _ranges_mib(crashkernel: str) -> tuple[str, str, str]:
    starts, ends, sizes = [], [], []
    for start, end, size in parse_crashkernel(crashkernel):
        starts.append(str(start // _MIB))
        ends.append(str(end // _MIB) if end is not None else "-1")
        sizes.append(str(size // _MIB))
    return " ".join(starts), " ".join(ends), " ".join(sizes)


def _prelude(settings: KdumpSettings, min_memory_mib: int) -> list[str]:
    starts, ends, sizes = _ranges_mib(settings.crashkernel)
    codes = "\n".join(f"#   {code}  FAILED {name}" for name, code in FAILURE_CODES.items())
    return f"""#!/bin/bash
# Functions run indirectly (trap, case branches); DEBIAN_FRONTEND is meant per subshell.
# shellcheck disable=SC2317,SC2030,SC2031
# Run Command may start the script with /bin/sh (dash on Debian and Ubuntu): use bash.
# aws-assumption: ssm-run-shell-script-behaviour
[ -n "${{BASH_VERSION:-}}" ] || exec /bin/bash "$0" "$@"
set -euo pipefail
# crashcart: arm kdump and install the crashcart agent on a running instance (no new AMI).
# Generated by crashcart/components/arming.py from the image pipeline's fragments.
# Outcomes, on the last line and in the exit status (what State Manager reports):
#   0    RESULT armed | RESULT reboot-pending (configured; armed after the next reboot)
#   194  RESULT reboot-requested (only with {REBOOT_PARAMETER}=yes: SSM Agent reboots, reruns)
{codes}
reboot_if_pending='{{{{ {REBOOT_PARAMETER} }}}}'
crashkernel='{settings.crashkernel}'
min_memory_mib={min_memory_mib}
max_reservation_percent={MAX_RESERVATION_PERCENT}
ck_starts=({starts})
ck_ends=({ends})
ck_sizes=({sizes})
state_dir=/var/lib/crashcart
reboot_marker="${{state_dir}}/arming-reboot-boot-id"

crashcart_reboot_requested=0
# Only an intended reboot request may leave with 194 (or Windows' 3010): a command that
# happens to fail with one of them must not reboot the instance.
# aws-assumption: ssm-run-command-reboot-exit-codes
guard_exit_status() {{
  local status=$?
  if [ "$crashcart_reboot_requested" != 1 ] && {{ [ "$status" = {REBOOT_EXIT_CODE} ] || [ "$status" = 3010 ]; }}; then
    echo "crashcart-arm: a command failed with ${{status}} (a reboot request code): reported as 1" >&2
    exit 1
  fi
}}
trap guard_exit_status EXIT

fail_with() {{
  local reason=$1 status=$2
  shift 2
  echo "crashcart-arm: FAILED ${{reason}}: $*" >&2
  echo "crashcart-arm: RESULT failed ${{reason}}"
  exit "$status"
}}
say() {{ echo "crashcart-arm: $*"; }}""".split("\n")


_DETECT = """
# --- 1. Which family, which architecture -------------------------------------------------
if [ "$(id -u)" != 0 ]; then
  fail_with configure-failed {configure} "must run as root (Run Command runs scripts as root)"
fi
os_id=$(sed -n 's/^ID=//p' /etc/os-release 2>/dev/null | tr -d '"' || true)
os_version=$(sed -n 's/^VERSION_ID=//p' /etc/os-release 2>/dev/null | tr -d '"' || true)
family=''
case "${{os_id}}:${{os_version}}" in
{cases}
  *) fail_with unsupported-os {unsupported} "${{os_id:-unknown}} ${{os_version:-unknown}} is not one of: {supported}" ;;
esac
crashcart_machine=$(uname -m)
case "$crashcart_machine" in
  x86_64 | aarch64) ;;
  *) fail_with unsupported-os {unsupported} "architecture ${{crashcart_machine}} is not x86_64 or aarch64" ;;
esac
say "family ${{family}} (${{os_id}} ${{os_version}}), ${{crashcart_machine}}, kernel $(uname -r)"
"""

_MEMORY = """
# --- 2. Memory floor: the reservation is taken from the workload's memory ----------------
mem_kib=$(awk '/^MemTotal:/ {{ print $2 }}' /proc/meminfo)
reserved_bytes=$(cat /sys/kernel/kexec_crash_size 2>/dev/null || echo 0)
memory_mib=$(((mem_kib * 1024 + reserved_bytes) / 1048576))
reservation_mib=0
for index in "${{!ck_sizes[@]}}"; do
  if [ "$memory_mib" -ge "${{ck_starts[$index]}}" ] &&
    {{ [ "${{ck_ends[$index]}}" = -1 ] || [ "$memory_mib" -lt "${{ck_ends[$index]}}" ]; }}; then
    reservation_mib=${{ck_sizes[$index]}}
  fi
done
if [ "$memory_mib" -lt "$min_memory_mib" ]; then
  fail_with memory-floor {code} "${{memory_mib}} MiB of memory is below the floor of" \\
    "${{min_memory_mib}} MiB: crashkernel=${{crashkernel}} would take ${{reservation_mib}} MiB of it;" \\
    "arm a larger instance type, or lower min_memory_mib knowingly"
fi
if [ "$reservation_mib" = 0 ]; then
  fail_with memory-floor {code} "crashkernel=${{crashkernel}} reserves nothing at ${{memory_mib}} MiB:" \\
    "the capture kernel would have no memory"
fi
if [ $((reservation_mib * 100)) -gt $((memory_mib * max_reservation_percent)) ]; then
  fail_with memory-floor {code} "crashkernel=${{crashkernel}} takes ${{reservation_mib}} MiB of" \\
    "${{memory_mib}} MiB, more than ${{max_reservation_percent}}%"
fi
say "memory ${{memory_mib}} MiB, reservation ${{reservation_mib}} MiB"
"""

_KERNEL = """
# --- 3. The running kernel must still have its modules ------------------------------------
# A kernel updated but not rebooted into (Debian and Ubuntu remove the old one's modules)
# breaks the capture initramfs build for the running kernel.
if [ ! -d "/lib/modules/$(uname -r)" ]; then
  fail_with kernel-not-booted {code} "the running kernel $(uname -r) has no /lib/modules/$(uname -r):" \\
    "a newer kernel was installed and not booted into, so the kdump initramfs cannot be" \\
    "built; reboot into the new kernel first, then the association arms it"
fi
"""

_PACKAGES = """
# --- 4. Packages: only when one is missing, and then the repositories must answer ---------
missing_packages() {{
  local pkg
  case "$family" in
{apt_families})
    for pkg in "$@"; do
      dpkg-query -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed' || echo "$pkg"
    done
    ;;
  *)
    for pkg in "$@"; do
      rpm -q "$pkg" >/dev/null 2>&1 || echo "$pkg"
    done
    ;;
  esac
}}
repository_hint() {{
  case "$family" in
{hints}
  esac
}}
probe_repositories() {{
  local output status=0
  case "$family" in
{apt_families})
    output=$(DEBIAN_FRONTEND=noninteractive apt-get update -q 2>&1) || status=$?
    if [ "$status" = 0 ] && printf '%s\\n' "$output" | grep -Eq '^(Err:|E:|W: Failed to fetch)'; then
      status=100
    fi
    ;;
  *)
    output=$(dnf -q makecache 2>&1) || status=$?
    ;;
  esac
  if [ "$status" != 0 ]; then
    printf '%s\\n' "$output" | tail -n 5 >&2
    fail_with repositories-unreachable {code} "packages $* are missing and the package" \\
      "repositories do not answer (exit ${{status}}): $(repository_hint)"
  fi
}}
"""

_FINISH = """
# --- 7. Armed, or reboot pending ---------------------------------------------------------
expected="crashkernel=${{crashkernel}}"
read -r -a cmdline_words </proc/cmdline
booted_crashkernel=''
for word in "${{cmdline_words[@]}}"; do
  case "$word" in
    crashkernel=*) booted_crashkernel=$word ;;
  esac
done
boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)

if [ "$booted_crashkernel" = "$expected" ]; then
  if [ "$(cat /sys/kernel/kexec_crash_loaded 2>/dev/null || echo 0)" != 1 ]; then
    say "${{expected}} is reserved but no capture kernel is loaded: starting ${{kdump_service}}"
    systemctl restart "$kdump_service" || true
  fi
  set +e
  ( validate_armed )
  status=$?
  set -e
  if [ "$status" != 0 ]; then
    fail_with not-armed {not_armed} "${{expected}} is reserved but the checks above fail"
  fi
  rm -f "$reboot_marker"
  if [ "$agent_installed" = 1 ]; then
    # Attest now rather than at the next timer run (the capture kernel is loaded).
    systemctl start --no-block crashcart-agent.service
  fi
  say "RESULT armed"
  exit 0
fi

if [ -f "$reboot_marker" ] && [ "$(cat "$reboot_marker")" != "$boot_id" ]; then
  fail_with rebooted-not-armed {rebooted} "rebooted to arm, and /proc/cmdline has" \\
    "'${{booted_crashkernel:-no crashkernel=}}', not '${{expected}}': the boot loader" \\
    "configuration did not take; see the configure output above (not rebooting again)"
fi

# Auto Scaling membership, from the instance's tags in the instance metadata (when tags
# in metadata are enabled): a member is never rebooted by crashcart.
# aws-assumption: autoscaling-instance-group-tag
asg_group='unknown'
imds=http://169.254.169.254/latest
if token=$(curl -fsS -m 2 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "${{imds}}/api/token" 2>/dev/null) &&
  tag_keys=$(curl -fsS -m 2 -H "X-aws-ec2-metadata-token: ${{token}}" "${{imds}}/meta-data/tags/instance" 2>/dev/null); then
  if printf '%s\\n' "$tag_keys" | grep -qx 'aws:autoscaling:groupName'; then
    asg_group=$(curl -fsS -m 2 -H "X-aws-ec2-metadata-token: ${{token}}" \\
      "${{imds}}/meta-data/tags/instance/aws:autoscaling:groupName" 2>/dev/null || echo unknown)
  else
    asg_group=''
  fi
fi
if [ -n "$asg_group" ] && [ "$asg_group" != unknown ]; then
  say "AUTO-SCALING member of ${{asg_group}}: crashcart never reboots it; arm its" \\
    "replacements at launch instead (a crashcart pipeline AMI, or launch template user data)"
fi

pending_reason="/proc/cmdline has '${{booted_crashkernel:-no crashkernel=}}'; the boot configuration now has '${{expected}}'"
if [ "$reboot_if_pending" = yes ]; then
  if [ -z "$asg_group" ]; then
    install -d -m 0755 "$state_dir"
    printf '%s\\n' "$boot_id" >"$reboot_marker"
    say "RESULT reboot-requested: ${{pending_reason}}"
    crashcart_reboot_requested=1
    exit {reboot}
  elif [ "$asg_group" = unknown ]; then
    say "not rebooting: Auto Scaling membership is unknown (enable instance tags in the" \\
      "instance metadata to let the maintenance window reboot it)"
  else
    say "not rebooting: an Auto Scaling member"
  fi
fi
say "RESULT reboot-pending: ${{pending_reason}}; armed after the next reboot (crashcart does" \\
  "not reboot it unless asked)"
exit 0
"""


def render_arming_script(
    settings: KdumpSettings | None = None,
    *,
    min_memory_mib: int = DEFAULT_MIN_MEMORY_MIB,
    include_agent: bool = True,
) -> str:
    """The bash the document runs (``{{ RebootIfPending }}`` left for SSM to fill in).

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

    lines = _prelude(settings, min_memory_mib)
    cases = []
    for info in families:
        os_id, version = OS_RELEASE[info.family]
        cases.append(f"  {os_id}:{version}) family={info.family} ;;")
    lines += _DETECT.format(
        cases="\n".join(cases),
        unsupported=FAILURE_CODES["unsupported-os"],
        configure=FAILURE_CODES["configure-failed"],
        supported=", ".join(info.label for info in families),
    ).split("\n")
    lines += _MEMORY.format(code=FAILURE_CODES["memory-floor"]).split("\n")
    lines += _KERNEL.format(code=FAILURE_CODES["kernel-not-booted"]).split("\n")
    apt = [i.family for i in families if i.agent_prerequisites == "agent-prereqs-apt"]
    hints = "\n".join(
        f"  {info.family}) echo {json.dumps(_REPOSITORY_HINTS[info.family])} ;;"
        for info in families
    )
    lines += _PACKAGES.format(
        apt_families="  " + " | ".join(apt),
        hints=hints,
        code=FAILURE_CODES["repositories-unreachable"],
    ).split("\n")

    # --- 5. The family's fragment, as in its image component -------------------------------
    files = agent_files() if include_agent else []
    lines += [
        "",
        "# --- 5. Each family's steps, rendered from its image component's fragments ---------",
    ]
    case_lines = ["case \"$family\" in"]
    bodies: dict[str, str] = {}  # rendered body -> function name: identical ones are shared

    def function_for(prefix: str, info: FamilyInfo, body: str) -> str:
        if body not in bodies:
            bodies[body] = _function_name(prefix, info.family)
            lines.extend(_subshell_function(bodies[body], body))
        return bodies[body]

    for info in families:
        fields = _family_fields(info, settings)
        # The package list is the family's (set in its case branch below), so that families
        # whose steps differ only in it share one function.
        fields["PACKAGES"] = '"${kdump_packages[@]}"'
        enable = (
            "kdump-tools-enable"
            if info.kdump_service == "kdump-tools.service"
            else "kdumpctl-enable"
        )
        configure = function_for("configure", info, _render(enable, fields, settings))
        prerequisites = function_for(
            "agent_prerequisites",
            info,
            "set -euo pipefail\n"
            + (
                _render(info.agent_prerequisites, fields, settings)
                if info.agent_prerequisites
                else "true"
            ),
        )
        packages = list(info.kdump_packages)
        if info.agent_prerequisites == "agent-prereqs-apt":
            packages += ["python3", "python3-venv"]
        case_lines += [
            f"  {info.family})",
            f"    kdump_service={info.kdump_service}",
            f"    kdump_packages=({' '.join(info.kdump_packages)})",
            f"    packages=({' '.join(packages)})",
            f"    configure_family() {{ {configure}; }}",
            f"    install_agent_prerequisites() {{ {prerequisites}; }}",
            "    ;;",
        ]
    case_lines.append("esac")
    # validate.sh is the same for every family but for the service name: one per family
    # would repeat it, so it reads the service from a variable.
    validate_fields = _family_fields(FAMILIES["debian-12"], settings)
    validate_fields["KDUMP_SERVICE"] = _SERVICE_TOKEN
    validate = _render("validate", validate_fields, settings)
    for verb in ("is-active", "is-enabled"):
        validate = validate.replace(f"{verb} {_SERVICE_TOKEN}", f'{verb} "${{kdump_service}}"')
    validate = validate.replace(_SERVICE_TOKEN, "${kdump_service}")
    lines += _subshell_function("validate_armed", validate)
    agent = agent_script_lines(files, compress=True)
    lines += _subshell_function("install_agent", "\n".join(agent) if agent else "true")
    lines += case_lines
    lines += [
        "",
        "# --- 6. Configure (check before change: a rerun changes nothing, drift is repaired) --",
        '# (no process substitution: it needs /dev/fd, absent in some minimal images)',
        'read -r -a missing <<<"$(missing_packages "${packages[@]}" | tr \'\\n\' \' \')"',
        'if [ "${#missing[@]}" -gt 0 ]; then',
        '  say "missing packages: ${missing[*]}"',
        '  probe_repositories "${missing[@]}"',
        "fi",
        "set +e",
        "( configure_family )",
        "status=$?",
        "set -e",
        'if [ "$status" != 0 ]; then',
        f'  fail_with configure-failed {FAILURE_CODES["configure-failed"]} '
        '"the ${family} kdump step failed (exit ${status}); its output is above"',
        "fi",
        f"agent_installed={1 if files else 0}",
        'if [ "$agent_installed" = 1 ]; then',
        "  set +e",
        "  ( install_agent_prerequisites && install_agent )",
        "  status=$?",
        "  set -e",
        '  if [ "$status" != 0 ]; then',
        f'    fail_with configure-failed {FAILURE_CODES["configure-failed"]} '
        '"installing the crashcart agent failed (exit ${status}); its output is above"',
        "  fi",
        "fi",
    ]
    lines += _FINISH.format(
        not_armed=FAILURE_CODES["not-armed"],
        rebooted=FAILURE_CODES["rebooted-not-armed"],
        reboot=REBOOT_EXIT_CODE,
    ).split("\n")
    return "\n".join(lines).rstrip("\n") + "\n"


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
    settings = settings or KdumpSettings()
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
