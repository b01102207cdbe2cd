package storage

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// faultFS wraps the real filesystem and injects faults into WAL segment files: short
// writes, write errors, fdatasync errors. Corruption of bytes at rest is done directly on
// the files between runs (see corruptAt).
type faultFS struct {
	OSFS
	mu sync.Mutex
	// failWriteAt: the n-th WriteAt (1-based) on a .wal segment fails; 0 disables.
	failWriteAt int
	shortWrite  bool // the failing write first writes half its bytes
	failSyncAt  int  // the n-th Sync on a .wal segment fails; 0 disables
	writes      int
	syncs       int
	syncsAfter  int // Sync calls after the injected failure: must stay 0 (no retry)
	failed      bool
}

type faultFile struct {
	File
	fs   *faultFS
	name string
}

func (f *faultFS) Create(name string) (File, error) {
	inner, err := f.OSFS.Create(name)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: inner, fs: f, name: name}, nil
}

func (f *faultFS) Open(name string) (File, error) {
	inner, err := f.OSFS.Open(name)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: inner, fs: f, name: name}, nil
}

func (f *faultFile) isSegment() bool { return strings.Contains(filepath.Base(f.name), ".wal") }

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	fail := false
	if f.isSegment() {
		f.fs.writes++
		fail = f.fs.writes == f.fs.failWriteAt
	}
	short := f.fs.shortWrite
	if fail {
		f.fs.failed = true
	}
	f.fs.mu.Unlock()
	if !fail {
		return f.File.WriteAt(p, off)
	}
	if short {
		n, err := f.File.WriteAt(p[:len(p)/2], off)
		if err != nil {
			return n, err
		}
		return n, io.ErrShortWrite
	}
	return 0, syscall.EIO
}

func (f *faultFile) Sync() error {
	f.fs.mu.Lock()
	fail := false
	if f.isSegment() {
		f.fs.syncs++
		if f.fs.failed {
			f.fs.syncsAfter++
		}
		fail = f.fs.syncs == f.fs.failSyncAt
		if fail {
			f.fs.failed = true
		}
	}
	f.fs.mu.Unlock()
	if fail {
		return syscall.EIO
	}
	return f.File.Sync()
}

// appendBatches appends n batches of per entries each, waiting for each to be durable so
// that every batch is its own write.
func appendBatches(t *testing.T, w *WAL, from uint64, n, per int, size int) (last uint64, err error) {
	t.Helper()
	i := from
	for range n {
		seq, err := w.Append(mkEnts(i, i+uint64(per), 1, size), HardState{Term: 1, Commit: i})
		if err != nil {
			return i - 1, err
		}
		if err := w.WaitDurable(seq); err != nil {
			return i - 1, err
		}
		i += uint64(per)
	}
	return i - 1, nil
}

func ones(uint64) uint64 { return 1 }

