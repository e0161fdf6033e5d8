# shellcheck shell=bash
# Process helpers shared by scripts/stack.sh and scripts/lab.sh. The caller
# defines say and die (each prefixes its own name).

# wait_until SECONDS WHAT CMD...: poll CMD every 0.1s.
wait_until() {
  local secs=$1 what=$2 i
  shift 2
  for ((i = 0; i < secs * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  die "$what did not happen within ${secs}s"
}

# group_gone PGID: no live process is left in the group (zombies do not
# count: they wait for a parent that may not reap them, e.g. in a container).
group_gone() {
  ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit found }'
}

# stop_group PID WHAT SIG SECONDS: send SIG to PID, wait for its whole process
# group to be gone, SIGKILL the group after SECONDS.
stop_group() {
  local pid=$1 what=$2 sig=$3 secs=$4 i
  kill -s "$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    group_gone "$pid" && {
      say "stopped $what (pid $pid)"
      return 0
    }
    sleep 0.1
  done
  kill -s KILL -- "-$pid" 2>/dev/null || true
  wait_until 5 "the end of process group $pid" group_gone "$pid"
  say "killed $what (pid $pid): it did not stop within ${secs}s"
}
