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

# claim_run_dir DIR MARKER DEFAULT: make sure DIR is this script's own run
# folder before anything in it is written or deleted: it carries MARKER (a
# file the script wrote when it made DIR), or it is missing or empty (it is
# made and marked now), or it is DEFAULT (the repository's own run folder).
# Any other folder (LAB_RUN_DIR=/etc, a home) is refused, untouched.
claim_run_dir() {
  local dir=$1 marker=$1/$2 default=$3
  [ -e "$marker" ] && return 0
  if [ -e "$dir" ] && [ ! -d "$dir" ]; then
    die "$dir is not a folder; pick another run folder"
  fi
  if [ "$dir" != "$default" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
    die "$dir is not a run folder of this script (it holds files and no $2): nothing in it is written or deleted; pick a new or empty folder"
  fi
  mkdir -p "$dir"
  : >"$marker"
}

# proc_stat PID N: field N (3 or more) of /proc/PID/stat, counted after the
# command name, which may hold spaces and parentheses.
proc_stat() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  awk -v n="$(($2 - 2))" '{ print $n }' <<<"$s"
}

# proc_alive PID: PID is a live process (zombies do not count).
proc_alive() {
  local st
  st=$(proc_stat "$1" 3) && [ -n "$st" ] && [ "$st" != Z ]
}

# record_pid PID FILE EXE: write PID to FILE and, to FILE.id, the process's
# start time (field 22 of /proc/PID/stat: it survives exec, and a pid used
# again gets another) and the executable it runs (EXE, resolved), so that
# recorded_pid can tell it from a stranger later.
record_pid() {
  local start
  start=$(proc_stat "$1" 22) || start=gone
  printf '%s %s\n' "$start" "$(readlink -f "$3")" >"$2.id"
  echo "$1" >"$2"
}

# recorded_pid FILE EXE: the pid in FILE, if that process is still the one
# record_pid wrote down in FILE.id (same start time, same executable, or
# the same file since replaced on disk); fails otherwise. A pid file
# written by hand (docs/COMMANDS.md), with no FILE.id, is trusted only if
# the process runs EXE.
recorded_pid() {
  local f=$1 pid exe want_start='' want_exe
  want_exe=$(readlink -f "$2")
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  if [ -s "$f.id" ]; then
    read -r want_start want_exe <"$f.id" || return 1
  fi
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "$exe" = "$want_exe" ] || [ "$exe" = "$want_exe (deleted)" ] || return 1
  if [ -n "$want_start" ]; then
    [ "$(proc_stat "$pid" 22)" = "$want_start" ] || return 1
  fi
  echo "$pid"
}

# group_gone PGID: no live process is left in the group (zombies do not
# count: they wait for a parent that may not reap them, e.g. in a container).
group_gone() {
  ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit found }'
}

# stopped PID LEADER: PID is gone and, when it led its process group
# (LEADER=1), so is every process of that group.
stopped() {
  ! proc_alive "$1" && { [ "$2" = 0 ] || group_gone "$1"; }
}

# stop_group PID WHAT SIG SECONDS: send SIG to PID, wait for it and, when it
# leads a process group, for the whole group to be gone; SIGKILL (the group,
# or PID alone) after SECONDS.
stop_group() {
  local pid=$1 what=$2 sig=$3 secs=$4 i leader=0
  [ "$(proc_stat "$pid" 5)" = "$pid" ] && leader=1 # field 5: the process group
  kill -s "$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    stopped "$pid" "$leader" && {
      say "stopped $what (pid $pid)"
      return 0
    }
    sleep 0.1
  done
  if [ "$leader" = 1 ]; then
    kill -s KILL -- "-$pid" 2>/dev/null || true
    wait_until 5 "the end of process group $pid" group_gone "$pid"
  else
    kill -s KILL "$pid" 2>/dev/null || true
    wait_until 5 "the end of process $pid" stopped "$pid" 0
  fi
  say "killed $what (pid $pid): it did not stop within ${secs}s"
}

# haproxy_master PIDFILE CONF: the pid in PIDFILE, if that process is an
# haproxy started with -f CONF (a stranger's command line may merely
# contain the words); fails otherwise.
haproxy_master() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(head -n 1 "$1")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  case $(readlink "/proc/$pid/exe" 2>/dev/null) in
    */haproxy | */haproxy" (deleted)") ;;
    *) return 1 ;;
  esac
  case $({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) in
    *haproxy*" -f $2 "*) echo "$pid" ;;
    *) return 1 ;;
  esac
}
