set -euo pipefail
# crashcart: is kdump armed? Run in the validate phase (build instance, after the reboot)
# and the test phase (a fresh instance from the new image, after a cold boot).
failures=0
fail() {
  echo "crashcart-validate: FAIL: $*" >&2
  failures=$((failures + 1))
}
ok() { echo "crashcart-validate: ok: $*"; }

echo "crashcart-validate: kernel $(uname -r)"

# The kdump service builds its initramfs and loads the capture kernel at boot, which can
# take a minute or two: wait (at most 5 minutes) while it is still starting.
for _ in $(seq 1 60); do
  state=$(systemctl is-active @@KDUMP_SERVICE@@ 2>/dev/null || true)
  [ "$state" = activating ] || break
  echo "crashcart-validate: waiting for @@KDUMP_SERVICE@@ (${state})"
  sleep 5
done

machine=$(uname -m)
if [ "$machine" = '@@UNAME_MACHINE@@' ]; then
  ok "architecture ${machine}"
else
  fail "architecture is ${machine}, the pipeline was declared for @@UNAME_MACHINE@@"
fi

expected_crashkernel='crashkernel=@@CRASHKERNEL@@'
@@FRAGMENT:cmdline-crashkernel@@
found_crashkernel=$(cmdline_crashkernel)
if [ "$found_crashkernel" = "$expected_crashkernel" ]; then
  ok "${expected_crashkernel} in /proc/cmdline"
else
  fail "/proc/cmdline has '${found_crashkernel:-no crashkernel=}', expected '${expected_crashkernel}'"
fi

crash_loaded=$(cat /sys/kernel/kexec_crash_loaded 2>/dev/null || echo missing)
if [ "$crash_loaded" = 1 ]; then
  ok "capture kernel loaded (/sys/kernel/kexec_crash_loaded = 1)"
else
  fail "capture kernel not loaded (/sys/kernel/kexec_crash_loaded = ${crash_loaded})"
fi

expected_sysctls=(@@SYSCTL_WORDS@@)
for pair in "${expected_sysctls[@]}"; do
  name=${pair%%=*}
  want=${pair#*=}
  have=$(sysctl -n "$name" 2>/dev/null || echo missing)
  if [ "$have" = "$want" ]; then
    ok "${name} = ${have}"
  else
    fail "${name} = ${have}, expected ${want}"
  fi
done

if [ -r /proc/sys/kernel/kexec_load_disabled ]; then
  kexec_disabled=$(cat /proc/sys/kernel/kexec_load_disabled)
  if [ "$kexec_disabled" = 0 ]; then
    ok "kernel.kexec_load_disabled = 0"
  else
    fail "kernel.kexec_load_disabled = ${kexec_disabled}: hardening blocks the capture kernel"
  fi
fi

enabled=$(systemctl is-enabled @@KDUMP_SERVICE@@ 2>/dev/null || true)
if [ "$enabled" = enabled ]; then
  ok "@@KDUMP_SERVICE@@ enabled"
else
  fail "@@KDUMP_SERVICE@@ is '${enabled:-unknown}', expected enabled"
fi
active=$(systemctl is-active @@KDUMP_SERVICE@@ 2>/dev/null || true)
if [ "$active" = active ]; then
  ok "@@KDUMP_SERVICE@@ active"
else
  fail "@@KDUMP_SERVICE@@ is '${active:-unknown}', expected active"
fi

if [ -d /var/crash ]; then
  free_mib=$(($(df -Pk /var/crash | awk 'NR == 2 { print $4 }') / 1024))
  if [ "$free_mib" -ge @@MIN_FREE_SPACE_MIB@@ ]; then
    ok "${free_mib} MiB free in /var/crash (need @@MIN_FREE_SPACE_MIB@@)"
  else
    fail "${free_mib} MiB free in /var/crash, need @@MIN_FREE_SPACE_MIB@@ for a dump"
  fi
else
  fail "/var/crash does not exist"
fi

if [ "$failures" -gt 0 ]; then
  echo "crashcart-validate: ${failures} check(s) failed: kdump is NOT armed" >&2
  exit 1
fi
echo "crashcart-validate: kdump armed"
