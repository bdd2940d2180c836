#!/bin/bash
# crashcart drill: the in-guest runner for Image Builder component steps (see
# crashcart/drill/component.py for what it implements and why everything runs here).
#
# Started at every boot by crashcart-drill.service. It works through the step queue the host
# wrote (/var/lib/crashcart-drill/queue, one step key per line), reporting every event on the
# drill channel (the second serial port, /dev/ttyS1) as lines "CRASHCART-DRILL <event> ...":
#   boot <kernel release>                 this runner started
#   step-start <key>  /  step-end <key> <exit status>
#   | <line>                              a line of a step's output
#   reboot <key> <why>                    a Reboot step or exit 194: the guest reboots now
#   failed <key> <exit status>            a step failed: the queue stops here
#   ready                                 the queue is empty: the guest is ready
#   action <name>                         the drill action of this run (idle, hang)
#   hanging                               about to load the hang module
#   heartbeat <n>                         every second while the guest is alive
set -uo pipefail
# (The overrides exist for tests/unit/test_drill_runner.py, which runs this script on the host.)
LIB=${CRASHCART_DRILL_LIB:-/usr/local/lib/crashcart-drill}
STATE=${CRASHCART_DRILL_STATE:-/var/lib/crashcart-drill}
CHANNEL=${CRASHCART_DRILL_CHANNEL:-/dev/ttyS1}
[ -w "$CHANNEL" ] || CHANNEL=/dev/console

emit() { printf 'CRASHCART-DRILL %s\n' "$*" >>"$CHANNEL"; }

emit boot "$(uname -r)"
[ -c "$CHANNEL" ] && stty -F "$CHANNEL" raw -echo 115200 2>/dev/null
install -d -m 0700 "$STATE/logs"
touch "$STATE/queue"
# A heartbeat while the guest is alive: the host's "status check". It stops when the
# kernel panics or every CPU hangs.
if [ -z "${CRASHCART_DRILL_NO_HEARTBEAT:-}" ]; then
  ( n=0; while :; do n=$((n + 1)); emit heartbeat "$n"; sleep 1; done ) &
fi

while key=$(head -n 1 "$STATE/queue") && [ -n "$key" ]; do
  if [ -f "$LIB/steps/$key.reboot" ]; then
    delay=$(cat "$LIB/steps/$key.reboot")
    sed -i 1d "$STATE/queue"
    sync
    emit reboot "$key" "Reboot action"
    sleep "$delay"
    systemctl reboot
    exit 0
  fi
  script="$LIB/steps/$key.sh"
  if [ ! -f "$script" ]; then
    emit failed "$key" "no-such-step"
    exit 1
  fi
  timeout_seconds=0
  [ -f "$LIB/steps/$key.timeout" ] && timeout_seconds=$(cat "$LIB/steps/$key.timeout")
  emit step-start "$key"
  (cd /tmp && timeout --foreground "${timeout_seconds}" bash "$script") </dev/null 2>&1 \
    | tee -a "$STATE/logs/$key.log" | while IFS= read -r line; do emit "| $line"; done
  status=${PIPESTATUS[0]}
  emit step-end "$key" "$status"
  if [ "$status" -eq 194 ]; then
    sync
    emit reboot "$key" "exit-194"
    systemctl reboot
    exit 0
  fi
  if [ "$status" -ne 0 ]; then
    emit failed "$key" "$status"
    exit 1
  fi
  sed -i 1d "$STATE/queue"
  sync
done

sync
emit ready
action=$(cat "$STATE/action" 2>/dev/null || echo idle)
emit action "$action"
case "$action" in
  hang)
    # Hang the CPUs with interrupts disabled (crashcart_hang.ko, built by the drill against
    # this kernel's headers). The heartbeat stops when the CPUs stop: the host sees the
    # "instance" become unresponsive, as a status check would.
    sleep 3
    sync
    emit hanging
    insmod "$STATE/crashcart_hang.ko" all_cpus=1
    ;;
  *)
    ;;
esac
exit 0
