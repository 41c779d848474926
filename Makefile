# ayz-auth for Go. `make run` starts the demo, `make test` runs every test.
GO       ?= go
# Examples with their own go.mod (_examples/observability) are modules of their own: tested by `make test` in their directory.
MODULE_EXAMPLES := $(dir $(wildcard _examples/*/go.mod))
PKGS     := ./... $(patsubst %,./%,$(filter-out $(MODULE_EXAMPLES),$(wildcard _examples/*/)))
BENCHTIME ?= 1s
COUNT    ?= 6

.PHONY: run test vet cover bench load fmt fuzz soak

## run: the example server; with no STYTCH_PROJECT_ID it embeds the Stytch emulator
run:
	$(GO) run ./_examples/basic

## test: vet, then race tests of everything (examples included, the observability example in its own module)
test: vet
	$(GO) test -race -count=1 -timeout 15m $(PKGS)
	# allocation checks are skipped under -race (sync.Pool drops items there): run them plainly
	$(GO) test -count=1 -run 'Alloc|HotPath' ./cache/... ./echostytch/
	cd _examples/observability && $(GO) vet ./... && $(GO) test -race -count=1 ./...

vet:
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt: files above need formatting"; exit 1)
	$(GO) vet $(PKGS)

## cover: test coverage per package, and an HTML report in coverage.html
cover:
	$(GO) test -count=1 -coverprofile=coverage.out -covermode=atomic ./...
	$(GO) tool cover -func=coverage.out | tail -1
	$(GO) tool cover -html=coverage.out -o coverage.html

## bench: every request path through Echo (BenchmarkPaths) in COUNT interleaved rounds, summarised by
## benchstat and internal/cmd/benchreport (added cost, ratios, targets); memory per cached session.
## Outputs in $(BENCH_DIR). BENCH_MILLION=1 adds the one-million-session run (~3.5 GB of heap, ~1 min).
BIN        := $(CURDIR)/bin
BENCH_DIR  ?= $(BIN)/bench
BENCHSTAT  := $(BIN)/benchstat
BENCHSTAT_VERSION := v0.0.0-20260908200009-22c9c6c9d4da
BENCH_MILLION ?=
$(BENCHSTAT):
	GOBIN=$(BIN) $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)
bench: $(BENCHSTAT)
	@mkdir -p $(BENCH_DIR)
	$(GO) test -c -o $(BENCH_DIR)/echostytch.test ./echostytch/
	$(GO) test -c -o $(BENCH_DIR)/cache.test ./cache/
	@echo "machine: $$(nproc) CPUs,$$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $$(go version | cut -d' ' -f3)" | tee $(BENCH_DIR)/machine.txt
	@rm -f $(BENCH_DIR)/paths.txt
	@set -e; for i in $$(seq $(COUNT)); do echo "== BenchmarkPaths round $$i/$(COUNT)"; \
		(cd echostytch && $(BENCH_DIR)/echostytch.test -test.run='^$$' -test.bench='^BenchmarkPaths$$' \
			-test.benchmem -test.benchtime=$(BENCHTIME)) > $(BENCH_DIR)/round.txt || { cat $(BENCH_DIR)/round.txt; exit 1; }; \
		cat $(BENCH_DIR)/round.txt >> $(BENCH_DIR)/paths.txt; grep '^Benchmark' $(BENCH_DIR)/round.txt; done
	@echo "== memory per cached session"
	(cd cache && $(BENCH_DIR)/cache.test -test.run='^$$' -test.bench='^BenchmarkSessionFootprint$$$(if $(BENCH_MILLION),|^BenchmarkMillionSessions$$)' \
		-test.benchtime=1x -test.timeout=30m) > $(BENCH_DIR)/footprint.txt
	$(BENCHSTAT) $(BENCH_DIR)/paths.txt
	$(GO) run ./internal/cmd/benchreport -csv $(BENCH_DIR)/paths.csv $(BENCH_DIR)/paths.txt $(BENCH_DIR)/footprint.txt

## load: the example server under wrk on loopback, /healthz against /protected per cache backend
## (memory, redis, tiered; Redis is a throwaway redis-server on a free port), alternating rounds;
## then the chart of both runs (internal/cmd/chart) in $(BENCH_DIR)/perf.png
LOAD_ROUNDS   ?= 7
LOAD_DURATION ?= 3s
load:
	@command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	@mkdir -p $(BENCH_DIR)
	$(GO) build -o $(BIN)/basic ./_examples/basic
	$(GO) run ./internal/cmd/loadrun -server $(BIN)/basic -rounds $(LOAD_ROUNDS) -duration $(LOAD_DURATION) -csv $(BENCH_DIR)/load.csv
	@if [ -f $(BENCH_DIR)/paths.csv ]; then cd internal/cmd/chart && $(GO) run . -paths $(BENCH_DIR)/paths.csv \
		-load $(BENCH_DIR)/load.csv -machine "$$(cat $(BENCH_DIR)/machine.txt)" -out $(BENCH_DIR)/perf.png \
		&& echo "chart: $(BENCH_DIR)/perf.png (copy to docs/perf.png to update the README's)"; fi

## fuzz: each fuzz target for FUZZTIME, one after another (their seed corpora run in `make test`)
FUZZTIME ?= 20s
FUZZ_TARGETS := ./echostytch:FuzzRequest ./echostytch:FuzzLoadSettings ./verifier:FuzzClassify \
	./verifier:FuzzSessionFromClaims ./verifier:FuzzVerifyJWT ./cache:FuzzDecode ./verifier/stytchtest:FuzzRequests
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; echo "== $$fn ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

## soak: the example server under mixed load for SOAK_DURATION, Redis restarted midway; prints its figures
SOAK_DURATION ?= 2m
SOAK_TIMEOUT  ?= 2h
soak:
	SOAK_DURATION=$(SOAK_DURATION) $(GO) test -race -count=1 -run='^TestSoak$$' -timeout=$(SOAK_TIMEOUT) -v ./_examples/basic/

## fmt: format the code
fmt:
	gofmt -w .
