package server

import (
	"reflect"
	"testing"

	"github.com/consensusbench/consensusbench/pbftcore"
	"github.com/consensusbench/consensusbench/storage"
)

func sampleRecords() []pbftcore.Record {
	return []pbftcore.Record{
		{Kind: pbftcore.RecView, View: 3, Active: true},
		{Kind: pbftcore.RecView, View: 4},
		{Kind: pbftcore.RecPrePrepared, View: 1, Seq: 7, Digest: [32]byte{1}, Requests: []pbftcore.Request{
			{Client: 2, Timestamp: 9, Op: []byte("op"), Auth: []byte("auth")},
			{Client: 3, Timestamp: 1, ReadOnly: true, Op: []byte{}, Auth: []byte{}}}},
		{Kind: pbftcore.RecPrePrepared, View: 1, Seq: 8, Digest: pbftcore.BatchDigest(nil), Requests: []pbftcore.Request{}},
		{Kind: pbftcore.RecPrePrepared, View: 2, Seq: 9, Digest: [32]byte{9}}, // digest only: batch still fetched
		{Kind: pbftcore.RecPrepared, View: 1, Seq: 7, Digest: [32]byte{1}},
		{Kind: pbftcore.RecCommitted, View: 1, Seq: 7, Digest: [32]byte{1}},
		{Kind: pbftcore.RecStable, Seq: 128, Digest: [32]byte{0xC0}, Proof: []pbftcore.Message{
			{Type: pbftcore.MsgCheckpoint, From: 0, To: pbftcore.ToAll, Seq: 128, Digest: [32]byte{0xC0}, Auth: []byte("sig0")},
			{Type: pbftcore.MsgCheckpoint, From: 2, To: pbftcore.ToAll, Seq: 128, Digest: [32]byte{0xC0}, Auth: []byte("sig2")}}},
	}
}

// Every record kind survives appendRecord -> decodeRecord unchanged, a batch's presence
// included (nil: digest only; empty: the null request), and the encoding is canonical.
func TestPBFTRecordRoundTrip(t *testing.T) {
	for _, want := range sampleRecords() {
		b := appendRecord(nil, &want)
		var got pbftcore.Record
		if err := decodeRecord(b, &got); err != nil {
			t.Fatalf("%v: %v", want.Kind, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%v:\n got  %+v\n want %+v", want.Kind, got, want)
		}
		if again := appendRecord(nil, &got); string(again) != string(b) {
			t.Fatalf("%v: re-encoding differs", want.Kind)
		}
	}
}

// A damaged or foreign entry is refused with an error, never a panic: every truncation of
// every sample, a wrong format byte, unknown kinds and non-boolean flag bytes.
func TestPBFTRecordDecodeRefusesDamage(t *testing.T) {
	for _, r := range sampleRecords() {
		b := appendRecord(nil, &r)
		for n := range len(b) {
			var got pbftcore.Record
			if err := decodeRecord(b[:n], &got); err == nil {
				t.Fatalf("%v truncated to %d of %d bytes decoded", r.Kind, n, len(b))
			}
		}
	}
	good := appendRecord(nil, &sampleRecords()[2])
	for name, mutate := range map[string]func(b []byte){
		"format":    func(b []byte) { b[0] = 0x00 },
		"kind 0":    func(b []byte) { b[1] = 0 },
		"kind 99":   func(b []byte) { b[1] = 99 },
		"active 2":  func(b []byte) { b[2] = 2 },
		"batch 2":   func(b []byte) { b[3] = 2 },
		"read-only": func(b []byte) { b[pbftRecordHeader+4+16] = 7 },
	} {
		b := append([]byte(nil), good...)
		mutate(b)
		var got pbftcore.Record
		if err := decodeRecord(b, &got); err == nil {
			t.Errorf("%s: damaged record decoded", name)
		}
	}
}

// FuzzPBFTRecord: decodeRecord never panics, and what it accepts re-encodes to the same bytes.
func FuzzPBFTRecord(f *testing.F) {
	for _, r := range sampleRecords() {
		f.Add(appendRecord(nil, &r))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r pbftcore.Record
		if err := decodeRecord(b, &r); err != nil {
			return
		}
		if again := appendRecord(nil, &r); string(again) != string(b) {
			t.Fatalf("accepted a non-canonical record: %x re-encodes as %x", b, again)
		}
	})
}

// compactLog at checkpoint h keeps every record for a number above h and the latest view
// record, and drops what lies before both. Records are logged in pipelined order, so a
// COMMITTED record for a number at or below h can sit after the first record above h and
// survive while its pre-prepare is dropped: readers (a restart, the cluster tests) skip
// records at or below the checkpoint.
func TestPBFTCompactLogKeepsRecordsAboveTheCheckpoint(t *testing.T) {
	w, _, err := storage.Open(t.TempDir(), storage.Options{Sync: storage.SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r := &PBFTReplica{lifecycle: lifecycle{wal: w}}
	d := func(n uint64) pbftcore.Digest { return pbftcore.Digest{byte(n)} }
	pp := func(n uint64) pbftcore.Record {
		return pbftcore.Record{Kind: pbftcore.RecPrePrepared, Seq: n, Digest: d(n), Requests: []pbftcore.Request{}}
	}
	kind := func(k pbftcore.RecordKind, n uint64) pbftcore.Record {
		return pbftcore.Record{Kind: k, Seq: n, Digest: d(n)}
	}
	view := pbftcore.Record{Kind: pbftcore.RecView, Active: true}
	logged := [][]pbftcore.Record{
		{view},
		{pp(7), pp(8)},
		{kind(pbftcore.RecPrepared, 7), kind(pbftcore.RecCommitted, 7)},
		{pp(9), kind(pbftcore.RecPrepared, 8)},
		{kind(pbftcore.RecCommitted, 8), view}, // checkpoint 8 becomes stable here
		{kind(pbftcore.RecPrepared, 9)},
	}
	for _, recs := range logged {
		if err := r.logRecords(recs); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.compactLog(8); err != nil {
		t.Fatal(err)
	}
	got, marks, err := readLog(w)
	if err != nil {
		t.Fatal(err)
	}
	want := []pbftcore.Record{pp(9), kind(pbftcore.RecPrepared, 8), kind(pbftcore.RecCommitted, 8), view, kind(pbftcore.RecPrepared, 9)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after compactLog(8):\n got %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(marks, r.marks) {
		t.Fatalf("marks after compaction: got %+v, the log has %+v", r.marks, marks)
	}
	// A later checkpoint with the view record last keeps that view record.
	if err := r.compactLog(9); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := readLog(w); !reflect.DeepEqual(got, want[3:]) {
		t.Fatalf("after compactLog(9): got %+v, want %+v", got, want[3:])
	}
}
