package transport

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/consensusbench/consensusbench/wire"
)

// fuzzMaxFrame keeps fuzzed frames small enough that the fuzzer finds whole ones.
const fuzzMaxFrame = 4096

// FuzzScanStream feeds an arbitrary byte stream, cut into pieces at seeded random points, to
// a client connection's frame scanning exactly as OnTraffic does (bytes not consumed are kept
// for the next piece, consumed ones are dropped). Whatever the input and the cuts, it must
// deliver exactly the frames a single pass of wire.SplitFrame finds over the whole stream,
// in order and intact, and close the connection exactly when that pass meets a bad frame or
// a type clients may not send.
func FuzzScanStream(f *testing.F) {
	var stream []byte
	for seq := range uint64(5) {
		stream = seqFrame(stream, wire.TypeClientRequest, seq, int(seq*97))
	}
	f.Add(stream, uint64(1))
	f.Add(stream[:len(stream)-3], uint64(2))
	f.Add(append(bytes.Clone(stream), "GET / HTTP/1.1\r\n"...), uint64(3))
	f.Add(append(bytes.Clone(stream), seqFrame(nil, wire.TypeAppendEntries, 9, 20)...), uint64(4))
	corrupt := bytes.Clone(stream)
	corrupt[40] ^= 1
	f.Add(corrupt, uint64(5))
	f.Add([]byte{}, uint64(6))

	cfg := testConfig(1)
	cfg.MaxFrameBytes = fuzzMaxFrame
	cfg.Logger = discardLogger()
	tr, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	h := &handler{t: tr}

	f.Fuzz(func(t *testing.T, data []byte, cutSeed uint64) {
		// The reference: one pass over the whole stream.
		var want []wire.Frame
		wantClose := false
		for rest := data; ; {
			fr, n, err := wire.SplitFrame(rest, fuzzMaxFrame)
			if err == wire.ErrShortBuffer {
				break
			}
			if err != nil || !tr.clientTypes[fr.Type] {
				wantClose = true
				break
			}
			want = append(want, fr)
			rest = rest[n:]
		}

		ic := &inConn{kind: kindClient, client: &clientConn{id: 1}}
		ic.scanner.MaxFrameBytes = fuzzMaxFrame
		ic.ready.Store(true)
		rng := rand.New(rand.NewPCG(cutSeed, cutSeed>>32))
		var pending []byte
		var got []Frame
		closed := false
		for off := 0; off < len(data) && !closed; {
			n := 1 + rng.IntN(min(len(data)-off, 64))
			pending = append(pending, data[off:off+n]...)
			off += n
			consumed, frames, b, ok := h.scan(ic, pending, io.Discard)
			if !ok {
				closed = true
				break
			}
			if consumed < 0 || consumed > len(pending) {
				t.Fatalf("consumed %d of %d bytes", consumed, len(pending))
			}
			if b != nil {
				if len(b.Frames) != frames {
					t.Fatalf("batch has %d frames, scan reported %d", len(b.Frames), frames)
				}
				for _, fr := range b.Frames {
					fr.Body = bytes.Clone(fr.Body)
					got = append(got, fr)
				}
				b.Release()
			}
			// Like gnet after Discard: the consumed bytes are gone, a new buffer holds the rest.
			pending = append([]byte(nil), pending[consumed:]...)
		}
		if closed != wantClose {
			t.Fatalf("connection closed = %v, want %v", closed, wantClose)
		}
		if closed {
			// Frames before the bad one may have been read in earlier pieces; they must
			// be a prefix of the reference.
			want = want[:min(len(want), len(got))]
		}
		if len(got) != len(want) {
			t.Fatalf("got %d frames, want %d", len(got), len(want))
		}
		for i := range want {
			if got[i].Type != want[i].Type || got[i].Flags != want[i].Flags || !bytes.Equal(got[i].Body, want[i].Body) || got[i].Client != 1 {
				t.Fatalf("frame %d differs", i)
			}
		}
	})
}
