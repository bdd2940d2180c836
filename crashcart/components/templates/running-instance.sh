#!/bin/bash
# Functions run indirectly (trap, case branches); DEBIAN_FRONTEND is meant per subshell.
# shellcheck disable=SC2317,SC2030,SC2031
# Run Command may start the script with /bin/sh (dash on Debian and Ubuntu): use bash.
# aws-assumption: ssm-run-shell-script-behaviour
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
set -euo pipefail
# crashcart: arm kdump and install the crashcart agent on a running instance (no new AMI).
# Template: crashcart/components/arming.py fills in the fields and the families' steps from
# the image pipeline's fragments. Outcomes, on the last line and in the exit status (what
# State Manager reports):
#   0    RESULT armed | RESULT reboot-pending (configured; armed after the next reboot)
#   @@REBOOT_EXIT_CODE@@  RESULT reboot-requested (only with @@REBOOT_PARAMETER@@=yes: SSM Agent reboots, reruns)
@@FAILURE_TABLE@@
reboot_if_pending='@@REBOOT_PARAMETER_REFERENCE@@'
crashkernel='@@CRASHKERNEL@@'
min_memory_mib=@@MIN_MEMORY_MIB@@
max_reservation_percent=@@MAX_RESERVATION_PERCENT@@
ck_starts=(@@CK_STARTS@@)
ck_ends=(@@CK_ENDS@@)
ck_sizes=(@@CK_SIZES@@)
state_dir=/var/lib/crashcart
reboot_marker="${state_dir}/arming-reboot-boot-id"

crashcart_reboot_requested=0
# 1 once probe_repositories has refreshed the package lists (section 4).
crashcart_apt_lists_fresh=0
# Only an intended reboot request may leave with @@REBOOT_EXIT_CODE@@ (or Windows' 3010): a
# command that happens to fail with one of them must not reboot the instance.
# aws-assumption: ssm-run-command-reboot-exit-codes
guard_exit_status() {
  local status=$?
  if [ "$crashcart_reboot_requested" != 1 ] &&
    { [ "$status" = @@REBOOT_EXIT_CODE@@ ] || [ "$status" = 3010 ]; }; then
    echo "crashcart-arm: a command failed with ${status} (a reboot request code):" \
      "reported as 1" >&2
    exit 1
  fi
}
trap guard_exit_status EXIT

fail_with() {
  local reason=$1 status=$2
  shift 2
  echo "crashcart-arm: FAILED ${reason}: $*" >&2
  echo "crashcart-arm: RESULT failed ${reason}"
  exit "$status"
}
say() { echo "crashcart-arm: $*"; }

# --- 1. Which family, which architecture -----------------------------------------------------
if [ "$(id -u)" != 0 ]; then
  fail_with configure-failed @@CODE_CONFIGURE_FAILED@@ "must run as root (Run Command does)"
fi
os_id=$(sed -n 's/^ID=//p' /etc/os-release 2>/dev/null | tr -d '"' || true)
os_version=$(sed -n 's/^VERSION_ID=//p' /etc/os-release 2>/dev/null | tr -d '"' || true)
family=''
case "${os_id}:${os_version}" in
@@OS_CASES@@
  *)
    fail_with unsupported-os @@CODE_UNSUPPORTED_OS@@ \
      "${os_id:-unknown} ${os_version:-unknown} is not one of: @@SUPPORTED@@"
    ;;
esac
crashcart_machine=$(uname -m)
case "$crashcart_machine" in
  x86_64 | aarch64) ;;
  *)
    fail_with unsupported-os @@CODE_UNSUPPORTED_OS@@ \
      "architecture ${crashcart_machine} is not x86_64 or aarch64"
    ;;
esac
say "family ${family} (${os_id} ${os_version}), ${crashcart_machine}, kernel $(uname -r)"

# --- 2. Memory floor: the reservation is taken from the workload's memory --------------------
mem_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
reserved_bytes=$(cat /sys/kernel/kexec_crash_size 2>/dev/null || echo 0)
memory_mib=$(((mem_kib * 1024 + reserved_bytes) / 1048576))
reservation_mib=0
for index in "${!ck_sizes[@]}"; do
  if [ "$memory_mib" -ge "${ck_starts[$index]}" ] &&
    { [ "${ck_ends[$index]}" = -1 ] || [ "$memory_mib" -lt "${ck_ends[$index]}" ]; }; then
    reservation_mib=${ck_sizes[$index]}
  fi
