package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
)

// SyncPolicy says whether each batch is made durable before it is acknowledged.
type SyncPolicy uint8

const (
	// SyncAlways issues one fdatasync per batch before reporting it durable. Durable runs use it.
	SyncAlways SyncPolicy = iota
	// SyncNone reports a batch durable once written to the page cache: memory speed,
	// survives a process crash but not a machine crash. Results must label it.
	SyncNone
)

func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "always"
	case SyncNone:
		return "none"
	}
	return fmt.Sprintf("SyncPolicy(%d)", uint8(p))
}

// ParseSyncPolicy maps "always" and "none" to their policies.
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	switch s {
	case "always":
		return SyncAlways, nil
	case "none":
		return SyncNone, nil
	}
	return 0, fmt.Errorf("storage: unknown sync policy %q (want always or none)", s)
}

// Limits and defaults.
const (
	DefaultSegmentBytes    = 64 << 20
	MinSegmentBytes        = 4 << 10
	MaxSegmentBytes        = 1 << 30
	DefaultMaxPendingBytes = 64 << 20 // Append blocks while this much waits for the writer
	DefaultMaxEntryBytes   = 16 << 20
	// MaxEntryBytesLimit keeps every record length within its uint32 field with room to spare.
	MaxEntryBytesLimit = 1 << 30
)

// Options configure a WAL. The zero value is valid: defaults, SyncAlways, the OS filesystem.
type Options struct {
	SegmentBytes    int64      // segment size, preallocated; a batch never straddles segments
	Sync            SyncPolicy // SyncAlways (default) or SyncNone
	MaxPendingBytes int        // bytes queued for the writer before Append blocks
	MaxEntryBytes   int        // largest Entry.Data accepted
	FS              FS         // nil means OSFS
	// ZeroAheadBytes: under SyncAlways, how far past the writer's end a segment is kept
	// written with zeros, so that fdatasync need not update the extent map (zeroahead.go).
	// 0 means DefaultZeroAheadBytes; negative turns it off.
	ZeroAheadBytes int64
	// ZeroAheadMaxBatchBytes: zeroing ahead rests while the writer's batches average this
	// many bytes or more, where writing every byte twice costs more than the fdatasyncs
	// it spares. 0 means DefaultZeroAheadMaxBatchBytes; negative never rests.
	ZeroAheadMaxBatchBytes int64
	// OnDurable, when set, is called from the writer goroutine after every batch, in order,
	// and once with Err set if the WAL fails. It must return quickly and must not call back
	// into the WAL (Append may be waiting for the writer).
	OnDurable func(Durable)
}

