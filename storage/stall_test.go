package storage

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tests for the rule that storage never holds one system call (or one page fault) for
// tens of milliseconds on a path a replica waits for: a non-preemptible kernel gives that
// CPU to no other thread meanwhile, and on a small host every request queues behind it.

// opFS records the filesystem operations that matter here, and can hold up Remove.
type opFS struct {
	OSFS
	mu       sync.Mutex
	ops      []string
	maxWrite int
	// blockRemove, when set, makes Remove of a WAL segment wait until it is closed.
	blockRemove chan struct{}
}

type opFile struct {
	File
	fs   *opFS
	name string
}

func (f *opFS) log(op string) {
	f.mu.Lock()
	f.ops = append(f.ops, op)
	f.mu.Unlock()
}

func (f *opFS) Create(name string) (File, error) {
	inner, err := f.OSFS.Create(name)
	if err != nil {
		return nil, err
	}
	return &opFile{File: inner, fs: f, name: name}, nil
}

func (f *opFS) Open(name string) (File, error) {
	inner, err := f.OSFS.Open(name)
	if err != nil {
		return nil, err
	}
	return &opFile{File: inner, fs: f, name: name}, nil
}

func (f *opFS) Rename(from, to string) error {
	f.log("rename " + filepath.Base(from) + " " + filepath.Base(to))
	return f.OSFS.Rename(from, to)
}

func (f *opFS) SyncDir(dir string) error {
	f.log("syncdir")
	return f.OSFS.SyncDir(dir)
}

func (f *opFS) Remove(name string) error {
	if f.blockRemove != nil && strings.Contains(filepath.Base(name), ".wal") {
		<-f.blockRemove
	}
	f.log("remove " + filepath.Base(name))
	return f.OSFS.Remove(name)
}

func (f *opFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	f.fs.maxWrite = max(f.fs.maxWrite, len(p))
	f.fs.mu.Unlock()
	return f.File.WriteAt(p, off)
}

func (f *opFile) Truncate(size int64) error {
	f.fs.log("truncate " + filepath.Base(f.name) + " " + strconv.FormatInt(size, 10))
	return f.File.Truncate(size)
}

