package storage

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Open recovers the WAL in dir (creating dir if needed) and starts its writer. It verifies
// every record, truncates a torn tail, and refuses to start with a *CorruptionError when
// acknowledged data is damaged. See the package comment for the rules.
func Open(dir string, opts Options) (*WAL, State, error) {
	if err := opts.fill(); err != nil {
		return nil, State{}, err
	}
	fs := opts.FS
	if err := fs.MkdirAll(dir); err != nil {
		return nil, State{}, err
	}
	names, err := fs.List(dir)
	if err != nil {
		return nil, State{}, err
	}
	var seqs []uint64
	for _, name := range names {
		if strings.HasSuffix(name, ".wal.tmp") {
			// A segment whose creation never completed holds nothing acknowledged.
			if err := fs.Remove(dir + "/" + name); err != nil {
				return nil, State{}, err
			}
			continue
		}
		hex, ok := strings.CutSuffix(name, ".wal")
		if !ok || len(hex) != 16 {
			continue
		}
		seq, err := strconv.ParseUint(hex, 16, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	// The newest segment must be there: without it the log and the hard state roll back to
	// an older segment's, silently.
	if newest, ok, err := readNewest(fs, dir); err != nil {
		return nil, State{}, err
	} else if ok && (len(seqs) == 0 || seqs[len(seqs)-1] < newest) {
		have := "none"
		if len(seqs) > 0 {
			have = fmt.Sprintf("%016x", seqs[len(seqs)-1])
		}
		return nil, State{}, fmt.Errorf("storage: WAL segment %016x, the newest this WAL created, is missing from %s (newest present: %s): the log was cut outside the WAL and would roll back; refusing to start", newest, dir, have)
	}
	// Compaction removes old segments oldest first without a directory fsync, so after a
	// machine crash some removed files may reappear before a gap. Recovery starts after
	// the last gap; if those segments held entries still needed, the contiguity check in
	// finish refuses to start.
	stale := 0
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			stale = i
		}
	}
	staleSeqs := seqs[:stale]
	seqs = seqs[stale:]
	w := &WAL{dir: dir, opts: opts, fs: fs, first: 1, nextSeg: 1, nextBatch: 1, done: make(chan struct{})}
	w.work.L = &w.mu
	w.progress.L = &w.mu
	r := recovery{w: w}
	var st State
	closeAll := func() {
		for _, s := range w.segs {
			_ = s.f.Close()
		}
	}
	for i, seq := range seqs {
		stop, err := r.segment(seq, i == 0, i == len(seqs)-1, &st)
		if err != nil {
			closeAll()
			return nil, State{}, err
		}
		if stop {
			// SyncNone damage: everything after the damage point goes.
			for _, later := range seqs[i+1:] {
				if f, err := fs.Open(segPath(dir, later)); err == nil {
					if n, err := f.Size(); err == nil {
						st.DroppedBytes += n
					}
					_ = f.Close()
				}
				if err := fs.Remove(segPath(dir, later)); err != nil {
					closeAll()
					return nil, State{}, err
				}
				st.DroppedSegments++
			}
			if st.DroppedSegments > 0 {
				if err := writeNewest(fs, dir, seq, false); err != nil {
					closeAll()
					return nil, State{}, err
				}
			}
			break
		}
	}
	if err := r.finish(); err != nil {
		closeAll()
		if len(staleSeqs) > 0 {
			err = fmt.Errorf("%w (segments %016x..%016x precede a gap in the sequence)", err, staleSeqs[0], staleSeqs[len(staleSeqs)-1])
		}
		return nil, State{}, err
	}
	for _, seq := range staleSeqs {
		if err := fs.Remove(segPath(dir, seq)); err != nil {
			closeAll()
			return nil, State{}, err
		}
	}
	st.StaleSegmentsRemoved = len(staleSeqs)
	if n := len(w.segs); n > 0 {
		w.cur = w.segs[n-1]
		w.curOff = r.curOff
		w.curSynced = r.curSynced
		w.nextSeg = w.cur.seq + 1
	}
	w.diskHS, w.diskSnapI, w.diskSnapT = w.hs, w.snapIndex, w.snapTerm
	w.durable = Durable{LastIndex: w.lastIndexLocked(), LastTerm: w.lastTermLocked(), HardState: w.hs}
	st.HardState = w.hs
	st.SnapshotIndex, st.SnapshotTerm = w.snapIndex, w.snapTerm
	st.FirstIndex, st.LastIndex, st.LastTerm = w.first, w.lastIndexLocked(), w.lastTermLocked()
	st.Segments = len(w.segs)
	w.removals = make(chan []*segment, maxQueuedRemovals)
	w.removalDone = make(chan struct{})
	go w.runRemovals()
	if w.opts.Sync == SyncAlways && w.opts.ZeroAheadBytes > 0 {
		w.zero = newZeroer(w.opts.ZeroAheadBytes, w.opts.ZeroAheadMaxBatchBytes)
	}
	go w.run()
	return w, st, nil
}

