#!/bin/bash
# crashcart drill: the kdump capture initrd, built on the host side of image preparation (see
# crashcart/drill/kdumpinitrd.py), chrooted into the image by sandbox.sh.
#
#   kdump-initrd.sh KERNEL_RELEASE ROOT_FSTYPE MODULE...
#
# At the guest's first boot, `kdump-config load` (kdump-tools.service) records
# /etc/kdump/sysctl.conf as /var/lib/kdump/latest_sysctls-KVER and, when
# /var/lib/kdump/initrd.img-KVER is absent, runs kdump-tools' own kernel hook
# (/etc/kernel/postinst.d/kdump-tools KVER: mkinitramfs with the image's initramfs-tools
# settings, MODULES=dep). This script runs that same hook, in the image, for the same kernel,
# and records the same sysctl file, so that the guest finds the initrd and only loads it.
#
# What the chroot cannot see is the guest's running system, which two things of that build
# read: MODULES=dep (the root device's driver and the buses, from /sys and /proc/mounts) and
# the fsck hook (the root file system's type, from the device). For this one build, a
# configuration hook of initramfs-tools (sourced by mkinitramfs after the configuration; not
# copied into any initrd; removed afterwards) gives them what they find in the drill's guest:
# the modules MODULE... that MODULES=dep selects there and FSTYPE=ROOT_FSTYPE. And `lsmod`
# (the hook adds any loaded scsi_dh_* module) reports the guest's state, none, rather than
# the host's. The main initramfs is not touched (the hook changes only CONFDIR
# /var/lib/kdump/initramfs-tools).
#
# Nothing is built where the guest would build nothing: no kdump-tools, kdump-tools.service
# not enabled, USE_KDUMP not 1, or the initrd already there.
set -euo pipefail

kver=$1 fstype=$2
shift 2
modules="$*"

hook=/etc/kernel/postinst.d/kdump-tools
kdump_dir=/var/lib/kdump
conf_hook=/usr/share/initramfs-tools/conf-hooks.d/zz-crashcart-drill-kdump
lsmod_shim=/usr/local/sbin/lsmod

if [ ! -x "$hook" ] || [ ! -r /etc/default/kdump-tools ]; then
  echo "kdump-initrd: kdump-tools is not installed: nothing to build"
  exit 0
fi
USE_KDUMP=0
# shellcheck disable=SC1091
. /etc/default/kdump-tools
if [ "${USE_KDUMP:-0}" != 1 ]; then
  echo "kdump-initrd: USE_KDUMP=${USE_KDUMP:-} in /etc/default/kdump-tools: nothing to build"
  exit 0
fi
if ! systemctl is-enabled --quiet kdump-tools.service 2>/dev/null; then
  echo "kdump-initrd: kdump-tools.service is not enabled: nothing to build"
  exit 0
fi
if [ -e "${kdump_dir}/initrd.img-${kver}" ]; then
  echo "kdump-initrd: ${kdump_dir}/initrd.img-${kver} is already there"
  exit 0
fi

trap 'rm -f "$conf_hook" "$lsmod_shim"' EXIT
cat >"$conf_hook" <<CRASHCART_CONF_HOOK_EOF
# crashcart drill, host side of preparation (removed when the kdump initrd is built): what
# MODULES=dep and the fsck hook find in the drill's guest, for kdump-tools' initrd only.
if [ "\${CONFDIR:-}" = ${kdump_dir}/initramfs-tools ]; then
  FSTYPE=${fstype}
  dep_add_modules() { manual_add_modules ${fstype} ${modules}; }
fi
CRASHCART_CONF_HOOK_EOF
cat >"$lsmod_shim" <<'CRASHCART_LSMOD_EOF'
#!/bin/sh
# crashcart drill, host side of preparation: the guest's loaded modules are not the host's.
echo "Module                  Size  Used by"
CRASHCART_LSMOD_EOF
chmod 0755 "$lsmod_shim"

mkdir -p "$kdump_dir"
cp /etc/kdump/sysctl.conf "${kdump_dir}/latest_sysctls-${kver}"
"$hook" "$kver"
echo "kdump-initrd: built ${kdump_dir}/initrd.img-${kver} (modules: ${modules}; root ${fstype})"
