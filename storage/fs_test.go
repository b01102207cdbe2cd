package storage

import (
	"bytes"
	"path/filepath"
	"testing"
)

// Writes through a segment's shared mapping read back through the file, including the
// parts handed back to the kernel behind the newest write and a write past the mapping.
func TestMappedWritesReadBack(t *testing.T) {
	const size = 3*mapReleaseBytes + 4096
	f, err := OSFS{}.Create(filepath.Join(t.TempDir(), "seg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Allocate(size); err != nil {
		t.Skipf("no preallocation here: %v", err)
	}
	m := f.(writeMapper)
	if err := m.MapWrites(size + 1); err == nil {
		t.Fatal("mapped past the end of the file")
	}
	if err := m.MapWrites(size); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 3000)
	var off int64
	for i := 0; off+int64(len(chunk)) <= size; i++ {
		for j := range chunk {
			chunk[j] = byte(i + j)
		}
		if _, err := f.WriteAt(chunk, off); err != nil {
			t.Fatal(err)
		}
		off += int64(len(chunk))
	}
	if o := f.(*osFile); o.released == 0 {
		t.Error("nothing behind the newest write was handed back")
	}
	if _, err := f.WriteAt([]byte("tail"), size); err != nil { // outside the mapping: pwrite
		t.Fatal(err)
	}
	got := make([]byte, len(chunk))
	off = 0
	for i := 0; off+int64(len(chunk)) <= size; i++ {
		for j := range chunk {
			chunk[j] = byte(i + j)
		}
		if _, err := f.ReadAt(got, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, chunk) {
			t.Fatalf("chunk %d at %d differs after a mapped write", i, off)
		}
		off += int64(len(chunk))
	}
	if err := m.UnmapWrites(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAt(got[:4], size); err != nil || string(got[:4]) != "tail" {
		t.Fatalf("write past the mapping: %q %v", got[:4], err)
	}
}
