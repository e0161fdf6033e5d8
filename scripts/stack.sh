#!/usr/bin/env bash
# stack.sh: lbserver behind nginx (or HAProxy: BALANCER=haproxy) on this
# machine, in topology A or B, with one command. `make stack-a`, `make stack-b`, `make stack-status`,
# `make stack-down` and `make demo` call it (mk/stack.mk).
#
#   scripts/stack.sh up a|b     start what the topology needs (idempotent:
#                               what already runs is kept, what belongs only
#                               to the other topology is stopped)
#   scripts/stack.sh status     what runs: pids, workers, URLs
#   scripts/stack.sh down       stop nginx and every instance; nothing is left
#   scripts/stack.sh demo [N]   N requests (default 400) to /api/randoms?cant=1000
#                               through nginx; prints how many each port answered
#
# Topology A: nginx :80; /api/randoms -> CLUSTER on 8081; the rest -> FORK on 8080.
# Topology B: nginx :80; /api/randoms -> round robin over FORK 8082..8085; the rest -> 8080.
#
# Environment:
#   LBSERVER_BIN  the binary (default bin/lbserver; make builds it first)
#   RUN_DIR       logs, pid files and the nginx prefix (default run/, git-ignored)
#   NGINX         the nginx executable (default: nginx on PATH, else /usr/sbin/nginx)
#   NGINX_PORT    nginx's port for `up` (default 80, as shipped; below 1024
#                 needs root). Any other value copies the shipped config with
#                 only its `listen` line changed. status and demo use the port
#                 the stack was started with.
#   BALANCER      nginx (default) or haproxy: what `up` runs in front, with
#                 deploy/nginx/topology-X.conf or deploy/haproxy/topology-X.cfg.
#                 `up` with the other balancer than the running one stops
#                 that one first (port 80 is refused for a moment).
#   BALANCER_PORT the balancer's port, for either one (NGINX_PORT's twin).
#   HAPROXY       the haproxy executable (default: haproxy on PATH, else
#                 /usr/sbin/haproxy)
#
# Files under RUN_DIR: logs/lbserver-PORT.log, pids/lbserver-PORT.pid (each
# instance runs in a session of its own: setsid, pid = process group id)
# and pids/lbserver-PORT.pid.id (its start time and executable: a pid file
# is trusted only while they match), .lbserver-stack-run (the mark of a run
# folder the script made: another RUN_DIR that holds files is refused),
# nginx/ (nginx's -p prefix: conf/nginx.conf, logs/nginx.pid, logs/*.log),
# topology (a or b), nginx-port (the balancer's port), balancer; with
# BALANCER=haproxy: haproxy/haproxy.cfg, haproxy/haproxy.pid (the master of
# `haproxy -W`, in its own session) and logs/haproxy.log.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)

abspath() {
  case $1 in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$PWD/$1" ;;
  esac
}

RUN_DIR=$(abspath "${RUN_DIR:-$ROOT/run}")
BIN=$(abspath "${LBSERVER_BIN:-$ROOT/bin/lbserver}")
# Empty: 80 for `up`; for status and demo, the port the stack was started with.
NGINX_PORT=${BALANCER_PORT:-${NGINX_PORT:-}}
BALANCER=${BALANCER:-nginx}
PID_DIR=$RUN_DIR/pids
LOG_DIR=$RUN_DIR/logs
PREFIX=$RUN_DIR/nginx
CONF=$PREFIX/conf/nginx.conf
HAP_DIR=$RUN_DIR/haproxy
HAP_CONF=$HAP_DIR/haproxy.cfg
HAP_PID=$HAP_DIR/haproxy.pid

say() { printf 'stack: %s\n' "$*"; }
die() {
  printf 'stack: %s\n' "$*" >&2
  exit 1
}
# shellcheck source=scripts/procs.sh
source "$(dirname "${BASH_SOURCE[0]}")/procs.sh"

# ports_of TOPOLOGY: the lbserver ports the topology needs.
ports_of() {
  case $1 in
    a) echo "8080 8081" ;;
    b) echo "8080 8082 8083 8084 8085" ;;
    *) die "unknown topology '$1': use a or b" ;;
  esac
}

# args_of PORT: the lbserver arguments of the instance on PORT. The same
# command lines are in docs/COMMANDS.md.
args_of() {
  case $1 in
    8081) echo "--host 127.0.0.1 --port 8081 --mode CLUSTER" ;;
    *) echo "--host 127.0.0.1 --port $1 --mode FORK" ;;
  esac
}

