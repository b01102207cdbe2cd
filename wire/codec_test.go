package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unsafe"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden vectors in testdata/golden/")

func TestGoldenSamplesCoverEveryType(t *testing.T) {
	seen := map[Type]bool{}
	for _, m := range goldenSamples() {
		seen[m.Type()] = true
	}
	for _, ty := range Types() {
		if !seen[ty] {
			t.Errorf("no golden sample for %v", ty)
		}
		if m := NewMessage(ty); m == nil || m.Type() != ty {
			t.Errorf("NewMessage(%v) = %T", ty, m)
		}
	}
	if NewMessage(TypeInvalid) != nil {
		t.Error("NewMessage(TypeInvalid) is not nil")
	}
}

type roundTripCase struct {
	name string
	msg  Message
}

func roundTripCases() []roundTripCase {
	var cs []roundTripCase
	for _, m := range goldenSamples() {
		ty := m.Type()
		cs = append(cs,
			roundTripCase{ty.String() + "/empty", minimal(ty)},
			roundTripCase{ty.String() + "/sample", m},
			roundTripCase{ty.String() + "/max", gen(ty, &source{max: true, maxLen: 3000, maxCount: 3})},
		)
		for i := range 4 {
			label := fmt.Sprintf("%v/random-%d", ty, i)
			cs = append(cs, roundTripCase{label, gen(ty, seeded(label, 4096))})
		}
	}
	return cs
}

// checkRoundTrip encodes m, decodes it into a fresh and into a reused struct, and checks
// the values, the size and the canonical re-encoding.
func checkRoundTrip(t *testing.T, m, reused Message) {
	t.Helper()
	body := m.AppendBody([]byte("prefix"))
	if !bytes.HasPrefix(body, []byte("prefix")) {
		t.Fatal("encoder overwrote dst's prefix")
	}
	body = body[len("prefix"):]
	if len(body) != m.Size() {
		t.Fatalf("encoded %d bytes, Size() = %d", len(body), m.Size())
	}
	fresh := NewMessage(m.Type())
	if err := fresh.Decode(body); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if !equal(fresh, m) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", fresh, m)
	}
	if err := reused.Decode(body); err != nil || !equal(reused, m) {
		t.Fatalf("decode into a reused struct: %v\n%+v\nwant\n%+v", err, reused, m)
	}
	if again := fresh.AppendBody(nil); !bytes.Equal(again, body) {
		t.Fatalf("re-encoding differs:\n%x\n%x", again, body)
	}
	frame := AppendMessageFrame(nil, 0x8001, m)
	f, err := DecodeFrame(frame, 0)
	if err != nil || f.Type != m.Type() || f.Flags != 0x8001 || !bytes.Equal(f.Body, body) {
		t.Fatalf("frame: %v %v %x", err, f.Type, f.Flags)
	}
	viaFrame := NewMessage(m.Type())
	if err := DecodeMessage(f, viaFrame); err != nil || !equal(viaFrame, m) {
		t.Fatalf("DecodeMessage: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	cases := roundTripCases()
	// Decode each case into a struct that last held the type's largest case, so stale
	// elements and capacity reuse are exercised.
	reused := map[Type]Message{}
	for _, c := range cases {
		if strings.HasSuffix(c.name, "/max") {
			r := NewMessage(c.msg.Type())
			if err := r.Decode(c.msg.AppendBody(nil)); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			reused[c.msg.Type()] = r
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkRoundTrip(t, c.msg, reused[c.msg.Type()]) })
	}
}

func TestEntryIndexImplied(t *testing.T) {
	m := goldenSamples()[1].(*AppendEntries)
	if m.EntryIndex(0) != 101 || m.EntryIndex(2) != 103 || m.LastIndex() != 103 {
		t.Fatalf("indices %d %d %d, want 101 103 103", m.EntryIndex(0), m.EntryIndex(2), m.LastIndex())
	}
	empty := AppendEntries{PrevIndex: 9}
	if empty.LastIndex() != 9 {
		t.Fatalf("heartbeat LastIndex %d, want PrevIndex", empty.LastIndex())
	}
}

func goldenPath(ty Type) string { return filepath.Join("testdata", "golden", ty.String()+".hex") }

// formatGolden writes a frame as hex, 32 bytes a line, after a comment naming the type.
func formatGolden(ty Type, frame []byte) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# %v frame (%d bytes): header %d bytes, body %d bytes\n", ty, len(frame), HeaderSize, len(frame)-HeaderSize)
	for len(frame) > 0 {
		n := min(32, len(frame))
		b.WriteString(hex.EncodeToString(frame[:n]))
		b.WriteByte('\n')
		frame = frame[n:]
	}
	return []byte(b.String())
}

