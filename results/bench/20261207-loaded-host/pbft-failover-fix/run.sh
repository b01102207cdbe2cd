#!/bin/bash
# PBFT failover after kill-primary with the fix (new primaries order the requests they
# received as backups) against the commit before it, 4 interleaved rounds at the default
# view-change timer (40 ticks) and the client's default 1 s attempt timeout.
# $R/fix: node and loadgen from the fix (595ff02; archived before a last rebase onto main that
# brought only test and result files), $R/base from 5b84a74 (main before the fix), each
# tree by git archive, built with go build ./cmd/node ./cmd/loadgen; see binaries.sha256.
R=/tmp/cb-pbft-fix2
OUT=$R/out
CMD="--local 4 --protocol pbft --sync none --mode open --rate 10000 --clients 16 --batch 4 --duration 12s --nemesis kill-leader@4s,restart@8s"
for round in 1 2 3 4; do
  for setting in fix base; do
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) round $round $setting load $(cat /proc/loadavg)" >> $OUT/log.txt
    $R/$setting/loadgen $CMD --out $R/json/$setting-r$round > $OUT/$setting-r$round.txt 2>&1
    echo "# rc $? $setting r$round" >> $OUT/log.txt
  done
done
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) done load $(cat /proc/loadavg)" >> $OUT/log.txt
