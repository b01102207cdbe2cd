#!/bin/bash
cd /work/main
D=/tmp/final2
DURATION=10s scripts/one-op-cost.sh 3 $D/raft-none base=/tmp/bin-f6a8756 head=/tmp/bin-h2:--conns=8 > $D/raft-none.txt 2>&1
SYNC=always DURATION=10s scripts/one-op-cost.sh 3 $D/raft-always base=/tmp/bin-f6a8756 head=/tmp/bin-h2:--conns=8 > $D/raft-always.txt 2>&1
PROTOCOL=pbft SYNC=always DURATION=10s scripts/one-op-cost.sh 3 $D/pbft-always base=/tmp/bin-f6a8756 head=/tmp/bin-h2:--conns=8 > $D/pbft-always.txt 2>&1
CLIENTS=32 PIPELINE=2 BATCH=16 DURATION=10s scripts/one-op-cost.sh 3 $D/raft-makerun base=/tmp/bin-f6a8756 head=/tmp/bin-h2 > $D/raft-makerun.txt 2>&1
PROTOCOL=pbft CLIENTS=32 PIPELINE=2 BATCH=16 DURATION=10s scripts/one-op-cost.sh 3 $D/pbft-makerun base=/tmp/bin-f6a8756 head=/tmp/bin-h2 > $D/pbft-makerun.txt 2>&1
echo done > $D/done