func parseGolden(t *testing.T, text []byte) []byte {
	var out []byte
	for _, line := range strings.Split(string(text), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatalf("golden line %q: %v", line, err)
		}
		out = append(out, b...)
	}
	return out
}

// The golden vectors pin the format: a change to any encoding shows up as a diff of
// testdata/golden/. Regenerate deliberately with: go test ./wire/ -run Golden -rewrite
func TestGolden(t *testing.T) {
	for _, m := range goldenSamples() {
		ty := m.Type()
		t.Run(ty.String(), func(t *testing.T) {
			frame := AppendMessageFrame(nil, 0, m)
			path := goldenPath(ty)
			if *rewrite {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, formatGolden(ty, frame), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			text, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -rewrite to create it)", err)
			}
			want := parseGolden(t, text)
			if !bytes.Equal(frame, want) {
				t.Fatalf("encoding of %v changed:\n got %x\nwant %x\n(if deliberate, rerun with -rewrite)", ty, frame, want)
			}
			// Decode the stored bytes too, so the decoder is pinned independently.
			f, err := DecodeFrame(want, 0)
			if err != nil {
				t.Fatal(err)
			}
			got := NewMessage(f.Type)
			if err := DecodeMessage(f, got); err != nil || !equal(got, m) {
				t.Fatalf("decoding the golden frame: %v\n%+v", err, got)
			}
		})
	}
}

// A strict decoder rejects every truncation and every extension of a valid body.
func TestDecodeTruncatedAndTrailing(t *testing.T) {
	for _, m := range goldenSamples() {
		body := m.AppendBody(nil)
		into := NewMessage(m.Type())
		for n := range len(body) {
			if err := into.Decode(body[:n]); err != ErrMalformed {
				t.Fatalf("%v: prefix of %d/%d bytes: %v, want ErrMalformed", m.Type(), n, len(body), err)
			}
		}
		if err := into.Decode(append(bytes.Clone(body), 0)); err != ErrMalformed {
			t.Fatalf("%v: trailing byte: %v, want ErrMalformed", m.Type(), err)
		}
	}
}

func TestDecodeRejectsNonCanonical(t *testing.T) {
	put := func(b []byte, off int, v byte) []byte { b = bytes.Clone(b); b[off] = v; return b }
	hello := AppendPeerHello(nil, &PeerHello{Protocol: ProtocolPBFT})
	vote := AppendRequestVote(nil, &RequestVote{})
	reply := AppendRequestVoteReply(nil, &RequestVoteReply{})
	aer := AppendAppendEntriesReply(nil, &AppendEntriesReply{})
	prep := AppendPrepare(nil, &Prepare{})
	macs := AppendPrepare(nil, &Prepare{Auth: Authenticator{Kind: AuthMACs, MACs: mac(1, 2)}})
	req := AppendClientRequest(nil, &ClientRequest{Ops: []Op{{Kind: OpGet, Key: []byte("k")}}})
	rep := AppendClientReply(nil, &ClientReply{Results: []OpResult{{Status: StatusOK}}})
	cases := []struct {
		name string
		body []byte
		into Message
	}{
		{"hello protocol 0", put(hello, 16, 0), new(PeerHello)},
		{"hello protocol 3", put(hello, 16, 3), new(PeerHello)},
		{"vote unknown flag", put(vote, 40, 0x04), new(RequestVote)},
		{"vote reply unknown flag", put(reply, 24, voteFlagLeaderTransfer), new(RequestVoteReply)},
		{"bool 2", put(aer, 32, 2), new(AppendEntriesReply)},
		{"auth kind 3", put(prep, 56, 3), new(Prepare)},
		{"mac count overruns", put(macs, 57, 3), new(Prepare)},
		{"op kind 0", put(req, 20, 0), new(ClientRequest)},
		{"op kind 5", put(req, 20, 5), new(ClientRequest)},
		{"status 7", put(rep, 44, 7), new(ClientReply)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.into.Decode(c.body); err != ErrMalformed {
				t.Fatalf("decode: %v, want ErrMalformed", err)
			}
		})
	}
}