func TestFaultWriteErrorsFailStop(t *testing.T) {
	cases := []struct {
		name       string
		fs         *faultFS
		wantTorn   bool
		syncFailed bool
	}{
		// Writes: the segment header is write 1; batch k is write k+1.
		{"short write", &faultFS{failWriteAt: 6, shortWrite: true}, true, false},
		{"write error", &faultFS{failWriteAt: 6}, false, false},
		// Syncs: the header is sync 1; batch k is sync k+1.
		{"fdatasync error", &faultFS{failSyncAt: 6}, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var got []Durable
			var mu sync.Mutex
			// Zeroing ahead is off: the faults are placed by counting the writer's calls.
			w, _ := mustOpen(t, dir, Options{FS: tc.fs, ZeroAheadBytes: -1, OnDurable: func(d Durable) { mu.Lock(); got = append(got, d); mu.Unlock() }})
			last, err := appendBatches(t, w, 1, 10, 10, 64)
			if err == nil {
				t.Fatal("fault not reported")
			}
			if last != 40 {
				t.Fatalf("durable through %d before the fault, want 40", last)
			}
			// Fail-stop: the error is sticky for every later call.
			if _, err2 := w.Append(mkEnts(last+1, last+2, 1, 8), HardState{}); err2 == nil || !errors.Is(err2, syscall.EIO) && !errors.Is(err2, io.ErrShortWrite) {
				t.Fatalf("append after failure: %v", err2)
			}
			if _, _, err2 := w.Entries(1, 2, 0, nil, nil); err2 == nil {
				t.Fatal("read after failure succeeded")
			}
			if _, err2 := w.Compact(5); err2 == nil {
				t.Fatal("compact after failure succeeded")
			}
			if err2 := w.Close(); err2 == nil {
				t.Fatal("close after failure returned nil")
			}
			mu.Lock()
			if n := len(got); n == 0 || got[n-1].Err == nil || got[n-1].Seq != 4 {
				t.Fatalf("durable reports end %+v, want Err with Seq 4", got[len(got)-1])
			}
			mu.Unlock()
			if tc.fs.syncsAfter != 0 {
				t.Fatalf("%d fdatasync calls after the failure: the WAL retried", tc.fs.syncsAfter)
			}
			// Restart on a healthy disk: every acknowledged entry is there; a partial batch
			// is a torn tail and cut off.
			w, st := mustOpen(t, dir, Options{})
			defer w.Close()
			if (st.TornTailBytes > 0) != tc.wantTorn {
				t.Fatalf("torn tail %d bytes, want torn=%v", st.TornTailBytes, tc.wantTorn)
			}
			if st.LastIndex < 40 {
				t.Fatalf("recovered last %d < acknowledged 40", st.LastIndex)
			}
			if !tc.syncFailed && st.LastIndex != 40 {
				t.Fatalf("recovered last %d: the failed batch must not survive", st.LastIndex)
			}
			checkLog(t, w, 1, st.LastIndex, ones, 64)
			if _, err := appendBatches(t, w, st.LastIndex+1, 3, 10, 64); err != nil {
				t.Fatalf("append after recovery: %v", err)
			}
			checkLog(t, w, 1, st.LastIndex+30, ones, 64)
		})
	}
}

// corruptAt flips one byte of path at off.
func corruptAt(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := OSFS{}.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// buildLog writes batches of 10 entries through index 200 into small segments and returns
// where each entry's record lies.
func buildLog(t *testing.T, dir string, opts Options) []entryPos {
	w, _ := mustOpen(t, dir, opts)
	if _, err := appendBatches(t, w, 1, 20, 10, 100); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	pos := append([]entryPos(nil), w.ents...)
	w.mu.Unlock()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return pos
}

func TestCorruptionBeforeTailRefusesToStart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		entry uint64 // flip a data byte of this entry
		seg   int64
	}{
		{"middle of last segment", 185, 8 << 10},
		{"earlier segment", 15, 8 << 10},
		{"single segment", 100, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pos := buildLog(t, dir, Options{SegmentBytes: tc.seg})
			p := pos[tc.entry-1]
			path := segPath(dir, p.seg)
			corruptAt(t, path, p.off+recordHeaderLen+entryFixedLen+5)
			_, _, err := Open(dir, Options{SegmentBytes: tc.seg})
			var ce *CorruptionError
			if !errors.As(err, &ce) {
				t.Fatalf("open after mid-log corruption: %v, want *CorruptionError", err)
			}
			if ce.File != path || ce.Offset != p.off {
				t.Fatalf("error names %s@%d, want %s@%d (%v)", ce.File, ce.Offset, path, p.off, err)
			}
		})
	}
}

func TestCorruptionAtTailIsTornTail(t *testing.T) {
	dir := t.TempDir()
	pos := buildLog(t, dir, Options{})
	p := pos[195-1] // inside the last batch (191..200)
	corruptAt(t, segPath(dir, p.seg), p.off+recordHeaderLen+entryFixedLen+3)
	w, st := mustOpen(t, dir, Options{})
	if st.LastIndex != 190 || st.TornTailBytes == 0 || st.TornTailOffset != pos[190].off-batchHeaderLen {
		t.Fatalf("recovered %+v, want last 190 with the final batch cut at %d", st, pos[190].off-batchHeaderLen)
	}
	checkLog(t, w, 1, 190, ones, 100)
	if _, err := appendBatches(t, w, 191, 2, 10, 100); err != nil {
		t.Fatal(err)
	}
	w.Close()
	// The zeroed tail cannot resurface: the next recovery is clean and complete.
	w, st = mustOpen(t, dir, Options{})
	defer w.Close()
	if st.LastIndex != 210 || st.TornTailBytes != 0 {
		t.Fatalf("second recovery %+v", st)
	}
	checkLog(t, w, 1, 210, ones, 100)
}