done
if [ "$memory_mib" -lt "$min_memory_mib" ]; then
  fail_with memory-floor @@CODE_MEMORY_FLOOR@@ \
    "${memory_mib} MiB of memory is below the floor of ${min_memory_mib} MiB:" \
    "crashkernel=${crashkernel} would take ${reservation_mib} MiB of it;" \
    "arm a larger instance type, or lower min_memory_mib knowingly"
fi
if [ "$reservation_mib" = 0 ]; then
  fail_with memory-floor @@CODE_MEMORY_FLOOR@@ \
    "crashkernel=${crashkernel} reserves nothing at ${memory_mib} MiB:" \
    "the capture kernel would have no memory"
fi
if [ $((reservation_mib * 100)) -gt $((memory_mib * max_reservation_percent)) ]; then
  fail_with memory-floor @@CODE_MEMORY_FLOOR@@ \
    "crashkernel=${crashkernel} takes ${reservation_mib} MiB of ${memory_mib} MiB," \
    "more than ${max_reservation_percent}%"
fi
say "memory ${memory_mib} MiB, reservation ${reservation_mib} MiB"

# --- 3. The running kernel must still have its modules ---------------------------------------
# A kernel updated but not rebooted into (Debian and Ubuntu remove the old one's modules)
# breaks the capture initramfs build for the running kernel.
if [ ! -d "/lib/modules/$(uname -r)" ]; then
  fail_with kernel-not-booted @@CODE_KERNEL_NOT_BOOTED@@ \
    "the running kernel $(uname -r) has no /lib/modules/$(uname -r): a newer kernel was" \
    "installed and not booted into, so the kdump initramfs cannot be built;" \
    "reboot into the new kernel first, then the association arms it"
fi

# --- 4. Packages: only when one is missing, and then the repositories must answer ------------
missing_packages() {
  local pkg
  case "$family" in
    @@APT_FAMILIES@@)
      for pkg in "$@"; do
        dpkg-query -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed' ||
          echo "$pkg"
      done
      ;;
    *)
      for pkg in "$@"; do
        rpm -q "$pkg" >/dev/null 2>&1 || echo "$pkg"
      done
      ;;
  esac
}
repository_hint() {
  case "$family" in
@@REPOSITORY_HINTS@@
  esac
}
probe_repositories() {
  local output status=0
  case "$family" in
    @@APT_FAMILIES@@)
      output=$(DEBIAN_FRONTEND=noninteractive apt-get update -q 2>&1) || status=$?
      # apt-get update exits 0 when a mirror cannot be reached: read what it says.
      if [ "$status" = 0 ] &&
        printf '%s\n' "$output" | grep -Eq '^(Err:|E:|W: Failed to fetch)'; then
        status=100
      fi
      ;;
    *)
      output=$(dnf -q makecache 2>&1) || status=$?
      ;;
  esac
  if [ "$status" != 0 ]; then
    printf '%s\n' "$output" | tail -n 5 >&2
    fail_with repositories-unreachable @@CODE_REPOSITORIES_UNREACHABLE@@ \
      "packages $* are missing and the package repositories do not answer" \
      "(exit ${status}): $(repository_hint)"
  fi
  # Fresh lists: the apt families' steps install without another apt-get update.
  crashcart_apt_lists_fresh=1
}

# --- 5. Each family's steps, rendered from its image component's fragments -------------------
@@FAMILY_FUNCTIONS@@
case "$family" in
@@FAMILY_CASES@@
esac

# --- 6. Configure (check before change: a rerun changes nothing, drift is repaired) ----------
# (no process substitution: it needs /dev/fd, absent in some minimal images)
read -r -a missing <<<"$(missing_packages "${packages[@]}" | tr '\n' ' ')"
if [ "${#missing[@]}" -gt 0 ]; then
  say "missing packages: ${missing[*]}"
  probe_repositories "${missing[@]}"
fi
set +e
(configure_family)
status=$?
set -e
if [ "$status" != 0 ]; then
  fail_with configure-failed @@CODE_CONFIGURE_FAILED@@ \
    "the ${family} kdump step failed (exit ${status}); its output is above"
fi
agent_installed=@@AGENT_INSTALLED@@
agent_failure=''
if [ "$agent_installed" = 1 ]; then
  # Each on its own: in an && list bash ignores set -e inside the first function, whose
  # failed apt-get would then go unnoticed.
  set +e
  (install_agent_prerequisites)
  status=$?
  if [ "$status" = 0 ]; then
    (install_agent)
    status=$?
  fi
  set -e
  if [ "$status" != 0 ]; then
    # kdump is configured: arm it (below) all the same, then report the agent's failure.
    agent_failure="installing the crashcart agent failed (exit ${status}); its output is above"
    say "NOTE: ${agent_failure}; arming kdump all the same (a dump stays on the instance)"
  fi
