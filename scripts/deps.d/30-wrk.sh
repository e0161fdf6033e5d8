#!/usr/bin/env bash
# wrk: the HTTP load generator used by `make bench` (cmd/lbbench) and its quick test.
set -euo pipefail
# shellcheck source=scripts/deps.d/lib.sh
source "$(dirname "$0")/lib.sh"
apt_need wrk wrk
