package storage

import (
	"bytes"
	"sync"
	"syscall"
	"testing"
	"time"
)

// writeLogFS records every write to a segment file with the order in which it started and
// ended, and slows zeroing writes so that the writer catches up with the zeroer.
type writeLogFS struct {
	OSFS
	zeroDelay time.Duration
	failZeros bool // zeroing writes fail with EIO

	mu    sync.Mutex
	clock int
	log   []fileWrite
}

type fileWrite struct {
	file       File
	from, to   int64
	zeros      bool // every byte written was zero
	start, end int  // ticks of the FS's clock
}

type writeLogFile struct {
	File
	fs *writeLogFS
}

func (l *writeLogFS) Create(name string) (File, error) {
	f, err := l.OSFS.Create(name)
	if err != nil {
		return nil, err
	}
	return &writeLogFile{File: f, fs: l}, nil
}

func (f *writeLogFile) WriteAt(p []byte, off int64) (int, error) {
	zeros := len(p) > 0 && bytes.Count(p, []byte{0}) == len(p)
	f.fs.mu.Lock()
	f.fs.clock++
	w := fileWrite{file: f, from: off, to: off + int64(len(p)), zeros: zeros, start: f.fs.clock}
	f.fs.mu.Unlock()
	if zeros {
		time.Sleep(f.fs.zeroDelay)
	}
	var n int
	var err error
	if zeros && f.fs.failZeros {
		err = syscall.EIO
	} else {
		n, err = f.File.WriteAt(p, off)
	}
	f.fs.mu.Lock()
	f.fs.clock++
	w.end = f.fs.clock
	f.fs.log = append(f.fs.log, w)
	f.fs.mu.Unlock()
	return n, err
}

