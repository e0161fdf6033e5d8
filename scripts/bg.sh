#!/usr/bin/env bash
# bg.sh starts one lbserver instance in the background, the way docs/COMMANDS.md
# starts every instance by hand:
#
#   scripts/bg.sh ./bin/lbserver --host 127.0.0.1 --port 8080 --mode FORK
#
# - in a session of its own (setsid -f), so closing the terminal does not reach it;
# - its output appended to run/logs/lbserver-PORT.log, never emptied;
# - its pid in run/pids/lbserver-PORT.pid: the pid of lbserver itself (the shell
#   writes its own pid, then execs lbserver), which make stack-status and
#   make stack-down read;
# - nothing started, and a line saying so, when that pid file names a process
#   that still runs (exit 0: starting what runs already is not an error).
#
# PORT is the value of --port (or -p, --port=N) in the command. Run it from the
# repository root.
set -euo pipefail

port="" prev=""
for a in "$@"; do
  case "$prev" in --port | -p) port=$a ;; esac
  case "$a" in --port=*) port=${a#--port=} ;; esac
  prev=$a
done
if [ -z "$port" ]; then
  echo "bg.sh: no --port in: $*" >&2
  exit 2
fi

mkdir -p run/logs run/pids
pidfile="run/pids/lbserver-$port.pid"
if old=$(cat "$pidfile" 2>/dev/null) && [ -n "$old" ] && kill -0 "$old" 2>/dev/null; then
  echo "lbserver :$port already runs (pid $old)" >&2
  exit 0
fi
# shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
setsid -f sh -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$@" >>"run/logs/lbserver-$port.log" 2>&1 </dev/null
