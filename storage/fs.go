package storage

import (
	"errors"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"
)

// File is one open file as the WAL and snapshot code see it. ReadAt may run concurrently
// with WriteAt on a different range; other methods are called from one goroutine at a time.
type File interface {
	// ReadAt and WriteAt follow io.ReaderAt and io.WriterAt: WriteAt returns an error when
	// it wrote fewer than len(p) bytes (a short write).
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	// Sync makes written data durable (fdatasync on Linux).
	Sync() error
	// Allocate reserves [0, size) on disk; the file reads as zeros past written data.
	// It returns ErrAllocateUnsupported where the filesystem cannot preallocate.
	Allocate(size int64) error
	Truncate(size int64) error
	Size() (int64, error)
	Close() error
}

// FS is the directory-level operations the WAL needs. Tests substitute a fault-injecting one.
type FS interface {
	// Create creates name exclusively, open for reading and writing.
	Create(name string) (File, error)
	// Open opens an existing file for reading and writing.
	Open(name string) (File, error)
	Remove(name string) error
	Rename(oldname, newname string) error
	// List returns the names (not paths) of the entries of dir, sorted.
	List(dir string) ([]string, error)
	// SyncDir fsyncs the directory so that creations, renames and removals are durable.
	SyncDir(dir string) error
	MkdirAll(dir string) error
}

// ErrAllocateUnsupported says the filesystem cannot preallocate; callers carry on without it.
var ErrAllocateUnsupported = errors.New("storage: preallocation not supported")

// OSFS is the real filesystem.
type OSFS struct{}

type osFile struct {
	f  *os.File
	fd int
}

// writeAtInPieces writes p at off with at most piece bytes per WriteAt: one system call
// copying megabytes holds a CPU that a non-preemptible kernel gives no other thread, and
// each piece returns to user space, where the scheduler can switch. It returns the bytes
// written before the first error.
func writeAtInPieces(f File, p []byte, off int64, piece int) (int, error) {
	written := 0
	for written < len(p) {
		n, err := f.WriteAt(p[written:min(len(p), written+piece)], off+int64(written))
		written += n
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// shrinkStepBytes is how much of a file shrinkFile drops per system call.
const shrinkStepBytes = 4 << 20

// shrinkFile truncates f to nothing a few megabytes at a time and closes it. Unlinking a
// large file drops its whole page cache inside one system call (about 20 ms for 64 MiB),
// on a CPU that a non-preemptible kernel gives to no other thread meanwhile; each step
// here is about a millisecond and returns to user space, where the scheduler can switch.
// The file is closed even when a step fails; the caller removes it either way.
func shrinkFile(f File) error {
	size, err := f.Size()
	for err == nil && size > 0 {
		size = max(0, size-shrinkStepBytes)
		err = f.Truncate(size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func wrapOS(f *os.File) *osFile { return &osFile{f: f, fd: int(f.Fd())} }

func (OSFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	return wrapOS(f), nil
}

func (OSFS) Open(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return wrapOS(f), nil
}

func (OSFS) Remove(name string) error             { return os.Remove(name) }
func (OSFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }
func (OSFS) MkdirAll(dir string) error            { return os.MkdirAll(dir, 0o755) }

func (OSFS) List(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(des))
	for _, de := range des {
		names = append(names, de.Name())
	}
	sort.Strings(names)
	return names, nil
}

func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (o *osFile) ReadAt(p []byte, off int64) (int, error) { return o.f.ReadAt(p, off) }

func (o *osFile) WriteAt(p []byte, off int64) (int, error) { return o.f.WriteAt(p, off) }

func (o *osFile) Truncate(size int64) error { return o.f.Truncate(size) }

func (o *osFile) Close() error { return o.f.Close() }

func (o *osFile) Sync() error {
	for {
		err := unix.Fdatasync(o.fd)
		if err != unix.EINTR {
			return err
		}
	}
}

func (o *osFile) Allocate(size int64) error {
	for {
		err := unix.Fallocate(o.fd, 0, 0, size)
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		case unix.EOPNOTSUPP, unix.ENOSYS:
			return ErrAllocateUnsupported
		default:
			return err
		}
	}
}

func (o *osFile) Size() (int64, error) {
	st, err := o.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}
