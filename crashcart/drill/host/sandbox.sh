#!/bin/bash
# crashcart drill: the host side of image preparation (see crashcart/drill/hostphase.py).
#
# Run as root inside fresh namespaces (the caller starts it with
#   unshare --mount --pid --fork --net --uts --ipc --kill-child sandbox.sh MODE ...),
# so that every mount below disappears with the namespace, the commands see no network and
# no process of the host, and nothing is left behind when it ends or is killed.
#
#   sandbox.sh chroot LOWER UPPER WORK MERGED COMMAND...
#       The image's root file system as an overlay (LOWER: the cached base, never written;
#       UPPER: this preparation's changes), then COMMAND chrooted into it with:
#       its own /proc, whose /proc/sys is read-only (no sysctl of the host can change); no
#       /sys; a /dev of null, zero, full, random, urandom; empty /run and /tmp; and without
#       the capabilities to load a kernel (kexec) or a module, reboot, set the clock,
#       administer the system (mount, hostname, swap) or the network, or use raw I/O. A
#       step that needs a running kernel fails here; it does not reach the host.
#   sandbox.sh view LOWER UPPER WORK MERGED COMMAND...
#       The same overlay, then COMMAND on the host (e.g. mkfs.ext4 -d MERGED).
set -euo pipefail

mode=$1 lower=$2 upper=$3 work=$4 merged=$5
shift 5

mount -t overlay crashcart-drill -o "lowerdir=${lower},upperdir=${upper},workdir=${work}" "$merged"
if [ "$mode" = view ]; then
  exec "$@"
fi
if [ "$mode" != chroot ]; then
  echo "sandbox.sh: unknown mode ${mode} (chroot or view)" >&2
  exit 2
fi

mount -t proc -o nosuid,nodev,noexec proc "${merged}/proc"
mount --bind "${merged}/proc/sys" "${merged}/proc/sys"
mount -o remount,bind,ro "${merged}/proc/sys"
mount -t tmpfs -o mode=0755,nosuid,size=16m crashcart-dev "${merged}/dev"
for node in null zero full random urandom; do
  : >"${merged}/dev/${node}"
  mount --bind "/dev/${node}" "${merged}/dev/${node}"
done
ln -s /proc/self/fd "${merged}/dev/fd"
ln -s /proc/self/fd/0 "${merged}/dev/stdin"
ln -s /proc/self/fd/1 "${merged}/dev/stdout"
ln -s /proc/self/fd/2 "${merged}/dev/stderr"
mkdir -p "${merged}/dev/shm" "${merged}/dev/pts"
mount -t tmpfs -o mode=0755,nosuid,nodev crashcart-run "${merged}/run"
mount -t tmpfs -o mode=1777,nosuid,nodev crashcart-tmp "${merged}/tmp"

exec setpriv \
  --bounding-set=-sys_boot,-sys_module,-sys_time,-sys_admin,-net_admin,-sys_rawio,-sys_nice,-sys_resource,-sys_tty_config,-syslog,-wake_alarm,-block_suspend,-mac_admin,-audit_control \
  --inh-caps=-all \
  chroot "$merged" /usr/bin/env -i \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  "$@"
