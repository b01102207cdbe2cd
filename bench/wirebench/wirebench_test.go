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

// The decode semantics compared. raftpb's Unmarshal gives every entry its own copy of its
// data (one allocation per entry). wire's DecodeAppendEntries aliases the input instead: the
// entries are valid only while the encoded buffer is. The wire-copy paths add the copy that
// makes wire's result own its data too, so that each is compared with raftpb at equal
// semantics:
//
//   - wire-alias: DecodeAppendEntries alone; entries alias the encoded buffer.
//   - wire-copy: DecodeAppendEntries, then every entry's data copied into its own allocation
//     (decodeCopy): raftpb's semantics exactly, and as many allocations.
//   - wire-copy-batch: DecodeAppendEntries, then the data of all entries copied into one
//     new allocation per message (decodeCopyBatch): owned like raftpb's, but an entry kept
//     keeps the whole batch's data alive.
//   - wire-copy-body: the whole body copied once into a buffer the receiver owns and reuses,
//     then decoded aliasing that copy (decodeCopyBody). The entries share no memory with the
//     input but live only until the receiver reuses its buffer, which is how this project's
//     transport hands frames to the replica (a pooled copy of each body).

// decodeCopy decodes body into m and gives every entry its own copy of its data, as raftpb's
// Unmarshal does: afterwards m shares no memory with body.
func decodeCopy(body []byte, m *wire.AppendEntries) error {
	if err := wire.DecodeAppendEntries(body, m); err != nil {
		return err
	}
	for i := range m.Entries {
		m.Entries[i].Data = bytes.Clone(m.Entries[i].Data)
	}
	return nil
}

// decodeCopyBatch decodes body into m and copies the data of all entries into one new
// allocation: afterwards m shares no memory with body.
func decodeCopyBatch(body []byte, m *wire.AppendEntries) error {
	if err := wire.DecodeAppendEntries(body, m); err != nil {
		return err
	}
	total := 0
	for i := range m.Entries {
		total += len(m.Entries[i].Data)
	}
	owned := make([]byte, total)
	off := 0
	for i := range m.Entries {
		if d := m.Entries[i].Data; len(d) > 0 {
			end := off + copy(owned[off:], d)
			m.Entries[i].Data = owned[off:end:end]
			off = end
		}
	}
	return nil
}

// decodeCopyBody copies body into *owned, reusing its capacity, and decodes m from the copy.
func decodeCopyBody(body []byte, owned *[]byte, m *wire.AppendEntries) error {
	*owned = append((*owned)[:0], body...)
	return wire.DecodeAppendEntries(*owned, m)
}

// TestPathsCarryTheSameEntries checks that every benchmarked path really moves the batch
// (each decodes to the same entry data) and that each decode has the semantics its name
// says: after the encoded buffer is overwritten, wire-alias sees the change and raftpb,
// wire-copy, wire-copy-batch and wire-copy-body do not.
func TestPathsCarryTheSameEntries(t *testing.T) {
	const n = 64
	bt := newBatch(n, 128)
	pbBuf := make([]byte, bt.theirs.Size())
	k, err := bt.theirs.MarshalTo(pbBuf)
	if err != nil {
		t.Fatal(err)
	}
	var pb raftpb.Message
	if err := pb.Unmarshal(pbBuf[:k]); err != nil {
		t.Fatal(err)
	}
	body := wire.AppendAppendEntries(nil, bt.ours)
	var alias, copied, copiedBatch, copiedBody wire.AppendEntries
	var owned []byte
	if err := wire.DecodeAppendEntries(body, &alias); err != nil {
		t.Fatal(err)
	}
	if err := decodeCopy(body, &copied); err != nil {
		t.Fatal(err)
	}
	if err := decodeCopyBatch(body, &copiedBatch); err != nil {
		t.Fatal(err)
	}
	if err := decodeCopyBody(body, &owned, &copiedBody); err != nil {
		t.Fatal(err)
	}
	want := func(i int) []byte { return bt.payload[i*128 : (i+1)*128] }
	check := func(stage string, aliasChanged bool) {
		t.Helper()
		for _, d := range []struct {
			name string
			ae   *wire.AppendEntries
		}{{"wire-alias", &alias}, {"wire-copy", &copied}, {"wire-copy-batch", &copiedBatch}, {"wire-copy-body", &copiedBody}} {
			if len(d.ae.Entries) != n {
				t.Fatalf("%s: %s has %d entries, want %d", stage, d.name, len(d.ae.Entries), n)
			}
			for i := range n {
				same := bytes.Equal(d.ae.Entries[i].Data, want(i))
				if d.name == "wire-alias" && aliasChanged {
					same = !same
				}
				if !same || d.ae.EntryIndex(i) != pb.Entries[i].Index {
					t.Fatalf("%s: %s entry %d is wrong", stage, d.name, i)
				}
			}
		}
		if len(pb.Entries) != n {
			t.Fatalf("%s: raftpb has %d entries, want %d", stage, len(pb.Entries), n)
		}
		for i := range n {
			if !bytes.Equal(pb.Entries[i].Data, want(i)) {
				t.Fatalf("%s: raftpb entry %d is wrong", stage, i)
			}
		}
	}
	check("decoded", false)
	for i := range body {
		body[i] ^= 0xff
	}
	for i := range pbBuf {
		pbBuf[i] ^= 0xff
	}
	check("input overwritten", true)
}

