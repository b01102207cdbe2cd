# consensusbench: see README.md. `make` alone prints this menu.
.DEFAULT_GOAL := help
SHELL := /bin/bash

FUZZTIME ?= 30s
SEEDS ?= 5000
COUNT ?= 10

.PHONY: help test lint bench fuzz compare sim

help: ## print this menu
	@echo "consensusbench targets:"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-zA-Z_-]+):.*## (.*)/  make \1\t\2/' | expand -t 24

test: ## gofmt + go vet + staticcheck + all tests (race where it fits) + fuzz seed corpora
	@scripts/test.sh

lint: ## gofmt + go vet + staticcheck only
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...
	go tool staticcheck ./...

bench: ## micro-benchmarks -count $(COUNT) into results/bench/ (PKG=./wire/ BENCH=Append to narrow)
	@COUNT=$(COUNT) scripts/bench.sh

fuzz: ## run every fuzz target for FUZZTIME each (default 30s)
	@FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

compare: ## benchstat OLD=<file> NEW=<file>
	@test -n "$(OLD)" -a -n "$(NEW)" || { echo "usage: make compare OLD=results/bench/a.txt NEW=results/bench/b.txt"; exit 2; }
	go tool benchstat $(OLD) $(NEW)

sim: ## long simulator campaign: SEEDS=N seeds per protocol (default 5000)
	go test ./sim/ -run 'Seeds' -timeout 0 -v -seeds=$(SEEDS)
