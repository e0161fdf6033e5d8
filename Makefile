# lbserver — build, run, test. `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   := bin/lbserver
PORT  ?= 8080
MODE  ?= FORK
# Extra go test flags, e.g. make test TESTFLAGS='-run Cluster -v'.
TESTFLAGS ?=

.PHONY: all build run test deps vet fmt-check unit e2e help clean

all: build

## build: compile bin/lbserver (embeds the templates and the page assets)
build:
	$(GO) build -o $(BIN) ./cmd/lbserver

## run: build and start the main job (PORT=8080 MODE=FORK by default)
run: build
	./$(BIN) --port $(PORT) --mode $(MODE)

## deps: install what the tests need when it is missing (apt-get, npm ci)
deps:
	scripts/deps.sh

## test: set up what is missing, gofmt, go vet, the unit tests (-race), then the e2e tests alone
##       (-race; nothing CPU-heavy beside them), a brief fuzz run, and one line counting skipped tests
test: deps fmt-check vet
	@mkdir -p run && rm -f run/skipped.txt run/test-failed && $(GO) build -o run/testsummary ./cmd/testsummary
	@set -o pipefail; $(GO) test -json -race -count=1 -timeout 20m $(TESTFLAGS) $$($(GO) list ./... | grep -v /e2e) \
		| run/testsummary -record run/skipped.txt || touch run/test-failed
	@set -o pipefail; $(GO) test -json -race -count=1 -timeout 40m $(TESTFLAGS) ./e2e/ \
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
	$(GO) test -count=1 -timeout 40m $(TESTFLAGS) ./e2e/

## clean: remove build output and run/
clean:
	rm -rf bin run

help:
	@grep -hE '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'

# Each feature adds its own targets in mk/*.mk (stack-a, bench, ...).
-include mk/*.mk