// BenchmarkRoundTrip: encode then decode one batch. impl=raftpb is Marshal plus Unmarshal
// into a reused Message, as etcd's message encoder does; impl=raftpb-reuse marshals into a
// reused, presized buffer instead (raftpb's best case); both decode into owned copies.
// impl=wire-alias is the body codec, decoding into entries that alias the buffer;
// impl=wire-copy, impl=wire-copy-batch and impl=wire-copy-body decode into owned data (see
// decodeCopy, decodeCopyBatch and decodeCopyBody); impl=wire-frame-alias adds the frame header and CRC32C on both sides of
// wire-alias; impl=copy copies the payload once. Compare raftpb with wire-copy for equal
// semantics. Bytes are the payload.
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
			b.Run(name+"/impl=wire-alias", func(b *testing.B) {
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
			b.Run(name+"/impl=wire-copy", func(b *testing.B) {
				buf := make([]byte, 0, bt.ours.Size())
				var into wire.AppendEntries
				into.Entries = make([]wire.Entry, 0, n)
				b.ReportAllocs()
				b.SetBytes(int64(len(bt.payload)))
				for b.Loop() {
					buf = wire.AppendAppendEntries(buf[:0], bt.ours)
					if err := decodeCopy(buf, &into); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/impl=wire-copy-batch", func(b *testing.B) {
				buf := make([]byte, 0, bt.ours.Size())
				var into wire.AppendEntries
				into.Entries = make([]wire.Entry, 0, n)
				b.ReportAllocs()
				b.SetBytes(int64(len(bt.payload)))
				for b.Loop() {
					buf = wire.AppendAppendEntries(buf[:0], bt.ours)
					if err := decodeCopyBatch(buf, &into); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/impl=wire-copy-body", func(b *testing.B) {
				buf := make([]byte, 0, bt.ours.Size())
				owned := make([]byte, 0, bt.ours.Size())
				var into wire.AppendEntries
				into.Entries = make([]wire.Entry, 0, n)
				b.ReportAllocs()
				b.SetBytes(int64(len(bt.payload)))
				for b.Loop() {
					buf = wire.AppendAppendEntries(buf[:0], bt.ours)
					if err := decodeCopyBody(buf, &owned, &into); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/impl=wire-frame-alias", func(b *testing.B) {
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

// BenchmarkDecode: decode only, from a buffer encoded once. impl=raftpb is Unmarshal into a
// reused Message (owned copies); the wire-* paths are those of BenchmarkRoundTrip.
func BenchmarkDecode(b *testing.B) {
	for _, n := range entryCounts {
		for _, size := range entrySizes {
			bt := newBatch(n, size)
			name := fmt.Sprintf("entries=%d/size=%d", n, size)
			pbBuf, err := bt.theirs.Marshal()
			if err != nil {
				b.Fatal(err)
			}
			body := wire.AppendAppendEntries(nil, bt.ours)
			b.Run(name+"/impl=raftpb", func(b *testing.B) {
				var into raftpb.Message
				into.Entries = make([]raftpb.Entry, 0, n)
				b.ReportAllocs()
				b.SetBytes(int64(len(bt.payload)))
				for b.Loop() {
					into.Entries = into.Entries[:0]
					if err := into.Unmarshal(pbBuf); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/impl=wire-alias", func(b *testing.B) {
				var into wire.AppendEntries
				into.Entries = make([]wire.Entry, 0, n)
				b.ReportAllocs()
				b.SetBytes(int64(len(bt.payload)))
				for b.Loop() {
					if err := wire.DecodeAppendEntries(body, &into); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/impl=wire-copy", func(b *testing.B) {
				var into wire.AppendEntries
				into.Entries = make([]wire.Entry, 0, n)
				b.ReportAllocs()
				b.SetBytes(int64(len(bt.payload)))
				for b.Loop() {
					if err := decodeCopy(body, &into); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/impl=wire-copy-batch", func(b *testing.B) {
				var into wire.AppendEntries
				into.Entries = make([]wire.Entry, 0, n)
				b.ReportAllocs()
				b.SetBytes(int64(len(bt.payload)))
				for b.Loop() {
					if err := decodeCopyBatch(body, &into); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/impl=wire-copy-body", func(b *testing.B) {
				owned := make([]byte, 0, len(body))
				var into wire.AppendEntries
				into.Entries = make([]wire.Entry, 0, n)
				b.ReportAllocs()
				b.SetBytes(int64(len(bt.payload)))
				for b.Loop() {
					if err := decodeCopyBody(body, &owned, &into); err != nil {
						b.Fatal(err)
					}
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