type recovery struct {
	w         *WAL
	buf       []byte
	curOff    int64
	curSynced bool
}

func corrupt(path string, off int, format string, args ...any) error {
	return &CorruptionError{File: path, Offset: int64(off), Reason: fmt.Sprintf(format, args...)}
}

// segment replays one segment. stop reports that the log ends here (later segments must go).
func (r *recovery) segment(seq uint64, first, last bool, st *State) (stop bool, err error) {
	w := r.w
	path := segPath(w.dir, seq)
	f, err := w.fs.Open(path)
	if err != nil {
		return false, err
	}
	size, err := f.Size()
	if err != nil {
		_ = f.Close()
		return false, err
	}
	if int64(cap(r.buf)) < size {
		r.buf = make([]byte, size)
	}
	buf := r.buf[:size]
	if n, err := f.ReadAt(buf, 0); err != nil && !(errors.Is(err, io.EOF) && int64(n) == size) {
		_ = f.Close()
		return false, fmt.Errorf("storage: read %s: %w", path, err)
	}
	s := &segment{seq: seq, path: path, f: f}
	w.segs = append(w.segs, s) // closed by Open's caller on error
	typ, p, off, ok := readRecord(buf, 0)
	if !ok || typ != recSegment {
		return false, corrupt(path, 0, "bad segment header")
	}
	h, ok := parseSegmentHeader(p)
	if !ok || h.seq != seq {
		return false, corrupt(path, 0, "segment header invalid or names sequence %016x", h.seq)
	}
	if first {
		w.snapIndex, w.snapTerm, w.first, w.hs = h.snapIndex, h.snapTerm, h.snapIndex+1, h.hs
		w.nextBatch = h.nextBatch
	} else {
		if h.nextBatch != w.nextBatch {
			return false, corrupt(path, 0, "segment starts at batch %d, previous segment ended before batch %d", h.nextBatch, w.nextBatch)
		}
	}
	synced := h.flags&segmentFlagSynced != 0
	r.curSynced = synced
	for off < len(buf) {
		bad, reason := r.tryBatch(buf, off, s)
		if bad < 0 {
			off = int(le.Uint32(buf[off+recordHeaderLen+8:])) + off + batchHeaderLen
			w.nextBatch++
			continue
		}
		if allZero(buf[off:]) {
			break // clean end of the written part
		}
		if synced && !last {
			return false, corrupt(path, bad, "%s (later segments exist)", reason)
		}
		if synced {
			for j := off + 1; j+batchHeaderLen <= len(buf); j++ {
				if isBatchAt(buf, j, w.nextBatch) {
					return false, corrupt(path, bad, "%s (valid batch follows at offset %d)", reason, j)
				}
			}
		}
		// Torn tail: the batch at off never completed its fdatasync, so it was never
		// acknowledged. Cut it off and zero the rest so a later tail cannot mix with it.
		lastNZ := len(buf) - 1
		for buf[lastNZ] == 0 {
			lastNZ--
		}
		st.TornTailBytes = int64(lastNZ + 1 - off)
		st.TornTailFile, st.TornTailOffset = path, int64(off)
		if err := r.zeroFrom(f, int64(off)); err != nil {
			return false, fmt.Errorf("storage: truncate torn tail of %s at %d: %w", path, off, err)
		}
		r.curOff = int64(off)
		return !synced, nil
	}
	r.curOff = int64(off)
	return false, nil
}

