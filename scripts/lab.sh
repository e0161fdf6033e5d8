#!/usr/bin/env bash
# lab.sh: four lbserver hosts behind nginx, on this one machine, each host in
# a Linux network namespace of its own. `make lab`, `make lab-status`,
# `make lab-down`, `make lab-fail HOST=N`, `make lab-heal HOST=N`,
# `make lab-kill HOST=N` and `make lab-reload` call it (mk/lab.mk; docs/LAB.md).
#
#   scripts/lab.sh up          build the lab (a lab already up is reported, not changed)
#   scripts/lab.sh status      hosts, addresses, links, pids, health
#   scripts/lab.sh down        stop every process, remove every namespace and link
#   scripts/lab.sh fail N      host N's link down (its switch port): no reset, no answer
#   scripts/lab.sh heal N      host N's link up again; restarts its lbserver if it is not running
#   scripts/lab.sh kill N      SIGKILL host N's whole lbserver (master and workers)
#   scripts/lab.sh reload      SIGHUP each host's master in turn, waiting until the
#                              host's workers are all new and it answers
#
# What `up` builds (PREFIX = LAB_PREFIX, default lbl-; NET = LAB_NET, default 10.213):
#
#   this machine: link PREFIXup NET.255.1/30
#        |
#   netns PREFIXlb: up0 NET.255.2/30; bridge br0 NET.0.1/24
#        nginx :80 (deploy/nginx/topology-b.conf, the four upstream addresses changed)
#        lbserver FORK 127.0.0.1:8080 --host-name lb   (every route but /api/randoms)
#        |  br0 ports host1..host4, each a veth to eth0 in a host namespace
#   netns PREFIXhost1..4: eth0 NET.0.11 .. NET.0.14/24
#        lbserver --mode CLUSTER --workers 2 --port 8080 --host-name hostN
#
# Every lab interface but PREFIXup lives inside a lab namespace; the namespaces
# do not forward packets, so nothing leaves them but the answers nginx sends
# back to this machine over PREFIXup.
#
# Environment:
#   LAB_PREFIX    prefix of the namespace and link names (default lbl-)
#   LAB_NET       first two octets of the lab's private /16 (default 10.213)
#   LAB_RUN_DIR   logs, pid files, nginx prefix (default run/lab, git-ignored);
#                 one that holds files the lab did not make (no .lbserver-lab-run
#                 in it) is refused: the lab deletes only inside its own
#   LBSERVER_BIN  the binary (default bin/lbserver; make builds it first)
#   NGINX         the nginx executable (default: nginx on PATH, else /usr/sbin/nginx)
#   LAB_BALANCER  nginx (default) or haproxy: HAProxy in the lb namespace
#                 instead, with deploy/haproxy/topology-b.cfg (the four server
#                 addresses changed), checking each host's /readyz
#   HAPROXY       the haproxy executable (default: haproxy on PATH, else /usr/sbin/haproxy)
#
# Every command needs root (namespaces, links, ip netns exec, port 80).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SELF=$ROOT/scripts/lab.sh

abspath() {
  case $1 in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$PWD/$1" ;;
  esac
}

P=${LAB_PREFIX:-lbl-}
NET=${LAB_NET:-10.213}
RUN_DIR=$(abspath "${LAB_RUN_DIR:-$ROOT/run/lab}")
BIN=$(abspath "${LBSERVER_BIN:-$ROOT/bin/lbserver}")
RUN_MARK=.lbserver-lab-run # in RUN_DIR: the lab made it, and may delete in it
PID_DIR=$RUN_DIR/pids
LOG_DIR=$RUN_DIR/logs
PREFIX=$RUN_DIR/nginx
CONF=$PREFIX/conf/nginx.conf
SHIPPED=$ROOT/deploy/nginx/topology-b.conf
BALANCER=${LAB_BALANCER:-nginx}
HAP_DIR=$RUN_DIR/haproxy
HAP_CONF=$HAP_DIR/haproxy.cfg
HAP_PID=$HAP_DIR/haproxy.pid
HAP_SHIPPED=$ROOT/deploy/haproxy/topology-b.cfg
HOSTS="1 2 3 4"
APP_PORT=8080
UPLINK=${P}up
LB_NS=${P}lb
LB_ADDR=$NET.0.1
MACHINE_ADDR=$NET.255.1
NGINX_ADDR=$NET.255.2

say() { printf 'lab: %s\n' "$*"; }
die() {
  printf 'lab: %s\n' "$*" >&2
  exit 1
}
# shellcheck source=scripts/procs.sh
source "$(dirname "${BASH_SOURCE[0]}")/procs.sh"

