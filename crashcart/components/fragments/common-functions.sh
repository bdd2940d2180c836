# set_kv FILE KEY VALUE: make FILE contain KEY=VALUE, replacing any (commented-out) KEY= line.
set_kv() {
  local file=$1 key=$2 value=$3
  touch "$file"
  if grep -Eq "^#?[[:space:]]*${key}=" "$file"; then
    sed -i --follow-symlinks -E "s|^#?[[:space:]]*${key}=.*|${key}=${value}|" "$file"
  else
    printf '%s=%s\n' "$key" "$value" >>"$file"
  fi
}

# neutralize_kexec_load_disabled: hardening (the RHEL STIG) sets kernel.kexec_load_disabled=1,
# which forbids loading the capture kernel and cannot be undone until the next boot. Comment
# out every such line so that it is 0 after the reboot (documented STIG exception).
neutralize_kexec_load_disabled() {
  local conf
  for conf in /etc/sysctl.conf /etc/sysctl.d/*.conf /run/sysctl.d/*.conf /usr/lib/sysctl.d/*.conf; do
    [ -f "$conf" ] || continue
    if grep -Eq '^[[:space:]]*kernel\.kexec_load_disabled[[:space:]]*=[[:space:]]*1' "$conf"; then
      sed -i --follow-symlinks -E \
        's/^([[:space:]]*kernel\.kexec_load_disabled[[:space:]]*=.*)$/# crashcart: kdump needs kexec (documented STIG exception): \1/' \
        "$conf"
      echo "crashcart: commented out kernel.kexec_load_disabled=1 in ${conf}"
    fi
  done
}

# write_crashcart_settings SERVICE: the panic sysctls (applied at the next boot: never at
# build time, so that a chroot cannot change the host's sysctls) and a record of the
# settings for the crashcart agent and the local drill.
write_crashcart_settings() {
  local service=$1
  install -d -m 0755 /etc/crashcart /var/crash
  cat >/etc/sysctl.d/zz-crashcart-kdump.conf <<'CRASHCART_SYSCTL_EOF'
# Written by crashcart: panic on an unknown NMI (SendDiagnosticInterrupt), reboot if no
# capture kernel is armed. See docs/pipeline.md for the behaviour changes.
@@SYSCTL_LINES@@
CRASHCART_SYSCTL_EOF
  cat >/etc/crashcart/kdump.env <<CRASHCART_ENV_EOF
# Written by crashcart at image build time: what this image arms (read by the agent).
CRASHCART_CRASHKERNEL='@@CRASHKERNEL@@'
CRASHCART_MAKEDUMP_ARGS='@@MAKEDUMP_ARGS@@'
CRASHCART_KDUMP_SERVICE='${service}'
CRASHCART_DUMP_DIR='/var/crash'
CRASHCART_SYSCTLS='@@SYSCTL_WORDS@@'
CRASHCART_MIN_FREE_SPACE_MIB='@@MIN_FREE_SPACE_MIB@@'
CRASHCART_ARCHITECTURE='@@UNAME_MACHINE@@'
CRASHCART_ENV_EOF
  chmod 0644 /etc/sysctl.d/zz-crashcart-kdump.conf /etc/crashcart/kdump.env
}