func TestBadSegmentHeaderAndMissingSegment(t *testing.T) {
	dir := t.TempDir()
	buildLog(t, dir, Options{SegmentBytes: 8 << 10})
	corruptAt(t, segPath(dir, 2), 12)
	var ce *CorruptionError
	if _, _, err := Open(dir, Options{SegmentBytes: 8 << 10}); !errors.As(err, &ce) || ce.Offset != 0 || ce.File != segPath(dir, 2) {
		t.Fatalf("bad header: %v", err)
	}
	dir = t.TempDir()
	buildLog(t, dir, Options{SegmentBytes: 8 << 10})
	if err := (OSFS{}).Remove(segPath(dir, 2)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(dir, Options{SegmentBytes: 8 << 10}); !errors.As(err, &ce) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing segment: %v", err)
	}
}

func TestSyncNoneDamageTruncates(t *testing.T) {
	dir := t.TempDir()
	pos := buildLog(t, dir, Options{Sync: SyncNone, SegmentBytes: 8 << 10})
	p := pos[55-1]
	corruptAt(t, segPath(dir, p.seg), p.off+recordHeaderLen+entryFixedLen)
	w, st := mustOpen(t, dir, Options{Sync: SyncNone, SegmentBytes: 8 << 10})
	defer w.Close()
	if st.LastIndex != 50 {
		t.Fatalf("SyncNone damage at 55: recovered through %d, want 50", st.LastIndex)
	}
	checkLog(t, w, 1, 50, ones, 100)
}

// slowSyncFS makes every fdatasync take at least syncDelay and counts writes and syncs,
// so a test can see group commit merge everything queued behind a slow sync.
type slowSyncFS struct {
	OSFS
	writes, syncs atomic.Int64
}

type slowSyncFile struct {
	File
	fs *slowSyncFS
}

const syncDelay = 2 * time.Millisecond

func (s *slowSyncFS) Create(name string) (File, error) {
	f, err := s.OSFS.Create(name)
	if err != nil {
		return nil, err
	}
	return &slowSyncFile{File: f, fs: s}, nil
}

func (f *slowSyncFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.writes.Add(1)
	return f.File.WriteAt(p, off)
}

func (f *slowSyncFile) Sync() error {
	f.fs.syncs.Add(1)
	time.Sleep(syncDelay)
	return f.File.Sync()
}

func TestGroupCommitMergesQueuedAppends(t *testing.T) {
	fs := &slowSyncFS{}
	var reports atomic.Int64
	// Zeroing ahead is off: the test counts the writer's calls.
	w, _ := mustOpen(t, t.TempDir(), Options{FS: fs, ZeroAheadBytes: -1, OnDurable: func(Durable) { reports.Add(1) }})
	const appends = 1000
	var seq uint64
	for i := uint64(1); i <= appends; i++ {
		seq = mustAppend(t, w, mkEnts(i, i+1, 1, 32), HardState{Term: 1, Commit: i})
	}
	if err := w.WaitDurable(seq); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	writes, syncs := fs.writes.Load(), fs.syncs.Load()
	// Each batch is one write and one fdatasync (plus the segment header's write and sync,
	// and the NEWEST marker's).
	if writes != syncs {
		t.Fatalf("%d writes but %d fdatasyncs: a batch must be one write and one sync", writes, syncs)
	}
	if syncs > appends/10 {
		t.Fatalf("%d fdatasyncs for %d queued appends: group commit did not merge", syncs, appends)
	}
	if reports.Load() != syncs-2 {
		t.Fatalf("%d durable reports for %d batches", reports.Load(), syncs-2)
	}
	t.Logf("%d appends -> %d batches", appends, syncs-2)
}