func (o *Options) fill() error {
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.MaxPendingBytes == 0 {
		o.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if o.MaxEntryBytes == 0 {
		o.MaxEntryBytes = DefaultMaxEntryBytes
	}
	if o.FS == nil {
		o.FS = OSFS{}
	}
	if o.ZeroAheadBytes == 0 {
		o.ZeroAheadBytes = DefaultZeroAheadBytes
	}
	if o.ZeroAheadMaxBatchBytes == 0 {
		o.ZeroAheadMaxBatchBytes = DefaultZeroAheadMaxBatchBytes
	}
	switch {
	case o.SegmentBytes < MinSegmentBytes || o.SegmentBytes > MaxSegmentBytes:
		return fmt.Errorf("storage: SegmentBytes %d outside [%d, %d]", o.SegmentBytes, MinSegmentBytes, MaxSegmentBytes)
	case o.MaxEntryBytes < 0 || o.MaxEntryBytes > MaxEntryBytesLimit:
		return fmt.Errorf("storage: MaxEntryBytes %d outside [0, %d]", o.MaxEntryBytes, MaxEntryBytesLimit)
	case o.MaxPendingBytes < 0:
		return fmt.Errorf("storage: MaxPendingBytes %d negative", o.MaxPendingBytes)
	case o.Sync != SyncAlways && o.Sync != SyncNone:
		return fmt.Errorf("storage: unknown sync policy %d", o.Sync)
	}
	return nil
}

// Entry is one log entry. Data is opaque to storage.
type Entry struct {
	Index uint64
	Term  uint64
	Type  uint8
	Data  []byte
}

// HardState is the protocol's persistent vote state, stored opaquely.
type HardState struct {
	Term, Vote, Commit uint64
}

// Durable reports progress of the group-commit writer.
type Durable struct {
	// Seq: every Append, Compact and ResetTo call that returned a sequence <= Seq is durable.
	Seq uint64
	// LastIndex and LastTerm: the log's last entry as of call Seq (the snapshot point when
	// the log is empty). HardState: the hard state as of call Seq.
	LastIndex, LastTerm uint64
	HardState           HardState
	// Err is set exactly once, when the WAL fails stop; nothing later becomes durable.
	Err error
}

// State is what Open recovered.
type State struct {
	HardState HardState
	// Entries <= SnapshotIndex were compacted; SnapshotTerm is the term of that entry.
	SnapshotIndex, SnapshotTerm uint64
	// The log holds [FirstIndex, LastIndex]; it is empty when LastIndex < FirstIndex.
	FirstIndex, LastIndex, LastTerm uint64
	Segments                        int
	// TornTailBytes is how many bytes of an unacknowledged final batch were discarded,
	// in TornTailFile at TornTailOffset; 0 when the tail was clean.
	TornTailBytes  int64
	TornTailFile   string
	TornTailOffset int64
	// StaleSegmentsRemoved counts segments before a gap in the sequence (left by an
	// interrupted compaction) that recovery found unnecessary and removed.
	StaleSegmentsRemoved int
	// DroppedSegments and DroppedBytes count the segments after a damaged one that recovery
	// removed (SyncNone only: nothing after unsynced damage can be trusted), and their size.
	DroppedSegments int
	DroppedBytes    int64
}

// Errors returned at the API boundary.
var (
	ErrClosed      = errors.New("storage: WAL closed")
	ErrCompacted   = errors.New("storage: index compacted")
	ErrUnavailable = errors.New("storage: index beyond the last entry")
	ErrNotContig   = errors.New("storage: entries not contiguous with the log")
	ErrTooLarge    = errors.New("storage: entry larger than MaxEntryBytes")
)

// CorruptionError says recovery found damaged data that had been acknowledged.
type CorruptionError struct {
	File   string
	Offset int64
	Reason string
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("storage: corrupt WAL %s at offset %d: %s", e.File, e.Offset, e.Reason)
}

// entryPos locates one live entry. It holds no pointers so the GC never scans the index.
type entryPos struct {
	term uint64
	slot uint64 // unique per appended entry: matches the writer's report for this version
	seg  uint64 // segment sequence; 0 while the entry still waits for the writer
	off  int64  // offset of the entry record within the segment
	size uint32 // record length including its header
}

type segment struct {
	seq  uint64
	path string
	f    File
	// maxLive is the highest index of a durable entry in this segment not since
	// overwritten; the segment may be removed once the durable compaction point reaches it.
	maxLive uint64
}

// pendingEnt tells the writer where an entry record sits in the batch buffer.
type pendingEnt struct {
	index, slot uint64
	off         int
	size        uint32
}

// batch is everything queued since the writer last looked: one write, one fdatasync.
type batch struct {
	buf       []byte // batch header placeholder + records; empty when nothing to write
	ents      []pendingEnt
	seq       uint64
	lastIndex uint64
	lastTerm  uint64
	hs        HardState
	snapIndex uint64
	snapTerm  uint64
	truncFrom uint64 // lowest index overwritten or dropped by a reset in this batch; 0 none
	hasEnts   bool
}

// WAL is a segmented write-ahead log with a group-commit writer goroutine.
//
// Concurrency: every method is safe for concurrent use. Calls are ordered by the WAL's
// mutex: Append/Compact/ResetTo take effect on the in-memory log immediately (LastIndex,
// Term and Entries see them) and become durable in call order; Durable reports and
// WaitDurable say when. Entries waits for queued entries to be written.
type WAL struct {
	dir  string
	opts Options
	fs   FS

	mu       sync.Mutex
	work     sync.Cond // writer waits for queued calls
	progress sync.Cond // appenders, readers and waiters wait for the writer
	err      error     // sticky failure
	closed   bool
	closing  bool

	// The log as queued (includes calls not yet durable).
	snapIndex, snapTerm uint64
	first               uint64 // index of ents[0]; snapIndex+1 outside recovery
	ents                []entryPos
	hs                  HardState
	nextSlot            uint64

	// Queue for the writer.
	pending     []byte
	pendingEnts []pendingEnt
	truncFrom   uint64
	hasEnts     bool
	queuedSeq   uint64
	takenSeq    uint64
	spareBuf    []byte
	spareEnts   []pendingEnt

	durable Durable
	segs    []*segment // ordered by seq; the last one is where the writer appends

	// Writer-owned.
	cur        *segment
	curOff     int64
	curSynced  bool
	nextSeg    uint64
	nextBatch  uint64
	diskHS     HardState
	diskSnapI  uint64
	diskSnapT  uint64
	hdrScratch []byte
	done       chan struct{}
	zero       *zeroer // nil unless SyncAlways with ZeroAheadBytes > 0

	// Segments the compaction point freed, closed and unlinked by their own goroutine:
	// unlinking a 64 MiB segment drops its page cache in one system call (about 20 ms in
	// the kernel), which on the writer would hold up every durability report behind it.
	removals    chan []*segment
	removalDone chan struct{}
}

// walWritePiece is the most a batch write hands the kernel in one call.
const walWritePiece = 1 << 20

// maxQueuedRemovals bounds the freed-segment lists waiting for the removal goroutine; the
// writer removes a list itself when they are all taken.
const maxQueuedRemovals = 16

func segPath(dir string, seq uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%016x.wal", seq))
}

// Dir returns the WAL's directory.
func (w *WAL) Dir() string { return w.dir }

// Policy returns the sync policy the WAL writes with.
func (w *WAL) Policy() SyncPolicy { return w.opts.Sync }

func (w *WAL) lastIndexLocked() uint64 { return w.first + uint64(len(w.ents)) - 1 }

func (w *WAL) lastTermLocked() uint64 {
	if len(w.ents) == 0 {
		return w.snapTerm
	}
	return w.ents[len(w.ents)-1].term
}

func (w *WAL) usableLocked() error {
	if w.err != nil {
		return w.err
	}
	if w.closed || w.closing {
		return ErrClosed
	}
	return nil
}

// truncateLocked drops entries >= i from the in-memory log.
func (w *WAL) truncateLocked(i uint64) {
	if i < w.first {
		w.ents = w.ents[:0]
		return
	}
	if i <= w.lastIndexLocked() {
		w.ents = w.ents[:i-w.first]
	}
}

// dropPrefixLocked removes the first n positions by moving the rest down, so the index
// keeps its backing array: reslicing would shrink the capacity and make the next
// appends reallocate and copy the whole index after every compaction.
func (w *WAL) dropPrefixLocked(n uint64) {
	w.ents = w.ents[:copy(w.ents, w.ents[n:])]
}

func (w *WAL) reserveBatchHeaderLocked() {
	if len(w.pending) == 0 {
		var zero [batchHeaderLen]byte
		w.pending = append(w.pending, zero[:]...)
	}
}

func (w *WAL) noteTruncLocked(i uint64) {
	if w.truncFrom == 0 || i < w.truncFrom {
		w.truncFrom = i
	}
}

// Append queues ents (which must continue the log: ents[0].Index in (SnapshotIndex,
// LastIndex+1], overwriting any suffix from ents[0].Index on) and hs (written only when it
// differs from the last queued hard state). It copies ents' data and returns the call's
// sequence, durable once a Durable report or WaitDurable reaches it. It blocks while more
// than MaxPendingBytes wait for the writer.
func (w *WAL) Append(ents []Entry, hs HardState) (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.usableLocked() == nil && len(w.pending) > w.opts.MaxPendingBytes {
		w.progress.Wait()
	}
	if err := w.usableLocked(); err != nil {
		return 0, err
	}
	if len(ents) > 0 {
		lo := ents[0].Index
		if lo <= w.snapIndex {
			return 0, fmt.Errorf("%w: append at %d, compacted through %d", ErrCompacted, lo, w.snapIndex)
		}
		if last := w.lastIndexLocked(); lo > last+1 {
			return 0, fmt.Errorf("%w: append at %d after last index %d", ErrNotContig, lo, last)
		}
		for k := range ents {
			if ents[k].Index != lo+uint64(k) {
				return 0, fmt.Errorf("%w: entry %d has index %d, want %d", ErrNotContig, k, ents[k].Index, lo+uint64(k))
			}
			if len(ents[k].Data) > w.opts.MaxEntryBytes {
				return 0, fmt.Errorf("%w: %d bytes at index %d", ErrTooLarge, len(ents[k].Data), ents[k].Index)
			}
		}
		if lo <= w.lastIndexLocked() {
			w.truncateLocked(lo)
			w.noteTruncLocked(lo)
		}
		w.reserveBatchHeaderLocked()
		need := 0
		for k := range ents {
			need += entryRecordLen(len(ents[k].Data))
		}
		w.pending = slices.Grow(w.pending, need)
		w.ents = slices.Grow(w.ents, len(ents))
		w.pendingEnts = slices.Grow(w.pendingEnts, len(ents))
		for k := range ents {
			e := &ents[k]
			off := len(w.pending)
			w.pending = appendEntryRecord(w.pending, e)
			w.nextSlot++
			w.ents = append(w.ents, entryPos{term: e.Term, slot: w.nextSlot})
			w.pendingEnts = append(w.pendingEnts, pendingEnt{index: e.Index, slot: w.nextSlot, off: off, size: uint32(len(w.pending) - off)})
		}
		w.hasEnts = true
	}
	if hs != w.hs {
		w.reserveBatchHeaderLocked()
		w.pending = appendHardStateRecord(w.pending, hs)
		w.hs = hs
	}
	return w.enqueueLocked(), nil
}

func (w *WAL) enqueueLocked() uint64 {
	w.queuedSeq++
	w.work.Signal()
	return w.queuedSeq
}

// Compact drops entries <= index (which must be in the log) and records the compaction
// point; whole segments holding nothing newer are removed once the record is durable.
// Compacting at or below the current point is a no-op that still returns a sequence.
func (w *WAL) Compact(index uint64) (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usableLocked(); err != nil {
		return 0, err
	}
	if index <= w.snapIndex {
		return w.enqueueLocked(), nil
	}
	if index > w.lastIndexLocked() {
		return 0, fmt.Errorf("%w: compact to %d, last index %d", ErrUnavailable, index, w.lastIndexLocked())
	}
	k := index - w.first
	w.snapTerm = w.ents[k].term
	w.snapIndex = index
	w.dropPrefixLocked(k + 1)
	w.first = index + 1
	w.reserveBatchHeaderLocked()
	w.pending = appendCompactRecord(w.pending, index, w.snapTerm, compactKeepSuffix)
	return w.enqueueLocked(), nil
}

// ResetTo discards the whole log and restarts it after (index, term), as when a snapshot
// newer than the log is installed. index must not be below the current compaction point.
func (w *WAL) ResetTo(index, term uint64) (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usableLocked(); err != nil {
		return 0, err
	}
	if index < w.snapIndex {
		return 0, fmt.Errorf("%w: reset to %d below compaction point %d", ErrCompacted, index, w.snapIndex)
	}
	w.ents = w.ents[:0]
	w.snapIndex, w.snapTerm = index, term
	w.first = index + 1
	w.noteTruncLocked(1)
	w.reserveBatchHeaderLocked()
	w.pending = appendCompactRecord(w.pending, index, term, compactReset)
	return w.enqueueLocked(), nil
}

// FirstIndex returns the first index in the log (SnapshotIndex+1).
func (w *WAL) FirstIndex() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.first
}

