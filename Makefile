# consensusbench: see README.md. `make` alone prints this menu.
.DEFAULT_GOAL := help
SHELL := /bin/bash

FUZZTIME ?= 30s
SEEDS ?= 5000
COUNT ?= 10
# make run / run-pbft: measured seconds, WAL sync policy, and the load. Closed loop (each of
# 32 clients keeps 2 batches of 16 ops in flight) finds the cluster's throughput on any
# machine; for latency at a fixed rate use RUN_LOAD="--mode open --rate 50000". A client never
# keeps more than kv.SessionWindow (1024) ops outstanding: the store remembers that many
# sequence numbers per client, which is what makes retried writes exactly-once.
DURATION ?= 20s
SYNC ?= none
RUN_LOAD ?= --mode closed --clients 32 --pipeline 2 --batch 16

.PHONY: help test lint bench fuzz compare sim build run run-pbft ab build-peers run-etcd

help: ## print this menu
	@echo "consensusbench targets:"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-zA-Z_-]+):.*## (.*)/  make \1\t\2/' | expand -t 24

build: ## build bin/node and bin/loadgen
	go build -buildvcs=auto -o bin/ ./cmd/node ./cmd/loadgen

run: build ## local 3-node Raft cluster + loadgen for DURATION (default 20s); result under results/runs/
	bin/loadgen --local 3 --protocol raft --sync $(SYNC) --duration $(DURATION) $(RUN_LOAD)

run-pbft: build ## the same with 4 local PBFT replicas
	bin/loadgen --local 4 --protocol pbft --sync $(SYNC) --duration $(DURATION) $(RUN_LOAD)

# Peer systems live in the nested module peers/ (etcd's server and client are large; the core
# module never depends on them). Its loadgen is this loadgen with --system etcd registered.
build-peers: ## build bin/loadgen-peers (loadgen + --system etcd) and bin/etcd-member from peers/ (first build ~1 min on 2 cores)
	cd peers && go build -buildvcs=auto -o ../bin/etcd-member ./cmd/etcd-member
	cd peers && go build -buildvcs=auto -o ../bin/loadgen-peers ./cmd/loadgen

run-etcd: build-peers ## local 3-member etcd v3.7.3 cluster + the same load as make run (etcd always fsyncs)
	bin/loadgen-peers --system etcd --local 3 --duration $(DURATION) $(RUN_LOAD)

# make ab OLD=HEAD~1 NEW=. : the two revisions run alternately (AB_ROUNDS rounds, each side on a
# fresh local cluster) with AB_RUN as the run flags; every figure old vs new with its CI and p.
AB_ROUNDS ?= 10
AB_RUN ?= --local 3 --sync $(SYNC) --duration 10s --warmup 2s $(RUN_LOAD)
AB_ARGS ?=
ab: build ## A/B of two revisions, interleaved: OLD=<rev> NEW=<rev or .> (AB_ROUNDS=10, AB_RUN=run flags, AB_ARGS=ab flags)
	@test -n "$(OLD)" -a -n "$(NEW)" || { echo "usage: make ab OLD=<rev> NEW=<rev, or . for the working tree> [AB_ROUNDS=10] [AB_RUN='run flags']"; exit 2; }
	bin/loadgen ab --rounds $(AB_ROUNDS) $(AB_ARGS) $(OLD) $(NEW) -- $(AB_RUN)

test: ## gofmt + go vet + staticcheck + all tests (race where it fits) + fuzz seed corpora, then peers/ the same
	@scripts/test.sh

lint: ## gofmt + go vet + staticcheck only (the core module, then peers/)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...
	go tool staticcheck ./...
	cd peers && go vet ./... && go tool staticcheck ./...

bench: ## micro-benchmarks -count $(COUNT) into results/bench/ (PKG=./wire/ BENCH=Append to narrow)
	@COUNT=$(COUNT) scripts/bench.sh

fuzz: ## run every fuzz target for FUZZTIME each (default 30s)
	@FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

compare: ## benchstat OLD=<file> NEW=<file>
	@test -n "$(OLD)" -a -n "$(NEW)" || { echo "usage: make compare OLD=results/bench/a.txt NEW=results/bench/b.txt"; exit 2; }
	go tool benchstat $(OLD) $(NEW)

sim: ## long simulator campaign: SEEDS=N seeds per protocol (default 5000)
	go test ./sim/ -run 'Seeds' -timeout 0 -v -seeds=$(SEEDS)

# make netns-bench (root): NETNS_ARGS passes flags to bin/netns-bench, e.g.
# NETNS_ARGS="--nodes 5 --link-rate 10gbit --nemesis kill-leader@5s,restart@10s --check-durability".
NETNS_ARGS ?=
.PHONY: netns-bench
netns-bench: ## (root) benchmark under faults, one network namespace per node (NETNS_ARGS=...); see docs/FAULTS.md
	go build -o bin/ ./cmd/node ./bench/netns/cmd/netns-bench
	bin/netns-bench $(NETNS_ARGS)