find_nginx() {
  if [ -n "${NGINX:-}" ]; then
    [ -x "$NGINX" ] && command -v "$NGINX" && return 0
    return 1
  fi
  command -v nginx && return 0
  [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx && return 0
  return 1
}

find_haproxy() {
  if [ -n "${HAPROXY:-}" ]; then
    [ -x "$HAPROXY" ] && command -v "$HAPROXY" && return 0
    return 1
  fi
  command -v haproxy && return 0
  [ -x /usr/sbin/haproxy ] && echo /usr/sbin/haproxy && return 0
  return 1
}

# http_head HOST PORT PATH: GET PATH over HTTP/1.0 with bash's /dev/tcp (no
# curl needed) and print the status line and the headers, CRs removed.
# Fails when nothing answers.
http_head() {
  local host=$1 port=$2 path=$3 line
  {
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$host" >&3
    IFS= read -r -t 30 line <&3 || return 1
    printf '%s\n' "${line%$'\r'}"
    while IFS= read -r -t 30 line <&3; do
      line=${line%$'\r'}
      [ -n "$line" ] || break
      printf '%s\n' "$line"
    done
  } 2>/dev/null 3<>"/dev/tcp/$host/$port"
}

# header NAME: the value of header NAME in http_head's output on stdin.
header() {
  awk -v name="$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')" '
    { i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == name) { v = substr($0, i + 1); sub(/^ +/, "", v); print v; exit } }'
}

# status_of HOST PORT PATH: the HTTP status code, or 000 when nothing answers.
status_of() {
  local out
  out=$(http_head "$@") || {
    echo 000
    return 0
  }
  out=${out%%$'\n'*}
  out=${out#* }
  echo "${out%% *}"
}

port_open() { (: 2>/dev/null <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# cmdline PID: the process's arguments, separated by spaces; nothing when
# PID is gone. (The braces: a failed redirection is reported before a
# 2>/dev/null on the same command takes effect.)
cmdline() { { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null || true; }

# instance_pid PORT: the pid of our lbserver on PORT, if it runs.
instance_pid() {
  local f=$PID_DIR/lbserver-$1.pid pid
  pid=$(recorded_pid "$f" "$BIN") || return 1
  case $(cmdline "$pid") in
    *lbserver*" --port $1 "*) echo "$pid" ;;
    *) return 1 ;;
  esac
}

# nginx_pid: the pid of our nginx master, if it runs.
nginx_pid() {
  local f=$PREFIX/logs/nginx.pid pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  case $(readlink "/proc/$pid/exe" 2>/dev/null) in
    */nginx | */nginx" (deleted)") ;;
    *) return 1 ;;
  esac
  case $(cmdline "$pid") in
    "nginx: master process"*"$PREFIX"*) echo "$pid" ;;
    *) return 1 ;;
  esac
}

# haproxy_pid: the pid of our HAProxy master, if it runs.
haproxy_pid() { haproxy_master "$HAP_PID" "$HAP_CONF"; }

healthy() { [ "$(status_of 127.0.0.1 "$1" /healthz)" = 200 ]; }

start_instance() {
  local port=$1 pid args
  if pid=$(instance_pid "$port"); then
    say "lbserver :$port already runs (pid $pid)"
    return 0
  fi
  if port_open "$port"; then
    die "port $port is taken by another process (see: ss -ltnp 'sport = :$port'); stop it first"
  fi
  read -r -a args <<<"$(args_of "$port")"
  # setsid: a session and process group of its own (pgid = pid), no
  # controlling terminal: a Ctrl-C in this terminal later does not reach it.
  setsid "$BIN" "${args[@]}" >>"$LOG_DIR/lbserver-$port.log" 2>&1 </dev/null 9>&- &
  pid=$!
  record_pid "$pid" "$PID_DIR/lbserver-$port.pid" "$BIN"
  say "started lbserver ${args[*]} (pid $pid, log ${LOG_DIR#"$PWD"/}/lbserver-$port.log)"
}

wait_instance() {
  local port=$1 i
  for ((i = 0; i < 150; i++)); do
    healthy "$port" && return 0
    if ! instance_pid "$port" >/dev/null; then
      tail -n 20 "$LOG_DIR/lbserver-$port.log" >&2 || true
      die "lbserver :$port exited before it answered (log above); make stack-down stops the rest"
    fi
    sleep 0.1
  done
  die "lbserver :$port did not answer /healthz within 15s (log: $LOG_DIR/lbserver-$port.log); make stack-down stops the rest"
}