// Fields at their maximum: a frame exactly at DefaultMaxFrameBytes, a full MAC vector,
// MaxCount elements, and one element more (rejected).
func TestMaxSizeFields(t *testing.T) {
	data := make([]byte, DefaultMaxFrameBytes-HeaderSize-appendEntriesFixedSize-entryFixedSize)
	data[len(data)-1] = 0x7F
	ae := &AppendEntries{Term: math.MaxUint64, Entries: []Entry{{Term: math.MaxUint64, Type: 0xFF, Data: data}}}
	frame := AppendMessageFrame(nil, 0, ae)
	if len(frame) != DefaultMaxFrameBytes {
		t.Fatalf("frame %d bytes, want %d", len(frame), DefaultMaxFrameBytes)
	}
	f, err := DecodeFrame(frame, 0)
	if err != nil {
		t.Fatalf("max frame: %v", err)
	}
	var got AppendEntries
	if err := DecodeAppendEntries(f.Body, &got); err != nil || !equal(&got, ae) {
		t.Fatalf("max frame decode: %v", err)
	}
	ae.Entries[0].Data = append(data, 0)
	if _, err := DecodeFrame(AppendMessageFrame(nil, 0, ae), 0); err != ErrFrameTooLarge {
		t.Fatalf("one byte over: %v, want ErrFrameTooLarge", err)
	}

	full := &Prepare{Auth: Authenticator{Kind: AuthMACs, MACs: mac(0, MaxMACs)}}
	checkRoundTrip(t, full, new(Prepare))

	many := &ClientRequest{Ops: make([]Op, MaxCount)}
	for i := range many.Ops {
		many.Ops[i] = Op{Kind: OpGet}
	}
	checkRoundTrip(t, many, new(ClientRequest))
	body := AppendClientRequest(nil, many)
	body = append(body[:len(body)-minAuthSize], byte(OpGet), 0, 0, 0, 0, byte(AuthNone))
	binary.LittleEndian.PutUint32(body[16:], MaxCount+1)
	if err := new(ClientRequest).Decode(body); err != ErrMalformed {
		t.Fatalf("MaxCount+1 ops: %v, want ErrMalformed", err)
	}
}

// A count that the body cannot hold is rejected before anything is allocated.
func TestHugeCountAllocatesNothing(t *testing.T) {
	var body []byte
	body = append(body, make([]byte, 7*8)...)
	body = binary.LittleEndian.AppendUint32(body, math.MaxUint32)
	body = append(body, make([]byte, 100)...)
	allocs := testing.AllocsPerRun(10, func() {
		var m AppendEntries
		if DecodeAppendEntries(body, &m) != ErrMalformed {
			t.Fatal("huge count accepted")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs for a rejected count", allocs)
	}
}

// What one decode allocates is bounded by a constant factor of the body: each element of a
// repeated field has a minimum encoded size, and the worst ratio of in-memory to encoded
// size is Op's (unsafe.Sizeof(Op{}) / opMinSize).
func TestDecodeAllocationBounded(t *testing.T) {
	factor := int(unsafe.Sizeof(Op{})) / opMinSize
	worst := []Message{
		&AppendEntries{Entries: make([]Entry, 20000)},
		&ClientRequest{Ops: func() []Op {
			ops := make([]Op, 20000)
			for i := range ops {
				ops[i].Kind = OpGet
			}
			return ops
		}()},
		&ClientReply{Results: make([]OpResult, 20000)},
		&PrePrepare{Requests: make([]Request, 5000)},
		&ViewChange{C: make([]Checkpoint, 5000), P: make([]PreparedCert, 5000)},
		&NewView{V: make([]ViewChange, 5000), O: make([]PrePrepareHeader, 5000)},
		&InstallSnapshot{Voters: make([]uint64, 20000), Learners: make([]uint64, 20000)},
	}
	for _, m := range worst {
		body := m.AppendBody(nil)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		fresh := NewMessage(m.Type())
		if err := fresh.Decode(body); err != nil {
			t.Fatalf("%v: %v", m.Type(), err)
		}
		runtime.ReadMemStats(&after)
		allocated := after.TotalAlloc - before.TotalAlloc
		if limit := uint64((factor+1)*len(body) + 4096); allocated > limit {
			t.Errorf("%v: decoding %d bytes allocated %d bytes, over %d x body", m.Type(), len(body), allocated, factor)
		}
		runtime.KeepAlive(fresh)
	}
}

func TestDecodedBytesAliasInput(t *testing.T) {
	body := AppendReadIndex(nil, &ReadIndex{Context: []byte("ctx")})
	var m ReadIndex
	if err := DecodeReadIndex(body, &m); err != nil {
		t.Fatal(err)
	}
	body[len(body)-1] = 'X'
	if string(m.Context) != "ctX" {
		t.Fatalf("Context %q does not alias the body", m.Context)
	}
	if cap(m.Context) != len(m.Context) {
		t.Fatalf("Context capacity %d > length: an append would overwrite the body", cap(m.Context))
	}
}

func TestAuthenticatorAccessors(t *testing.T) {
	a := Authenticator{Kind: AuthMACs, MACs: mac(0x10, 3)}
	if a.NumMACs() != 3 || a.MAC(2)[0] != 0x12 || len(a.MAC(1)) != MACSize || cap(a.MAC(0)) != MACSize {
		t.Fatalf("NumMACs %d, MAC(2)[0] %#x", a.NumMACs(), a.MAC(2)[0])
	}
}

func TestEncoderPanicsOnInvalidMessage(t *testing.T) {
	bad := []struct {
		name string
		f    func()
	}{
		{"mac vector not a multiple", func() { AppendPrepare(nil, &Prepare{Auth: Authenticator{Kind: AuthMACs, MACs: make([]byte, 33)}}) }},
		{"short signature", func() {
			AppendPrepare(nil, &Prepare{Auth: Authenticator{Kind: AuthSignature, Signature: make([]byte, 10)}})
		}},
		{"none with bytes", func() { AppendPrepare(nil, &Prepare{Auth: Authenticator{MACs: make([]byte, 32)}}) }},
		{"op kind 0", func() { AppendClientRequest(nil, &ClientRequest{Ops: []Op{{}}}) }},
		{"status 9", func() { AppendClientReply(nil, &ClientReply{Results: []OpResult{{Status: 9}}}) }},
		{"finish without header", func() { FinishFrame([]byte("short"), 0) }},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			c.f()
		})
	}
}

