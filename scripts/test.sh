#!/usr/bin/env bash
# The suite's test gate (make test): formatting, vet, staticcheck, then every package's tests.
# Packages whose tests fit the time budget under the race detector run with -race; the
# simulator-heavy ones (many seeds) run without it. Fuzz targets run their committed seed
# corpora as part of `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go') 2>&1 || true)
if [ -n "$unformatted" ]; then
	printf 'gofmt would change:\n%s\n' "$unformatted"
	exit 1
fi

step "go vet"
go vet ./...

step "staticcheck"
go tool staticcheck ./...

pkgs=$(go list ./...)
# Packages that run under -race. Keep the simulator and the cores' long seed campaigns out:
# they are single-goroutine by design and race mode would multiply their run time.
race_re='/(internal|wire|storage|kv|transport|server|client|bench)(/|$)'
race_pkgs=$(printf '%s\n' "$pkgs" | grep -E "$race_re" || true)
plain_pkgs=$(printf '%s\n' "$pkgs" | grep -vE "$race_re" || true)

if [ -n "$race_pkgs" ]; then
	step "go test -race ($(printf '%s\n' "$race_pkgs" | wc -l) packages)"
	# shellcheck disable=SC2086
	go test -race -timeout 12m $race_pkgs
fi
if [ -n "$plain_pkgs" ]; then
	step "go test ($(printf '%s\n' "$plain_pkgs" | wc -l) packages)"
	# shellcheck disable=SC2086
	go test -timeout 12m $plain_pkgs
fi

# The peers module (peers/): etcd's server and client, kept out of the core module. Its tests
# start real 3-member etcd clusters for a few seconds each (a run, a fault run with both
# verdicts). The first build of etcd costs minutes on a cold build cache.
step "dependency hygiene: the core module does not require etcd's server or client"
if grep -qE 'go\.etcd\.io/etcd/(server|client)' go.mod; then
	echo "go.mod requires go.etcd.io/etcd/server or client: those belong in peers/go.mod"
	exit 1
fi
step "peers: go vet"
(cd peers && go vet ./...)
step "peers: staticcheck"
(cd peers && go tool staticcheck ./...)
step "peers: go test -race"
(cd peers && go test -race -timeout 10m ./...)
step "make test: all steps passed"