stop_instance() {
  local port=$1 pid
  if pid=$(instance_pid "$port"); then
    # SIGTERM to the leader only: a CLUSTER master drains its workers itself
    # (a second signal would force them out).
    stop_group "$pid" "lbserver :$port" TERM 15
  fi
  rm -f "$PID_DIR/lbserver-$port.pid" "$PID_DIR/lbserver-$port.pid.id"
}

# write_conf TOPOLOGY OUT: the shipped config, with only the listen port
# changed when NGINX_PORT is not 80. Fails if anything else would differ.
write_conf() {
  local src=$ROOT/deploy/nginx/topology-$1.conf out=$2
  [ -f "$src" ] || die "missing $src"
  if [ "$NGINX_PORT" = 80 ]; then
    cp "$src" "$out"
  else
    sed -E "s/^([[:space:]]*listen[[:space:]]+)80([[:space:]]|;)/\1$NGINX_PORT\2/" "$src" >"$out"
    [ "$(diff "$src" "$out" | grep -c '^>' || true)" = 1 ] ||
      die "replacing the listen port in $src changed more than one line"
  fi
}

# write_hconf TOPOLOGY OUT: the shipped HAProxy config, with only the bind
# port changed when NGINX_PORT is not 80. Fails if anything else would differ.
write_hconf() {
  local src=$ROOT/deploy/haproxy/topology-$1.cfg out=$2
  [ -f "$src" ] || die "missing $src"
  if [ "$NGINX_PORT" = 80 ]; then
    cp "$src" "$out"
  else
    sed -E "s/^([[:space:]]*bind[[:space:]]+):80$/\1:$NGINX_PORT/" "$src" >"$out"
    [ "$(diff "$src" "$out" | grep -c '^>' || true)" = 1 ] ||
      die "replacing the bind port in $src changed more than one line"
  fi
}

# start_haproxy TOPOLOGY: HAProxy in master-worker mode (-W) in the
# foreground of a session of its own; a running one with another config
# reloads seamlessly (SIGUSR2: the new worker takes the listening sockets
# over, no connection is refused).
start_haproxy() {
  local t=$1 pid
  mkdir -p "$HAP_DIR" "$LOG_DIR"
  write_hconf "$t" "$HAP_CONF.new"
  "$HAP" -c -q -f "$HAP_CONF.new" || die "haproxy -c failed for $HAP_CONF.new"
  if pid=$(haproxy_pid); then
    if cmp -s "$HAP_CONF.new" "$HAP_CONF"; then
      rm -f "$HAP_CONF.new"
      say "haproxy already runs (pid $pid) with deploy/haproxy/topology-$t.cfg"
    else
      mv "$HAP_CONF.new" "$HAP_CONF"
      reload_haproxy "$pid"
      say "haproxy (pid $pid) reloaded with deploy/haproxy/topology-$t.cfg"
    fi
  else
    mv "$HAP_CONF.new" "$HAP_CONF"
    if port_open "$NGINX_PORT"; then
      die "port $NGINX_PORT is taken by another process (see: ss -ltnp 'sport = :$NGINX_PORT'); stop it or set BALANCER_PORT"
    fi
    setsid "$HAP" -W -f "$HAP_CONF" -p "$HAP_PID" >>"$LOG_DIR/haproxy.log" 2>&1 </dev/null 9>&- &
    echo "$!" >"$HAP_PID"
    say "haproxy started: $HAP -W -f $HAP_CONF -p $HAP_PID (pid $!, log ${LOG_DIR#"$PWD"/}/haproxy.log)"
  fi
  wait_until 15 "haproxy on :$NGINX_PORT routing topology $t" nginx_routes "$t"
}

# reload_haproxy PID: SIGUSR2 to the master, then wait for its next
# "Loading success" (the new worker runs). HAProxy 2.6 drops a SIGUSR2 that
# arrives while a previous reload is still loading, so the signal is sent
# again every 5s (a reload with the same config is harmless).
reload_haproxy() {
  local pid=$1 n i log=$LOG_DIR/haproxy.log
  n=$(grep -c 'Loading success' "$log" || true)
  for ((i = 0; i < 60; i++)); do
    ((i % 20 == 0)) && kill -USR2 "$pid"
    sleep 0.25
    [ "$(grep -c 'Loading success' "$log" || true)" -gt "$n" ] && return 0
  done
  die "haproxy (pid $pid) did not finish its reload within 15s (log: $log)"
}