func (r *recovery) zeroFrom(f File, off int64) error {
	if err := f.Truncate(off); err != nil {
		return err
	}
	if err := f.Allocate(r.w.opts.SegmentBytes); err != nil && !errors.Is(err, ErrAllocateUnsupported) {
		return err
	}
	return f.Sync()
}

// tryBatch validates the batch at off and, when every record in it is intact, applies it.
// It returns -1 on success, else the offset of the first damage and why.
func (r *recovery) tryBatch(buf []byte, off int, s *segment) (int, string) {
	w := r.w
	typ, p, bodyStart, ok := readRecord(buf, off)
	if !ok || typ != recBatch || len(p) != batchPayloadLen {
		return off, "bad batch record"
	}
	if seq := le.Uint64(p); seq != w.nextBatch {
		return off, fmt.Sprintf("batch sequence %d, want %d", seq, w.nextBatch)
	}
	bodyEnd := bodyStart + int(le.Uint32(p[8:]))
	if bodyEnd > len(buf) {
		return off, "batch extends past end of file"
	}
	body := buf[:bodyEnd]
	for at := bodyStart; at < bodyEnd; {
		typ, p, next, ok := readRecord(body, at)
		if !ok {
			return at, "bad record CRC or length"
		}
		switch {
		case typ == recEntry && len(p) >= entryFixedLen:
		case typ == recHardState && len(p) == hardStatePayloadLen:
		case typ == recCompact && len(p) == compactPayloadLen && p[16] <= compactReset:
		default:
			return at, fmt.Sprintf("unexpected record type %d length %d in batch", typ, len(p))
		}
		at = next
	}
	for at := bodyStart; at < bodyEnd; {
		typ, p, next, _ := readRecord(body, at)
		switch typ {
		case recEntry:
			r.replayEntry(le.Uint64(p), le.Uint64(p[8:]), s, int64(at), uint32(next-at))
		case recHardState:
			w.hs = HardState{Term: le.Uint64(p), Vote: le.Uint64(p[8:]), Commit: le.Uint64(p[16:])}
		case recCompact:
			r.replayCompact(le.Uint64(p), le.Uint64(p[8:]), p[16])
		}
		at = next
	}
	return -1, ""
}

func (r *recovery) lowerLive(i uint64) {
	for _, s := range r.w.segs {
		s.maxLive = min(s.maxLive, i-1)
	}
}

func (r *recovery) replayEntry(i, term uint64, s *segment, off int64, size uint32) {
	w := r.w
	if i >= w.first && i <= w.lastIndexLocked()+1 {
		w.truncateLocked(i)
	} else {
		// Outside the known log: only legal while the start of the log lies in segments
		// compaction removed; finish checks that the log ends up contiguous.
		w.ents = w.ents[:0]
		w.first = i
	}
	r.lowerLive(i)
	w.nextSlot++
	w.ents = append(w.ents, entryPos{term: term, slot: w.nextSlot, seg: s.seq, off: off, size: size})
	s.maxLive = max(s.maxLive, i)
}

func (r *recovery) replayCompact(index, term uint64, kind byte) {
	w := r.w
	w.snapIndex, w.snapTerm = index, term
	switch {
	case kind == compactReset || index >= w.lastIndexLocked():
		if kind == compactReset {
			r.lowerLive(1)
		}
		w.ents = w.ents[:0]
		w.first = index + 1
	case index >= w.first:
		w.dropPrefixLocked(index - w.first + 1)
		w.first = index + 1
	}
}

func (r *recovery) finish() error {
	w := r.w
	if len(w.ents) == 0 {
		w.first = w.snapIndex + 1
		return nil
	}
	if w.first != w.snapIndex+1 {
		return &CorruptionError{File: w.dir, Reason: fmt.Sprintf("log starts at index %d but the compaction point is %d: entries are missing", w.first, w.snapIndex)}
	}
	return nil
}
