#!/usr/bin/env bash
# Lease reads under leader stalls (SIGSTOP/SIGCONT): N runs of the same schedule, each with a
# porcupine linearizability check, and a tally of the verdicts. Usage, from the repository
# root after `make build`:
#   results/faults/lease-stall.sh [BIN_DIR] [RUNS]     (default bin, 6)
# BIN_DIR holds loadgen and node (a build of another commit, to compare).
# Why this shape: a read reaches the stalled leader only if a client still believes it leads
# after another client saw a newer write acknowledged elsewhere; with 16 open-loop clients at
# 50 ops/s each client's first request to the stalled leader times out (2 s) at a different
# moment, which leaves such a window in every stall, and the deep pipeline keeps sending.
# Few ops per key keep porcupine's search small enough to finish.
set -uo pipefail
bin=${1:-bin}
runs=${2:-6}
out=$(mktemp -d)
pass=0 fail=0 other=0
for i in $(seq 1 "$runs"); do
  "$bin/loadgen" run --local 3 --raft-reads lease --workload ycsb-a --keys 24 --dist uniform \
    --mode open --rate 50 --clients 16 --pipeline 64 --duration 14s \
    --nemesis pause-leader@3s:3s,pause-leader@9s:3s --check-linearizability --quiet \
    --out "$out/run$i" > "$out/run$i.log" 2>&1
  if grep -q '^linearizable  true' "$out/run$i.log"; then pass=$((pass+1))
  elif grep -q 'NOT linearizable' "$out/run$i.log"; then fail=$((fail+1))
  else other=$((other+1)); fi
  grep -E '^linearizable' "$out/run$i.log" | sed "s/^/run $i: /"
done
echo "lease reads, pause-leader x2 per run: $pass linearizable, $fail NOT linearizable, $other other (logs in $out)"