stop_haproxy() {
  local pid
  if pid=$(haproxy_pid); then
    # SIGUSR1: soft stop (finish the requests in flight), then SIGKILL.
    stop_group "$pid" haproxy USR1 10
  fi
  rm -f "$HAP_PID"
}

# nginx_routes TOPOLOGY: nginx answers and /api/randoms reaches the
# topology's instances (after a reload, once the new workers took over).
nginx_routes() {
  local port
  port=$(http_head 127.0.0.1 "$NGINX_PORT" '/api/randoms?cant=1' | header X-Server-Port) || return 1
  case $1 in
    a) [ "$port" = 8081 ] ;;
    b) case $port in 8082 | 8083 | 8084 | 8085) true ;; *) false ;; esac ;;
  esac
}

start_nginx() {
  local t=$1 pid out
  mkdir -p "$PREFIX/logs" "$PREFIX/conf"
  if pid=$(nginx_pid) && write_conf "$t" "$CONF.new" && cmp -s "$CONF.new" "$CONF"; then
    rm -f "$CONF.new"
    say "nginx already runs (pid $pid) with deploy/nginx/topology-$t.conf"
  else
    write_conf "$t" "$CONF.new"
    mv "$CONF.new" "$CONF"
    "$NGX" -t -q -p "$PREFIX/" -c "$CONF" || die "nginx -t failed for $CONF"
    if pid=$(nginx_pid); then
      out=$("$NGX" -p "$PREFIX/" -c "$CONF" -s reload 2>&1) || die "nginx reload failed: $out"
      say "nginx (pid $pid) reloaded with deploy/nginx/topology-$t.conf"
    else
      rm -f "$PREFIX/logs/nginx.pid"
      if port_open "$NGINX_PORT"; then
        die "port $NGINX_PORT is taken by another process (see: ss -ltnp 'sport = :$NGINX_PORT'); stop it or set NGINX_PORT"
      fi
      "$NGX" -p "$PREFIX/" -c "$CONF" 9>&-
      say "nginx started: $NGX -p ${PREFIX}/ -c $CONF (pid $(cat "$PREFIX/logs/nginx.pid" 2>/dev/null || echo '?'))"
    fi
  fi
  wait_until 15 "nginx on :$NGINX_PORT routing topology $t" nginx_routes "$t"
}

stop_nginx() {
  local pid
  if pid=$(nginx_pid); then
    # SIGQUIT: graceful (finish the requests in flight), then SIGKILL.
    stop_group "$pid" nginx QUIT 10
  fi
  rm -f "$PREFIX/logs/nginx.pid"
}

url() {
  if [ "$NGINX_PORT" = 80 ]; then echo "http://127.0.0.1$1"; else echo "http://127.0.0.1:$NGINX_PORT$1"; fi
}

print_urls() {
  local t=$1
  echo
  echo "topology ${t^^} is up ($BALANCER on port $NGINX_PORT):"
  echo "  $(url /)                          home (lbserver :8080)"
  echo "  $(url /info)                      info (lbserver :8080)"
  if [ "$t" = a ]; then
    echo "  $(url '/api/randoms?cant=1000')  CLUSTER lbserver :8081"
  else
    echo "  $(url '/api/randoms?cant=1000')  round robin over :8082 :8083 :8084 :8085"
  fi
  echo "  $(url /balance)                   live balancing page"
  echo "  each instance directly: http://127.0.0.1:PORT/info for PORT in $(ports_of "$t")"
  if [ "$BALANCER" = haproxy ]; then
    echo "  http://127.0.0.1:8404/stats         HAProxy's stats: each instance's /readyz check, retries"
    echo "logs: $LOG_DIR/ (haproxy.log too); pids: $PID_DIR/ and $HAP_PID"
  else
    echo "logs: $LOG_DIR/ and $PREFIX/logs/; pids: $PID_DIR/"
  fi
  echo "status: make stack-status; stop: make stack-down"
}

