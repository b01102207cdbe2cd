#!/usr/bin/env bash
# Issue 16's five shapes, base against head, 3 interleaved rounds each (10 s windows).
# BASE and HEAD: directories holding each build's node and loadgen; OUT: where the runs go.
# Recorded runs: final/ with HEAD a build of d6236bf, final2/ with HEAD a build of 0cac887,
# BASE a build of f6a8756 for both.
set -euo pipefail
: "${BASE:?}" "${HEAD:?}" "${OUT:?}"
cd "$(dirname "$0")/../../../.."
export DURATION=10s
scripts/one-op-cost.sh 3 "$OUT/raft-none" base="$BASE" head="$HEAD":--conns=8 > "$OUT/raft-none.txt" 2>&1
SYNC=always scripts/one-op-cost.sh 3 "$OUT/raft-always" base="$BASE" head="$HEAD":--conns=8 > "$OUT/raft-always.txt" 2>&1
PROTOCOL=pbft SYNC=always scripts/one-op-cost.sh 3 "$OUT/pbft-always" base="$BASE" head="$HEAD":--conns=8 > "$OUT/pbft-always.txt" 2>&1
CLIENTS=32 PIPELINE=2 BATCH=16 scripts/one-op-cost.sh 3 "$OUT/raft-makerun" base="$BASE" head="$HEAD" > "$OUT/raft-makerun.txt" 2>&1
PROTOCOL=pbft CLIENTS=32 PIPELINE=2 BATCH=16 scripts/one-op-cost.sh 3 "$OUT/pbft-makerun" base="$BASE" head="$HEAD" > "$OUT/pbft-makerun.txt" 2>&1
