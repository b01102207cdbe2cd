#!/usr/bin/env bash
# scripts/open-loop-rss.sh BIN_DIR OUT_PREFIX DURATION: 3 Raft nodes (sync none) under the open-loop
# shape 125k ops/s, 32 clients x pipeline 2 x batch 16; samples every node RSS every 2 s and
# prints throughput, p50/p99/p99.9, the worst second p99, seconds over 20 ms, and RSS per node.
bin=$1; out=$2; dur=$3
$bin/loadgen --local 3 --sync none --mode open --rate 125000 --clients 32 --pipeline 2 --batch 16 --duration $dur --warmup 2s --quiet --out $out > $out.log 2>&1 &
lg=$!
: > $out.rss
while kill -0 $lg 2>/dev/null; do
  t=$(date +%s)
  for p in $(pgrep -f 'consensusbench-local.*cluster.json'); do
    echo "$t $p $(awk '/VmRSS/{print $2}' /proc/$p/status 2>/dev/null)" >> $out.rss
  done
  sleep 2
done
python3 - "$out" <<'PY'
import json,sys
out=sys.argv[1]
r=json.load(open(out+'.json'))
s=r['summary']; ser=r['series']
p99s=[x['p99_ns']/1e6 for x in ser if x['ops']>0]
rss={}
for line in open(out+'.rss'):
    f=line.split()
    if len(f)==3 and f[2].isdigit(): rss.setdefault(f[1],[]).append(int(f[2])/1024)
mx=max(max(v) for v in rss.values()) if rss else 0
print(f"{out}: {s['throughput']:.0f} ops/s p50 {s['latency']['p50_ns']/1e6:.2f}ms p99 {s['latency']['p99_ns']/1e6:.2f}ms p99.9 {s['latency']['p999_ns']/1e6:.1f}ms max-second-p99 {max(p99s):.1f}ms seconds-p99>20ms {sum(1 for x in p99s if x>20)} of {len(p99s)}; node RSS max {mx:.0f} MiB")
for p,v in sorted(rss.items()):
    n=len(v); print(f"   pid {p}: RSS MiB first {v[0]:.0f} mid {v[n//2]:.0f} last {v[-1]:.0f} max {max(v):.0f}")
PY
