#!/usr/bin/env bash
# forever.sh: lbserver's apps under forever, for `make forever-a`, `make
# forever-b` and `make forever-down` (mk/pm.mk). lbserver's apps are the uids
# of deploy/forever/*.json; other forever processes are left alone.
#
#   scripts/forever.sh start FILE   start the apps of FILE (a deploy/forever
#                                   JSON file) and return once `forever list`
#                                   shows each of them running
#   scripts/forever.sh down         stop lbserver's apps; when it returns, none
#                                   of their monitors or processes is left
#
# Why the waits: `forever start` returns as soon as it has spawned one
# detached monitor per app. A monitor shows in `forever list`, and a
# `forever stop UID` finds it, only once it has started its process and
# opened its socket in FOREVER_ROOT/sock. A stop in that window says it
# cannot find the uid, and the monitor and its lbserver run on. So `start`
# waits until every app is listed, and `down` first waits until every
# monitor of this forever home is listed, then stops by uid, then waits
# until the stopped monitors and their processes have exited.
#
# Environment:
#   FOREVER          the forever CLI (default tools/node_modules/.bin/forever)
#   FOREVER_ROOT     forever's home (default ~/.forever, as forever's own)
#   FOREVER_TIMEOUT  seconds each wait and each forever command may take
#                    (default 30): nothing here can hang
set -euo pipefail

cd "$(dirname "$0")/.."
FOREVER=${FOREVER:-tools/node_modules/.bin/forever}
TIMEOUT=${FOREVER_TIMEOUT:-30}
HOME_DIR=${FOREVER_ROOT:-${HOME:-/root}/.forever}

say() { printf 'forever: %s\n' "$*"; }
die() {
  printf 'forever: %s\n' "$*" >&2
  exit 1
}
# shellcheck source=scripts/procs.sh
source scripts/procs.sh

# uids_of FILE...: the uids of deploy/forever JSON files, one a line.
uids_of() {
  grep -ho '"uid": *"[^"]*"' "$@" | sed 's/.*"\([^"]*\)"$/\1/' | sort -u
}

# forever_cmd ARGS...: the forever CLI, bounded by TIMEOUT.
forever_cmd() {
  local rc=0
  timeout "$TIMEOUT" "$FOREVER" "$@" || rc=$?
  [ "$rc" != 124 ] || die "'forever $*' did not return within ${TIMEOUT}s; see: forever list"
  return "$rc"
}

# rows: what `forever list` shows, one process a line:
# UID MONITOR_PID PID UPTIME (UPTIME is STOPPED once the process has exited).
rows() {
  local out
  out=$(forever_cmd list --no-colors 2>/dev/null) || die "'forever list' failed"
  # --no-colors leaves the colours of the level ("data:") and of STOPPED.
  sed 's/\x1b\[[0-9;]*m//g' <<<"$out" |
    awk '$1 == "data:" && $2 ~ /^\[[0-9]+\]$/ { print $3, $(NF - 3), $(NF - 2), $NF }'
}

# monitors: the pids of the forever monitors (node .../forever/bin/monitor)
# whose forever home is this one, listed or still starting.
monitors() {
  local pid env root
  for pid in $(pgrep -f '/forever/bin/monitor( |$)' || true); do
    env=$({ tr '\0' '\n' </proc/"$pid"/environ; } 2>/dev/null) || continue
    root=$(sed -n 's/^FOREVER_ROOT=//p' <<<"$env")
    [ -n "$root" ] || root=$(sed -n 's/^HOME=//p' <<<"$env")/.forever
    [ "$root" = "$HOME_DIR" ] && echo "$pid"
  done
  return 0
}

# all_listed: every monitor of this forever home shows in `forever list`.
all_listed() {
  local listed pid
  listed=" $(rows | awk '{ print $2 }' | tr '\n' ' ') "
  for pid in $(monitors); do
    case $listed in *" $pid "*) ;; *) return 1 ;; esac
  done
}

# gone PID...: none of the processes runs (a zombie waits for its parent to
# reap it and counts as gone).
gone() {
  local pid st
  for pid in "$@"; do
    st=$(ps -o stat= -p "$pid" 2>/dev/null) || continue
    case $st in Z*) ;; *) return 1 ;; esac
  done
}

# running FILE: `forever list` shows every app of FILE with a live process.
# An app whose process exited at once (STOPPED: forever does not restart a
# process that dies within its minUptime) is an error, not something to wait for.
running() {
  local file=$1 list uid rows_of live stopped pid up
  list=$(rows)
  for uid in $(uids_of "$file"); do
    # Every row of the uid, not only the last: a monitor that is going away
    # (or the socket it left) may still be listed beside the new one.
    rows_of=$(awk -v u="$uid" '$1 == u { print $3, $4 }' <<<"$list")
    [ -n "$rows_of" ] || return 1
    live='' stopped=''
    while read -r pid up; do
      if [ "$up" = STOPPED ]; then
        stopped=1
      elif ! gone "$pid"; then
        live=1
      fi
    done <<<"$rows_of"
    [ -n "$live" ] && continue
    if [ -n "$stopped" ]; then
      tail -n 5 "$HOME_DIR/$uid.log" >&2 2>/dev/null || true
      die "$uid exited as it started (a port taken?); its log: $HOME_DIR/$uid.log"
    fi
    return 1
  done
  return 0
}

cmd_start() {
  local file=${1:-} uid
  [ -f "$file" ] || die "usage: forever.sh start FILE (a deploy/forever/*.json file)"
  forever_cmd start "$file"
  wait_until "$TIMEOUT" "forever listing every app of $file running" running "$file"
  rows | while read -r uid _ pid _; do
    uids_of "$file" | grep -qx "$uid" && say "$uid runs (pid $pid)"
  done
  return 0
}

cmd_down() {
  local ours list uid rc pids=()
  ours=$(uids_of deploy/forever/*.json)
  wait_until "$TIMEOUT" "every forever monitor of $HOME_DIR showing in forever list" all_listed
  list=$(rows)
  for uid in $(awk '{ print $1 }' <<<"$list" | sort -u); do
    grep -qx "$uid" <<<"$ours" || continue
    # The monitors and processes of uid (a uid may name several).
    # shellcheck disable=SC2207
    pids+=($(awk -v u="$uid" '$1 == u { print $2; if ($4 != "STOPPED") print $3 }' <<<"$list"))
    # Exit 1: the uid is gone already, or its process had exited (the
    # monitor exits all the same); what is left is checked below.
    rc=0
    forever_cmd stop "$uid" >/dev/null 2>&1 || rc=$?
    if [ "$rc" = 0 ]; then
      say "stopped $uid"
    elif awk -v u="$uid" '$1 == u && $4 == "STOPPED" { f = 1 } END { exit !f }' <<<"$list"; then
      say "stopped $uid (its process had exited already)"
    fi
  done
  [ "${#pids[@]}" = 0 ] || wait_until "$TIMEOUT" "the exit of lbserver's forever monitors and processes (${pids[*]})" gone "${pids[@]}"
  return 0
}

case ${1:-} in
  start) cmd_start "${2:-}" ;;
  down) cmd_down ;;
  *) die "usage: forever.sh start FILE | down" ;;
esac