// LastIndex returns the last queued index (SnapshotIndex when the log is empty).
func (w *WAL) LastIndex() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastIndexLocked()
}

// Snapshot returns the compaction point (index, term).
func (w *WAL) Snapshot() (uint64, uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snapIndex, w.snapTerm
}

// HardState returns the last queued hard state.
func (w *WAL) HardState() HardState {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hs
}

// Term returns the term of entry i, for i in [SnapshotIndex, LastIndex].
func (w *WAL) Term(i uint64) (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case i < w.snapIndex:
		return 0, ErrCompacted
	case i == w.snapIndex:
		return w.snapTerm, nil
	case i > w.lastIndexLocked():
		return 0, ErrUnavailable
	}
	return w.ents[i-w.first].term, nil
}

// LastDurable returns the latest Durable report.
func (w *WAL) LastDurable() Durable {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.durable
}

// WaitDurable blocks until call seq is durable or the WAL fails.
func (w *WAL) WaitDurable(seq uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.durable.Seq < seq && w.err == nil && !w.closed {
		w.progress.Wait()
	}
	if w.durable.Seq >= seq {
		return nil
	}
	if w.err != nil {
		return w.err
	}
	return ErrClosed
}

// Entries appends to dst the entries [lo, hi), stopping before maxBytes of data is
// exceeded (but returning at least one entry); maxBytes 0 means no limit. Entry data is
// read from disk into buf (grown as needed) and aliases it. Entries still queued are
// waited for. Every record's CRC is checked.
func (w *WAL) Entries(lo, hi, maxBytes uint64, dst []Entry, buf []byte) ([]Entry, []byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		if err := w.usableLocked(); err != nil {
			return dst, buf, err
		}
		if lo <= w.snapIndex {
			return dst, buf, ErrCompacted
		}
		if hi > w.lastIndexLocked()+1 || lo > hi {
			return dst, buf, ErrUnavailable
		}
		if lo == hi {
			return dst, buf, nil
		}
		ready := true
		for i := lo; i < hi; i++ {
			if w.ents[i-w.first].seg == 0 {
				ready = false
				break
			}
		}
		if ready {
			break
		}
		w.progress.Wait()
	}
	ps := w.ents[lo-w.first : hi-w.first]
	var total, data uint64
	n := 0
	for n < len(ps) {
		d := uint64(ps[n].size) - recordHeaderLen - entryFixedLen
		if n > 0 && maxBytes > 0 && data+d > maxBytes {
			break
		}
		data += d
		total += uint64(ps[n].size)
		n++
	}
	base := len(buf)
	if need := base + int(total); cap(buf) < need {
		nb := make([]byte, base, need)
		copy(nb, buf)
		buf = nb
	}
	buf = buf[:base+int(total)]
	// Read runs of records that are adjacent on disk with one pread each.
	at := base
	for k := 0; k < n; {
		j := k + 1
		end := ps[k].off + int64(ps[k].size)
		for j < n && ps[j].seg == ps[k].seg && ps[j].off == end {
			end += int64(ps[j].size)
			j++
		}
		seg := w.findSegLocked(ps[k].seg)
		if seg == nil {
			return dst, buf[:base], fmt.Errorf("storage: segment %016x for index %d is gone", ps[k].seg, lo+uint64(k))
		}
		runLen := int(end - ps[k].off)
		if _, err := seg.f.ReadAt(buf[at:at+runLen], ps[k].off); err != nil {
			return dst, buf[:base], fmt.Errorf("storage: read %s at %d: %w", seg.path, ps[k].off, err)
		}
		for ; k < j; k++ {
			typ, p, next, ok := readRecord(buf[:at+int(ps[k].size)], at)
			idx := lo + uint64(k)
			if !ok || typ != recEntry || le.Uint64(p) != idx {
				return dst, buf[:base], &CorruptionError{File: seg.path, Offset: ps[k].off, Reason: fmt.Sprintf("entry %d unreadable", idx)}
			}
			dst = append(dst, Entry{Index: idx, Term: le.Uint64(p[8:]), Type: p[16], Data: p[entryFixedLen:]})
			at = next
		}
	}
	return dst, buf, nil
}

