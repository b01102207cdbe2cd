package raftcore

import (
	"fmt"

	"github.com/consensusbench/consensusbench/internal/assert"
)

// Log storage limits.
const (
	// logBlockBytes is the size of one payload block. Payloads larger than a block get a
	// block of their own.
	logBlockBytes = 64 << 10
	// logMaxFreeBlocks bounds the recycled blocks kept for reuse.
	logMaxFreeBlocks = 64
	// logInitialEntries is the initial header ring capacity (a power of two).
	logInitialEntries = 1024
)

// entryHdr is one entry in the header ring; its payload lives in a block.
type entryHdr struct {
	term uint64
	blk  uint32 // block number, modulo 2^32 (live blocks are far fewer, so differences stay exact)
	off  uint32
	n    uint32
	typ  EntryType
}

type logBlock struct {
	buf  []byte
	last uint64 // highest index whose payload was written here (0: none)
}

// entryLog is the in-memory log after the last compaction point: a power-of-two ring of
// entry headers over a queue of payload blocks. Appending copies the payload into the
// current block (no allocation per entry); truncating the tail or compacting the head moves
// ring pointers without copying entries. Blocks freed by compaction are recycled only after
// the application has advanced past the Ready that may still alias them.
type entryLog struct {
	// snapIndex/snapTerm name the entry just before the first one held (the compaction or
	// snapshot point); entries up to snapIndex are not available.
	snapIndex uint64
	snapTerm  uint64

	hdrs  []entryHdr // ring; len is a power of two
	head  int        // ring position of index snapIndex+1
	count int

	blocks      []logBlock // blocks[0] is block number blkBase
	blkBase     uint32
	free        [][]byte // recycled blocks, ready for reuse
	pendingFree [][]byte // blocks compacted away, reusable after the next release
}

func newEntryLog(snapIndex, snapTerm uint64) *entryLog {
	l := &entryLog{snapIndex: snapIndex, snapTerm: snapTerm, hdrs: make([]entryHdr, logInitialEntries)}
	l.blocks = append(l.blocks, logBlock{buf: make([]byte, 0, logBlockBytes)})
	return l
}

func (l *entryLog) firstIndex() uint64 { return l.snapIndex + 1 }
func (l *entryLog) lastIndex() uint64  { return l.snapIndex + uint64(l.count) }

func (l *entryLog) lastTerm() uint64 {
	t, _ := l.term(l.lastIndex())
	return t
}

func (l *entryLog) hdr(i uint64) *entryHdr {
	return &l.hdrs[(l.head+int(i-l.snapIndex-1))&(len(l.hdrs)-1)]
}

// term returns the term of entry i; ok is false when i is compacted or beyond the log.
func (l *entryLog) term(i uint64) (uint64, bool) {
	if i == l.snapIndex {
		return l.snapTerm, true
	}
	if i < l.snapIndex || i > l.lastIndex() {
		return 0, false
	}
	return l.hdr(i).term, true
}

// matchTerm reports whether entry i exists (or is the compaction point) with term t.
func (l *entryLog) matchTerm(i, t uint64) bool {
	tt, ok := l.term(i)
	return ok && tt == t
}

// entry returns entry i, its Data aliasing the block. i must be held.
func (l *entryLog) entry(i uint64) Entry {
	h := l.hdr(i)
	b := l.blocks[uint32(h.blk-l.blkBase)].buf
	return Entry{Index: i, Term: h.term, Type: h.typ, Data: b[h.off : h.off+h.n : h.off+h.n]}
}

// rangeBytes sums the payload bytes of entries [lo, hi].
func (l *entryLog) rangeBytes(lo, hi uint64) uint64 {
	var s uint64
	for i := lo; i <= hi; i++ {
		s += uint64(l.hdr(i).n)
	}
	return s
}

// appendTo appends entries [lo, hi] to dst, stopping before maxBytes of payload is
// exceeded (at least one entry) and after maxEntries. It returns dst and the payload bytes.
func (l *entryLog) appendTo(dst []Entry, lo, hi, maxBytes uint64, maxEntries int) ([]Entry, uint64) {
	if lo < l.firstIndex() || hi > l.lastIndex() {
		assert.Failf("raftcore: log range [%d,%d] outside [%d,%d]", lo, hi, l.firstIndex(), l.lastIndex())
	}
	var bytes uint64
	mask := len(l.hdrs) - 1
	pos := (l.head + int(lo-l.snapIndex-1)) & mask
	for i, k := lo, 0; i <= hi && k < maxEntries; i, k = i+1, k+1 {
		h := &l.hdrs[pos]
		n := uint64(h.n)
		if k > 0 && bytes+n > maxBytes {
			break
		}
		bytes += n
		b := l.blocks[uint32(h.blk-l.blkBase)].buf
		dst = append(dst, Entry{Index: i, Term: h.term, Type: h.typ, Data: b[h.off : h.off+h.n : h.off+h.n]})
		pos = (pos + 1) & mask
	}
	return dst, bytes
}

