#!/usr/bin/env bash
# scripts/rss-run.sh BIN_DIR OUT_PREFIX LOADGEN_FLAGS...: one local run with the given flags,
# sampling every node's RSS every 5 s from /proc; prints throughput and, per node, the RSS
# first, at the middle, last and highest, and how much it moved over the last half of the
# run (max - min): flat means a small spread there. Send its output somewhere other than
# OUT_PREFIX.txt, which loadgen writes (benchstat lines).
# Example (the make-run shape for 10 minutes):
#   scripts/rss-run.sh bin /tmp/rss-raft --local 3 --protocol raft --sync none --mode closed \
#     --clients 32 --pipeline 2 --batch 16 --duration 10m
set -euo pipefail
bin=$1; out=$2; shift 2
"$bin/loadgen" "$@" --quiet --out "$out" > "$out.log" 2>&1 &
lg=$!
: > "$out.rss"
while kill -0 $lg 2>/dev/null; do
  t=$(date +%s)
  for p in $(pgrep -f 'consensusbench-local.*cluster.json' || true); do
    echo "$t $p $(awk '/VmRSS/{print $2}' /proc/$p/status 2>/dev/null)" >> "$out.rss"
  done
  sleep 5
done
wait $lg || true
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
r = json.load(open(out + '.json'))
s = r['summary']
rss = {}
for line in open(out + '.rss'):
    f = line.split()
    if len(f) == 3 and f[2].isdigit():
        rss.setdefault(f[1], []).append((int(f[0]), int(f[2]) / 1024))
print(f"{out}: {s['throughput']:.0f} ops/s, p99 {s['latency']['p99_ns'] / 1e6:.2f} ms, load {r['host']['load_before'][0]} -> {r['host']['load_after'][0]}")
for p, v in sorted(rss.items()):
    t0, t1 = v[0][0], v[-1][0]
    late = [m for t, m in v if t >= (t0 + t1) / 2]
    n = len(v)
    print(f"   pid {p}: RSS MiB first {v[0][1]:.0f} mid {v[n // 2][1]:.0f} last {v[-1][1]:.0f} max {max(m for _, m in v):.0f}; last half spread {max(late) - min(late):.0f} (min {min(late):.0f} max {max(late):.0f})")
PY
