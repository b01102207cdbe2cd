#!/usr/bin/env python3
"""scripts/perf-stretches.py: find the threads that held a CPU the longest without a break.

On a small host, a request waits behind whatever holds a CPU. A thread that stays on a CPU
for tens of milliseconds at a time (a long system call or page fault on a non-preemptible
kernel, a background job at full speed) shows up as a run of back-to-back samples. This
prints the longest such runs, each with the leaf functions and the nearest function of
ours (or of the Go runtime, or gnet) that its samples were in.

Record system-wide with call stacks while the load runs, then run this on the samples:

  perf record -F 4999 -g -a -o /tmp/p.data -- sleep 10
  perf script -i /tmp/p.data -F tid,time,ip,sym > /tmp/p.txt
  scripts/perf-stretches.py /tmp/p.txt [--top 10] [--min-ms 4] [--gap-ms 0.6]

A run ends where the thread has no sample for --gap-ms (set it to about three sampling
periods). The idle task (tid 0) is left out.
"""
import argparse
import collections
import sys


def parse(path):
    """Yields (tid, time_s, frames) per sample; frames are symbol names, leaf first."""
    with open(path) as f:
        block = []
        for line in f:
            if line.strip():
                block.append(line)
                continue
            if block:
                yield from sample(block)
            block = []
        if block:
            yield from sample(block)


def sample(block):
    head = block[0].split()
    try:
        tid, t = int(head[0]), float(head[1].rstrip(':'))
    except (ValueError, IndexError):
        return
    frames = []
    for line in block[1:]:
        parts = line.split(None, 1)
        if len(parts) == 2:
            frames.append(parts[1].strip())
    yield tid, t, frames


def ours(frames):
    for fr in frames:
        if 'consensusbench' in fr or 'runtime.' in fr or 'gnet' in fr:
            return fr.rsplit('/', 1)[-1]
    return ''


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('samples')
    ap.add_argument('--top', type=int, default=10)
    ap.add_argument('--min-ms', type=float, default=4.0)
    ap.add_argument('--gap-ms', type=float, default=0.6)
    a = ap.parse_args()
    by_tid = collections.defaultdict(list)
    for tid, t, frames in parse(a.samples):
        if tid != 0:
            by_tid[tid].append((t, frames))
    runs = []
    gap = a.gap_ms / 1000
    for tid, ss in by_tid.items():
        ss.sort(key=lambda x: x[0])
        start = 0
        for i in range(1, len(ss) + 1):
            if i == len(ss) or ss[i][0] - ss[i - 1][0] > gap:
                d = ss[i - 1][0] - ss[start][0]
                if d * 1000 >= a.min_ms:
                    runs.append((d, tid, ss[start][0], ss[start:i]))
                start = i
    if not runs:
        print(f'no thread held a CPU for {a.min_ms} ms or more without a {a.gap_ms} ms gap')
        return 0
    runs.sort(key=lambda r: r[0], reverse=True)
    for d, tid, t, ss in runs[:a.top]:
        where = collections.Counter((s[1][0] if s[1] else '?', ours(s[1])) for s in ss)
        print(f'{d * 1000:6.1f} ms  tid {tid}  from {t:.3f} s  {len(ss)} samples')
        for (leaf, fn), n in where.most_common(4):
            print(f'         {n:4d}  {leaf[:48]:48}  in {fn[:80]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