fi
# The run's end when kdump is armed, or armed after the next reboot: a failed agent
# install fails the run then, with what kdump's state is.
agent_failure_or_exit() {
  if [ -n "$agent_failure" ]; then
    fail_with configure-failed @@CODE_CONFIGURE_FAILED@@ "${agent_failure}; kdump: $*"
  fi
  exit 0
}

# --- 7. Armed, or reboot pending -------------------------------------------------------------
expected="crashkernel=${crashkernel}"
@@FRAGMENT:cmdline-crashkernel@@
booted_crashkernel=$(cmdline_crashkernel)
boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)

if [ "$booted_crashkernel" = "$expected" ]; then
  if [ "$(cat /sys/kernel/kexec_crash_loaded 2>/dev/null || echo 0)" != 1 ]; then
    say "${expected} is reserved but no capture kernel is loaded: starting ${kdump_service}"
    systemctl restart "$kdump_service" || true
  fi
  set +e
  (validate_armed)
  status=$?
  set -e
  if [ "$status" != 0 ]; then
    fail_with not-armed @@CODE_NOT_ARMED@@ "${expected} is reserved but the checks above fail"
  fi
  rm -f "$reboot_marker"
  if [ "$agent_installed" = 1 ] && [ -z "$agent_failure" ]; then
    # Attest now (the capture kernel is loaded) rather than at the next timer run.
    systemctl start --no-block crashcart-agent.service
  fi
  [ -n "$agent_failure" ] || say "RESULT armed"
  agent_failure_or_exit "armed"
fi

if [ -f "$reboot_marker" ] && [ "$(cat "$reboot_marker")" != "$boot_id" ]; then
  fail_with rebooted-not-armed @@CODE_REBOOTED_NOT_ARMED@@ \
    "rebooted to arm, and /proc/cmdline has '${booted_crashkernel:-no crashkernel=}'," \
    "not '${expected}': the boot loader configuration did not take; see the configure" \
    "output above (not rebooting again)"
fi

# Auto Scaling membership, from the instance's tags in the instance metadata (when tags in
# metadata are enabled): a member is never rebooted by crashcart.
# aws-assumption: autoscaling-instance-group-tag
asg_group=unknown
imds=http://169.254.169.254/latest
if token=$(curl -fsS -m 2 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' \
  "${imds}/api/token" 2>/dev/null) &&
  tag_keys=$(curl -fsS -m 2 -H "X-aws-ec2-metadata-token: ${token}" \
    "${imds}/meta-data/tags/instance" 2>/dev/null); then
  if printf '%s\n' "$tag_keys" | grep -qx 'aws:autoscaling:groupName'; then
    asg_group=$(curl -fsS -m 2 -H "X-aws-ec2-metadata-token: ${token}" \
      "${imds}/meta-data/tags/instance/aws:autoscaling:groupName" 2>/dev/null || echo unknown)
  else
    asg_group=''
  fi
fi
if [ -n "$asg_group" ] && [ "$asg_group" != unknown ]; then
  say "AUTO-SCALING member of ${asg_group}: crashcart never reboots it; arm its" \
    "replacements at launch instead (a crashcart pipeline AMI, or launch template user data)"
fi

pending_reason="/proc/cmdline has '${booted_crashkernel:-no crashkernel=}';"
pending_reason="${pending_reason} the boot configuration now has '${expected}'"
if [ "$reboot_if_pending" = yes ]; then
  if [ -z "$asg_group" ]; then
    install -d -m 0755 "$state_dir"
    printf '%s\n' "$boot_id" >"$reboot_marker"
    say "RESULT reboot-requested: ${pending_reason}"
    crashcart_reboot_requested=1
    exit @@REBOOT_EXIT_CODE@@
  elif [ "$asg_group" = unknown ]; then
    say "not rebooting: Auto Scaling membership is unknown (enable instance tags in the" \
      "instance metadata to let the maintenance window reboot it)"
  else
    say "not rebooting: an Auto Scaling member"
  fi
fi
[ -n "$agent_failure" ] ||
  say "RESULT reboot-pending: ${pending_reason}; armed after the next reboot" \
    "(crashcart does not reboot it unless asked)"
agent_failure_or_exit "armed after the next reboot (${pending_reason})"
