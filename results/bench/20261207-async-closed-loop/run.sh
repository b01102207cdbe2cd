#!/usr/bin/env bash
# Issue 16's shapes: base (f6a8756, before the issue's work), start (5a2c5f9, before the
# asynchronous closed loop) and head, interleaved rounds. BASE, START, HEAD: directories
# holding each build's node and loadgen. OUT: where the runs go.
set -euo pipefail
: "${BASE:?}" "${START:?}" "${HEAD:?}" "${OUT:?}"
cd "$(dirname "$0")/../../.."
R=${ROUNDS:-3}
scripts/one-op-cost.sh "$R" "$OUT/raft-none" base="$BASE" start="$START":--conns=8 \
  head-c1="$HEAD":--conns=1 head-c2="$HEAD":--conns=2 head-c8="$HEAD":--conns=8 > "$OUT/raft-none-summary.txt"
SYNC=always scripts/one-op-cost.sh "$R" "$OUT/raft-always" base="$BASE" start="$START":--conns=8 \
  head-c1="$HEAD":--conns=1 head-c2="$HEAD":--conns=2 > "$OUT/raft-always-summary.txt"
PROTOCOL=pbft SYNC=always scripts/one-op-cost.sh "$R" "$OUT/pbft-always" base="$BASE" start="$START":--conns=8 \
  head-c1="$HEAD":--conns=1 head-c8="$HEAD":--conns=8 > "$OUT/pbft-always-summary.txt"
CLIENTS=32 PIPELINE=2 BATCH=16 scripts/one-op-cost.sh "$R" "$OUT/raft-makerun" base="$BASE" start="$START" head="$HEAD" \
  > "$OUT/raft-makerun-summary.txt"
PROTOCOL=pbft CLIENTS=32 PIPELINE=2 BATCH=16 scripts/one-op-cost.sh "$R" "$OUT/pbft-makerun" base="$BASE" start="$START" head="$HEAD" \
  > "$OUT/pbft-makerun-summary.txt"
