#!/usr/bin/env bash
# Tools of the reliability tests (e2e/reliability_test.go, relnginx_test.go):
# nginx for topology B, unshare (util-linux) for the PID 1 test and the
# private network namespace, ip (iproute2) to bring its loopback up.
set -euo pipefail
# shellcheck source=scripts/deps.d/lib.sh
source "$(dirname "$0")/lib.sh"
PATH="$PATH:/usr/sbin:/sbin"
apt_need nginx nginx
apt_need util-linux unshare
apt_need iproute2 ip