ns_of() { echo "${P}host$1"; }
addr_of() { echo "$NET.0.$((10 + $1))"; }

check_names() {
  [[ $P =~ ^[a-z][a-z0-9-]{0,9}$ ]] ||
    die "LAB_PREFIX must be 1 to 10 lower-case letters, digits or '-', starting with a letter, got '$P'"
  private_net "$NET" ||
    die "LAB_NET must be the first two octets of a private /16 (10.X, 172.16-31, 192.168), got '$NET'"
  case $BALANCER in
    nginx | haproxy) ;;
    *) die "LAB_BALANCER must be nginx or haproxy, got '$BALANCER'" ;;
  esac
}

# private_net A.B: A.B.0.0/16 is inside 10/8, 172.16/12 or 192.168/16.
private_net() {
  local a b
  [[ $1 =~ ^([0-9]{1,3})\.([0-9]{1,3})$ ]] || return 1
  a=${BASH_REMATCH[1]} b=${BASH_REMATCH[2]}
  case $a in
    10) [ "$b" -le 255 ] ;;
    172) [ "$b" -ge 16 ] && [ "$b" -le 31 ] ;;
    192) [ "$b" = 168 ] ;;
    *) return 1 ;;
  esac
}

need_root() {
  [ "$(id -u)" -eq 0 ] ||
    die "the lab needs root (network namespaces, veth links, nginx on port 80): run it as root, e.g. sudo make $1"
}

host_arg() {
  case ${1:-} in
    1 | 2 | 3 | 4) echo "$1" ;;
    *) die "unknown HOST '${1:-}': valid values are 1, 2, 3, 4 (e.g. make lab-fail HOST=2)" ;;
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

# lab_namespaces: the lab's namespaces that exist, one a line.
lab_namespaces() {
  ip netns list 2>/dev/null | awk -v p="$P" '
    { n = $1; if (n == p "lb" || n == p "host1" || n == p "host2" || n == p "host3" || n == p "host4") print n }'
}

ns_exists() { lab_namespaces | grep -qx "$1"; }

# in NS CMD...: run CMD inside namespace NS.
in_ns() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

# http_head HOST PORT PATH (internal, run inside a namespace under timeout):
# GET PATH over HTTP/1.0 with bash's /dev/tcp; prints the status line and
# the headers, CRs removed. Fails when nothing answers.
http_head() {
  local host=$1 port=$2 path=$3 line
  {
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$host" >&3
    IFS= read -r line <&3 || return 1
    printf '%s\n' "${line%$'\r'}"
    while IFS= read -r line <&3; do
      line=${line%$'\r'}
      [ -n "$line" ] || break
      printf '%s\n' "$line"
    done
  } 2>/dev/null 3<>"/dev/tcp/$host/$port"
}

# head_in NS HOST PORT PATH: http_head from inside NS, given 2s at most (a
# dead link makes a connect hang: no reset comes back).
head_in() {
  local ns=$1
  shift
  in_ns "$ns" timeout 2 "$SELF" _head "$@" 2>/dev/null
}

# status_in NS HOST PORT PATH: the HTTP status code, or 000.
status_in() {
  local out
  out=$(head_in "$@") || {
    echo 000
    return 0
  }
  out=${out%%$'\n'*}
  out=${out#* }
  echo "${out%% *}"
}

header() {
  awk -v name="$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')" '
    { i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == name) { v = substr($0, i + 1); sub(/^ +/, "", v); print v; exit } }'
}

cmdline() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline"; }

# host_pid N: the pid of host N's lbserver master, if it runs.
host_pid() {
  local f=$PID_DIR/host$1.pid pid
  pid=$(recorded_pid "$f" "$BIN") || return 1
  case $(cmdline "$pid") in
    *lbserver*" --host-name host$1 "*) echo "$pid" ;;
    *) return 1 ;;
  esac
}

# lb_app_pid: the pid of the lb namespace's own lbserver (FORK, 127.0.0.1:8080).
lb_app_pid() {
  local f=$PID_DIR/lb.pid pid
  pid=$(recorded_pid "$f" "$BIN") || return 1
  case $(cmdline "$pid") in
    *lbserver*" --host-name lb "*) echo "$pid" ;;
    *) return 1 ;;
  esac
}

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

# haproxy_pid: the pid of the lab's HAProxy master, if it runs.
haproxy_pid() { haproxy_master "$HAP_PID" "$HAP_CONF"; }

