#!/usr/bin/env bash
# What peer authentication costs in throughput: a local 3-node Raft cluster run with its
# default random cluster secret and with --insecure-peers, in interleaved rounds (so both
# sides see the same machine), then loadgen compare across the two sets.
#
#   scripts/peer-auth-cost.sh [ROUNDS] [OUTDIR]
set -euo pipefail
rounds=${1:-5}
out=${2:-results/bench/peer-auth}
mkdir -p "$out"
make -s build >/dev/null
load=(--local 3 --protocol raft --sync none --mode closed --clients 32 --pipeline 2 --batch 16 --duration 10s --warmup 2s)
for i in $(seq 1 "$rounds"); do
	echo "round $i: load average $(cut -d' ' -f1-3 /proc/loadavg)"
	bin/loadgen "${load[@]}" --out "$out/secret-$i" >/dev/null
	bin/loadgen "${load[@]}" --insecure-peers --out "$out/none-$i" >/dev/null
done
bin/loadgen compare "$out"/none-*.txt -- "$out"/secret-*.txt | tee "$out/compare.txt"
