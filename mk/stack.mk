# nginx in front of lbserver, one command per topology (scripts/stack.sh;
# docs/COMMANDS.md). RUN_DIR holds logs, pid files and nginx's prefix.
# NGINX_PORT=8088 runs nginx on another port (80 needs root).
# BALANCER=haproxy runs HAProxy in front instead (deploy/haproxy/*.cfg, with
# active checks on /readyz); BALANCER_PORT is the balancer's port for either.
# Both are checked in the Makefile and reach scripts/stack.sh through its
# environment only (never spliced into a command line); stack.sh checks
# them again.
STACK = LBSERVER_BIN="$$BIN" scripts/stack.sh

stack-a stack-b stack-status stack-down demo: export RUN_DIR := $(RUN_DIR)
stack-a stack-b stack-status stack-down demo: export NGINX_PORT := $(NGINX_PORT)
stack-a stack-b stack-status stack-down demo: export BALANCER := $(BALANCER)
stack-a stack-b stack-status stack-down demo: export BALANCER_PORT := $(BALANCER_PORT)
demo: export DEMO_REQUESTS := $(DEMO_REQUESTS)

.PHONY: stack-a stack-b stack-down stack-status demo

## stack-a: build, then nginx :80 -> /api/randoms on CLUSTER :8081, the rest on FORK :8080
##          (BALANCER=haproxy: HAProxy instead, checking each instance's /readyz)
stack-a: build
	$(STACK) up a

## stack-b: build, then nginx :80 -> /api/randoms round robin over :8082-8085, the rest on :8080
stack-b: build
	$(STACK) up b

## stack-status: what the stack runs (pids, workers, URLs)
stack-status:
	$(STACK) status

## stack-down: stop nginx (or HAProxy) and every lbserver the stack started
stack-down:
	$(STACK) down

## demo: topology B, 400 requests to /api/randoms?cant=1000 through nginx, answers per port
demo: build
	$(STACK) up b
	$(STACK) demo "$$DEMO_REQUESTS"
