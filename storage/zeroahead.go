package storage

import (
	"sync"
	"sync/atomic"
)

// Zeroing ahead of the writer.
//
// A segment is preallocated with fallocate, which on ext4 and XFS leaves its blocks
// "unwritten": reads return zeros, but the first write into each range changes the
// file's extent map, so the fdatasync after it must write that metadata as well as the
// data. Writing real zeros into the space first turns it into ordinary written blocks,
// and the writer's fdatasync then flushes only its data. Measured on this project's
// reference VM (ext4 on virtio, 8 KiB writes, interleaved rounds): fdatasync p50 185-215
// µs into fallocated space, 108-132 µs into space already written with zeros.
//
// The zeroer is a goroutine that keeps the next Options.ZeroAheadBytes past the writer's
// end of a synced segment written with zeros and synced, zeroChunkBytes at a time. It
// never writes below the writer's end: the writer claims its range first and waits if a
// chunk being zeroed overlaps it (only when the writer has caught up with the zeroer).
// Zeros are what a preallocated range reads as, so recovery and the torn-tail rules are
// unchanged, and a chunk that fails to be zeroed only leaves that range as slow as before.
// The zeroer starts with the first segment the WAL creates (roll); a segment recovered at
// Open is left as it is.
//
// Zeroing pays per fdatasync (one extent update spared) and costs per byte (every byte is
// written twice), so it pays for small batches only. With large ones it rests: while the
// writer's batches average Options.ZeroAheadMaxBatchBytes or more (a moving average over
// about the last eight), no new chunk is started. Measured on the reference VM (ext4 on
// virtio): BenchmarkWALAppend sync=always with batches of 16 and 256 128-byte entries (2 and
// 38 KB) is 23-24% faster with zeros ahead, 1024 (150 KB) unchanged; bench/e2e's
// in-process Raft cluster at sync=always size=128, whose three WALs write batches of about
// 330 KB, lost 11% to zeroing that never rested (8 interleaved rounds: 588.5k ops/s without
// zeroing, 524.1k with it, 611.7k with it resting; results/bench/20261208-zero-rest/).
const (
	// DefaultZeroAheadBytes is how far past the writer's end the zeroer keeps a synced
	// segment written.
	DefaultZeroAheadBytes = 8 << 20
	// DefaultZeroAheadMaxBatchBytes is the average batch size from which zeroing rests.
	DefaultZeroAheadMaxBatchBytes = 64 << 10
	// zeroChunkBytes is one zeroing write and fdatasync: small enough that a writer's
	// fdatasync finding a chunk still dirty flushes little extra.
	zeroChunkBytes = 256 << 10
)

var zeroChunk [zeroChunkBytes]byte

// ZeroAheadStats is what the zeroer did (WAL.ZeroAhead); all zero when it is off.
type ZeroAheadStats struct {
	Bytes    uint64 // zeros written and synced ahead of the writer
	Waits    uint64 // batches whose write waited for a chunk being zeroed (the writer caught up)
	Failures uint64 // chunks that failed; the rest of that segment is left as preallocated
	Rested   uint64 // batches written while zeroing rested, the batches being large
}

type zeroer struct {
	ahead    int64
	maxBatch int64 // zeroing rests while batchAvg is at least this

	bytes, waits, failures, rested atomic.Uint64

	mu   sync.Mutex
	cond sync.Cond // the zeroer waits for work; the writer waits for an overlapping chunk
	f    File      // segment being zeroed; nil when none (or it failed)
	size int64     // its size

	writerEnd int64 // the writer has claimed every byte below this
	zeroedTo  int64 // bytes in [writerEnd, zeroedTo) are zeros, written and synced
	busy      bool  // a chunk starting at busyFrom is being written
	busyFrom  int64
	batchAvg  int64 // moving average of the writer's batch sizes (weight 1/8 per batch)
	stopped   bool
	done      chan struct{}
}

func newZeroer(ahead, maxBatch int64) *zeroer {
	z := &zeroer{ahead: ahead, maxBatch: maxBatch, done: make(chan struct{})}
	z.cond.L = &z.mu
	go z.run()
	return z
}

// next is where the next chunk starts; goal is how far zeroing should reach.
func (z *zeroer) next() int64 { return max(z.zeroedTo, z.writerEnd) }
func (z *zeroer) goal() int64 { return min(z.writerEnd+z.ahead, z.size) }

// resting says whether the writer's batches are too large for zeroing to pay.
func (z *zeroer) resting() bool { return z.maxBatch > 0 && z.batchAvg >= z.maxBatch }

// due says whether a chunk's worth of zeroing is wanted (or the segment's last piece).
func (z *zeroer) due() bool {
	if z.f == nil || z.resting() {
		return false
	}
	n, g := z.next(), z.goal()
	return n < g && (g-n >= zeroChunkBytes || g == z.size)
}

// segment points the zeroer at a newly created segment (nil: none) whose writer has claimed
// the bytes below off. It waits for a chunk still being written to the previous segment,
// which the WAL may close once it is no longer current.
func (z *zeroer) segment(f File, size, off int64) {
	z.mu.Lock()
	for z.busy {
		z.cond.Wait()
	}
	z.f, z.size, z.writerEnd, z.zeroedTo = f, size, off, off
	if z.due() {
		z.cond.Broadcast()
	}
	z.mu.Unlock()
}

// claim reserves [.., end) of the current segment for the writer, waiting while a chunk
// being zeroed overlaps it, and wakes the zeroer when a chunk's worth is wanted.
func (z *zeroer) claim(end int64) {
	z.mu.Lock()
	if z.busy && z.busyFrom < end {
		z.waits.Add(1)
		for z.busy && z.busyFrom < end {
			z.cond.Wait()
		}
	}
	if n := end - z.writerEnd; n > 0 {
		z.batchAvg += (n - z.batchAvg) / 8
	}
	if z.resting() {
		z.rested.Add(1)
	}
	z.writerEnd = max(z.writerEnd, end)
	if z.due() {
		z.cond.Broadcast()
	}
	z.mu.Unlock()
}

// stop ends zeroing (the WAL closes or has failed: no fdatasync may follow a failed one)
// and waits for the goroutine.
func (z *zeroer) stop() {
	z.mu.Lock()
	z.stopped = true
	z.cond.Broadcast()
	z.mu.Unlock()
	<-z.done
}

func (z *zeroer) run() {
	defer close(z.done)
	z.mu.Lock()
	defer z.mu.Unlock()
	for {
		for !z.stopped && !z.due() {
			z.cond.Wait()
		}
		if z.stopped {
			return
		}
		f, from := z.f, z.next()
		to := min(from+zeroChunkBytes, z.goal())
		z.busy, z.busyFrom = true, from
		z.mu.Unlock()
		_, err := f.WriteAt(zeroChunk[:to-from], from)
		if err == nil {
			err = f.Sync()
		}
		z.mu.Lock()
		z.busy = false
		if err != nil {
			z.failures.Add(1)
			if f == z.f {
				z.f = nil // leave the rest of this segment preallocated only
			}
		} else {
			z.bytes.Add(uint64(to - from))
			if f == z.f {
				z.zeroedTo = to
			}
		}
		z.cond.Broadcast()
	}
}

// ZeroAhead reports what zeroing ahead of the writer has done since Open.
func (w *WAL) ZeroAhead() ZeroAheadStats {
	if w.zero == nil {
		return ZeroAheadStats{}
	}
	return ZeroAheadStats{Bytes: w.zero.bytes.Load(), Waits: w.zero.waits.Load(), Failures: w.zero.failures.Load(), Rested: w.zero.rested.Load()}
}
