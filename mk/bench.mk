# make bench: measure FORK, CLUSTER and the nginx topologies (cmd/lbbench).

bench: export BENCH_OUT := $(BENCH_OUT)

.PHONY: bench

## bench: measure every configuration, write docs/BENCHMARKS.md + docs/benchmarks.svg (BENCH_QUICK=1: under a minute)
bench: build
	bash scripts/deps.d/30-wrk.sh
	$(GO) build -o bin/lbbench ./cmd/lbbench
	./bin/lbbench -bin "$$BIN" -out "$$BENCH_OUT" $(if $(filter-out 0,$(BENCH_QUICK)),-quick)
