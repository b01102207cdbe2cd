#!/usr/bin/env bash
# Reproduces results/reference/peers/: consensusbench (Raft 3 nodes, PBFT 4 replicas) and etcd
# v3.7.3 (3 members) under the same loads on this host, every run durable (sync always; etcd
# has no other mode), in interleaved rounds so that the host's noise falls on every system
# alike. Every run's load average before and after goes to $OUT/loadavg.txt.
#
#   make build build-peers && results/reference/peers/measure.sh
#
# Phases: closed loop as `make run` (ROUNDS rounds of raft, etcd, pbft), open loop at half of
# each system's own median closed-loop rate, one op per request with 64 clients (raft, etcd),
# and one fault run per system (kill the leader, restart it) with both verdicts.
# About 15 minutes with the defaults.
set -euo pipefail
cd "$(dirname "$0")/../../.."

BIN=${BIN:-bin}                          # loadgen-peers, node and etcd-member, side by side
OUT=${OUT:-results/reference/peers/runs} # result files (.json .txt .hgrm) and logs
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-20s}
LG="$BIN/loadgen-peers"
mkdir -p "$OUT"

declare -A SYS=(
	[raft]="--local 3 --protocol raft --sync always"
	[etcd]="--system etcd --local 3"
	[pbft]="--local 4 --protocol pbft --sync always"
)
CLOSED="--mode closed --clients 32 --pipeline 2 --batch 16"
ONEOP="--mode closed --clients 64 --pipeline 1 --batch 1"
# The fault runs use the shape of the README's fault examples (open loop at a rate every
# system sustains, YCSB A on few keys): a history porcupine checks within its budget.
FAULT="--mode open --rate 2000 --workload ycsb-a --keys 1000
	--nemesis kill-leader@5s,restart@10s --check-linearizability --check-durability"

# run NAME SYSTEM FLAGS...: one run, its output in NAME.log; a failed run is noted, not fatal
# (its result is still written and marked).
run() {
	local name=$1 sys=$2
	shift 2
	echo "$(date -u +%FT%TZ) $name before: $(cat /proc/loadavg)" >>"$OUT/loadavg.txt"
	# shellcheck disable=SC2086
	if ! "$LG" ${SYS[$sys]} --duration "$DUR" --quiet "$@" --out "$OUT/$name" >"$OUT/$name.log" 2>&1; then
		echo "$name: loadgen exited non-zero (see $OUT/$name.log)" | tee -a "$OUT/loadavg.txt"
	fi
	echo "$(date -u +%FT%TZ) $name after:  $(cat /proc/loadavg)" >>"$OUT/loadavg.txt"
	echo "$name: $(jq -r '"\(.summary.throughput | floor) ops/s, p50 \(.summary.latency.p50_ns/1e6) ms, p99 \(.summary.latency.p99_ns/1e6) ms"' "$OUT/$name.json")"
}

# median FILES...: the median throughput of the results.
median() {
	jq -s '[.[].summary.throughput] | sort | .[(length-1)/2|floor]' "$@"
}

for r in $(seq "$ROUNDS"); do
	for s in raft etcd pbft; do
		# shellcheck disable=SC2086
		run "closed-$s-$r" "$s" $CLOSED
	done
done
declare -A RATE
for s in raft etcd pbft; do
	RATE[$s]=$(median "$OUT"/closed-"$s"-[0-9].json | awk '{ printf "%d", int($1 / 200 + 0.5) * 100 }')
	echo "open loop for $s at ${RATE[$s]} ops/s (half its median closed-loop rate)" | tee -a "$OUT/loadavg.txt"
done
for r in $(seq "$ROUNDS"); do
	for s in raft etcd pbft; do
		run "open-$s-$r" "$s" --mode open --rate "${RATE[$s]}" --clients 32 --batch 16
	done
done
for r in $(seq "$ROUNDS"); do
	for s in raft etcd; do
		# shellcheck disable=SC2086
		run "oneop-$s-$r" "$s" $ONEOP
	done
done
for s in raft etcd pbft; do
	# shellcheck disable=SC2086
	DUR=15s run "fault-$s" "$s" $FAULT
done