// append adds one entry at lastIndex()+1, copying data.
func (l *entryLog) append(term uint64, typ EntryType, data []byte) {
	if l.count == len(l.hdrs) {
		l.grow()
	}
	idx := l.lastIndex() + 1
	mask := len(l.hdrs) - 1
	prevTerm := l.snapTerm
	if l.count > 0 {
		prevTerm = l.hdrs[(l.head+l.count-1)&mask].term
	}
	if term < prevTerm {
		assert.Failf("raftcore: appending term %d after term %d", term, prevTerm)
	}
	if len(data) > MaxEntryBytes {
		assert.Failf("raftcore: entry of %d bytes over MaxEntryBytes", len(data))
	}
	blk, off := l.reserve(len(data), idx)
	b := &l.blocks[uint32(blk-l.blkBase)]
	b.buf = append(b.buf, data...)
	l.hdrs[(l.head+l.count)&mask] = entryHdr{term: term, blk: blk, off: off, n: uint32(len(data)), typ: typ}
	l.count++
}

// reserve finds room for n bytes of entry idx and returns the block number and offset.
func (l *entryLog) reserve(n int, idx uint64) (uint32, uint32) {
	cur := &l.blocks[len(l.blocks)-1]
	if len(cur.buf)+n > cap(cur.buf) {
		var buf []byte
		switch {
		case n > logBlockBytes:
			buf = make([]byte, 0, n)
		case len(l.free) > 0:
			buf = l.free[len(l.free)-1][:0]
			l.free[len(l.free)-1] = nil
			l.free = l.free[:len(l.free)-1]
		default:
			buf = make([]byte, 0, logBlockBytes)
		}
		l.blocks = append(l.blocks, logBlock{buf: buf})
		cur = &l.blocks[len(l.blocks)-1]
	}
	cur.last = max(cur.last, idx)
	return l.blkBase + uint32(len(l.blocks)-1), uint32(len(cur.buf))
}

func (l *entryLog) grow() {
	nh := make([]entryHdr, 2*len(l.hdrs))
	for i := 0; i < l.count; i++ {
		nh[i] = l.hdrs[(l.head+i)&(len(l.hdrs)-1)]
	}
	l.hdrs, l.head = nh, 0
}

// truncateFrom removes entries from index i on. Their payload bytes stay in their blocks
// (a Ready may still alias them) until compaction frees the blocks.
func (l *entryLog) truncateFrom(i uint64) {
	if i <= l.snapIndex || i > l.lastIndex()+1 {
		assert.Failf("raftcore: truncate from %d outside (%d, %d]", i, l.snapIndex, l.lastIndex()+1)
	}
	l.count = int(i - l.snapIndex - 1)
}

// compactTo drops entries up to and including c, which becomes the compaction point.
func (l *entryLog) compactTo(c uint64) {
	if c <= l.snapIndex {
		return
	}
	if c > l.lastIndex() {
		assert.Failf("raftcore: compact to %d beyond last index %d", c, l.lastIndex())
	}
	t, _ := l.term(c)
	drop := int(c - l.snapIndex)
	l.head = (l.head + drop) & (len(l.hdrs) - 1)
	l.count -= drop
	l.snapIndex, l.snapTerm = c, t
	l.freeBlocks(c)
}

// freeBlocks moves blocks whose every entry is <= c to pendingFree. The current write
// block stays.
func (l *entryLog) freeBlocks(c uint64) {
	k := 0
	for k < len(l.blocks)-1 && l.blocks[k].last <= c {
		if cap(l.blocks[k].buf) == logBlockBytes && len(l.free)+len(l.pendingFree) < logMaxFreeBlocks {
			l.pendingFree = append(l.pendingFree, l.blocks[k].buf)
		}
		l.blocks[k] = logBlock{}
		k++
	}
	if k > 0 {
		n := copy(l.blocks, l.blocks[k:])
		clear(l.blocks[n:])
		l.blocks = l.blocks[:n]
		l.blkBase += uint32(k)
	}
}

// releaseFreed makes blocks compacted before the last Ready reusable: the application has
// advanced, so nothing aliases them any more.
func (l *entryLog) releaseFreed() {
	for i, b := range l.pendingFree {
		l.free = append(l.free, b)
		l.pendingFree[i] = nil
	}
	l.pendingFree = l.pendingFree[:0]
}

// reset empties the log at a new compaction point (snapshot restore).
func (l *entryLog) reset(snapIndex, snapTerm uint64) {
	l.freeBlocks(^uint64(0))
	l.count, l.head = 0, 0
	l.snapIndex, l.snapTerm = snapIndex, snapTerm
	cur := &l.blocks[len(l.blocks)-1]
	cur.last = 0
}

// findConflictByTerm returns the largest index <= i whose term is <= t, or the compaction
// point when no held entry qualifies, or i itself when i is compacted (used for fast
// backtracking, Raft §5.3).
func (l *entryLog) findConflictByTerm(i, t uint64) uint64 {
	if i <= l.snapIndex {
		return i // compacted: the caller falls back to a snapshot
	}
	i = min(i, l.lastIndex())
	for i > l.snapIndex {
		if l.hdr(i).term <= t {
			return i
		}
		i--
	}
	return l.snapIndex
}

func (l *entryLog) String() string {
	return fmt.Sprintf("log[%d..%d] snap=%d/%d", l.firstIndex(), l.lastIndex(), l.snapIndex, l.snapTerm)
}
