#!/usr/bin/env bash
# Fault runs behind the figures in results/faults/README.md. Run from the repository root
# after `make build`; each run writes results/faults/<name>.{json,txt,hgrm} and its summary
# to results/faults/<name>.log.
set -euo pipefail
out=results/faults
common=(--duration 10s --warmup 500ms --workload ycsb-a --keys 500 --value-size 16 --quiet)
run() { name=$1; shift; bin/loadgen run "$@" "${common[@]}" --out "$out/$name" > "$out/$name.log" 2>&1 || echo "$name: exit $?" >> "$out/$name.log"; }
run raft-kill-leader        --local 3 --sync always --rate 2000 --clients 8 --nemesis kill-leader@3s,restart@6s --check-linearizability --check-durability
run raft-partition-leader   --local 3 --sync always --rate 2000 --clients 8 --nemesis partition-leader@3s:3s --check-linearizability
run pbft-kill-primary       --local 4 --protocol pbft --sync always --rate 1000 --clients 8 --nemesis kill-leader@3s,restart@6s --check-linearizability --check-durability
run pbft-partition-primary  --local 4 --protocol pbft --sync always --rate 1000 --clients 8 --nemesis partition-leader@3s:3s --check-linearizability
run pbft-fault-free         --local 4 --protocol pbft --sync always --rate 1000 --clients 8 --check-linearizability
for mode in silent equivocate bad-digest bad-mac; do
  run pbft-byzantine-$mode  --local 4 --protocol pbft --sync always --rate 1000 --clients 8 --byzantine $mode --check-linearizability
done
