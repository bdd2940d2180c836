# The capture-memory hook: what the capture kernel had and used while it saved the dump,
# written as capture-memory.txt into the dump's folder (the crashcart agent ships the figures
# in the dump's metadata.json; the canary and local drills compare them with the reservation).
install -d -m 0755 /usr/local/libexec/crashcart
cat >/usr/local/libexec/crashcart/capture-memory.new <<'CRASHCART_CAPTURE_MEMORY_EOF'
#!/bin/sh
# crashcart capture-memory (installed by crashcart's crash-dump component).
# Runs in the kdump capture kernel:
#   capture-memory start <dump root>...  before the dump is saved: records MemTotal and
#       MemAvailable / MemFree, then samples them (and makedumpfile's VmHWM) in the
#       background, rewriting capture-memory.txt in the newest dump folder under a root
#       after every sample and a last time (final=1) when the dump has its final name or
#       the sampler is stopped (SIGTERM: kdump's post hook, or the shutdown after the dump).
#   capture-memory finish  after the dump: stops the sampler and waits for its last write.
# Installed as /etc/kdump/{pre,post}.d/50-crashcart-capture-memory, it takes its mode from
# its folder. It never fails the dump: it always exits 0.
state=/run/crashcart-capture-memory
interval=0.2
mode=${1:-}
case "$0" in
  */pre.d/*) mode=start; set -- start /sysroot/var/crash /kdumproot/var/crash /var/crash ;;
  */post.d/*) mode=finish ;;
esac

meminfo() {
  while read -r key value _; do
    if [ "$key" = "$1:" ]; then
      echo "$value"
      return
    fi
  done </proc/meminfo
  echo 0
}

makedumpfile_hwm() {
  best=0
  for dir in /proc/[0-9]*; do
    comm=
    read -r comm 2>/dev/null <"$dir/comm" || continue
    [ "$comm" = makedumpfile ] || continue
    while read -r key value _; do
      if [ "$key" = "VmHWM:" ] && [ "$value" -gt "$best" ]; then
        best=$value
      fi
    done 2>/dev/null <"$dir/status"
  done
  echo "$best"
}

newest_folder() {
  found=
  for root in $roots; do
    for folder in "$root"/*/; do
      # shellcheck disable=SC3013 # -nt: dash, bash and busybox sh all have it
      [ -d "$folder" ] && [ "$folder" -nt "$state/start" ] && found=${folder%/}
    done
  done
  echo "$found"
}

# The dump is complete once its final name exists (kdump-tools: dump.<stamp>; kdump: vmcore,
# both renamed from *-incomplete at the end).
dump_saved() {
  for saved in "$folder"/dump.* "$folder"/vmcore; do
    [ -f "$saved" ] && return 0
  done
  return 1
}

write_out() {
  folder=$(newest_folder)
  [ -n "$folder" ] || return 0
  {
    echo "# crashcart capture-kernel memory while the dump was saved (kB)"
    echo "kernel_release=$(uname -r 2>/dev/null)"
    echo "mem_total_kb=$total"
    echo "mem_available_start_kb=$available_start"
    echo "mem_free_start_kb=$free_start"
    echo "mem_available_min_kb=$available_min"
    echo "mem_free_min_kb=$free_min"
    echo "makedumpfile_vmhwm_kb=$hwm"
    echo "samples=$samples"
    echo "sample_interval_s=$interval"
    echo "final=$1"
  } >"$folder/.capture-memory.txt.tmp" 2>/dev/null &&
    mv -f "$folder/.capture-memory.txt.tmp" "$folder/capture-memory.txt" 2>/dev/null
  if [ "$1" = 1 ]; then
    sync 2>/dev/null
  fi
  return 0
}

sample() {
  total=$(meminfo MemTotal)
  available_start=$(meminfo MemAvailable)
  free_start=$(meminfo MemFree)
  available_min=$available_start
  free_min=$free_start
  hwm=0
  samples=0
  stopping=0
  trap 'stopping=1' TERM INT
  while [ "$stopping" = 0 ]; do
    value=$(meminfo MemAvailable)
    [ "$value" -lt "$available_min" ] && available_min=$value
    value=$(meminfo MemFree)
    [ "$value" -lt "$free_min" ] && free_min=$value
    value=$(makedumpfile_hwm)
    [ "$value" -gt "$hwm" ] && hwm=$value
    samples=$((samples + 1))
    write_out 0
    if [ -n "$folder" ] && dump_saved; then
      break
    fi
    [ "$stopping" = 0 ] && sleep "$interval"
  done
  write_out 1
  rm -f "$state/pid"
}

case "$mode" in
  start)
    shift
    roots=$*
    mkdir -p "$state" 2>/dev/null || exit 0
    : >"$state/start"
    sample </dev/null >/dev/null 2>&1 &
    echo $! >"$state/pid"
    ;;
  finish)
    pid=$(cat "$state/pid" 2>/dev/null)
    if [ -n "$pid" ]; then
      kill -TERM "$pid" 2>/dev/null
      waited=0
      while [ -e "$state/pid" ] && [ "$waited" -lt 50 ]; do
        sleep 0.1
        waited=$((waited + 1))
      done
    fi
    ;;
esac
exit 0
CRASHCART_CAPTURE_MEMORY_EOF
chmod 0755 /usr/local/libexec/crashcart/capture-memory.new
mv -f /usr/local/libexec/crashcart/capture-memory.new /usr/local/libexec/crashcart/capture-memory
