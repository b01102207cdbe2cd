package storage

import (
	"bufio"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Snapshot file layout (little-endian):
//
//	magic uint64 | version uint32 | index uint64 | term uint64 | metaLen uint32 | meta |
//	body ... | bodyLen uint64 | crc32c uint32 (over everything before it)
//
// The body is opaque (the state machine's own stream). A file is written under a temp name,
// fsynced, renamed, and the directory fsynced, so a snapshot file exists whole or not at all.
const (
	snapMagic       = 0x31306e7370616e73 // "snapns01"-ish tag, distinct from the WAL's
	snapVersion     = 1
	snapHeaderLen   = 8 + 4 + 8 + 8 + 4
	snapTrailerLen  = 8 + 4
	snapWriteBuffer = 1 << 20
	// MaxSnapshotMetaBytes bounds the opaque metadata kept in a snapshot's header.
	MaxSnapshotMetaBytes = 1 << 20
)

// SnapshotMeta describes a snapshot: the log position it covers and opaque metadata
// (for example the protocol's membership) that the caller interprets.
type SnapshotMeta struct {
	Index, Term uint64
	Meta        []byte
}

// ErrNoSnapshot says the directory holds no snapshot.
var ErrNoSnapshot = errors.New("storage: no snapshot")

func snapName(index, term uint64) string {
	return fmt.Sprintf("%016x-%016x.snap", index, term)
}

// offsetWriter adapts File.WriteAt to io.Writer and checksums what passes through.
type offsetWriter struct {
	f   File
	off int64
	crc hash.Hash32
}

// Write writes p in pieces of at most snapWriteBuffer bytes (writeAtInPieces): a caller may
// hand over a whole serialized store at once, as bufio passes writes larger than its buffer
// straight through.
func (o *offsetWriter) Write(p []byte) (int, error) {
	n, err := writeAtInPieces(o.f, p, o.off, snapWriteBuffer)
	o.off += int64(n)
	o.crc.Write(p[:n])
	return n, err
}

// WriteSnapshot streams a snapshot into dir: write receives a buffered writer for the body.
// It returns the final path once the file and its directory entry are durable.
func WriteSnapshot(fs FS, dir string, m SnapshotMeta, write func(io.Writer) error) (string, error) {
	return WriteSnapshotSynced(fs, dir, m, true, write)
}

// WriteSnapshotSynced is WriteSnapshot, with the fdatasyncs only when durable is set. Without
// them the file is still complete and atomically renamed, so it survives a crash of the
// process (the kernel holds its pages), but not of the machine: what a WAL without fsync
// promises (SyncNone), at no disk flush per snapshot.
func WriteSnapshotSynced(fs FS, dir string, m SnapshotMeta, durable bool, write func(io.Writer) error) (string, error) {
	if fs == nil {
		fs = OSFS{}
	}
	if len(m.Meta) > MaxSnapshotMetaBytes {
		return "", fmt.Errorf("storage: snapshot meta %d bytes exceeds %d", len(m.Meta), MaxSnapshotMetaBytes)
	}
	if err := fs.MkdirAll(dir); err != nil {
		return "", err
	}
	path := filepath.Join(dir, snapName(m.Index, m.Term))
	tmp := path + ".tmp"
	_ = fs.Remove(tmp) // left by an earlier crash, if any
	f, err := fs.Create(tmp)
	if err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		_ = f.Close()
		_ = fs.Remove(tmp)
		return "", err
	}
	ow := &offsetWriter{f: f, crc: crc32.New(castagnoli)}
	bw := bufio.NewWriterSize(ow, snapWriteBuffer)
	var hdr [snapHeaderLen]byte
	le.PutUint64(hdr[0:], snapMagic)
	le.PutUint32(hdr[8:], snapVersion)
	le.PutUint64(hdr[12:], m.Index)
	le.PutUint64(hdr[20:], m.Term)
	le.PutUint32(hdr[28:], uint32(len(m.Meta)))
	// bufio.Writer keeps the first error and returns it from Flush below.
	_, _ = bw.Write(hdr[:])
	_, _ = bw.Write(m.Meta)
	if err := write(bw); err != nil {
		return fail(fmt.Errorf("storage: snapshot body: %w", err))
	}
	if err := bw.Flush(); err != nil {
		return fail(fmt.Errorf("storage: write %s: %w", tmp, err))
	}
	bodyLen := ow.off - snapHeaderLen - int64(len(m.Meta))
	var tr [snapTrailerLen]byte
	le.PutUint64(tr[0:], uint64(bodyLen))
	ow.crc.Write(tr[:8])
	le.PutUint32(tr[8:], ow.crc.Sum32())
	if _, err := f.WriteAt(tr[:], ow.off); err != nil {
		return fail(fmt.Errorf("storage: write %s: %w", tmp, err))
	}
	if durable {
		if err := f.Sync(); err != nil {
			return fail(fmt.Errorf("storage: fdatasync %s: %w", tmp, err))
		}
	}
	if err := f.Close(); err != nil {
		_ = fs.Remove(tmp)
		return "", err
	}
	if err := fs.Rename(tmp, path); err != nil {
		_ = fs.Remove(tmp)
		return "", err
	}
	if durable {
		if err := fs.SyncDir(dir); err != nil {
			return "", fmt.Errorf("storage: fsync dir %s: %w", dir, err)
		}
	}
	return path, nil
}

