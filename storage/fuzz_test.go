package storage

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzRecover opens a WAL whose only segment has a valid header followed by arbitrary
// bytes: recovery must refuse with an error or recover a log it can read back, never panic.
func FuzzRecover(f *testing.F) {
	var valid []byte
	valid = append(valid, make([]byte, batchHeaderLen)...)
	for i := uint64(1); i <= 3; i++ {
		valid = appendEntryRecord(valid, &Entry{Index: i, Term: 1, Data: []byte("payload")})
	}
	valid = appendHardStateRecord(valid, HardState{Term: 1, Commit: 2})
	putBatchHeader(valid, 1, len(valid)-batchHeaderLen)
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, body []byte) {
		dir := t.TempDir()
		hdr := appendSegmentHeader(nil, &segmentHeader{seq: 1, nextBatch: 1, flags: segmentFlagSynced})
		if err := os.WriteFile(filepath.Join(dir, "0000000000000001.wal"), append(hdr, body...), 0o644); err != nil {
			t.Fatal(err)
		}
		w, st, err := Open(dir, Options{Sync: SyncNone, SegmentBytes: MinSegmentBytes})
		if err != nil {
			return
		}
		defer w.Close()
		if st.LastIndex >= st.FirstIndex {
			if _, _, err := w.Entries(st.FirstIndex, st.LastIndex+1, 0, nil, nil); err != nil {
				t.Fatalf("recovered log unreadable: %v (%+v)", err, st)
			}
		}
	})
}