// TestZeroAheadNeverWritesUnderTheWriter runs the writer against a zeroer slowed so that it
// is often caught up with, across several segments, and checks from the write log that no
// zeroing write overlapped a data write in time or landed on bytes the writer had written
// before it; then that recovery reads back every entry.
func TestZeroAheadNeverWritesUnderTheWriter(t *testing.T) {
	dir := t.TempDir()
	fs := &writeLogFS{zeroDelay: 2 * time.Millisecond}
	opts := Options{FS: fs, SegmentBytes: 1 << 20, ZeroAheadBytes: 3 * zeroChunkBytes}
	w, _ := mustOpen(t, dir, opts)
	const size = 700
	next := uint64(1)
	for i := range 400 {
		n := 1 + i%37 // batches of 1 to 37 entries, up to about 27 KiB
		var seq uint64
		// Two appends in flight now and then, so batches of different sizes merge.
		for range 1 + i%2 {
			seq = mustAppend(t, w, mkEnts(next, next+uint64(n), 1, size), HardState{Term: 1, Commit: next})
			next += uint64(n)
		}
		if err := w.WaitDurable(seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	last := next - 1

	fs.mu.Lock()
	var zeroWrites, dataWrites, segments int
	files := map[File]bool{}
	for i, z := range fs.log {
		files[z.file] = true
		if !z.zeros {
			dataWrites++
			continue
		}
		zeroWrites++
		for _, d := range fs.log {
			if d.file != z.file || d.zeros || d.to <= z.from || d.from >= z.to {
				continue
			}
			if d.start < z.end {
				t.Fatalf("zeroing write %d [%d, %d) (ticks %d-%d) overlaps a data write [%d, %d) that started at tick %d",
					i, z.from, z.to, z.start, z.end, d.from, d.to, d.start)
			}
		}
	}
	segments = len(files)
	var zeroBytes uint64
	for _, z := range fs.log {
		if z.zeros {
			zeroBytes += uint64(z.to - z.from)
		}
	}
	fs.mu.Unlock()
	if st := w.ZeroAhead(); st.Bytes != zeroBytes || st.Failures != 0 {
		t.Fatalf("ZeroAhead() = %+v, the write log has %d bytes of zeros and no failure", st, zeroBytes)
	} else {
		t.Logf("%+v", st)
	}
	if zeroWrites == 0 || segments < 3 {
		t.Fatalf("%d zeroing writes over %d segments: the test did not exercise the zeroer", zeroWrites, segments)
	}
	t.Logf("%d data writes, %d zeroing writes, %d segments", dataWrites, zeroWrites, segments)

	w, st := mustOpen(t, dir, Options{SegmentBytes: 1 << 20})
	defer w.Close()
	if st.LastIndex != last || st.TornTailBytes != 0 {
		t.Fatalf("recovered through %d (torn %d bytes), want %d", st.LastIndex, st.TornTailBytes, last)
	}
	checkLog(t, w, 1, last, ones, size)
}

// TestZeroAheadReachesAhead checks that the zeroer keeps the bytes past the writer written
// with zeros to within one chunk of ZeroAheadBytes: after one small batch, the zeroing
// writes must cover the bytes from the batch's end that far.
func TestZeroAheadReachesAhead(t *testing.T) {
	fs := &writeLogFS{}
	const ahead = 4 * zeroChunkBytes
	w, _ := mustOpen(t, t.TempDir(), Options{FS: fs, ZeroAheadBytes: ahead})
	defer w.Close()
	seq := mustAppend(t, w, mkEnts(1, 2, 1, 100), HardState{Term: 1})
	if err := w.WaitDurable(seq); err != nil {
		t.Fatal(err)
	}
	covered := func() (end, reach int64) {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		for _, z := range fs.log {
			if !z.zeros {
				end = max(end, z.to)
			}
		}
		reach = end
		for progress := true; progress; {
			progress = false
			for _, z := range fs.log {
				if z.zeros && z.from <= reach && z.to > reach {
					reach, progress = z.to, true
				}
			}
		}
		return end, reach
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		end, reach := covered()
		if reach >= end+ahead-zeroChunkBytes {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("zeros reach %d, want %d (writer's end %d + %d - one chunk)", reach, end+ahead-zeroChunkBytes, end, ahead)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestZeroAheadOffUnderSyncNone: SyncNone never fdatasyncs, so zeroing would only cost.
func TestZeroAheadOffUnderSyncNone(t *testing.T) {
	fs := &writeLogFS{}
	w, _ := mustOpen(t, t.TempDir(), Options{FS: fs, Sync: SyncNone})
	if w.zero != nil || w.ZeroAhead() != (ZeroAheadStats{}) {
		t.Fatal("zeroer running under SyncNone")
	}
	seq := mustAppend(t, w, mkEnts(1, 2, 1, 100), HardState{Term: 1})
	if err := w.WaitDurable(seq); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, z := range fs.log {
		if z.zeros && z.to-z.from >= zeroChunkBytes {
			t.Fatalf("zeroing write [%d, %d) under SyncNone", z.from, z.to)
		}
	}
}

// TestZeroAheadFailureLeavesTheWALWorking: zeroing writes that fail are counted and leave
// the segment as merely preallocated; the WAL's own writes and recovery are unaffected.
func TestZeroAheadFailureLeavesTheWALWorking(t *testing.T) {
	dir := t.TempDir()
	fs := &writeLogFS{failZeros: true}
	w, _ := mustOpen(t, dir, Options{FS: fs, SegmentBytes: 1 << 20, ZeroAheadBytes: 2 * zeroChunkBytes})
	const size = 700
	next := uint64(1)
	for range 100 {
		seq := mustAppend(t, w, mkEnts(next, next+20, 1, size), HardState{Term: 1, Commit: next})
		next += 20
		if err := w.WaitDurable(seq); err != nil {
			t.Fatal(err)
		}
	}
	st := w.ZeroAhead()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if st.Failures == 0 || st.Bytes != 0 {
		t.Fatalf("ZeroAhead() = %+v, want failures and no bytes", st)
	}
	w, rec := mustOpen(t, dir, Options{SegmentBytes: 1 << 20})
	defer w.Close()
	if rec.LastIndex != next-1 {
		t.Fatalf("recovered through %d, want %d", rec.LastIndex, next-1)
	}
	checkLog(t, w, 1, next-1, ones, size)
}

// TestZeroAheadRestsForLargeBatches: while the writer's batches average
// ZeroAheadMaxBatchBytes or more the zeroer starts no chunk (every byte written twice
// would cost more than the fdatasyncs it spares), and it resumes once batches are small
// again. The log reads back whole either way.
func TestZeroAheadRestsForLargeBatches(t *testing.T) {
	dir := t.TempDir()
	fs := &writeLogFS{}
	const maxBatch = 32 << 10
	opts := Options{FS: fs, SegmentBytes: 64 << 20, ZeroAheadBytes: 2 * zeroChunkBytes, ZeroAheadMaxBatchBytes: maxBatch}
	w, _ := mustOpen(t, dir, opts)
	const size = 1000
	next := uint64(1)
	appendN := func(batches, per int) {
		t.Helper()
		for range batches {
			seq := mustAppend(t, w, mkEnts(next, next+uint64(per), 1, size), HardState{Term: 1, Commit: next})
			next += uint64(per)
			if err := w.WaitDurable(seq); err != nil {
				t.Fatal(err)
			}
		}
	}
	// settled waits for the zeroer to finish what it started and reports its bytes.
	settled := func() uint64 {
		t.Helper()
		for {
			w.zero.mu.Lock()
			idle := !w.zero.busy && !w.zero.due()
			w.zero.mu.Unlock()
			if idle {
				return w.ZeroAhead().Bytes
			}
			time.Sleep(time.Millisecond)
		}
	}

	appendN(20, 4) // about 4 KiB batches: zeroing runs
	small := settled()
	if small == 0 {
		t.Fatal("no zeros written ahead of small batches")
	}
	appendN(40, 100) // about 100 KiB batches: the average passes maxBatch and zeroing rests
	large := settled()
	rested := w.ZeroAhead().Rested
	if rested == 0 {
		t.Fatalf("ZeroAhead() = %+v: zeroing never rested for 100 KiB batches", w.ZeroAhead())
	}
	// Once resting, at most the chunk in flight when the average crossed may have landed;
	// 40 batches of 100 KiB would have needed about 4 MB of zeros.
	if large-small > 2*zeroChunkBytes+zeroChunkBytes {
		t.Fatalf("%d bytes of zeros written during large batches", large-small)
	}
	appendN(60, 4) // small again: the average falls and zeroing resumes
	if again := settled(); again <= large {
		t.Fatalf("zeroing did not resume for small batches: %d bytes before and after", again)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w, st := mustOpen(t, dir, Options{SegmentBytes: 64 << 20})
	defer w.Close()
	if st.LastIndex != next-1 {
		t.Fatalf("recovered through %d, want %d", st.LastIndex, next-1)
	}
	checkLog(t, w, 1, next-1, ones, size)
}
