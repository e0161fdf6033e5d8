# Fuzzing (issue 6). The committed corpus under */testdata/fuzz/ also runs as
# plain tests in `go test ./...`; `make fuzz` explores further for a while.

fuzz: export FUZZTIME := $(FUZZTIME)

.PHONY: fuzz

## fuzz: run each fuzzer for FUZZTIME (default 10s): FuzzParseCant, FuzzParse, FuzzReport, FuzzLifeline
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseCant$$' -fuzztime "$$FUZZTIME" ./internal/server/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime "$$FUZZTIME" ./internal/config/
	$(GO) test -run '^$$' -fuzz '^FuzzReport$$' -fuzztime "$$FUZZTIME" ./cluster/
	$(GO) test -run '^$$' -fuzz '^FuzzLifeline$$' -fuzztime "$$FUZZTIME" ./cluster/
