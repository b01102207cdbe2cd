package server

import (
	"reflect"
	"testing"

	"github.com/consensusbench/consensusbench/pbftcore"
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
