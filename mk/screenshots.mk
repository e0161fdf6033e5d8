# Screenshots of /info and /balance for the README, taken by the browser tests
# (headless Chromium) against a real CLUSTER server started from bin/lbserver.
# As root they run in a network namespace of their own (unshare -n), so the
# server can use port 8080 without colliding with anything.

screenshots: export PORT := $(PORT)

.PHONY: screenshots

SHOT_TESTS := ^(TestBrowserInfoShowsProcessorCount|TestBrowserBalanceClusterMatchesServer)$$

## screenshots: regenerate docs/img/info.png and docs/img/balance.png (headless Chromium)
screenshots: build
	bash scripts/deps.d/40-chromium.sh
	@if [ "$$(id -u)" = 0 ] && command -v unshare >/dev/null; then \
		unshare -n bash -c 'set -euo pipefail; ip link set lo up; \
			LBSERVER_BIN="$$PWD/$$BIN" LBSERVER_E2E_PORT="$$PORT" LBSERVER_DOC_IMAGES=1 \
			$(GO) test -count=1 -timeout 5m -run "$(SHOT_TESTS)" ./e2e/'; \
	else \
		LBSERVER_BIN="$$PWD/$$BIN" LBSERVER_DOC_IMAGES=1 \
		$(GO) test -count=1 -timeout 5m -run "$(SHOT_TESTS)" ./e2e/; \
	fi
	@ls -l docs/img/info.png docs/img/balance.png