preflight() {
  case $BALANCER in
    nginx) NGX=$(find_nginx) || die "nginx is not installed; install it with: apt-get install -y nginx" ;;
    haproxy) HAP=$(find_haproxy) || die "haproxy is not installed; install it with: apt-get install -y haproxy" ;;
    *) die "BALANCER must be nginx or haproxy, got '$BALANCER'" ;;
  esac
  [ -x "$BIN" ] || die "$BIN is missing; build it with: make build"
  if ! [[ $NGINX_PORT =~ ^[0-9]{1,5}$ ]] || [ "$NGINX_PORT" -lt 1 ] || [ "$NGINX_PORT" -gt 65535 ]; then
    die "NGINX_PORT (or BALANCER_PORT) must be a port number (1-65535), got '$NGINX_PORT'"
  fi
  local unpriv
  unpriv=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start 2>/dev/null || echo 1024)
  if [ "$(id -u)" -ne 0 ] && [ "$NGINX_PORT" -lt "$unpriv" ]; then
    die "nginx on port $NGINX_PORT needs root: run as root, or pick a port, e.g. NGINX_PORT=8088 make stack-a"
  fi
}

# started_port: NGINX_PORT, else the port `up` used, else 80.
started_port() {
  if [ -n "$NGINX_PORT" ]; then
    echo "$NGINX_PORT"
  elif [ -s "$RUN_DIR/nginx-port" ]; then
    cat "$RUN_DIR/nginx-port"
  else
    echo 80
  fi
}

# lock: one stack.sh at a time per run folder (fd 9, closed for the
# processes it starts so that they do not hold the lock).
lock() {
  claim_run_dir "$RUN_DIR" .lbserver-stack-run "$ROOT/run"
  exec 9>"$RUN_DIR/.lock"
  flock -w 120 9 || die "another scripts/stack.sh is still running on $RUN_DIR"
}

cmd_up() {
  local t=${1:-} port old
  [ -n "$t" ] || die "usage: stack.sh up a|b"
  NGINX_PORT=${NGINX_PORT:-80}
  ports_of "$t" >/dev/null
  preflight
  lock
  mkdir -p "$PID_DIR" "$LOG_DIR"
  for port in $(ports_of "$t"); do start_instance "$port"; done
  for port in $(ports_of "$t"); do wait_instance "$port"; done
  if [ "$BALANCER" = haproxy ]; then
    if nginx_pid >/dev/null; then
      NGX=$(find_nginx) || NGX=nginx
      stop_nginx
    fi
    start_haproxy "$t"
  else
    stop_haproxy
    start_nginx "$t"
  fi
  # Instances of the other topology go only after the balancer stopped sending to them.
  for old in "$PID_DIR"/lbserver-*.pid; do
    [ -e "$old" ] || continue
    port=${old##*/lbserver-}
    port=${port%.pid}
    case " $(ports_of "$t") " in
      *" $port "*) ;;
      *) stop_instance "$port" ;;
    esac
  done
  echo "$t" >"$RUN_DIR/topology"
  echo "$NGINX_PORT" >"$RUN_DIR/nginx-port"
  echo "$BALANCER" >"$RUN_DIR/balancer"
  print_urls "$t"
}

