# A lab of four lbserver hosts behind nginx on this machine, each host in a
# network namespace of its own (scripts/lab.sh; docs/LAB.md). Needs root.
# LAB_PREFIX (default lbl-) names the namespaces and links; LAB_NET (default
# 10.213) is the private /16 they use; LAB_RUN_DIR (default run/lab) holds
# logs, pid files and nginx's prefix.
# LAB_BALANCER=haproxy puts HAProxy in front instead of nginx (active checks
# on each host's /readyz); it reaches lab.sh through the environment only,
# and lab.sh accepts nginx or haproxy.
LAB = LBSERVER_BIN="$$BIN" scripts/lab.sh
export LAB_BALANCER

lab-fail lab-heal lab-kill: export HOST := $(HOST)

.PHONY: lab lab-status lab-down lab-fail lab-heal lab-kill lab-reload lab-screenshot

## lab: build, then nginx + four CLUSTER hosts in network namespaces (root); prints the URL to open
##      (LAB_BALANCER=haproxy: HAProxy instead of nginx)
lab: build
	@$(LAB) up

## lab-status: the lab's hosts, addresses, links, pids and health
lab-status:
	@$(LAB) status

## lab-down: stop every lab process, remove every lab namespace and link
lab-down:
	@$(LAB) down

## lab-fail HOST=N: take host N (1-4) off the network (its link down)
lab-fail:
	@$(LAB) fail "$$HOST"

## lab-heal HOST=N: bring host N back (link up; starts its lbserver if it was killed)
lab-heal:
	@$(LAB) heal "$$HOST"

## lab-kill HOST=N: SIGKILL host N's whole lbserver (master and workers)
lab-kill:
	@$(LAB) kill "$$HOST"

## lab-reload: SIGHUP each host's master in turn, waiting for its new workers
lab-reload:
	@$(LAB) reload

## lab-screenshot: docs/img/lab-balance.png, the balance page with a failed host (root, headless Chromium)
lab-screenshot:
	bash scripts/deps.d/40-chromium.sh
	LBSERVER_DOC_IMAGES=1 $(GO) test -count=1 -timeout 5m -run '^TestNginxLabBrowserBalance$$' ./e2e/
	@ls -l docs/img/lab-balance.png
