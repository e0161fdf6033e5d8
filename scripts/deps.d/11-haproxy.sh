#!/usr/bin/env bash
# HAProxy (Debian 12: 2.6) for the HAProxy topology tests and
# `make stack-a|stack-b BALANCER=haproxy`. Like nginx, the package starts
# nothing the tests rely on: they run it with their own config.
set -euo pipefail
# shellcheck source=scripts/deps.d/lib.sh
source "$(dirname "$0")/lib.sh"
# Debian puts haproxy in /usr/sbin, which a normal user's PATH may lack.
PATH="$PATH:/usr/sbin:/sbin"
apt_need haproxy haproxy
