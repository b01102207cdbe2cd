#!/usr/bin/env bash
# make bench: run the Go micro-benchmarks and write them, with key: value header lines that
# benchstat understands, to results/bench/<date>-<commit>.txt.
# Variables: PKG (default ./...), BENCH (default .), COUNT (default 10), BENCHTIME (default 1s).
set -euo pipefail
cd "$(dirname "$0")/.."
PKG=${PKG:-./...}
BENCH=${BENCH:-.}
COUNT=${COUNT:-10}
BENCHTIME=${BENCHTIME:-1s}
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
dirty=false
[ -n "$(git status --porcelain 2>/dev/null)" ] && dirty=true
mkdir -p results/bench
out=${OUT:-results/bench/$(date -u +%Y%m%dT%H%M%SZ)-${commit}.txt}
{
	echo "commit: $commit"
	echo "dirty: $dirty"
	echo "goos: $(go env GOOS)"
	echo "goarch: $(go env GOARCH)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "cores: $(nproc)"
	echo "go: $(go env GOVERSION)"
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$out"
# shellcheck disable=SC2086
go test -run '^$' -bench "$BENCH" -benchmem -count "$COUNT" -benchtime "$BENCHTIME" $PKG | tee -a "$out"
echo "wrote $out"
