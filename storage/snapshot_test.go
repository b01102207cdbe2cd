package storage

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeSnap(t *testing.T, dir string, index, term uint64, body []byte) string {
	t.Helper()
	path, err := WriteSnapshot(nil, dir, SnapshotMeta{Index: index, Term: term, Meta: []byte("members=1,2,3")}, func(w io.Writer) error {
		_, err := w.Write(body)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSnapshotRoundTrip(t *testing.T) {
	dir := t.TempDir()
	body := bytes.Repeat([]byte("state-bytes-"), 200000) // spans several write buffers
	writeSnap(t, dir, 10, 1, []byte("old"))
	path := writeSnap(t, dir, 500, 3, body)
	s, skipped, err := OpenLatestSnapshot(nil, dir)
	if err != nil || len(skipped) != 0 {
		t.Fatalf("open latest: %v %v", err, skipped)
	}
	defer s.Close()
	if s.Path != path || s.Index != 500 || s.Term != 3 || string(s.Meta) != "members=1,2,3" || s.Size != int64(len(body)) {
		t.Fatalf("meta %+v", s.SnapshotMeta)
	}
	for range 2 { // Body restarts from the beginning each time
		got, err := io.ReadAll(s.Body())
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("body mismatch (%d bytes, %v)", len(got), err)
		}
	}
	names, _ := OSFS{}.List(dir)
	for _, n := range names {
		if strings.HasSuffix(n, ".tmp") {
			t.Fatalf("temp file left behind: %s", n)
		}
	}
	if err := RemoveSnapshotsBefore(nil, dir, 500); err != nil {
		t.Fatal(err)
	}
	if paths, _ := ListSnapshots(nil, dir); len(paths) != 1 || paths[0] != path {
		t.Fatalf("after removal: %v", paths)
	}
}

func TestSnapshotChecksum(t *testing.T) {
	dir := t.TempDir()
	good := writeSnap(t, dir, 7, 1, []byte("good state"))
	bad := writeSnap(t, dir, 9, 2, bytes.Repeat([]byte{7}, 5000))
	corruptAt(t, bad, 2000)
	if _, err := OpenSnapshot(nil, bad); err == nil {
		t.Fatal("damaged snapshot opened")
	} else if ce := (*CorruptionError)(nil); !errors.As(err, &ce) || ce.File != bad {
		t.Fatalf("damaged snapshot: %v", err)
	}
	// The newest verified snapshot wins; the damaged newer one is reported.
	s, skipped, err := OpenLatestSnapshot(nil, dir)
	if err != nil || s.Path != good || len(skipped) != 1 {
		t.Fatalf("latest: %v %v", err, skipped)
	}
	s.Close()
	// A truncated file (crash mid-copy elsewhere) is refused too.
	if err := os.Truncate(good, 30); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSnapshot(nil, good); err == nil {
		t.Fatal("truncated snapshot opened")
	}
	if _, _, err := OpenLatestSnapshot(nil, filepath.Join(dir)); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("no valid snapshot: %v", err)
	}
}

func TestProbeSync(t *testing.T) {
	p, err := ProbeSync(t.TempDir(), 20)
	if err != nil {
		t.Fatal(err)
	}
	if p.Samples != 20 || p.P50 <= 0 || p.P99 < p.P50 || p.Max < p.P99 || p.PerSec <= 0 {
		t.Fatalf("probe %+v", p)
	}
	if _, err := ProbeSync(t.TempDir(), 0); err == nil {
		t.Fatal("probe with 0 samples accepted")
	}
}
