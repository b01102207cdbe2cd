#!/usr/bin/env bash
# Reproduces results/reference/peers/: consensusbench (Raft 3 nodes, PBFT 4 replicas) and etcd
# v3.7.3 (3 members) under the same loads on this host, every run durable (sync always; etcd
# has no other mode), in interleaved rounds so that the host's noise falls on every system
# alike. Every run's load average before and after goes to $OUT/loadavg.txt.
#
#   make build build-peers && results/reference/peers/measure.sh
#   results/reference/peers/measure.sh summary     # the table, from the runs already there
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
PHASES=${PHASES:-closed open oneop fault} # a subset reruns part (open needs closed's results)
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
# Uniform keys: etcd holds requests in flight at a killed leader for its request timeout (7 s),
# and on zipfian keys so many overlapping writes to the hottest keys outgrow porcupine's budget.
FAULT="--mode open --rate 2000 --workload ycsb-a --dist uniform --keys 1000
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

# summary: the table of results/reference/README.md from the runs in $OUT (medians over the
# rounds; latencies in ms), then each fault run's verdicts.
if [ "${1:-}" = summary ]; then
	med() { jq -s "[.[] | $1] | sort | .[(length-1)/2|floor]" "${@:2}"; }
	for g in closed-raft closed-etcd closed-pbft open-raft open-etcd open-pbft oneop-raft oneop-etcd; do
		set -- "$OUT/$g"-[0-9].json
		[ -e "$1" ] || continue
		printf '%s | %s runs | %.0f ops/s | %.0f ops/core-s | p50 %.2f | p99 %.2f | p99.9 %.2f ms | errors %s | load %s\n' "$g" "$#" \
			"$(med .summary.throughput "$@")" "$(med .ops_per_core_second "$@")" \
			"$(med '.summary.latency.p50_ns/1e6' "$@")" "$(med '.summary.latency.p99_ns/1e6' "$@")" \
			"$(med '.summary.latency.p999_ns/1e6' "$@")" "$(jq -s '[.[].summary.errors] | add' "$@")" \
			"$(grep -h " ${g}-[0-9] before" "$OUT/loadavg.txt" | awk '{ printf "%s%s", sep, $4; sep="/" }')"
	done
	for f in "$OUT"/fault-*.json; do
		[ -e "$f" ] || continue
		jq -r --arg f "$(basename "$f" .json)" '"\($f) | linearizable \(.verdicts.linearizability.ok) (\(.verdicts.linearizability.checked) ops) | durable \(.verdicts.durability.ok) (\(.verdicts.durability.checked) writes, \(.verdicts.durability.failed) lost) | \(.summary.throughput|floor) ops/s | errors \(.summary.errors) | \([.events[] | select(.kind=="kill-leader") | .detail][0])"' "$f"
	done
	exit 0
fi

phase() { [[ " $PHASES " == *" $1 "* ]]; }

phase closed && for r in $(seq "$ROUNDS"); do
	for s in raft etcd pbft; do
		# shellcheck disable=SC2086
		run "closed-$s-$r" "$s" $CLOSED
	done
done
declare -A RATE
phase open && for s in raft etcd pbft; do
	RATE[$s]=$(median "$OUT"/closed-"$s"-[0-9].json | awk '{ printf "%d", int($1 / 200 + 0.5) * 100 }')
	echo "open loop for $s at ${RATE[$s]} ops/s (half its median closed-loop rate)" | tee -a "$OUT/loadavg.txt"
done
phase open && for r in $(seq "$ROUNDS"); do
	for s in raft etcd pbft; do
		run "open-$s-$r" "$s" --mode open --rate "${RATE[$s]}" --clients 32 --batch 16
	done
done
phase oneop && for r in $(seq "$ROUNDS"); do
	for s in raft etcd; do
		# shellcheck disable=SC2086
		run "oneop-$s-$r" "$s" $ONEOP
	done
done
phase fault && for s in raft etcd pbft; do
	# shellcheck disable=SC2086
	DUR=15s run "fault-$s" "$s" $FAULT
done
true # the last phase may have been skipped
