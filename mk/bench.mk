# make bench: measure FORK, CLUSTER and the nginx topologies (cmd/lbbench).

bench: export BENCH_OUT := $(BENCH_OUT)

.PHONY: bench

## bench: measure every configuration, write docs/BENCHMARKS.md + docs/benchmarks.svg (BENCH_QUICK=1: under a minute)
bench: build
	bash scripts/deps.d/30-wrk.sh
	$(GO) build -o bin/lbbench ./cmd/lbbench
	$(MAKE) --no-print-directory bench-peers
	./bin/lbbench -bin "$$BIN" -out "$$BENCH_OUT" -peers bin/peers $(if $(filter-out 0,$(BENCH_QUICK)),-quick)

# The peers examples/hello is measured against, each built from its own
# module in bench/peers (pinned by its go.sum; lbserver's module does not
# depend on them). Node's cluster (bench/peers/node-cluster) needs no build.
.PHONY: bench-peers
bench-peers:
	$(GO) build -o bin/peers/hello ./examples/hello
	cd bench/peers/fasthttp && $(GO) build -o ../../../bin/peers/fasthttp .
	cd bench/peers/nethttp && $(GO) build -o ../../../bin/peers/nethttp .
