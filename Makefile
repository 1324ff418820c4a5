# Switchboard's developer commands. `make run` and `make test` are the two a
# newcomer needs; .ci/run calls `make test`, so CI runs what you run.

# Go from PATH, else where the project's machines keep it. The test suite
# itself runs `go build` (the restart tests start the real binary), so that
# directory is also put first on PATH for every recipe.
ifeq ($(origin GO),undefined)
GO := $(or $(shell command -v go 2>/dev/null),/usr/local/go/bin/go)
endif
ifeq ($(wildcard $(GO)),)
$(error Go not found on PATH nor at /usr/local/go/bin/go: install Go 1.26 or set GO=/path/to/go)
endif
export PATH := $(patsubst %/,%,$(dir $(GO))):$(PATH)

# Go needs a home for its module and build caches; CI's environment may lack one.
ifeq ($(strip $(HOME)),)
export HOME := $(shell getent passwd "$$(id -u)" | cut -d: -f6)
endif

# Debian packages the end-to-end tests drive: real SIP peers (sipp from
# sip-tester, with its pcaps; baresip, a softphone), the SIP scanners
# attackers run (sipvicious: svmap, svwar, svcrack), and the websockets
# package the system python3 runs docs/media-socket.md's Python echo with,
# and kamailio, the SIP front of several nodes (internal/cluster's test and
# make cluster run deploy/kamailio/kamailio.cfg).
TEST_DEBS := sip-tester baresip sipvicious python3-websockets chromium kamailio

RUN_ARGS ?=

.PHONY: help run cluster test test-callctl test-msgraph fuzz deps build bench bench-ivr bench-peers soak fmt lint

## help: list the targets (the default)
help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)

## run: build and run a dev node (demo tenant, simulated users, a bot); data in ./data-dev
run: build
	./bin/switchboard serve --dev $(RUN_ARGS)

## cluster: three NATS servers (one JetStream cluster), three nodes and Kamailio in front, on loopback; prints where to point a bot and a phone; Ctrl-C stops it all (docs/deploy.md)
cluster: build bin/nats-server
	@bash scripts/test-deps.sh kamailio
	./bin/switchboard cluster --nodes 3 $(CLUSTER_ARGS)

# nats-server at the version go.mod pins (Debian's 2.9 is too old for the
# store's JetStream features), built from its module.
bin/nats-server: go.mod go.sum
	$(GO) build -o bin/nats-server github.com/nats-io/nats-server/v2

## test: every test: install missing test peers (as root), go vet, go test -race, the call state machine again many times, then test-msgraph
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) --no-print-directory test-callctl GO='$(GO)'
	$(MAKE) --no-print-directory test-msgraph GO='$(GO)'

## test-callctl: the call state-machine table and the call-control races, 20 times under -race (races show up across runs)
test-callctl:
	$(GO) test -race -count=20 -timeout 10m -run 'TestStateMachineTable|TestCommandsRacing|TestRecordingBeing|TestTerminatedIsQueued|TestRestartQueues' ./internal/callctl/

## test-msgraph: only the msgraph-sdk-go compatibility suite (compat/msgraph, its own module): go vet, go test
# Without -race: the suite's code is small and the server it drives is a
# separate process (raced in the main module's tests), while instrumenting
# msgraph-sdk-go would make its already multi-minute, multi-GB compile
# several times costlier. See docs/msgraph-compat.md.
test-msgraph:
	cd compat/msgraph && $(GO) vet ./...
	cd compat/msgraph && $(GO) test -count=1 -timeout 20m ./...

FUZZTIME ?= 30s
FUZZFLAGS ?= -fuzzminimizetime 2s

## fuzz: run every fuzz target for FUZZTIME each (default 30s), one after the other; a crasher lands in the package's testdata/fuzz (scripts/fuzz.sh, docs/reliability.md)
fuzz:
	GO='$(GO)' FUZZTIME='$(FUZZTIME)' FUZZFLAGS='$(FUZZFLAGS)' bash scripts/fuzz.sh

## deps: install the Debian packages in TEST_DEBS that are missing
deps:
	@bash scripts/test-deps.sh $(TEST_DEBS)

## build: bin/switchboard
build:
	$(GO) build -o bin/switchboard ./cmd/switchboard

## bench: run every benchmark once (no tests), with allocations
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## bench-ivr: end-to-end IVR benchmark (SIPp → SIP edge → bot over Graph → media; needs sip-tester); see docs/benchmarks.md
bench-ivr: deps
	bash scripts/bench-ivr.sh $(BENCH_OUT)

## bench-peers: the peers' IVR load against diago (../shared/bench/diago-ivr), then Switchboard, in one run, with the ratios (CALLS=200 for a quick check; as root); see docs/benchmarks.md
bench-peers: deps
	$(GO) run ./cmd/sbbench peers -calls $(or $(CALLS),1000) $(if $(BENCH_OUT),-out $(BENCH_OUT))

# make soak: the IVR load held for SOAK_FOR at SOAK_CALLS concurrent calls
# (700: 70 % of the 1,000 calls docs/benchmarks.md measured on the 2-core
# benchmark VM), calls replaced as they end; fails if goroutines, RSS, open
# files, RTP ports, JetStream storage or the outbox grow, or calls fail.
# Too long for make test: its judgement is unit-tested there instead.
SOAK_FOR ?= 1h
SOAK_CALLS ?= 700

## soak: the IVR load at SOAK_CALLS (default 700, 70 % of capacity) for SOAK_FOR (default 1h); fails if anything grows or calls fail (needs sip-tester, as root); see docs/reliability.md
soak: deps
	$(GO) run ./cmd/sbbench soak -calls $(SOAK_CALLS) -for $(SOAK_FOR) $(if $(BENCH_OUT),-out $(BENCH_OUT))

## fmt: rewrite Go files in place with gofmt
fmt:
	$(GO) fmt ./...

## lint: fail if any file needs gofmt, then go vet
lint:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt would change these files (run make fmt):"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
