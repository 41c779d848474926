# ayz-auth for Go. `make run` starts the demo, `make test` runs every test.
GO       ?= go
PKGS     := ./... $(patsubst %,./%,$(wildcard _examples/*/))
BENCHTIME ?= 1s
COUNT    ?= 6

.PHONY: run test vet cover bench fmt fuzz soak

## run: the example server; with no STYTCH_PROJECT_ID it embeds the Stytch emulator
run:
	$(GO) run ./_examples/basic

## test: vet, then race tests of everything (examples included)
test: vet
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

vet:
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt: files above need formatting"; exit 1)
	$(GO) vet $(PKGS)

## cover: test coverage per package, and an HTML report in coverage.html
cover:
	$(GO) test -count=1 -coverprofile=coverage.out -covermode=atomic ./...
	$(GO) tool cover -func=coverage.out | tail -1
	$(GO) tool cover -html=coverage.out -o coverage.html

## bench: the benchmarks, several counts
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) -count=$(COUNT) ./...

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
