#!/usr/bin/env bash
# systemd-analyze, for `systemd-analyze verify` of deploy/systemd/*.service.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/deps.d/lib.sh
source scripts/deps.d/lib.sh
apt_need systemd systemd-analyze
