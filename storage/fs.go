package storage

import (
	"errors"
	"fmt"
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
	// mem, when not nil, is a shared mapping of the file's first len(mem) bytes that takes
	// the WriteAts inside it (MapWrites); mem[:released] was handed back to the kernel.
	mem      []byte
	released int64
}

// writeMapper is a File whose writes can go through a shared memory mapping instead of a
// system call each: the WAL's segments under SyncNone. Data written to a shared file
// mapping is in the page cache as soon as it is copied, so it survives the process's
// crash exactly as a pwrite would, which is all SyncNone promises; fdatasync still covers
// it. Only a file that has its full size already (preallocated) may be mapped: touching a
// mapped page past the end of the file would fault.
type writeMapper interface {
	// MapWrites maps [0, size) for writing; WriteAt inside it becomes a copy.
	MapWrites(size int64) error
	// UnmapWrites drops the mapping; later writes are system calls again.
	UnmapWrites() error
}

// mapReleaseBytes: the part of a write mapping more than this far behind the newest write
// is handed back (MADV_DONTNEED), so the mapped segment does not stay in the process's
// resident set. The pages and their data stay in the page cache.
const mapReleaseBytes = 4 << 20

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

func (o *osFile) WriteAt(p []byte, off int64) (int, error) {
	if o.mem != nil && off >= 0 && off+int64(len(p)) <= int64(len(o.mem)) {
		copy(o.mem[off:], p)
		if upto := (off &^ (mapReleaseBytes - 1)) - mapReleaseBytes; upto > o.released {
			// Advice only: on failure the pages merely stay resident.
			_ = unix.Madvise(o.mem[o.released:upto], unix.MADV_DONTNEED)
			o.released = upto
		}
		return len(p), nil
	}
	return o.f.WriteAt(p, off)
}

func (o *osFile) MapWrites(size int64) error {
	if o.mem != nil {
		return nil
	}
	if st, err := o.f.Stat(); err != nil {
		return err
	} else if st.Size() < size {
		return fmt.Errorf("storage: map %s: %d bytes long, %d needed", o.f.Name(), st.Size(), size)
	}
	mem, err := unix.Mmap(o.fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("storage: map %s: %w", o.f.Name(), err)
	}
	// No readahead on faults: the segment is preallocated (unwritten extents), so every page
	// the kernel "reads" ahead is a page it zero-fills, and a sequential writer's faults
	// grow the readahead window until one fault zero-fills megabytes: tens of milliseconds
	// in the kernel, on the WAL writer, every few megabytes (seen as 20-30 ms stalls of the
	// whole replica). With MADV_RANDOM each fault fills the one page being written.
	_ = unix.Madvise(mem, unix.MADV_RANDOM) // advice only: without it writes still work
	o.mem, o.released = mem, 0
	return nil
}

func (o *osFile) UnmapWrites() error {
	if o.mem == nil {
		return nil
	}
	err := unix.Munmap(o.mem)
	o.mem = nil
	return err
}

func (o *osFile) Truncate(size int64) error {
	if o.mem != nil && size < int64(len(o.mem)) {
		if err := o.UnmapWrites(); err != nil {
			return err
		}
	}
	return o.f.Truncate(size)
}

func (o *osFile) Close() error {
	err := o.UnmapWrites()
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	return err
}

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
