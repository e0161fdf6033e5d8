#!/usr/bin/env bash
# The process managers the e2e tests drive (pm2, forever, nodemon), pinned in
# tools/package-lock.json and installed locally under tools/node_modules.
# Runs `npm ci` only when tools/node_modules is missing or older than the lock.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/deps.d/lib.sh
source scripts/deps.d/lib.sh

apt_need nodejs node
apt_need npm npm

lock=tools/package-lock.json
stamp=tools/node_modules/.lbserver-lock.sha256
want=$(sha256sum "$lock" | cut -d' ' -f1)
have=$(cat "$stamp" 2>/dev/null || true)
if [ "$want" = "$have" ] && [ -x tools/node_modules/.bin/pm2 ] &&
  [ -x tools/node_modules/.bin/forever ] && [ -x tools/node_modules/.bin/nodemon ]; then
  exit 0
fi
echo "deps: npm ci --prefix tools (pm2, forever, nodemon)" >&2
npm ci --prefix tools --no-audit --no-fund --loglevel=error >&2
echo "$want" >"$stamp"
