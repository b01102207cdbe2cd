#!/usr/bin/env bash
# scripts/open-loop-ab.sh ROUNDS OUTDIR NODES DURATION NAME=BINDIR...: the open-loop tail shape
# (Raft, sync none, 125k ops/s, 32 clients x pipeline 2 x batch 16) on a fresh local cluster of
# NODES for each side in every round, sides interleaved, and one line per run: p50, p99, p99.9,
# max, how many seconds had p99 over 20 ms and over 5 ms, busy cores and the load average before
# the run. Every run's JSON and benchstat text stay in OUTDIR, the load averages in OUTDIR/log.txt.
# Example: scripts/open-loop-ab.sh 4 /tmp/ab 3 30s old=/tmp/bin-old new=bin
set -euo pipefail
rounds=$1; out=$2; n=$3; dur=$4; shift 4
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
  for side in "$@"; do
    name=${side%%=*}; bin=${side#*=}
    echo "# $(date -u +%T) $name r$r load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/log.txt"
    "$bin/loadgen" --local "$n" --sync none --mode open --rate 125000 --clients 32 --pipeline 2 --batch 16 \
      --duration "$dur" --warmup 2s --quiet --out "$out/$name-r$r" > "$out/$name-r$r.log" 2>&1 || { echo "run $name r$r failed"; tail -5 "$out/$name-r$r.log"; continue; }
    python3 - "$out/$name-r$r.json" "$name r$r" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); s = r['summary']['latency']; p = [x['p99_ns'] / 1e6 for x in r['series']]
print(sys.argv[2], 'p50', round(s['p50_ns'] / 1e6, 2), 'p99', round(s['p99_ns'] / 1e6, 2), 'p99.9', round(s['p999_ns'] / 1e6, 1),
      'max', round(s['max_ns'] / 1e6, 1), 'sec>20ms', sum(1 for x in p if x > 20), 'sec>5ms', sum(1 for x in p if x > 5), 'of', len(p),
      'busy', round(r['host']['busy_cores'], 2), 'load', r['host']['load_before'][0])
PY
  done
done
