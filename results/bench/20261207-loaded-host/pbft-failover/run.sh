#!/bin/bash
# (as run; comments added after: $R/rtNN/node is the tree at 2afd188 with only
# pbftcore.DefaultRequestTimeoutTicks set to NN, $R/*/loadgen one loadgen built at 2afd188;
# see ../README.md and binaries.sha256)
# PBFT failover vs the view-change timer: 4 interleaved rounds.
R=/tmp/cb-pbft-rt
OUT=$R/out
cd /work/wt-netns-goldens
CMD="--local 4 --protocol pbft --sync none --mode open --rate 10000 --clients 16 --batch 4 --duration 12s --nemesis kill-leader@4s,restart@8s"
for round in 1 2 3 4; do
  for setting in rt40 rt20 rt10 rt40-at250ms rt10-at250ms; do
    bin=${setting%%-*}
    extra=""
    case $setting in *-at250ms) extra="--attempt-timeout 250ms";; esac
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) round $round $setting load $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/log.txt
    $R/$bin/loadgen $CMD $extra --out $R/json/$setting-r$round > $OUT/$setting-r$round.txt 2>&1
    echo "# rc $? $setting r$round" >> $OUT/log.txt
  done
done
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) done load $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/log.txt
