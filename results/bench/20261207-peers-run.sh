#!/usr/bin/env bash
# How 20261207-raftpeers-depth$TAG.txt, 20261207-raftpeers-base$TAG.txt and
# 20261207-wirebench-semantics$TAG.txt were produced (run from the repository root, nothing else
# of ours running). The test binaries are built once; every round runs each configuration
# once (-test.count 1), so the implementations, depths and the two raftpeers binaries
# alternate in time and share the machine's drift. The load average is written before each
# run as a '#' comment line, which benchstat ignores.
#   ROUNDS      rounds (default 8)
#   BASE_REV    revision whose BenchmarkCommit (depth 1 only) is re-run beside ours (3661c9a)
#   DATE        file name prefix (default today, UTC)
#   TAG         file name suffix (-loaded, -quiet)
set -euo pipefail
ROUNDS=${ROUNDS:-8}
BASE_REV=${BASE_REV:-3661c9a}
DATE=${DATE:-$(date -u +%Y%m%d)}
TAG=${TAG:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

commit=$(git rev-parse --short=12 HEAD)
go test -c -o "$tmp/rp.test" ./bench/raftpeers/
go test -c -o "$tmp/wb.test" ./bench/wirebench/
mkdir "$tmp/base"
git archive "$BASE_REV" | tar -x -C "$tmp/base"
(cd "$tmp/base" && go test -c -o "$tmp/rp-base.test" ./bench/raftpeers/)

header() { # file, what, cmd
	{
		echo "commit: $commit"
		echo "goos: $(go env GOOS)"
		echo "goarch: $(go env GOARCH)"
		echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
		echo "cores: $(nproc)"
		echo "go: $(go env GOVERSION)"
		echo "# what: $2"
		echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
		echo "# cmd: $3"
		echo "# script: results/bench/$DATE-peers-run.sh (TAG=$TAG ROUNDS=$ROUNDS BASE_REV=$BASE_REV)"
	} >"$1"
}
load() { echo "# $(date -u +%H:%M:%S) load average: $(cut -d' ' -f1-3 /proc/loadavg) ($1)"; }

rp=results/bench/$DATE-raftpeers-depth$TAG.txt
rpbase=results/bench/$DATE-raftpeers-base$TAG.txt
wb=results/bench/$DATE-wirebench-semantics$TAG.txt
header "$rp" "bench/raftpeers BenchmarkCommit at depth 1, 8, 32, interleaved per batch/size with $rpbase" \
	"rp.test -test.run '^\$' -test.bench 'Commit/./^batch=B\$/^size=S\$/' -test.benchmem -test.count 1, for each round, batch B in 1 16 256, size S in 16 128"
header "$rpbase" "bench/raftpeers BenchmarkCommit of $BASE_REV (before the depth dimension; same names without /depth=1), interleaved with $rp" \
	"rp-base.test (built from git archive $BASE_REV) -test.run '^\$' -test.bench 'Commit/./^batch=B\$/^size=S\$' -test.benchmem -test.count 1"
sed -i "s/^commit: .*/commit: $(git rev-parse --short=12 "$BASE_REV")/" "$rpbase"
header "$wb" "bench/wirebench, all benchmarks, interleaved rounds" \
	"wb.test -test.run '^\$' -test.bench . -test.benchmem -test.benchtime 200ms -test.count 1, once per round"

strip() { grep -E '^Benchmark' || true; }
for r in $(seq "$ROUNDS"); do
	for B in 1 16 256; do
		for S in 16 128; do
			new() { load "round $r" >>"$rp"; "$tmp/rp.test" -test.run '^$' -test.bench "Commit/./^batch=$B\$/^size=$S\$/" -test.benchmem -test.count 1 | strip >>"$rp"; }
			old() { load "round $r" >>"$rpbase"; "$tmp/rp-base.test" -test.run '^$' -test.bench "Commit/./^batch=$B\$/^size=$S\$" -test.benchmem -test.count 1 | strip >>"$rpbase"; }
			if ((r % 2)); then new; old; else old; new; fi
		done
	done
	load "round $r" >>"$wb"
	"$tmp/wb.test" -test.run '^$' -test.bench . -test.benchmem -test.benchtime 200ms -test.count 1 | strip >>"$wb"
	echo "round $r done $(date -u +%T)"
done
