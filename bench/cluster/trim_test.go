package cluster

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A kept run directory's WAL segments give their unwritten preallocation back and read the
// same; other files are left alone.
func TestReleasePreallocation(t *testing.T) {
	dir := t.TempDir()
	wal := filepath.Join(dir, "node-1", "wal", "0000000000000001.wal")
	other := filepath.Join(dir, "node-1.log")
	if err := os.MkdirAll(filepath.Dir(wal), 0o755); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("entry "), 50_000) // 300 KB written at the start
	const size = 8 << 20
	for _, p := range []string{wal, other} {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
			f.Close()
			t.Skipf("no fallocate here: %v", err)
		}
		if _, err := f.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	blocks := func(p string) int64 {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Blocks * 512
	}
	before := blocks(wal)
	ReleasePreallocation(dir)
	after := blocks(wal)
	if after >= before/2 || after < int64(len(data)) {
		t.Errorf("segment allocation %d -> %d bytes: want the zero tail freed and the data kept", before, after)
	}
	if blocks(other) != before {
		t.Errorf("a non-segment file was trimmed")
	}
	got, err := os.ReadFile(wal)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != size || !bytes.Equal(got[:len(data)], data) || !allZero(got[len(data):]) {
		t.Errorf("segment content or size changed (size %d)", len(got))
	}
}
