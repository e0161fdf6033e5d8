#!/usr/bin/env bash
# Headless Chromium for the browser tests (e2e/browser_test.go, driven by chromedp).
set -euo pipefail
# shellcheck source=scripts/deps.d/lib.sh
source "$(dirname "$0")/lib.sh"
apt_need chromium chromium
