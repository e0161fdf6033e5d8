#!/usr/bin/env bash
# nginx for the topology tests and `make stack-a|stack-b|demo`; ip (iproute2)
# and unshare (util-linux) for the tests that run nginx on its shipped ports
# inside a private network namespace.
set -euo pipefail
# shellcheck source=scripts/deps.d/lib.sh
source "$(dirname "$0")/lib.sh"
# Debian puts nginx in /usr/sbin, which a normal user's PATH may lack.
PATH="$PATH:/usr/sbin:/sbin"
apt_need nginx nginx
apt_need iproute2 ip
apt_need util-linux unshare
