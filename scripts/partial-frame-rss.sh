#!/usr/bin/env bash
# Node RSS under the partial-frame attack: a 3-node local Raft cluster (bin/node), then N
# client connections to node 1 that each announce a frame of SIZE bytes and send half of it.
# Prints node 1's RSS before, while the connections are open, and 10 s after they close.
#
#   scripts/partial-frame-rss.sh [N] [SIZE] [DIR]
set -euo pipefail
n=${1:-100}
size=${2:-16777000}
dir=${3:-$(mktemp -d)}
mkdir -p "$dir"
peers="1=127.0.0.1:17101/127.0.0.1:17201,2=127.0.0.1:17102/127.0.0.1:17202,3=127.0.0.1:17103/127.0.0.1:17203"
pids=()
for id in 1 2 3; do
	"${NODE:-bin/node}" --id $id --peers "$peers" --protocol raft --data-dir "$dir/node-$id" --init --sync none \
		--log-level warn 2>"$dir/node-$id.log" &
	pids+=($!)
done
trap 'kill ${pids[@]} 2>/dev/null; wait' EXIT
sleep 2
rss() { awk '/VmRSS/ {print $2/1024 " MiB"}' /proc/${pids[0]}/status; }
echo "before: $(rss)"
python3 - "$n" "$size" "${pids[0]}" <<'PY'
import socket, struct, sys, time
n, size, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
# A wire frame header (wire/frame.go): magic, version 1, type ClientRequest (0x30), flags,
# body length, body CRC (never checked: the body never completes).
hdr = struct.pack('<IBBHII', 0xCB5D0A7E, 1, 0x30, 0, size, 0)
conns = []
for i in range(n):
    s = socket.create_connection(('127.0.0.1', 17201))
    try:
        s.sendall(hdr + b'\0' * (size // 2))
    except OSError:
        pass
    conns.append(s)
time.sleep(2)
rss = [l for l in open(f'/proc/{pid}/status') if l.startswith('VmRSS')][0].split()[1]
print(f"with {n} connections open: {int(rss)/1024:.0f} MiB")
for s in conns:
    s.close()
PY
sleep 10
echo "10 s after they closed: $(rss)"
grep -c "PartialFrameBudget" "$dir/node-1.log" | sed 's/^/connections closed over the budget (log lines): /'
