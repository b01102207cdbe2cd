package storage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entryData is the deterministic payload of entry i written at term t, so any reader can
// check an entry is intact without remembering what was written.
func entryData(i, t uint64, n int) []byte {
	b := make([]byte, n)
	for k := range b {
		b[k] = byte(i*31 + t*7 + uint64(k))
	}
	return b
}

func mkEnts(lo, hi, term uint64, size int) []Entry {
	var out []Entry
	for i := lo; i < hi; i++ {
		out = append(out, Entry{Index: i, Term: term, Type: byte(i % 3), Data: entryData(i, term, size)})
	}
	return out
}

func mustOpen(t *testing.T, dir string, opts Options) (*WAL, State) {
	t.Helper()
	w, st, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	return w, st
}

func mustAppend(t *testing.T, w *WAL, ents []Entry, hs HardState) uint64 {
	t.Helper()
	seq, err := w.Append(ents, hs)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return seq
}

// checkLog reads [lo, hi] and checks each entry against want(index) -> term.
func checkLog(t *testing.T, w *WAL, lo, hi uint64, termOf func(uint64) uint64, size int) {
	t.Helper()
	if lo > hi {
		return
	}
	ents, _, err := w.Entries(lo, hi+1, 0, nil, nil)
	if err != nil {
		t.Fatalf("entries [%d, %d]: %v", lo, hi, err)
	}
	if len(ents) != int(hi-lo+1) {
		t.Fatalf("got %d entries, want %d", len(ents), hi-lo+1)
	}
	for k, e := range ents {
		i := lo + uint64(k)
		term := termOf(i)
		if e.Index != i || e.Term != term || e.Type != byte(i%3) || !bytes.Equal(e.Data, entryData(i, term, size)) {
			t.Fatalf("entry %d: got index %d term %d type %d len %d, want term %d", i, e.Index, e.Term, e.Type, len(e.Data), term)
		}
		if got, err := w.Term(i); err != nil || got != term {
			t.Fatalf("Term(%d) = %d, %v; want %d", i, got, err, term)
		}
	}
}