cmd_down() {
  local f port stopped=0
  [ -d "$RUN_DIR" ] && lock
  if [ -d "$PREFIX/logs" ]; then
    NGX=$(find_nginx) || NGX=nginx
    if nginx_pid >/dev/null; then stopped=1; fi
    stop_nginx
  fi
  if haproxy_pid >/dev/null; then stopped=1; fi
  stop_haproxy
  for f in "$PID_DIR"/lbserver-*.pid; do
    [ -e "$f" ] || continue
    port=${f##*/lbserver-}
    port=${port%.pid}
    if instance_pid "$port" >/dev/null; then stopped=1; fi
    stop_instance "$port"
  done
  rm -f "$RUN_DIR/topology" "$RUN_DIR/nginx-port" "$RUN_DIR/balancer"
  [ "$stopped" = 1 ] || say "nothing was running"
  return 0
}

# pid_file_ports: the ports that have a pid file under PID_DIR, sorted.
pid_file_ports() {
  local f port
  for f in "$PID_DIR"/lbserver-*.pid; do
    [ -e "$f" ] || continue
    port=${f##*/lbserver-}
    port=${port%.pid}
    [[ $port =~ ^[0-9]+$ ]] && echo "$port"
  done | sort -n
}

# cmd_status: what runs, from the pid files under RUN_DIR: the ones `up`
# writes and the ones written by hand as docs/COMMANDS.md shows. Exit 0 when
# everything expected runs, and when nothing is up at all (that is an
# answer, not an error); 1 when a topology started with `up` is missing a
# process.
cmd_status() {
  local t="" port pid rc=0 workers conf up=0 f ports
  [ -s "$RUN_DIR/topology" ] && t=$(cat "$RUN_DIR/topology")
  NGINX_PORT=$(started_port)
  ports=$({ [ -n "$t" ] && ports_of "$t" | tr ' ' '\n'; pid_file_ports; } | sort -nu)
  local lines=() bal=nginx
  [ -s "$RUN_DIR/balancer" ] && bal=$(cat "$RUN_DIR/balancer")
  if pid=$(haproxy_pid); then
    up=1
    lines+=("  haproxy :$NGINX_PORT  master pid $pid, workers: $(pgrep -P "$pid" | tr '\n' ' ')config $HAP_CONF")
  elif [ -n "$t" ] && [ "$bal" = haproxy ]; then
    lines+=("  haproxy :$NGINX_PORT  NOT RUNNING")
    rc=1
  fi
  if pid=$(nginx_pid); then
    up=1
    conf=$(cmdline "$pid" | sed -n 's/.* -c \([^ ]*\).*/\1/p')
    lines+=("  nginx :$NGINX_PORT  master pid $pid, workers: $(pgrep -P "$pid" | tr '\n' ' ')${conf:+config $conf}")
  elif [ -n "$t" ] && [ "$bal" = nginx ]; then
    lines+=("  nginx :$NGINX_PORT  NOT RUNNING")
    rc=1
  fi
  for port in $ports; do
    f=$PID_DIR/lbserver-$port.pid
    if pid=$(instance_pid "$port"); then
      up=1
      workers=$(pgrep -P "$pid" | tr '\n' ' ' || true)
      lines+=("$(printf '  lbserver :%s  pid %s, health %s%s' "$port" "$pid" "$(status_of 127.0.0.1 "$port" /healthz)" \
        "${workers:+, workers (ps --ppid $pid): $workers}")")
    elif [ -s "$f" ]; then
      lines+=("  lbserver :$port  NOT RUNNING (stale pid file ${f#"$PWD"/}: pid $(head -c 20 "$f" | tr -dc 0-9) is gone)")
      if [ -n "$t" ] && [[ " $(ports_of "$t") " == *" $port "* ]]; then rc=1; fi
    else
      lines+=("  lbserver :$port  NOT RUNNING")
      rc=1
    fi
  done
  if [ "$up" = 0 ] && [ -z "$t" ]; then
    [ ${#lines[@]} -gt 0 ] && printf '%s\n' "${lines[@]}"
    say "nothing is up in $RUN_DIR (no nginx, no lbserver from its pid files): make stack-a or make stack-b starts a topology"
    return 0
  fi
  if [ -n "$t" ]; then
    echo "topology ${t^^}, run folder $RUN_DIR"
  else
    echo "started by hand (pid files under $PID_DIR), run folder $RUN_DIR"
  fi
  printf '%s\n' "${lines[@]}"
  local pids
  pids=$(for port in $ports; do instance_pid "$port" || true; done | paste -sd, -)
  [ -n "$pids" ] && echo "processes: ps -o pid,ppid,pgid,args -g $pids"
  return "$rc"
}

cmd_demo() {
  local n=${1:-400} i port line failed=0 info_port
  local -A count=()
  [ "$n" -ge 1 ] 2>/dev/null || die "demo: N must be a positive number, got '$n'"
  NGINX_PORT=$(started_port)
  echo "sending $n requests to $(url '/api/randoms?cant=1000') ..."
  for ((i = 0; i < n; i++)); do
    line=$(http_head 127.0.0.1 "$NGINX_PORT" '/api/randoms?cant=1000') || line=
    port=$(header X-Server-Port <<<"$line")
    # HTTP/1.1 from nginx, HTTP/1.0 (the request's version) from HAProxy.
    if ! [[ ${line%%$'\n'*} =~ ^HTTP/1\.[01]\ 200\  ]] || [ -z "$port" ]; then
      failed=$((failed + 1))
      continue
    fi
    count[$port]=$((${count[$port]:-0} + 1))
  done
  echo "answers per lbserver port (from the X-Server-Port header):"
  for port in $(printf '%s\n' "${!count[@]}" | sort -n); do
    printf '  %s  %4d\n' "$port" "${count[$port]}"
  done
  echo "  failed  $failed"
  info_port=$(http_head 127.0.0.1 "$NGINX_PORT" /info | header X-Server-Port) || info_port=none
  echo "/info was answered by port ${info_port:-none}"
  [ "$failed" = 0 ]
}

main() {
  local cmd=${1:-}
  [ $# -gt 0 ] && shift
  case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    demo) cmd_demo "$@" ;;
    *) die "usage: stack.sh up a|b | down | status | demo [N]" ;;
  esac
}

main "$@"