# balancer_pid: the pid of whichever balancer the lab runs.
balancer_pid() { nginx_pid || haproxy_pid; }

# write_hconf OUT: the shipped HAProxy topology-b.cfg with only the four
# server lines of lbserver_randoms changed (127.0.0.1:8082..8085 become
# host1..host4's address, port 8080). Fails if anything else would differ.
write_hconf() {
  local out=$1 n
  local -a expr=()
  for n in $HOSTS; do
    expr+=(-e "s/^([[:space:]]*server[[:space:]]+r$((8081 + n))[[:space:]]+)127\\.0\\.0\\.1:$((8081 + n))$/\\1$(addr_of "$n"):$APP_PORT/")
  done
  sed -E "${expr[@]}" "$HAP_SHIPPED" >"$out"
  [ "$(diff "$HAP_SHIPPED" "$out" | grep -c '^>' || true)" = 4 ] ||
    die "deriving the lab config from $HAP_SHIPPED did not change exactly its 4 server lines"
}

workers_of() { pgrep -P "$1" | sort -n | paste -sd' ' - || true; }

# write_conf OUT: the shipped topology-b.conf with only the upstream
# addresses of lbserver_randoms changed: 127.0.0.1:8082..8085 (primary and
# backup lines) become host1..host4's address, port 8080. Fails if anything
# else would differ.
write_conf() {
  local out=$1 n
  local -a expr=()
  for n in $HOSTS; do
    expr+=(-e "s/^([[:space:]]*server[[:space:]]+)127\\.0\\.0\\.1:$((8081 + n))([[:space:]])/\\1$(addr_of "$n"):$APP_PORT\\2/")
  done
  sed -E "${expr[@]}" "$SHIPPED" >"$out"
  [ "$(diff "$SHIPPED" "$out" | grep -c '^>' || true)" = 8 ] ||
    die "deriving the lab config from $SHIPPED did not change exactly its 8 upstream server lines"
}

host_healthy() { [ "$(status_in "$LB_NS" "$(addr_of "$1")" "$APP_PORT" /healthz)" = 200 ]; }
lb_app_healthy() { [ "$(status_in "$LB_NS" 127.0.0.1 "$APP_PORT" /healthz)" = 200 ]; }

# nginx_serves: nginx answers /api/randoms from one of the four hosts.
nginx_serves() {
  local h
  h=$(head_in "$LB_NS" "$NGINX_ADDR" 80 '/api/randoms?cant=1' | header X-Server-Host) || return 1
  case $h in host1 | host2 | host3 | host4) true ;; *) false ;; esac
}

# start_host N: host N's lbserver CLUSTER, in a session of its own
# (setsid: pid = process group id, the workers share it).
start_host() {
  local n=$1 pid
  if pid=$(host_pid "$n"); then
    say "host$n: lbserver already runs (pid $pid)"
    return 0
  fi
  # ip netns exec and setsid both exec in place: $! is lbserver's pid.
  ip netns exec "$(ns_of "$n")" setsid "$BIN" --host "$(addr_of "$n")" --port "$APP_PORT" --mode CLUSTER --workers 2 \
    --host-name "host$n" >>"$LOG_DIR/host$n.log" 2>&1 </dev/null 9>&- &
  record_pid "$!" "$PID_DIR/host$n.pid" "$BIN"
}

wait_host() {
  local n=$1 i
  for ((i = 0; i < 150; i++)); do
    host_healthy "$n" && return 0
    if ! host_pid "$n" >/dev/null; then
      tail -n 20 "$LOG_DIR/host$n.log" >&2 || true
      die "host$n: lbserver exited before it answered (log above)"
    fi
    sleep 0.1
  done
  die "host$n: lbserver did not answer /healthz within 15s (log: $LOG_DIR/host$n.log)"
}

lock() {
  claim_run_dir "$RUN_DIR" "$RUN_MARK" "$ROOT/run/lab"
  exec 9>"$RUN_DIR/.lock"
  flock -w 120 9 || die "another scripts/lab.sh is still running on $RUN_DIR"
}

open_line() { echo "open http://$NGINX_ADDR/balance"; }