// ListSnapshots returns the snapshot files in dir, newest (highest index) first.
func ListSnapshots(fs FS, dir string) ([]string, error) {
	if fs == nil {
		fs = OSFS{}
	}
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	type snap struct {
		index uint64
		path  string
	}
	var snaps []snap
	for _, n := range names {
		base, ok := strings.CutSuffix(n, ".snap")
		if !ok || len(base) != 33 || base[16] != '-' {
			continue
		}
		idx, err := strconv.ParseUint(base[:16], 16, 64)
		if err != nil {
			continue
		}
		snaps = append(snaps, snap{idx, filepath.Join(dir, n)})
	}
	sort.Slice(snaps, func(i, j int) bool { return snaps[i].index > snaps[j].index })
	out := make([]string, len(snaps))
	for i, s := range snaps {
		out[i] = s.path
	}
	return out, nil
}

// Snapshot is an open, verified snapshot file; Body reads its body from the start.
type Snapshot struct {
	SnapshotMeta
	Path string
	Size int64 // body bytes
	f    File
}

// Body returns a reader over the body. Each call starts again from the beginning.
func (s *Snapshot) Body() io.Reader {
	return io.NewSectionReader(s.f, snapHeaderLen+int64(len(s.Meta)), s.Size)
}

// Close releases the file.
func (s *Snapshot) Close() error { return s.f.Close() }

// OpenSnapshot opens path and verifies its checksum over the whole file before returning,
// so a caller never restores from a damaged snapshot.
func OpenSnapshot(fs FS, path string) (*Snapshot, error) {
	if fs == nil {
		fs = OSFS{}
	}
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	s, err := verifySnapshot(f, path)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return s, nil
}

func verifySnapshot(f File, path string) (*Snapshot, error) {
	bad := func(format string, args ...any) error {
		return &CorruptionError{File: path, Reason: fmt.Sprintf(format, args...)}
	}
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	if size < snapHeaderLen+snapTrailerLen {
		return nil, bad("snapshot file too short (%d bytes)", size)
	}
	var hdr [snapHeaderLen]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return nil, err
	}
	if le.Uint64(hdr[0:]) != snapMagic || le.Uint32(hdr[8:]) != snapVersion {
		return nil, bad("not a snapshot file (magic or version)")
	}
	metaLen := int64(le.Uint32(hdr[28:]))
	if metaLen > MaxSnapshotMetaBytes || snapHeaderLen+metaLen+snapTrailerLen > size {
		return nil, bad("meta length %d invalid", metaLen)
	}
	var tr [snapTrailerLen]byte
	if _, err := f.ReadAt(tr[:], size-snapTrailerLen); err != nil {
		return nil, err
	}
	bodyLen := int64(le.Uint64(tr[0:]))
	if bodyLen != size-snapHeaderLen-metaLen-snapTrailerLen {
		return nil, bad("body length %d does not match file size %d", bodyLen, size)
	}
	crc := crc32.New(castagnoli)
	if _, err := io.Copy(crc, io.NewSectionReader(f, 0, size-4)); err != nil {
		return nil, err
	}
	if crc.Sum32() != le.Uint32(tr[8:]) {
		return nil, bad("checksum mismatch")
	}
	meta := make([]byte, metaLen)
	if _, err := f.ReadAt(meta, snapHeaderLen); err != nil {
		return nil, err
	}
	s := &Snapshot{
		SnapshotMeta: SnapshotMeta{Index: le.Uint64(hdr[12:]), Term: le.Uint64(hdr[20:]), Meta: meta},
		Path:         path, Size: bodyLen, f: f,
	}
	return s, nil
}

// OpenLatestSnapshot opens the newest snapshot in dir that verifies. Damaged newer ones are
// skipped and reported in skipped; ErrNoSnapshot when none verifies.
func OpenLatestSnapshot(fs FS, dir string) (s *Snapshot, skipped []error, err error) {
	paths, err := ListSnapshots(fs, dir)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range paths {
		s, err := OpenSnapshot(fs, p)
		if err == nil {
			return s, skipped, nil
		}
		skipped = append(skipped, err)
	}
	return nil, skipped, ErrNoSnapshot
}

// RemoveSnapshotsBefore deletes snapshot files whose index is below index, keeping newer.
func RemoveSnapshotsBefore(fs FS, dir string, index uint64) error {
	if fs == nil {
		fs = OSFS{}
	}
	paths, err := ListSnapshots(fs, dir)
	if err != nil {
		return err
	}
	for _, p := range paths {
		idx, _ := strconv.ParseUint(filepath.Base(p)[:16], 16, 64)
		if idx < index {
			// Shrunk first, so that unlinking does not drop the page cache of tens of
			// megabytes in one system call (shrinkFile). A file left part-truncated by a
			// crash fails verification and is never restored from; a newer one exists.
			if f, err := fs.Open(p); err == nil {
				_ = shrinkFile(f)
			}
			if err := fs.Remove(p); err != nil {
				return err
			}
		}
	}
	return nil
}