func TestAppendReopen(t *testing.T) {
	dir := t.TempDir()
	var reports []Durable
	w, st := mustOpen(t, dir, Options{SegmentBytes: 64 << 10, OnDurable: func(d Durable) { reports = append(reports, d) }})
	if st.LastIndex != 0 || st.FirstIndex != 1 {
		t.Fatalf("fresh state %+v", st)
	}
	hs := HardState{Term: 1, Vote: 2, Commit: 0}
	var seq uint64
	for lo := uint64(1); lo <= 1000; lo += 50 {
		hs.Commit = lo
		seq = mustAppend(t, w, mkEnts(lo, lo+50, 1, 100), hs)
		if lo%200 == 1 {
			// Separate batches so the log spans several segments.
			if err := w.WaitDurable(seq); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.WaitDurable(seq); err != nil {
		t.Fatal(err)
	}
	checkLog(t, w, 1, 1000, func(uint64) uint64 { return 1 }, 100)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(reports) == 0 || reports[len(reports)-1].Seq != seq || reports[len(reports)-1].LastIndex != 1000 {
		t.Fatalf("durable reports end %+v, want seq %d last 1000", reports[len(reports)-1], seq)
	}
	w, st = mustOpen(t, dir, Options{SegmentBytes: 64 << 10})
	defer w.Close()
	if st.LastIndex != 1000 || st.FirstIndex != 1 || st.HardState != hs || st.LastTerm != 1 || st.Segments < 2 {
		t.Fatalf("recovered %+v", st)
	}
	checkLog(t, w, 1, 1000, func(uint64) uint64 { return 1 }, 100)
}

func TestOverwriteSuffixAndCompactionRecover(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 16 << 10}
	w, _ := mustOpen(t, dir, opts)
	mustAppend(t, w, mkEnts(1, 501, 1, 64), HardState{Term: 1})
	// Overwrite a suffix from 400 with term 2 entries, then extend.
	mustAppend(t, w, mkEnts(400, 451, 2, 64), HardState{Term: 2})
	mustAppend(t, w, mkEnts(451, 800, 3, 64), HardState{Term: 3, Commit: 700})
	termOf := func(i uint64) uint64 {
		switch {
		case i < 400:
			return 1
		case i <= 450:
			return 2
		}
		return 3
	}
	checkLog(t, w, 1, 799, termOf, 64)
	seq, err := w.Compact(600)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WaitDurable(seq); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Entries(600, 601, 0, nil, nil); !errors.Is(err, ErrCompacted) {
		t.Fatalf("read compacted: %v", err)
	}
	if tm, _ := w.Term(600); tm != 3 {
		t.Fatalf("Term(snapshot index) = %d", tm)
	}
	w.mu.Lock()
	nsegs := len(w.segs)
	w.mu.Unlock()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := OSFS{}.List(dir)
	w, st := mustOpen(t, dir, opts)
	if st.SnapshotIndex != 600 || st.SnapshotTerm != 3 || st.FirstIndex != 601 || st.LastIndex != 799 || st.HardState.Commit != 700 {
		t.Fatalf("recovered %+v", st)
	}
	if st.Segments != nsegs || nsegs >= 10 {
		t.Fatalf("segments after compaction: %d (%v), before reopen %d", st.Segments, names, nsegs)
	}
	checkLog(t, w, 601, 799, termOf, 64)
	// Reset beyond the log (snapshot install), then append after it and recover again.
	mustSeq(t)(w.ResetTo(900, 5))
	seq = mustAppend(t, w, mkEnts(901, 950, 5, 64), HardState{Term: 5, Commit: 949})
	if err := w.WaitDurable(seq); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w, st = mustOpen(t, dir, opts)
	defer w.Close()
	if st.SnapshotIndex != 900 || st.SnapshotTerm != 5 || st.FirstIndex != 901 || st.LastIndex != 949 {
		t.Fatalf("after reset recovered %+v", st)
	}
	checkLog(t, w, 901, 949, func(uint64) uint64 { return 5 }, 64)
}

func mustSeq(t *testing.T) func(uint64, error) {
	return func(_ uint64, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestAppendRejectsGapsAndCompacted(t *testing.T) {
	w, _ := mustOpen(t, t.TempDir(), Options{})
	defer w.Close()
	mustAppend(t, w, mkEnts(1, 11, 1, 8), HardState{})
	if _, err := w.Append(mkEnts(12, 13, 1, 8), HardState{}); !errors.Is(err, ErrNotContig) {
		t.Fatalf("gap: %v", err)
	}
	mustSeq(t)(w.Compact(5))
	if _, err := w.Append(mkEnts(5, 6, 1, 8), HardState{}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("below snapshot: %v", err)
	}
	bad := mkEnts(11, 13, 1, 8)
	bad[1].Index = 20
	if _, err := w.Append(bad, HardState{}); !errors.Is(err, ErrNotContig) {
		t.Fatalf("non-contiguous batch: %v", err)
	}
	if got := w.LastIndex(); got != 10 {
		t.Fatalf("rejected appends changed the log: last %d", got)
	}
}

func TestEntriesMaxBytes(t *testing.T) {
	w, _ := mustOpen(t, t.TempDir(), Options{})
	defer w.Close()
	mustAppend(t, w, mkEnts(1, 101, 1, 100), HardState{})
	ents, _, err := w.Entries(1, 101, 250, nil, nil)
	if err != nil || len(ents) != 2 {
		t.Fatalf("maxBytes 250: %d entries, %v", len(ents), err)
	}
	ents, _, err = w.Entries(1, 101, 1, nil, nil)
	if err != nil || len(ents) != 1 {
		t.Fatalf("maxBytes below one entry must still return one: %d, %v", len(ents), err)
	}
}

func TestSyncNoneRecovers(t *testing.T) {
	dir := t.TempDir()
	w, _ := mustOpen(t, dir, Options{Sync: SyncNone, SegmentBytes: 8 << 10})
	for lo := uint64(1); lo < 300; lo += 10 {
		mustAppend(t, w, mkEnts(lo, lo+10, 1, 50), HardState{})
	}
	w.Close()
	w, st := mustOpen(t, dir, Options{SegmentBytes: 8 << 10})
	defer w.Close()
	if st.LastIndex != 300 {
		t.Fatalf("recovered %+v", st)
	}
	checkLog(t, w, 1, 300, func(uint64) uint64 { return 1 }, 50)
	// Switching policy starts a fresh segment so synced batches never share a segment
	// with unsynced ones.
	seq := mustAppend(t, w, mkEnts(301, 302, 1, 50), HardState{})
	w.WaitDurable(seq)
	w.mu.Lock()
	synced := w.curSynced
	w.mu.Unlock()
	if !synced {
		t.Fatal("appending with SyncAlways kept writing into a SyncNone segment")
	}
}

// Readers run beside the writer: Entries waits for queued entries, sees overwrites, and
// never observes a compacted or half-written entry.
func TestConcurrentReadersDuringAppendAndCompact(t *testing.T) {
	w, _ := mustOpen(t, t.TempDir(), Options{SegmentBytes: 32 << 10})
	defer w.Close()
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		var buf []byte
		var ents []Entry
		for {
			select {
			case <-done:
				return
			default:
			}
			first, last := w.FirstIndex(), w.LastIndex()
			if first > last {
				continue
			}
			var err error
			ents, buf, err = w.Entries(first, last+1, 4096, ents[:0], buf[:0])
			if errors.Is(err, ErrCompacted) || errors.Is(err, ErrUnavailable) {
				continue // compacted or truncated between the two calls
			}
			if err != nil {
				errc <- err
				return
			}
			for k, e := range ents {
				if e.Index != first+uint64(k) || !bytes.Equal(e.Data, entryData(e.Index, e.Term, 40)) {
					errc <- fmt.Errorf("entry %d damaged: index %d term %d", first+uint64(k), e.Index, e.Term)
					return
				}
			}
		}
	}()
	next := uint64(1)
	for round := range 300 {
		term := uint64(round/50 + 1)
		lo := next
		if round%7 == 6 && next > w.FirstIndex()+5 {
			lo = next - 5 // overwrite a suffix
		}
		mustAppend(t, w, mkEnts(lo, lo+20, term, 40), HardState{Term: term})
		next = lo + 20
		if round%25 == 24 {
			if _, err := w.Compact(next - 30); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// Segments removed by compaction may reappear after a machine crash (removal is not
// fsynced); a gap before the needed segments must not stop recovery, and a gap that hides
// needed entries must.
func TestStaleSegmentsBeforeGap(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 8 << 10}
	w, _ := mustOpen(t, dir, opts)
	if _, err := appendBatches(t, w, 1, 30, 10, 100); err != nil {
		t.Fatal(err)
	}
	// Keep copies of segments 1 and 2, compact everything they hold, then put them back
	// as if their removal had not reached the disk while segment 3 is gone for good.
	keep := map[uint64][]byte{}
	for _, seq := range []uint64{1, 2} {
		b, err := os.ReadFile(segPath(dir, seq))
		if err != nil {
			t.Fatal(err)
		}
		keep[seq] = b
	}
	seq, err := w.Compact(250)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WaitDurable(seq); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := os.Stat(segPath(dir, 1)); !os.IsNotExist(err) {
		t.Fatalf("segment 1 not removed by compaction: %v", err)
	}
	for seq, b := range keep {
		if err := os.WriteFile(segPath(dir, seq), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w, st := mustOpen(t, dir, opts)
	if st.StaleSegmentsRemoved != 2 || st.FirstIndex != 251 || st.LastIndex != 300 {
		t.Fatalf("recovered %+v", st)
	}
	checkLog(t, w, 251, 300, ones, 100)
	w.Close()
}

// A WAL whose newest segment was deleted outside it refuses to open: otherwise the log and
// the hard state would roll back to the previous segment's, silently.
func TestMissingNewestSegmentIsDetected(t *testing.T) {
	dir := t.TempDir()
	w, _ := mustOpen(t, dir, Options{SegmentBytes: 8 << 10})
	var seq uint64
	for lo := uint64(1); lo < 400; lo += 10 {
		seq = mustAppend(t, w, mkEnts(lo, lo+10, 1, 50), HardState{Term: 1, Commit: lo})
		if err := w.WaitDurable(seq); err != nil { // one batch each: several segments
			t.Fatal(err)
		}
	}
	w.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(segs) < 2 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	if err := os.Remove(segs[len(segs)-1]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(dir, Options{SegmentBytes: 8 << 10}); err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Fatalf("Open with the newest segment gone: %v, want a refusal", err)
	}
}

// Under SyncNone, damage in one segment drops every later one; recovery says how many
// segments and bytes went, not only the torn tail, and the WAL opens again afterwards.
func TestSyncNoneDamageReportsDroppedSegments(t *testing.T) {
	dir := t.TempDir()
	w, _ := mustOpen(t, dir, Options{Sync: SyncNone, SegmentBytes: 8 << 10})
	var seq uint64
	for lo := uint64(1); lo < 400; lo += 10 {
		seq = mustAppend(t, w, mkEnts(lo, lo+10, 1, 50), HardState{})
		_ = w.WaitDurable(seq) // one batch each: several segments
	}
	w.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(segs) < 3 {
		t.Fatalf("want at least 3 segments, got %d", len(segs))
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/4] ^= 0xff // one flipped byte early in the first segment
	if err := os.WriteFile(segs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	w, st := mustOpen(t, dir, Options{Sync: SyncNone, SegmentBytes: 8 << 10})
	w.Close()
	if st.DroppedSegments != len(segs)-1 || st.DroppedBytes == 0 || st.TornTailBytes == 0 {
		t.Fatalf("recovery state %+v: want %d dropped segments with their bytes and a torn tail", st, len(segs)-1)
	}
	w, _ = mustOpen(t, dir, Options{Sync: SyncNone, SegmentBytes: 8 << 10})
	w.Close()
}
