# lbserver — build, run, test. `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   := bin/lbserver
PORT  ?= 8080
MODE  ?= FORK
# Extra go test flags, e.g. make test TESTFLAGS='-run Cluster -v' (split at
# spaces; quotes in the value are not shell quotes).
TESTFLAGS ?=
# Defaults of the variables the mk/*.mk files take from the user.
HOST ?=
RUN_DIR ?= run
NGINX_PORT ?=
DEMO_REQUESTS ?= 400
BENCH_OUT ?= docs
BENCH_QUICK ?=
FUZZTIME ?= 10s
FOREVER_TIMEOUT ?= 30
BALANCER ?= nginx
BALANCER_PORT ?=
LAB_BALANCER ?= nginx

# A value given to make (make run PORT=8081, make lab-fail HOST=2) is data,
# never code: each of these variables is made to hold its text as given
# (make does not evaluate a $(...) in it), the ones with a known form are
# checked below before any recipe runs, and recipes read them from the
# environment ("$$PORT"), never pasted into a shell command line: the
# targets that use one export it (target: export NAME := $(NAME)). GO is a
# command by design (make GO=go1.26.0) and is not among them.
USER_VARS := PORT MODE HOST BIN TESTFLAGS RUN_DIR NGINX_PORT DEMO_REQUESTS BENCH_OUT BENCH_QUICK FUZZTIME FOREVER_TIMEOUT BALANCER BALANCER_PORT LAB_BALANCER
$(foreach v,$(USER_VARS),$(eval override $(v) := $$(value $(v))))
export BIN

, := ,
# no-digits TEXT: TEXT without its digits.
no-digits = $(strip $(subst 0,,$(subst 1,,$(subst 2,,$(subst 3,,$(subst 4,,$(subst 5,,$(subst 6,,$(subst 7,,$(subst 8,,$(subst 9,,$(1))))))))))))
# check-number NAME: stop unless NAME is empty or one decimal number.
check-number = $(if $($(1)),$(if $(and $(filter 1,$(words $($(1)))),$(if $(call no-digits,$($(1))),,ok)),,$(error $(1) must be a number, got '$($(1))')))
# check-one-of NAME,VALUES,SHOWN: stop unless NAME is one of VALUES.
check-one-of = $(if $(and $(filter 1,$(words $($(1)))),$(filter $(2),$($(1)))),,$(error unknown $(1) '$($(1))': valid values are $(3)))
$(call check-number,PORT)
$(call check-number,NGINX_PORT)
$(call check-number,DEMO_REQUESTS)
$(call check-number,FOREVER_TIMEOUT)
$(call check-number,BALANCER_PORT)
$(call check-one-of,BALANCER,nginx haproxy,nginx$(,) haproxy)
$(call check-one-of,LAB_BALANCER,nginx haproxy,nginx$(,) haproxy)
$(call check-one-of,MODE,FORK CLUSTER fork cluster Fork Cluster,FORK$(,) CLUSTER (any case))
$(if $(HOST),$(call check-one-of,HOST,1 2 3 4,1$(,) 2$(,) 3$(,) 4 (e.g. make lab-fail HOST=2)))

.PHONY: all build run test deps vet fmt-check unit e2e help clean

all: build

## build: compile bin/lbserver (embeds the templates and the page assets)
build:
	$(GO) build -o "$$BIN" ./cmd/lbserver

run: export PORT := $(PORT)
run: export MODE := $(MODE)
test e2e: export TESTFLAGS := $(TESTFLAGS)

## run: build and start the main job (PORT=8080 MODE=FORK by default)
run: build
	"./$$BIN" --port "$$PORT" --mode "$$MODE"

## deps: install what the tests need when it is missing (apt-get, npm ci)
deps:
	scripts/deps.sh

## test: set up what is missing, gofmt, go vet, the unit tests (-race), then the e2e tests alone
##       (-race; nothing CPU-heavy beside them), a brief fuzz run, and one line counting skipped tests
test: deps fmt-check vet
	@mkdir -p run && rm -f run/skipped.txt run/test-failed && $(GO) build -o run/testsummary ./cmd/testsummary
	@set -o pipefail -o noglob; $(GO) test -json -race -count=1 -timeout 20m $$TESTFLAGS $$($(GO) list ./... | grep -v /e2e) \
		| run/testsummary -record run/skipped.txt || touch run/test-failed
	@set -o pipefail -o noglob; $(GO) test -json -race -count=1 -timeout 40m $$TESTFLAGS ./e2e/ \
		| run/testsummary -record run/skipped.txt || touch run/test-failed
	@[ -e run/test-failed ] || $(MAKE) --no-print-directory fuzz FUZZTIME=5s || touch run/test-failed
	@run/testsummary -report run/skipped.txt; [ ! -e run/test-failed ]

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi

## vet: go vet, and the builds for macOS and Windows (the cluster package serves in-process there)
vet:
	$(GO) vet ./...
	GOOS=darwin $(GO) build ./...
	GOOS=windows $(GO) build ./...

## unit: the fast tests only (no e2e)
unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)

## e2e: the end-to-end tests only
e2e:
	set -o noglob; $(GO) test -count=1 -timeout 40m $$TESTFLAGS ./e2e/

## clean: remove build output and run/
clean:
	rm -rf bin run

help:
	@grep -hE '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'

# Each feature adds its own targets in mk/*.mk (stack-a, bench, ...).
-include mk/*.mk