// Every encoder and decoder allocates nothing once dst has room and the target struct has
// held a message of this size before.
func TestZeroAllocs(t *testing.T) {
	for _, m := range goldenSamples() {
		t.Run(m.Type().String(), func(t *testing.T) {
			dst := make([]byte, 0, 4*HeaderSize+2*m.Size())
			into := NewMessage(m.Type())
			body := m.AppendBody(nil)
			if err := into.Decode(body); err != nil {
				t.Fatal(err)
			}
			if a := testing.AllocsPerRun(100, func() { dst = m.AppendBody(dst[:0]) }); a != 0 {
				t.Errorf("encode: %v allocs/op", a)
			}
			if a := testing.AllocsPerRun(100, func() { dst = AppendMessageFrame(dst[:0], 0, m) }); a != 0 {
				t.Errorf("encode frame: %v allocs/op", a)
			}
			if a := testing.AllocsPerRun(100, func() {
				if into.Decode(body) != nil {
					t.Fatal("decode failed")
				}
			}); a != 0 {
				t.Errorf("decode: %v allocs/op", a)
			}
		})
	}
}

// Seeded mutations of every golden body (bit flips, overwrites, truncations, insertions):
// a decoder must never panic, must return nil or ErrMalformed, and what it accepts must
// re-encode to the same bytes. A deterministic complement to the fuzzers for every `go test`.
func TestDecodeMutations(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, m := range goldenSamples() {
		orig := m.AppendBody(nil)
		into := NewMessage(m.Type())
		accepted := 0
		for range 2000 {
			b := bytes.Clone(orig)
			for range 1 + rng.IntN(3) {
				switch i := rng.IntN(len(b) + 1); rng.IntN(4) {
				case 0:
					if i < len(b) {
						b[i] ^= 1 << rng.IntN(8)
					}
				case 1:
					if i < len(b) {
						b[i] = byte(rng.Uint32())
					}
				case 2:
					b = b[:i]
				case 3:
					b = append(b[:i], append([]byte{byte(rng.Uint32())}, b[i:]...)...)
				}
			}
			err := into.Decode(b)
			if err != nil && err != ErrMalformed {
				t.Fatalf("%v: error %v", m.Type(), err)
			}
			if err == nil {
				accepted++
				if re := into.AppendBody(nil); !bytes.Equal(re, b) {
					t.Fatalf("%v: accepted mutation re-encodes differently:\n in %x\nout %x", m.Type(), b, re)
				}
			}
		}
		if accepted == 2000 {
			t.Fatalf("%v: every mutation was accepted: the decoder checks nothing", m.Type())
		}
	}
}
