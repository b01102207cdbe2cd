package wirebench

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/consensusbench/consensusbench/wire"
	"go.etcd.io/raft/v3/raftpb"
)

var (
	entryCounts = []int{1, 64, 1024}
	entrySizes  = []int{16, 128, 4096}
)

// batch is one AppendEntries batch in both representations, sharing the same payload.
type batch struct {
	payload []byte // all entry data, contiguous
	ours    *wire.AppendEntries
	theirs  *raftpb.Message
}

func newBatch(n, size int) batch {
	payload := make([]byte, n*size)
	for i := range payload {
		payload[i] = byte(i*31 + 7)
	}
	const term, prevIndex = 7, 1 << 20
	ours := &wire.AppendEntries{Term: term, From: 1, To: 2, PrevIndex: prevIndex, PrevTerm: term, Commit: prevIndex - 3, Seq: 1}
	theirs := &raftpb.Message{Type: raftpb.MsgApp, To: 2, From: 1, Term: term, LogTerm: term, Index: prevIndex, Commit: prevIndex - 3}
	for i := range n {
		data := payload[i*size : (i+1)*size : (i+1)*size]
		ours.Entries = append(ours.Entries, wire.Entry{Term: term, Type: wire.EntryNormal, Data: data})
		theirs.Entries = append(theirs.Entries, raftpb.Entry{Term: term, Index: prevIndex + 1 + uint64(i), Type: raftpb.EntryNormal, Data: data})
	}
	return batch{payload: payload, ours: ours, theirs: theirs}
}

// TestPathsCarryTheSameEntries checks that every benchmarked path really moves the batch:
// each decodes to the same entry data.
func TestPathsCarryTheSameEntries(t *testing.T) {
	bt := newBatch(64, 128)
	buf := make([]byte, bt.theirs.Size())
	n, err := bt.theirs.MarshalTo(buf)
	if err != nil {
		t.Fatal(err)
	}
	var pb raftpb.Message
	if err := pb.Unmarshal(buf[:n]); err != nil {
		t.Fatal(err)
	}
	var ae wire.AppendEntries
	if err := wire.DecodeAppendEntries(wire.AppendAppendEntries(nil, bt.ours), &ae); err != nil {
		t.Fatal(err)
	}
	if len(pb.Entries) != 64 || len(ae.Entries) != 64 {
		t.Fatalf("entries: raftpb %d, wire %d", len(pb.Entries), len(ae.Entries))
	}
	for i := range 64 {
		if !bytes.Equal(pb.Entries[i].Data, ae.Entries[i].Data) || pb.Entries[i].Index != ae.EntryIndex(i) {
			t.Fatalf("entry %d differs", i)
		}
	}
}

// BenchmarkRoundTrip: encode then decode one batch. impl=raftpb is Marshal plus Unmarshal
// into a reused Message, as etcd's message encoder does; impl=raftpb-reuse marshals into a
// reused, presized buffer instead (raftpb's best case); impl=wire is the body codec;
// impl=wire-frame adds the frame header and CRC32C on both sides; impl=copy copies the
// payload once. Bytes are the payload.
func BenchmarkRoundTrip(b *testing.B) {
	for _, n := range entryCounts {
		for _, size := range entrySizes {
			bt := newBatch(n, size)
			name := fmt.Sprintf("entries=%d/size=%d", n, size)
			b.Run(name+"/impl=raftpb", func(b *testing.B) {
				var into raftpb.Message
				into.Entries = make([]raftpb.Entry, 0, n)
				b.ReportAllocs()
				b.SetBytes(int64(len(bt.payload)))
				for b.Loop() {
					buf, err := bt.theirs.Marshal()
					if err != nil {
						b.Fatal(err)
					}
					into.Entries = into.Entries[:0]
					if err := into.Unmarshal(buf); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/impl=raftpb-reuse", func(b *testing.B) {
				buf := make([]byte, bt.theirs.Size())
				var into raftpb.Message
				into.Entries = make([]raftpb.Entry, 0, n)
				b.ReportAllocs()
				b.SetBytes(int64(len(bt.payload)))
				for b.Loop() {
					k, err := bt.theirs.MarshalTo(buf)
					if err != nil {
						b.Fatal(err)
					}
					into.Entries = into.Entries[:0]
					if err := into.Unmarshal(buf[:k]); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/impl=wire", func(b *testing.B) {
				buf := make([]byte, 0, bt.ours.Size())
				// Warm the target once: steady state reuses its Entries capacity.
				var into wire.AppendEntries
				into.Entries = make([]wire.Entry, 0, n)
				b.ReportAllocs()
				b.SetBytes(int64(len(bt.payload)))
				for b.Loop() {
					buf = wire.AppendAppendEntries(buf[:0], bt.ours)
					if err := wire.DecodeAppendEntries(buf, &into); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/impl=wire-frame", func(b *testing.B) {
				buf := make([]byte, 0, wire.HeaderSize+bt.ours.Size())
				var into wire.AppendEntries
				into.Entries = make([]wire.Entry, 0, n)
				b.ReportAllocs()
				b.SetBytes(int64(len(bt.payload)))
				for b.Loop() {
					buf = wire.AppendMessageFrame(buf[:0], 0, bt.ours)
					f, _, err := wire.SplitFrame(buf, 0)
					if err != nil {
						b.Fatal(err)
					}
					if err := wire.DecodeAppendEntries(f.Body, &into); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/impl=copy", func(b *testing.B) {
				dst := make([]byte, len(bt.payload))
				b.ReportAllocs()
				b.SetBytes(int64(len(bt.payload)))
				for b.Loop() {
					copy(dst, bt.payload)
				}
			})
		}
	}
}

// BenchmarkEncode: encode only. impl=wire is AppendAppendEntries, impl=wire-frame adds the
// header and CRC32C, impl=raftpb is MarshalTo, impl=copy the payload copy.
func BenchmarkEncode(b *testing.B) {
	for _, n := range entryCounts {
		for _, size := range entrySizes {
			bt := newBatch(n, size)
			name := fmt.Sprintf("entries=%d/size=%d", n, size)
			b.Run(name+"/impl=raftpb", func(b *testing.B) {
				buf := make([]byte, bt.theirs.Size())
				b.ReportAllocs()
				b.SetBytes(int64(len(bt.payload)))
				for b.Loop() {
					if _, err := bt.theirs.MarshalTo(buf); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/impl=wire", func(b *testing.B) {
				buf := make([]byte, 0, bt.ours.Size())
				b.ReportAllocs()
				b.SetBytes(int64(len(bt.payload)))
				for b.Loop() {
					buf = wire.AppendAppendEntries(buf[:0], bt.ours)
				}
			})
			b.Run(name+"/impl=wire-frame", func(b *testing.B) {
				buf := make([]byte, 0, wire.HeaderSize+bt.ours.Size())
				b.ReportAllocs()
				b.SetBytes(int64(len(bt.payload)))
				for b.Loop() {
					buf = wire.AppendMessageFrame(buf[:0], 0, bt.ours)
				}
			})
			b.Run(name+"/impl=copy", func(b *testing.B) {
				dst := make([]byte, len(bt.payload))
				b.ReportAllocs()
				b.SetBytes(int64(len(bt.payload)))
				for b.Loop() {
					copy(dst, bt.payload)
				}
			})
		}
	}
}
