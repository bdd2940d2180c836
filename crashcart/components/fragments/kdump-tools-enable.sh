set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
@@FRAGMENT:common-functions@@

# 1. Packages (only when missing: a second run, or an image that has them, needs no network).
packages=(@@PACKAGES@@)
missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "crashcart: installing ${missing[*]}"
  printf '%s\n' 'kdump-tools kdump-tools/use_kdump boolean true' \
    'kexec-tools kexec-tools/load_kexec boolean true' | debconf-set-selections
  # The running-instance script's probe has just refreshed the package lists (it sets
  # crashcart_apt_lists_fresh=1); the image component refreshes them here.
  if [ "${crashcart_apt_lists_fresh:-0}" != 1 ]; then
    apt-get update -q
  fi
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "crashcart: ${packages[*]} already installed"
fi

# 2. kdump-tools: armed, dump level and compression, dumps in /var/crash.
set_kv /etc/default/kdump-tools USE_KDUMP 1
set_kv /etc/default/kdump-tools KDUMP_COREDIR '"/var/crash"'
set_kv /etc/default/kdump-tools MAKEDUMP_ARGS '"@@MAKEDUMP_ARGS@@"'
set_kv /etc/default/kdump-tools KDUMP_SYSCTL '"kernel.panic_on_oops=@@PANIC_ON_OOPS@@"'

# 3. The crashkernel reservation, replacing any other crashkernel= (kdump-tools' own
#    /etc/default/grub.d/kdump-tools.cfg adds one): this file sorts after it.
#    Written, and the boot configuration regenerated, only when something differs (a
#    rerun changes nothing; drift is repaired).
install -d -m 0755 /etc/default/grub.d
grub_snippet=/etc/default/grub.d/zz-crashcart-kdump.cfg
cat >"${grub_snippet}.new" <<'CRASHCART_GRUB_EOF'
# Written by crashcart: the capture kernel's memory reservation (replaces any other).
GRUB_CMDLINE_LINUX="$(printf '%s' "${GRUB_CMDLINE_LINUX:-}" | sed -E 's/(^|[[:space:]])crashkernel=[^[:space:]]*//g')"
GRUB_CMDLINE_LINUX_DEFAULT="$(printf '%s' "${GRUB_CMDLINE_LINUX_DEFAULT:-}" | sed -E 's/(^|[[:space:]])crashkernel=[^[:space:]]*//g') crashkernel=@@CRASHKERNEL@@"
CRASHCART_GRUB_EOF
grub_changed=0
if cmp -s "${grub_snippet}.new" "$grub_snippet"; then
  rm -f "${grub_snippet}.new"
else
  mv -f "${grub_snippet}.new" "$grub_snippet"
  grub_changed=1
fi
if [ "$grub_changed" = 1 ] || ! grep -qs -- 'crashkernel=@@CRASHKERNEL@@' /boot/grub/grub.cfg; then
  if command -v update-grub >/dev/null 2>&1; then
    update-grub
  else
    echo "crashcart: NOTE: update-grub not found: the boot configuration was not regenerated" \
      "(crashkernel=@@CRASHKERNEL@@ is in ${grub_snippet})" >&2
  fi
else
  echo "crashcart: boot configuration already has crashkernel=@@CRASHKERNEL@@"
fi

# 4. The capture-memory hook (fragments/capture-memory-*.sh).
@@CAPTURE_MEMORY_HOOK@@

# 5. Sysctls, undo hardening that blocks kexec, unmask (STIG masks kdump) and enable, when
#    not enabled: an enable runs the SysV script's update-rc.d again (the package's own
#    postinst has enabled it on a first install).
neutralize_kexec_load_disabled
write_crashcart_settings @@KDUMP_SERVICE@@
if [ "$(systemctl is-enabled @@KDUMP_SERVICE@@ 2>/dev/null || true)" != enabled ]; then
  systemctl unmask @@KDUMP_SERVICE@@
  systemctl enable @@KDUMP_SERVICE@@
fi
echo "crashcart: kdump-tools configured; armed after the reboot"
