#!/usr/bin/env bash
# Installs what the tests need when it is missing: runs every scripts/deps.d/*.sh
# in name order. Each of them checks first and installs only what is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
for f in scripts/deps.d/*.sh; do
  [ -e "$f" ] || continue
  bash "$f"
done