// A snapshot body handed over in one Write (as the Raft replica hands its serialized
// store) reaches the file in pieces of at most snapWriteBuffer bytes.
func TestSnapshotWritesInBoundedPieces(t *testing.T) {
	fs := &opFS{}
	body := bytes.Repeat([]byte("0123456789abcdef"), 10<<20/16)
	_, err := WriteSnapshotSynced(fs, t.TempDir(), SnapshotMeta{Index: 7, Term: 1}, false, func(w io.Writer) error {
		_, err := w.Write(body)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if fs.maxWrite > snapWriteBuffer {
		t.Fatalf("largest WriteAt %d bytes, want at most %d", fs.maxWrite, snapWriteBuffer)
	}
}

// Old snapshot files are shrunk a step at a time before they are unlinked.
func TestOldSnapshotsShrinkBeforeRemoval(t *testing.T) {
	dir := t.TempDir()
	fs := &opFS{}
	body := bytes.Repeat([]byte{7}, 9<<20)
	for _, idx := range []uint64{10, 20} {
		if _, err := WriteSnapshotSynced(fs, dir, SnapshotMeta{Index: idx, Term: 1}, false, func(w io.Writer) error {
			_, err := w.Write(body)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	fs.ops = nil
	if err := RemoveSnapshotsBefore(fs, dir, 20); err != nil {
		t.Fatal(err)
	}
	checkShrunkThenRemoved(t, fs.ops, snapName(10, 1), snapName(10, 1))
	if s, _, err := OpenLatestSnapshot(nil, dir); err != nil || s.Index != 20 {
		t.Fatalf("latest after removal: %v %v", s, err)
	} else {
		s.Close()
	}
}

// checkShrunkThenRemoved checks that ops truncate file a step of at most shrinkStepBytes at
// a time down to 0 and then remove it, under the name removed.
func checkShrunkThenRemoved(t *testing.T, ops []string, file, removed string) {
	t.Helper()
	var steps []string
	gone := false
	for _, op := range ops {
		switch {
		case strings.HasPrefix(op, "truncate "+file+" "):
			if gone {
				t.Fatalf("truncate after removal: %q", ops)
			}
			steps = append(steps, strings.TrimPrefix(op, "truncate "+file+" "))
		case op == "remove "+removed:
			gone = true
		}
	}
	if !gone || len(steps) < 2 || steps[len(steps)-1] != "0" {
		t.Fatalf("want %s shrunk in steps to 0 and then removed as %s, got ops %q", file, removed, ops)
	}
}

// Segments the compaction point frees are removed off the writer: while an unlink is held
// up, appends still become durable.
func TestSegmentRemovalDoesNotHoldUpTheWriter(t *testing.T) {
	dir := t.TempDir()
	fs := &opFS{blockRemove: make(chan struct{})}
	w, _ := mustOpen(t, dir, Options{Sync: SyncNone, SegmentBytes: 8 << 10, FS: fs})
	var seq uint64
	for lo := uint64(1); lo < 200; lo += 10 {
		seq = mustAppend(t, w, mkEnts(lo, lo+10, 1, 50), HardState{Term: 1, Commit: lo})
		if err := w.WaitDurable(seq); err != nil { // one batch each: several segments
			t.Fatal(err)
		}
	}
	if _, err := w.Compact(150); err != nil { // frees the segments below 150, held in Remove
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		var err error
		for lo := uint64(200); lo < 300 && err == nil; lo += 10 {
			var s uint64
			if s, err = w.Append(mkEnts(lo, lo+10, 1, 50), HardState{Term: 1, Commit: lo}); err == nil {
				err = w.WaitDurable(s)
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(fs.blockRemove)
		t.Fatal("appends did not become durable while a segment's removal was held up")
	}
	close(fs.blockRemove)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w, st := mustOpen(t, dir, Options{Sync: SyncNone, SegmentBytes: 8 << 10})
	defer w.Close()
	if st.FirstIndex != 151 || st.LastIndex != 299 {
		t.Fatalf("recovered %+v", st)
	}
}

// A freed segment is renamed to its temporary name (which recovery deletes unread), the
// rename synced under SyncAlways, and only then shrunk and unlinked; a segment left
// half-shrunk by a crash does not stop the WAL from opening with its log intact.
func TestFreedSegmentsShrinkUnderTemporaryName(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncAlways, SyncNone} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			fs := &opFS{}
			const segBytes = 9 << 20 // preallocated: shrinking takes several steps
			w, _ := mustOpen(t, dir, Options{Sync: policy, SegmentBytes: segBytes, FS: fs})
			var seq uint64
			for lo := uint64(1); lo < 3000; lo += 100 { // about 3 segments of 1 KiB entries
				seq = mustAppend(t, w, mkEnts(lo, lo+100, 1, 10<<10), HardState{Term: 1, Commit: lo})
			}
			if err := w.WaitDurable(seq); err != nil {
				t.Fatal(err)
			}
			w.mu.Lock()
			first := filepath.Base(w.segs[0].path)
			w.mu.Unlock()
			seq, err := w.Compact(2500)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WaitDurable(seq); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			fs.mu.Lock()
			ops := append([]string(nil), fs.ops...)
			fs.mu.Unlock()
			renamed := -1
			for i, op := range ops {
				if op == "rename "+first+" "+first+".tmp" {
					renamed = i
				}
			}
			if renamed < 0 {
				t.Fatalf("segment %s never renamed to its temporary name: %q", first, ops)
			}
			rest := ops[renamed:]
			if policy == SyncAlways {
				synced := false
				for _, op := range rest {
					synced = synced || op == "syncdir"
					if strings.HasPrefix(op, "truncate ") && !synced {
						t.Fatalf("SyncAlways: a segment shrinks before its rename is synced: %q", rest)
					}
				}
			}
			checkShrunkThenRemoved(t, rest, first+".tmp", first+".tmp")

			// A crash halfway through a shrink leaves a short file under the temporary
			// name: recovery deletes it and the log opens whole.
			if err := os.WriteFile(filepath.Join(dir, first+".tmp"), []byte("half-shrunk"), 0o644); err != nil {
				t.Fatal(err)
			}
			w, st := mustOpen(t, dir, Options{Sync: policy, SegmentBytes: segBytes})
			defer w.Close()
			if st.FirstIndex != 2501 || st.LastIndex != 3000 {
				t.Fatalf("recovered %+v", st)
			}
			checkLog(t, w, 2501, 3000, func(uint64) uint64 { return 1 }, 10<<10)
		})
	}
}

// A batch larger than walWritePiece reaches its segment in pieces of at most that many
// bytes, and reads back whole.
func TestWALWritesInBoundedPieces(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncAlways, SyncNone} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			fs := &opFS{}
			w, _ := mustOpen(t, dir, Options{Sync: policy, SegmentBytes: 16 << 20, FS: fs})
			seq := mustAppend(t, w, mkEnts(1, 41, 1, 100<<10), HardState{Term: 1, Commit: 40}) // 4 MB in one batch
			if err := w.WaitDurable(seq); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if fs.maxWrite > walWritePiece {
				t.Fatalf("largest WriteAt %d bytes, want at most %d", fs.maxWrite, walWritePiece)
			}
			w, st := mustOpen(t, dir, Options{Sync: policy, SegmentBytes: 16 << 20})
			defer w.Close()
			if st.LastIndex != 40 {
				t.Fatalf("recovered %+v", st)
			}
			checkLog(t, w, 1, 40, func(uint64) uint64 { return 1 }, 100<<10)
		})
	}
}
