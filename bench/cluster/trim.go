package cluster

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// trimBlock is the granularity at which releasePreallocation looks for the unwritten tail.
const trimBlock = 1 << 20

// ReleasePreallocation frees the disk blocks of the zero tail of every WAL segment under
// dir (each is preallocated to its full size, 64 MiB by default, and mostly unwritten in a
// short run), so a kept run directory costs its logs and its data, not the preallocation.
// The files keep their size and read the same (a punched hole reads as zeros), so the
// nodes can still be restarted on the directory. Errors are ignored: this only saves space.
func ReleasePreallocation(dir string) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(d.Name(), ".wal") {
			return nil
		}
		punchZeroTail(path)
		return nil
	})
}

// punchZeroTail deallocates the file's trailing all-zero trimBlock-aligned blocks.
func punchZeroTail(path string) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return
	}
	size := st.Size()
	buf := make([]byte, trimBlock)
	off := size &^ (trimBlock - 1)
	if off < size { // a partial last block must be all zero too
		if n, err := f.ReadAt(buf[:size-off], off); err != nil || int64(n) != size-off || !allZero(buf[:n]) {
			return
		}
	}
	for off > 0 {
		if n, err := f.ReadAt(buf, off-trimBlock); err != nil || n != trimBlock || !allZero(buf) {
			break
		}
		off -= trimBlock
	}
	if off < size {
		_ = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, size-off)
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