cmd_up() {
  local n ns present
  need_root lab
  check_names
  if [ "$BALANCER" = haproxy ]; then
    HAP=$(find_haproxy) || die "haproxy is not installed; install it with: apt-get install -y haproxy"
  else
    NGX=$(find_nginx) || die "nginx is not installed; install it with: apt-get install -y nginx"
  fi
  [ -x "$BIN" ] || die "$BIN is missing; build it with: make build"
  lock
  present=$(lab_namespaces | paste -sd' ' -)
  if [ -n "$present" ]; then
    if [ "$(lab_namespaces | wc -l)" = 5 ] && balancer_pid >/dev/null; then
      say "the lab is already up; nothing changed (make lab-down removes it)"
      cmd_status || true
      open_line
      return 0
    fi
    die "the lab is partly up (namespaces: $present); nothing changed: make lab-down, then make lab"
  fi
  if ip -o -4 addr show | grep -q " inet $NET\\."; then
    die "this machine already has an address in $NET.0.0/16; pick another private /16 with LAB_NET (e.g. LAB_NET=10.214)"
  fi
  if ip link show "$UPLINK" >/dev/null 2>&1; then
    die "a link named $UPLINK already exists; remove it (ip link del $UPLINK) or set LAB_PREFIX"
  fi
  # Only inside a run folder the lab made (lock checked it).
  [ -e "$RUN_DIR/$RUN_MARK" ] || die "$RUN_DIR is not the lab's run folder (no $RUN_MARK)"
  rm -rf "$PID_DIR" "$PREFIX" "$HAP_DIR"
  mkdir -p "$PID_DIR" "$LOG_DIR" "$PREFIX/logs" "$PREFIX/conf" "$HAP_DIR"
  # The config first: nothing is built if it cannot be derived or checked.
  if [ "$BALANCER" = haproxy ]; then
    write_hconf "$HAP_CONF"
    "$HAP" -c -q -f "$HAP_CONF" || die "haproxy -c failed for $HAP_CONF"
  else
    write_conf "$CONF"
    "$NGX" -t -q -p "$PREFIX/" -c "$CONF" || die "nginx -t failed for $CONF"
  fi

  # From here on a failure leaves part of a lab: say how to remove it.
  trap 'rc=$?; [ "$rc" = 0 ] || say "make lab failed part way; make lab-down removes what it built" >&2' EXIT
  say "network: bridge br0 in $LB_NS ($LB_ADDR/24), hosts ${NET}.0.11-14, uplink $UPLINK $MACHINE_ADDR <-> $NGINX_ADDR"
  ip netns add "$LB_NS"
  in_ns "$LB_NS" ip link set lo up
  in_ns "$LB_NS" ip link add br0 type bridge
  in_ns "$LB_NS" ip addr add "$LB_ADDR/24" dev br0
  in_ns "$LB_NS" ip link set br0 up
  for n in $HOSTS; do
    ns=$(ns_of "$n")
    ip netns add "$ns"
    in_ns "$ns" ip link set lo up
    # One veth per host: "hostN" is its port on the bridge (in the lb
    # namespace), eth0 its end in the host's namespace.
    ip -n "$LB_NS" link add "host$n" type veth peer name eth0 netns "$ns"
    ip -n "$LB_NS" link set "host$n" master br0 up
    ip -n "$ns" addr add "$(addr_of "$n")/24" dev eth0
    ip -n "$ns" link set eth0 up
  done
  ip link add "$UPLINK" type veth peer name up0 netns "$LB_NS"
  # IPv4 only. Without this the kernel gives the link an IPv6 link-local
  # address about a second after it comes up, and a browser open on this
  # machine takes that for a network change (Chromium aborts its requests
  # in flight with ERR_NETWORK_CHANGED).
  if [ -e "/proc/sys/net/ipv6/conf/$UPLINK/disable_ipv6" ]; then
    echo 1 >"/proc/sys/net/ipv6/conf/$UPLINK/disable_ipv6"
  fi
  ip addr add "$MACHINE_ADDR/30" dev "$UPLINK"
  ip link set "$UPLINK" up
  ip -n "$LB_NS" addr add "$NGINX_ADDR/30" dev up0
  ip -n "$LB_NS" link set up0 up

  for n in $HOSTS; do start_host "$n"; done
  ip netns exec "$LB_NS" setsid "$BIN" --host 127.0.0.1 --port "$APP_PORT" --mode FORK --host-name lb \
    >>"$LOG_DIR/lb.log" 2>&1 </dev/null 9>&- &
  record_pid "$!" "$PID_DIR/lb.pid" "$BIN"
  for n in $HOSTS; do wait_host "$n"; done
  wait_until 15 "lb: lbserver 127.0.0.1:$APP_PORT answering" lb_app_healthy
  if [ "$BALANCER" = haproxy ]; then
    # Master-worker mode in the foreground of a session of its own: $! is
    # the master (ip netns exec and setsid exec in place).
    ip netns exec "$LB_NS" setsid "$HAP" -W -f "$HAP_CONF" -p "$HAP_PID" >>"$LOG_DIR/haproxy.log" 2>&1 </dev/null 9>&- &
    echo "$!" >"$HAP_PID"
    wait_until 15 "haproxy in $LB_NS serving /api/randoms from the hosts" nginx_serves
    say "haproxy: $HAP -W -f $HAP_CONF in $LB_NS (pid $(haproxy_pid || echo '?'); stats: ip netns exec $LB_NS curl http://127.0.0.1:8404/stats)"
  else
    in_ns "$LB_NS" "$NGX" -p "$PREFIX/" -c "$CONF" 9>&-
    wait_until 15 "nginx in $LB_NS serving /api/randoms from the hosts" nginx_serves
    say "nginx: $NGX -p $PREFIX/ -c $CONF in $LB_NS (pid $(nginx_pid || echo '?'))"
  fi
  echo
  cmd_status || true
  echo "fail/heal/kill a host: make lab-fail HOST=N, make lab-heal HOST=N, make lab-kill HOST=N (N = 1..4)"
  echo "reload the fleet: make lab-reload; remove everything: make lab-down"
  open_line
}

