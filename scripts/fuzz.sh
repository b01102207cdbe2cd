#!/usr/bin/env bash
# make fuzz: run every fuzz target of the module for FUZZTIME each (default 30s).
# New interesting inputs land in the package's testdata/fuzz/ and become seeds that
# `make test` replays.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-30s}
for pkg in $(go list ./...); do
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "== $pkg $target ($FUZZTIME)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
	done
done
