# kdump-tools has no hook of its own: a systemd drop-in on the unit the capture kernel boots
# into (kdump-tools-dump.service) starts the sampler before the dump; its last write comes
# when the shutdown after the dump stops it.
install -d -m 0755 /etc/systemd/system/kdump-tools-dump.service.d
cat >/etc/systemd/system/kdump-tools-dump.service.d/crashcart-capture-memory.conf <<'CRASHCART_DROPIN_EOF'
# Written by crashcart: record the capture kernel's memory while the dump is saved.
[Service]
ExecStartPre=-/usr/local/libexec/crashcart/capture-memory start /var/crash
CRASHCART_DROPIN_EOF