# no_ns_pids: no live process is left in a lab namespace.
no_ns_pids() {
  local ns pid
  for ns in $(lab_namespaces); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      case $(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) in Z | "") ;; *) return 1 ;; esac
    done
  done
}

cmd_down() {
  local n pid ns stopped=0
  need_root lab-down
  check_names
  lock
  if pid=$(nginx_pid); then
    stop_group "$pid" nginx QUIT 10
    stopped=1
  fi
  rm -f "$PREFIX/logs/nginx.pid"
  if pid=$(haproxy_pid); then
    # SIGUSR1: soft stop (finish the requests in flight), then SIGKILL.
    stop_group "$pid" haproxy USR1 10
    stopped=1
  fi
  rm -f "$HAP_PID"
  for n in $HOSTS; do
    if pid=$(host_pid "$n"); then
      # SIGTERM to the master only: it drains its workers itself.
      stop_group "$pid" "host$n lbserver" TERM 15
      stopped=1
    fi
    rm -f "$PID_DIR/host$n.pid" "$PID_DIR/host$n.pid.id"
  done
  if pid=$(lb_app_pid); then
    stop_group "$pid" "lb lbserver" TERM 15
    stopped=1
  fi
  rm -f "$PID_DIR/lb.pid" "$PID_DIR/lb.pid.id"
  # Anything else still inside a lab namespace (a process started by hand
  # with ip netns exec, say) would keep the namespace alive: kill it.
  for ns in $(lab_namespaces); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      say "killing pid $pid left in $ns: $(cmdline "$pid")"
      kill -KILL "$pid" 2>/dev/null || true
      stopped=1
    done
  done
  wait_until 5 "the end of every process in the lab namespaces" no_ns_pids
  if ip link show "$UPLINK" >/dev/null 2>&1; then
    ip link del "$UPLINK"
    stopped=1
  fi
  for ns in $(lab_namespaces); do
    ip netns del "$ns"
    say "removed namespace $ns"
    stopped=1
  done
  [ -z "$(lab_namespaces)" ] || die "namespaces left: $(lab_namespaces | paste -sd' ' -)"
  if [ "$stopped" = 1 ]; then
    say "the lab is down: no ${P}* namespace, link or process is left"
  else
    say "no lab was up"
  fi
}

