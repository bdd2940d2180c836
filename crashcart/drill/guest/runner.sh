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
#   awaiting                              (action "await") ready to be saved: the host saves
#                                         the VM here; a restored copy reads its command next
#   restored <kernel release>             a restored copy got its command from the host
#   agent <exit status>                   (restored) the crashcart agent's run at the "boot"
set -uo pipefail
# (The overrides exist for tests/unit/test_drill_runner.py, which runs this script on the host.)
LIB=${CRASHCART_DRILL_LIB:-/usr/local/lib/crashcart-drill}
STATE=${CRASHCART_DRILL_STATE:-/var/lib/crashcart-drill}
CHANNEL=${CRASHCART_DRILL_CHANNEL:-/dev/ttyS1}
[ -w "$CHANNEL" ] || CHANNEL=/dev/console
# Commands from the host (third serial port), read only by a guest saved at "await".
COMMANDS=${CRASHCART_DRILL_COMMANDS:-/dev/ttyS2}
AGENT_ENV=${CRASHCART_DRILL_AGENT_ENV:-/etc/default/crashcart-agent}
AGENT_ENABLED=${CRASHCART_DRILL_AGENT_ENABLED:-/etc/crashcart-drill-agent-enabled}

emit() { printf 'CRASHCART-DRILL %s\n' "$*" >>"$CHANNEL"; }

emit boot "$(uname -r)"
[ -c "$CHANNEL" ] && stty -F "$CHANNEL" raw -echo 115200 2>/dev/null
install -d -m 0700 "$STATE/logs"
touch "$STATE/queue"
# A heartbeat while the guest is alive: the host's "status check". It stops when the
# kernel panics or every CPU hangs (not when this runner exits: SIGHUP is ignored, in case a
# serial port this runner opened became its controlling terminal).
if [ -z "${CRASHCART_DRILL_NO_HEARTBEAT:-}" ]; then
  ( trap '' HUP; n=0; while :; do n=$((n + 1)); emit heartbeat "$n"; sleep 1; done ) &
fi

run_queue() {
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
}

# restored EPOCH ACTION AGENT_SETTINGS: a copy of the guest saved at "await" goes on as a new
# instance: the clock set to the host's (it stopped when the guest was saved), the crashcart
# agent given this run's settings (base64 of lines for its environment file, or "-") and run
# as at boot, the queued validate steps run again (the host re-queues them in the saved
# guest's $STATE/queue.restore), then the action.
restored() {
  local epoch=$1 settings=${3:--}
  action=${2:-idle}
  date -u -s "@$epoch" >/dev/null 2>&1 || true
  emit restored "$(uname -r)"
  if [ "$settings" != - ]; then
    printf '%s' "$settings" | base64 -d >>"$AGENT_ENV"
    touch "$AGENT_ENABLED"
    sync
    systemctl start crashcart-agent.service
    emit agent "$?"
  fi
  cp "$STATE/queue.restore" "$STATE/queue" 2>/dev/null || : >"$STATE/queue"
  printf '%s\n' "$action" >"$STATE/action"
  run_queue
  sync
  emit ready
}

# The host saves the VM while this waits for a line on the command port: only a restored
# copy of the guest ever reads one ("go EPOCH ACTION AGENT_SETTINGS").
await_command() {
  local line verb
  [ -c "$COMMANDS" ] && stty -F "$COMMANDS" raw -echo 115200 2>/dev/null
  exec 3<"$COMMANDS"
  sync
  emit awaiting
  while IFS= read -r line <&3; do
    read -r verb line <<<"$line"
    case "$verb" in
      go)
        # shellcheck disable=SC2086  # the command's words are the arguments
        restored $line
        return 0
        ;;
      *) emit "unknown-command $verb" ;;
    esac
  done
  emit failed await "command-port-closed"
  exit 1
}

run_queue
sync
emit ready
action=$(cat "$STATE/action" 2>/dev/null || echo idle)
if [ "$action" = await ]; then
  await_command
fi
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