func (w *WAL) findSegLocked(seq uint64) *segment {
	lo, hi := 0, len(w.segs)
	for lo < hi {
		m := (lo + hi) / 2
		if w.segs[m].seq < seq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(w.segs) && w.segs[lo].seq == seq {
		return w.segs[lo]
	}
	return nil
}

// Close waits for everything queued to be written (and synced under SyncAlways), stops
// the writer and closes the files. It returns the WAL's failure, if any.
func (w *WAL) Close() error {
	w.mu.Lock()
	if w.closed || w.closing {
		w.mu.Unlock()
		return ErrClosed
	}
	w.closing = true
	w.work.Signal()
	w.mu.Unlock()
	<-w.done
	<-w.removalDone
	if w.zero != nil {
		w.zero.stop()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	w.progress.Broadcast()
	var cerr error
	for _, s := range w.segs {
		if err := s.f.Close(); err != nil && cerr == nil {
			cerr = err
		}
	}
	if w.err != nil {
		return w.err
	}
	return cerr
}

// removeSegments closes and unlinks segments the compaction point freed. A segment that
// fails to close or unlink is harmless: recovery replays it and the next compaction
// removes it.
//
// Each is first renamed to its temporary name (which recovery deletes unread) and then
// shrunk a few megabytes at a time (shrinkFile), so that its page cache is not dropped in
// one long system call. The rename comes first because a partly truncated segment under
// its own name would read as damage. Under SyncAlways the directory is synced after the
// renames, so that a machine crash cannot bring the old name back over a truncated file.
func (w *WAL) removeSegments(segs []*segment) {
	renamed := make([]bool, len(segs))
	for i, s := range segs {
		renamed[i] = w.fs.Rename(s.path, s.path+".tmp") == nil
	}
	// Shrinking is safe once no crash can bring a segment's old name back.
	shrink := w.opts.Sync != SyncAlways || !slices.Contains(renamed, true) || w.fs.SyncDir(w.dir) == nil
	for i, s := range segs {
		path := s.path
		if renamed[i] {
			path += ".tmp"
		}
		if renamed[i] && shrink {
			_ = shrinkFile(s.f)
		} else {
			_ = s.f.Close()
		}
		_ = w.fs.Remove(path)
	}
}

// runRemovals removes freed segments off the writer until the writer stops.
func (w *WAL) runRemovals() {
	defer close(w.removalDone)
	for segs := range w.removals {
		w.removeSegments(segs)
	}
}

// run is the group-commit writer: take everything queued, one write, one fdatasync.
func (w *WAL) run() {
	defer close(w.done)
	defer close(w.removals) // after the last send: the removal goroutine drains and ends
	for {
		w.mu.Lock()
		for w.queuedSeq == w.takenSeq && !w.closing && w.err == nil {
			w.work.Wait()
		}
		if w.err != nil || w.queuedSeq == w.takenSeq {
			w.mu.Unlock()
			return
		}
		b := batch{
			buf: w.pending, ents: w.pendingEnts, seq: w.queuedSeq,
			lastIndex: w.lastIndexLocked(), lastTerm: w.lastTermLocked(), hs: w.hs,
			snapIndex: w.snapIndex, snapTerm: w.snapTerm, truncFrom: w.truncFrom, hasEnts: w.hasEnts,
		}
		w.pending, w.pendingEnts = w.spareBuf[:0], w.spareEnts[:0]
		w.spareBuf, w.spareEnts = nil, nil
		w.truncFrom, w.hasEnts = 0, false
		w.takenSeq = w.queuedSeq
		w.progress.Broadcast() // room in the queue again
		w.mu.Unlock()

		seg, base, err := w.writeBatch(&b)

		w.mu.Lock()
		if err != nil {
			w.err = fmt.Errorf("storage: WAL failed stop: %w", err)
			w.progress.Broadcast()
			w.mu.Unlock()
			if w.zero != nil {
				w.zero.stop() // nothing may fdatasync a segment after a failed write or sync
			}
			if w.opts.OnDurable != nil {
				w.opts.OnDurable(Durable{Seq: w.durable.Seq, Err: w.err})
			}
			return
		}
		var removed []*segment
		if len(b.buf) > 0 {
			removed = w.afterWriteLocked(&b, seg, base)
		}
		w.spareBuf, w.spareEnts = b.buf[:0], b.ents[:0]
		w.durable = Durable{Seq: b.seq, LastIndex: b.lastIndex, LastTerm: b.lastTerm, HardState: b.hs}
		d := w.durable
		w.progress.Broadcast()
		w.mu.Unlock()

		if len(removed) > 0 {
			select {
			case w.removals <- removed:
			default:
				w.removeSegments(removed)
			}
		}
		if w.opts.OnDurable != nil {
			w.opts.OnDurable(d)
		}
	}
}

// afterWriteLocked records where the batch's entries landed, tracks which segments still
// hold live durable entries, and detaches the segments the durable compaction point freed.
func (w *WAL) afterWriteLocked(b *batch, seg *segment, base int64) []*segment {
	for _, pe := range b.ents {
		if pe.index < w.first || pe.index > w.lastIndexLocked() {
			continue
		}
		p := &w.ents[pe.index-w.first]
		if p.slot == pe.slot {
			p.seg, p.off, p.size = seg.seq, base+int64(pe.off), pe.size
		}
	}
	if b.truncFrom > 0 {
		for _, s := range w.segs {
			s.maxLive = min(s.maxLive, b.truncFrom-1)
		}
	}
	if b.hasEnts {
		seg.maxLive = max(seg.maxLive, b.lastIndex)
	}
	w.diskHS, w.diskSnapI, w.diskSnapT = b.hs, b.snapIndex, b.snapTerm
	k := 0
	for k < len(w.segs)-1 && w.segs[k] != w.cur && w.segs[k].maxLive <= b.snapIndex {
		k++
	}
	if k == 0 {
		return nil
	}
	removed := append([]*segment(nil), w.segs[:k]...)
	w.segs = append(w.segs[:0], w.segs[k:]...)
	return removed
}

// writeBatch writes b in one system call (rolling to a new segment first if it does not
// fit) and syncs it under SyncAlways. It returns the segment and offset written.
func (w *WAL) writeBatch(b *batch) (*segment, int64, error) {
	if len(b.buf) == 0 {
		return nil, 0, nil
	}
	want := w.opts.Sync == SyncAlways
	if w.cur == nil || w.curSynced != want || (w.curOff+int64(len(b.buf)) > w.opts.SegmentBytes && w.curOff > segmentHeaderLen) {
		if err := w.roll(int64(len(b.buf))); err != nil {
			return nil, 0, err
		}
	} else if w.zero != nil {
		w.zero.claim(w.curOff + int64(len(b.buf)))
	}
	putBatchHeader(b.buf, w.nextBatch, len(b.buf)-batchHeaderLen)
	// A batch can be megabytes: written walWritePiece bytes per call. A crash between
	// pieces leaves a torn batch, which recovery treats as any torn tail.
	if n, err := writeAtInPieces(w.cur.f, b.buf, w.curOff, walWritePiece); err != nil {
		return nil, 0, fmt.Errorf("write %s at %d: %w", w.cur.path, w.curOff+int64(n), err)
	}
	if want {
		if err := w.cur.f.Sync(); err != nil {
			return nil, 0, fmt.Errorf("fdatasync %s: %w", w.cur.path, err)
		}
	}
	base := w.curOff
	w.curOff += int64(len(b.buf))
	w.nextBatch++
	return w.cur, base, nil
}

// roll creates the next segment: temp name, preallocate, header, fsync, rename, fsync dir,
// so a segment either exists whole with a valid header or not at all. firstBatch is the
// size of the batch about to be written first: the zeroer starts past it, so that batch
// never waits for zeros.
func (w *WAL) roll(firstBatch int64) error {
	seq := w.nextSeg
	path := segPath(w.dir, seq)
	tmp := path + ".tmp"
	synced := w.opts.Sync == SyncAlways
	f, err := w.fs.Create(tmp)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	fail := func(err error) error {
		_ = f.Close()
		_ = w.fs.Remove(tmp)
		return err
	}
	allocErr := f.Allocate(w.opts.SegmentBytes)
	if allocErr != nil && !errors.Is(allocErr, ErrAllocateUnsupported) {
		return fail(fmt.Errorf("preallocate %s: %w", tmp, allocErr))
	}
	h := segmentHeader{seq: seq, nextBatch: w.nextBatch, snapIndex: w.diskSnapI, snapTerm: w.diskSnapT, hs: w.diskHS}
	if synced {
		h.flags |= segmentFlagSynced
	}
	w.hdrScratch = appendSegmentHeader(w.hdrScratch[:0], &h)
	if _, err := f.WriteAt(w.hdrScratch, 0); err != nil {
		return fail(fmt.Errorf("write %s: %w", tmp, err))
	}
	if synced {
		if err := f.Sync(); err != nil {
			return fail(fmt.Errorf("fdatasync %s: %w", tmp, err))
		}
	}
	if err := w.fs.Rename(tmp, path); err != nil {
		return fail(fmt.Errorf("rename %s: %w", tmp, err))
	}
	if synced {
		if err := w.fs.SyncDir(w.dir); err != nil {
			_ = f.Close()
			return fmt.Errorf("fsync dir %s: %w", w.dir, err)
		}
	}
	s := &segment{seq: seq, path: path, f: f}
	w.mu.Lock()
	w.segs = append(w.segs, s)
	w.mu.Unlock()
	w.cur, w.curOff, w.curSynced = s, int64(len(w.hdrScratch)), synced
	if w.zero != nil {
		if synced && allocErr == nil {
			w.zero.segment(f, w.opts.SegmentBytes, w.curOff+firstBatch)
		} else {
			w.zero.segment(nil, 0, 0) // zeros would not spare this segment's fdatasync anything
		}
	}
	w.nextSeg++
	if err := writeNewest(w.fs, w.dir, seq, synced); err != nil {
		return fmt.Errorf("record newest segment: %w", err)
	}
	return nil
}

// newestFileName records the sequence number of the newest segment the WAL created, so
// that recovery notices when the newest segment is gone (deleted or lost outside the WAL:
// the log and hard state would silently roll back). It is written after the segment exists,
// so it never names a segment that was not created.
const newestFileName = "NEWEST"

func writeNewest(fs FS, dir string, seq uint64, sync bool) error {
	path := filepath.Join(dir, newestFileName)
	tmp := path + ".tmp"
	_ = fs.Remove(tmp)
	f, err := fs.Create(tmp)
	if err != nil {
		return err
	}
	b := []byte(fmt.Sprintf("%016x\n", seq))
	if _, err := f.WriteAt(b, 0); err != nil {
		_ = f.Close()
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			_ = f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, path); err != nil {
		return err
	}
	if sync {
		return fs.SyncDir(dir)
	}
	return nil
}

// readNewest returns the recorded newest segment (ok false when none is recorded).
func readNewest(fs FS, dir string) (uint64, bool, error) {
	f, err := fs.Open(filepath.Join(dir, newestFileName))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, false, nil
		}
		return 0, false, err
	}
	defer f.Close()
	var b [16]byte
	if n, err := f.ReadAt(b[:], 0); n < len(b) && err != nil {
		return 0, false, fmt.Errorf("storage: read %s: %w", newestFileName, err)
	}
	seq, err := strconv.ParseUint(string(b[:]), 16, 64)
	if err != nil {
		return 0, false, fmt.Errorf("storage: %s holds %q: %w", newestFileName, b, err)
	}
	return seq, true, nil
}