cmd_status() {
  local n ns pid rc=0 link local_h remote_h
  need_root lab-status
  check_names
  if [ -z "$(lab_namespaces)" ]; then
    say "no lab is up (make lab)"
    return 3
  fi
  echo "lab ${P}* on $NET.0.0/16, run folder $RUN_DIR"
  if pid=$(nginx_pid); then
    echo "  lb     ns $LB_NS  $NGINX_ADDR:80 nginx pid $pid (workers $(workers_of "$pid")); bridge br0 $LB_ADDR"
  elif pid=$(haproxy_pid); then
    echo "  lb     ns $LB_NS  $NGINX_ADDR:80 haproxy pid $pid (workers $(workers_of "$pid")); bridge br0 $LB_ADDR"
  else
    echo "  lb     ns $LB_NS  nginx NOT RUNNING"
    rc=1
  fi
  if pid=$(lb_app_pid); then
    echo "         lbserver FORK 127.0.0.1:$APP_PORT pid $pid, health $(status_in "$LB_NS" 127.0.0.1 "$APP_PORT" /healthz)"
  else
    echo "         lbserver FORK 127.0.0.1:$APP_PORT NOT RUNNING"
    rc=1
  fi
  for n in $HOSTS; do
    ns=$(ns_of "$n")
    if ! ns_exists "$ns"; then
      echo "  host$n  ns $ns MISSING"
      rc=1
      continue
    fi
    link=$(ip -n "$LB_NS" -o link show "host$n" 2>/dev/null | grep -q '[<,]UP[,>]' && echo up || echo DOWN)
    if pid=$(host_pid "$n"); then
      local_h=$(status_in "$ns" "$(addr_of "$n")" "$APP_PORT" /healthz)
      remote_h=$(status_in "$LB_NS" "$(addr_of "$n")" "$APP_PORT" /healthz)
      printf '  host%s  ns %s  %s:%s  link %-4s  master pid %s, workers %s; health %s on the host, %s from lb\n' \
        "$n" "$ns" "$(addr_of "$n")" "$APP_PORT" "$link" "$pid" "$(workers_of "$pid")" "$local_h" \
        "$([ "$remote_h" = 000 ] && echo 'no answer' || echo "$remote_h")"
      [ "$remote_h" = 200 ] || rc=1
    else
      printf '  host%s  ns %s  %s:%s  link %-4s  lbserver NOT RUNNING (make lab-heal HOST=%s starts it)\n' \
        "$n" "$ns" "$(addr_of "$n")" "$APP_PORT" "$link" "$n"
      rc=1
    fi
  done
  echo "logs: $LOG_DIR/ and $PREFIX/logs/ (access.log: upstream=... per request); pids: $PID_DIR/"
  return "$rc"
}

need_lab() {
  [ -n "$(lab_namespaces)" ] || die "no lab is up: make lab first"
}

cmd_fail() {
  local n
  n=$(host_arg "${1:-}")
  need_root lab-fail
  check_names
  need_lab
  lock
  ip -n "$LB_NS" link set "host$n" down
  say "host$n ($(addr_of "$n")): link down. nginx gets no answer and no reset from it until make lab-heal HOST=$n"
}

cmd_heal() {
  local n
  n=$(host_arg "${1:-}")
  need_root lab-heal
  check_names
  need_lab
  lock
  ip -n "$LB_NS" link set "host$n" up
  if ! host_pid "$n" >/dev/null; then start_host "$n"; fi
  wait_host "$n"
  say "host$n ($(addr_of "$n")): link up, lbserver pid $(host_pid "$n") answers; nginx sends it requests again within fail_timeout"
}

cmd_kill() {
  local n pid
  n=$(host_arg "${1:-}")
  need_root lab-kill
  check_names
  need_lab
  lock
  pid=$(host_pid "$n") || die "host$n: no lbserver runs (make lab-heal HOST=$n starts it)"
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait_until 5 "the end of host$n's lbserver (process group $pid)" group_gone "$pid"
  say "host$n: killed lbserver master $pid and its workers (SIGKILL to group $pid); make lab-heal HOST=$n starts it again"
}

# replaced N PID OLD: host N's master PID has two workers, none of them in
# OLD, and the host answers.
replaced() {
  local w
  w=$(workers_of "$2")
  [ "$(wc -w <<<"$w")" = 2 ] || return 1
  for p in $w; do
    case " $3 " in *" $p "*) return 1 ;; esac
  done
  host_healthy "$1"
}

cmd_reload() {
  local n pid old
  need_root lab-reload
  check_names
  need_lab
  lock
  for n in $HOSTS; do
    pid=$(host_pid "$n") || die "host$n: no lbserver runs (make lab-heal HOST=$n starts it)"
    old=$(workers_of "$pid")
    kill -HUP "$pid"
    wait_until 60 "host$n: new workers replacing $old" replaced "$n" "$pid" "$old"
    say "host$n: master $pid reloaded, workers $old -> $(workers_of "$pid")"
  done
  say "fleet reloaded, host by host"
}

main() {
  local cmd=${1:-}
  [ $# -gt 0 ] && shift
  case $cmd in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    fail) cmd_fail "$@" ;;
    heal) cmd_heal "$@" ;;
    kill) cmd_kill "$@" ;;
    reload) cmd_reload ;;
    _head) http_head "$@" ;;
    *) die "usage: lab.sh up | status | down | fail N | heal N | kill N | reload" ;;
  esac
}

main "$@"
