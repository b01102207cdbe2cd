#!/usr/bin/env bash
# scripts/one-op-cost.sh ROUNDS OUTDIR SIDE...: the one-op-per-request shape (closed loop,
# 64 clients x pipeline 1 x batch 1, 128 B writes, 3 local Raft nodes) for each SIDE in
# every round, the sides' order rotating by round. A SIDE is NAME=BINDIR[:EXTRA LOADGEN FLAGS],
# e.g. old=/tmp/bin-old new=bin new-conns8=bin:--conns=8. SYNC (none), DURATION (10s),
# CLIENTS (64), PIPELINE (1), BATCH (1) and PROTOCOL (raft; pbft starts 4 nodes) override the shape. Prints, per run,
# ops/s and CPU microseconds per op (all nodes, the leader, loadgen) with the load average,
# and the medians per side at the end.
set -euo pipefail
rounds=$1; out=$2; shift 2
sides=("$@")
sync=${SYNC:-none}; dur=${DURATION:-10s}; clients=${CLIENTS:-64}; proto=${PROTOCOL:-raft}
pipeline=${PIPELINE:-1}; batch=${BATCH:-1}
nodes=3; [ "$proto" = pbft ] && nodes=4
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
  n=${#sides[@]}
  for k in $(seq 0 $((n - 1))); do
    side=${sides[$(( (k + r) % n ))]}
    name=${side%%=*}; rest=${side#*=}; bin=${rest%%:*}; extra=""
    [ "$rest" != "$bin" ] && extra=${rest#*:}
    f="$out/$name-r$r"
    echo "# $(date -u +%FT%TZ) round $r $name load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/log.txt"
    # shellcheck disable=SC2086
    "$bin/loadgen" --local $nodes --protocol "$proto" --sync "$sync" --mode closed --clients "$clients" \
      --pipeline "$pipeline" --batch "$batch" --duration "$dur" --warmup 2s --quiet $extra --out "$f" > "$f.log" 2>&1 || { echo "run $f failed"; tail -5 "$f.log"; }
  done
done
python3 - "$out" "${sides[@]}" <<'PY'
import json, sys, glob, statistics as st
out, sides = sys.argv[1], sys.argv[2:]
rows = {}
for side in sides:
    name = side.split('=')[0]
    for f in sorted(glob.glob(f"{out}/{name}-r*.json")):
        r = json.load(open(f))
        ops = r['summary']['ops']
        cpu = [n['cpu_seconds'] for n in r['nodes']]
        x = dict(tput=r['summary']['throughput'], node=sum(cpu) / ops * 1e6, leader=max(cpu) / ops * 1e6,
                 lg=r['loadgen_cpu_seconds'] / ops * 1e6, p99=r['summary']['latency']['p99_ns'] / 1e6,
                 load=r['host']['load_before'][0], noisy=r['host']['noisy'])
        rows.setdefault(name, []).append(x)
        print(f"{f}: {x['tput']:.0f} ops/s, node {x['node']:.1f} us/op (leader {x['leader']:.1f}), loadgen {x['lg']:.1f} us/op, p99 {x['p99']:.2f} ms, load {x['load']}{' NOISY' if x['noisy'] else ''}")
print()
print(f"{'side':16} {'runs':>4} {'ops/s':>9} {'node us/op':>11} {'leader':>7} {'loadgen us/op':>14} {'p99 ms':>7}")
for name, xs in rows.items():
    m = lambda k: st.median(x[k] for x in xs)
    print(f"{name:16} {len(xs):>4} {m('tput'):>9.0f} {m('node'):>11.1f} {m('leader'):>7.1f} {m('lg'):>14.1f} {m('p99'):>7.2f}")
PY
