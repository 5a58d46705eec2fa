# replichat. `make run` starts a local cluster with its data under ./data; `make test` runs every test.
GO        ?= go
BIN       := bin
REPLICAS  ?= 3
FUZZTIME  ?= 3s
PKGS      := ./...

.PHONY: all build run test unit fuzz fuzz-long sim bench gobench vet fmt-check clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# Starts a local cluster of $(REPLICAS) chatd processes on 127.0.0.1:7100.. with data under ./data.
# Ctrl-C stops them all.
run: build
	REPLICAS=$(REPLICAS) ./scripts/run-cluster.sh

# Everything CI runs: static checks, all tests under the race detector (unit, property, simulation,
# real-process end-to-end), and a short pass of every fuzz target over its checked-in corpus.
test: vet fmt-check build
	$(GO) test -race -count=1 -timeout 12m $(PKGS)
	$(MAKE) fuzz FUZZTIME=$(FUZZTIME)

unit:
	$(GO) test -count=1 $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Runs each fuzz target for FUZZTIME (make fuzz FUZZTIME=5m for a long run).
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

fuzz-long:
	./scripts/fuzz.sh 2m

# The long deterministic simulation of the replication core (SEEDS seeds of STEPS ticks per
# network model; a failure prints the command that replays its seed).
SEEDS ?= 5000
STEPS ?= 2000
sim:
	$(GO) test -count=1 -timeout 90m ./replica/ -run 'TestSim' -seeds=$(SEEDS) -steps=$(STEPS)

# The cluster benchmark harness in its quick form (under a minute): real chatd processes, a table
# of throughput, latency, replication lag, fsync, failover, catch-up and restart.
bench: build
	$(BIN)/chatbench --quick

# Go benchmarks of the hot paths (log append and group commit, apply, codecs, the replication
# core, start-up on 1M-event logs). Takes several minutes: the 1M-event logs are built first.
gobench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./eventlog/ ./chat/... ./replica/... ./bench/

clean:
	rm -rf $(BIN)
