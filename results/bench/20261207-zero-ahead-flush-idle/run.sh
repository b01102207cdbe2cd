#!/usr/bin/env bash
# This change's shapes, interleaved rounds: base (f6a8756, before issue 16's work), start
# (b0e63b4, before zeroing ahead and FlushIdle) and head. BASE, START, HEAD: directories
# holding each build's node and loadgen. OUT: where the runs go.
set -euo pipefail
: "${BASE:?}" "${START:?}" "${HEAD:?}" "${OUT:?}"
cd "$(dirname "$0")/../../.."
SYNC=always scripts/one-op-cost.sh 4 "$OUT/raft-always" base="$BASE" \
  start-c1="$START":--conns=1 head-c1="$HEAD":--conns=1 > "$OUT/raft-always-summary.txt"
PROTOCOL=pbft SYNC=always scripts/one-op-cost.sh 4 "$OUT/pbft-always" base="$BASE" \
  start-c1="$START":--conns=1 head-c1="$HEAD":--conns=1 > "$OUT/pbft-always-summary.txt"
scripts/one-op-cost.sh 3 "$OUT/raft-none" base="$BASE" \
  start-c2="$START":--conns=2 head-c2="$HEAD":--conns=2 > "$OUT/raft-none-summary.txt"
CLIENTS=16 PROTOCOL=pbft SYNC=always scripts/one-op-cost.sh 2 "$OUT/pbft-16clients" base="$BASE" \
  start-c1="$START":--conns=1 head-c1="$HEAD":--conns=1 > "$OUT/pbft-16clients-summary.txt"
CLIENTS=32 PIPELINE=2 BATCH=16 scripts/one-op-cost.sh 3 "$OUT/raft-makerun" start="$START" head="$HEAD" \
  > "$OUT/raft-makerun-summary.txt"
PROTOCOL=pbft CLIENTS=32 PIPELINE=2 BATCH=16 scripts/one-op-cost.sh 3 "$OUT/pbft-makerun" start="$START" head="$HEAD" \
  > "$OUT/pbft-makerun-summary.txt"
