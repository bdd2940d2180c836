set -euo pipefail
@@FRAGMENT:common-functions@@

# set_directive FILE KEY VALUE: a "KEY VALUE" line in /etc/kdump.conf syntax.
set_directive() {
  local file=$1 key=$2 value=$3
  if grep -Eq "^#?[[:space:]]*${key}[[:space:]]" "$file"; then
    sed -i -E "s|^#?[[:space:]]*${key}[[:space:]].*|${key} ${value}|" "$file"
  else
    printf '%s %s\n' "$key" "$value" >>"$file"
  fi
}

# strip_crashkernel FILE VAR: remove crashkernel= from VAR="..." in FILE, then append ours.
set_grub_default_crashkernel() {
  local file=$1
  [ -f "$file" ] || return 0
  sed -i -E '/^GRUB_CMDLINE_LINUX=/ s/[[:space:]]*crashkernel=[^[:space:]"]*//g' "$file"
  sed -i -E '/^GRUB_CMDLINE_LINUX=/ s/"$/ crashkernel=@@CRASHKERNEL@@"/' "$file"
}

# 1. Packages (kexec-tools brings kdumpctl and makedumpfile).
if ! rpm -q kexec-tools >/dev/null 2>&1; then
  dnf -y install kexec-tools
fi

# 2. The crashkernel reservation on every installed kernel, and for kernels installed later.
#    grubby runs only when some boot entry lacks exactly our crashkernel= (a rerun changes
#    nothing; drift is repaired).
if grubby --info=ALL | awk -v want='crashkernel=@@CRASHKERNEL@@' '
  /^args=/ {
    found = 0
    for (i = 1; i <= NF; i++) {
      word = $i
      sub(/^args=/, "", word)
      gsub(/"/, "", word)
      if (word ~ /^crashkernel=/) { found++; if (word != want) bad = 1 }
    }
    if (found != 1) bad = 1
    entries++
  }
  END { exit !(bad || entries == 0) }'; then
  grubby --update-kernel=ALL --remove-args=crashkernel
  grubby --update-kernel=ALL --args='crashkernel=@@CRASHKERNEL@@'
else
  echo "crashcart: every boot entry already has crashkernel=@@CRASHKERNEL@@"
fi
set_grub_default_crashkernel /etc/default/grub
if [ -f /etc/kernel/cmdline ]; then
  sed -i -E 's/[[:space:]]*crashkernel=[^[:space:]]*//g; s/$/ crashkernel=@@CRASHKERNEL@@/' /etc/kernel/cmdline
fi

# 3. /etc/kdump.conf: dumps in /var/crash, our dump level and compression.
touch /etc/kdump.conf
set_directive /etc/kdump.conf path /var/crash
set_directive /etc/kdump.conf core_collector 'makedumpfile @@MAKEDUMP_ARGS@@ --message-level 7'
@@KDUMPCTL_EXTRA@@

# 4. The capture-memory hook (fragments/capture-memory-*.sh).
@@CAPTURE_MEMORY_HOOK@@

# 5. Sysctls, undo hardening that blocks kexec, unmask (STIG masks kdump) and enable.
neutralize_kexec_load_disabled
write_crashcart_settings @@KDUMP_SERVICE@@
systemctl unmask @@KDUMP_SERVICE@@
systemctl enable @@KDUMP_SERVICE@@
echo "crashcart: kdump configured; armed after the reboot"
