package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Seed corpora live in testdata/fuzz/<Fuzzer>/ and run with every `go test`. They are
// generated from the golden samples: go test ./wire/ -run FuzzSeeds -rewrite

// FuzzDecode feeds arbitrary bodies to the decoder of the type named by typ. A decoder may
// only accept or return ErrMalformed; what it accepts must re-encode to the same bytes
// (the encoding is canonical) and decode the same into a struct holding other data.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, typ uint8, body []byte) {
		m := NewMessage(Type(typ))
		if m == nil {
			return
		}
		err := m.Decode(body)
		if err != nil {
			if err != ErrMalformed {
				t.Fatalf("%v: error %v, want ErrMalformed", Type(typ), err)
			}
			return
		}
		if re := m.AppendBody(nil); !bytes.Equal(re, body) {
			t.Fatalf("%v: accepted body re-encodes differently:\n in %x\nout %x", Type(typ), body, re)
		}
		if m.Size() != len(body) {
			t.Fatalf("%v: Size %d, body %d", Type(typ), m.Size(), len(body))
		}
		dirty := gen(Type(typ), &source{b: body, maxLen: 16, maxCount: 3})
		if err := dirty.Decode(body); err != nil || !equal(dirty, m) {
			t.Fatalf("%v: decode into a used struct: %v", Type(typ), err)
		}
	})
}

// FuzzRoundTrip builds a valid message of every type from the fuzz input, frames it,
// splits the frame and decodes it: the result must equal the message.
func FuzzRoundTrip(f *testing.F) {
	types := Types()
	f.Fuzz(func(t *testing.T, typ uint8, data []byte) {
		ty := types[int(typ)%len(types)]
		m := gen(ty, &source{b: data, maxLen: 64, maxCount: 4})
		other := gen(ty, &source{b: data[len(data)/2:], maxLen: 8, maxCount: 2})
		checkRoundTrip(t, m, other)
	})
}

// fuzzMaxFrame is the stream fuzzer's frame limit: small, so oversized frames are common.
const fuzzMaxFrame = 1 << 12

type streamResult struct {
	frames []Frame // bodies copied
	err    error   // first error; nil at a clean end or partial frame
	rest   int     // bytes left unconsumed at the end
}

func copyFrame(f Frame) Frame { f.Body = bytes.Clone(f.Body); return f }

func sameFrames(a, b []Frame) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d frames vs %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Type != b[i].Type || a[i].Flags != b[i].Flags || !bytes.Equal(a[i].Body, b[i].Body) {
			return fmt.Errorf("frame %d differs", i)
		}
	}
	return nil
}

// chunks cuts data at the points given by splits (each byte a chunk length, 0 meaning 1).
func chunks(data, splits []byte) [][]byte {
	var out [][]byte
	for i := 0; len(data) > 0; i++ {
		n := len(data)
		if len(splits) > 0 {
			n = min(n, max(1, int(splits[i%len(splits)])))
		}
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

type chunkReader struct{ parts [][]byte }

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.parts[0])
	if n < len(r.parts[0]) {
		r.parts[0] = r.parts[0][n:]
	} else {
		r.parts = r.parts[1:]
	}
	return n, nil
}

// FuzzStream feeds a byte stream, cut at arbitrary points, to the Scanner the way gnet's
// OnTraffic does (carrying the unconsumed tail into the next call) and to the Reader. Both
// must return exactly the frames, and the error, of scanning the whole stream at once.
func FuzzStream(f *testing.F) {
	f.Fuzz(func(t *testing.T, data, splits []byte) {
		var want streamResult
		s := Scanner{MaxFrameBytes: fuzzMaxFrame}
		s.Reset(data)
		for {
			fr, ok, err := s.Next()
			if err != nil {
				want.err = err
				break
			}
			if !ok {
				break
			}
			want.frames = append(want.frames, copyFrame(fr))
		}
		want.rest = len(data) - s.Consumed()
		if want.err == ErrShortBuffer {
			t.Fatal("Scanner surfaced ErrShortBuffer")
		}

		// gnet-style: each chunk appends to the inbound buffer; whole frames are consumed.
		var got streamResult
		var pending []byte
		inc := Scanner{MaxFrameBytes: fuzzMaxFrame}
	feed:
		for _, c := range chunks(data, splits) {
			pending = append(pending, c...)
			inc.Reset(pending)
			for {
				fr, ok, err := inc.Next()
				if err != nil {
					got.err = err
					break feed
				}
				if !ok {
					break
				}
				got.frames = append(got.frames, copyFrame(fr))
			}
			if inc.Need() <= 0 {
				t.Fatalf("Need() = %d after a partial frame", inc.Need())
			}
			pending = append([]byte(nil), pending[inc.Consumed():]...)
		}
		if err := sameFrames(got.frames, want.frames); err != nil || got.err != want.err {
			t.Fatalf("incremental scan: %v; err %v, want %v", err, got.err, want.err)
		}
		if got.err == nil && len(pending) != want.rest {
			t.Fatalf("incremental scan left %d bytes, want %d", len(pending), want.rest)
		}

		r := NewReader(&chunkReader{parts: chunks(data, splits)}, fuzzMaxFrame)
		var rd streamResult
		for {
			fr, err := r.ReadFrame()
			if err != nil {
				rd.err = err
				break
			}
			rd.frames = append(rd.frames, copyFrame(fr))
		}
		wantErr := want.err
		if wantErr == nil {
			wantErr = io.EOF
			if want.rest > 0 {
				wantErr = io.ErrUnexpectedEOF
			}
		}
		if err := sameFrames(rd.frames, want.frames); err != nil || !errors.Is(rd.err, wantErr) {
			t.Fatalf("Reader: %v; err %v, want %v", err, rd.err, wantErr)
		}
		if len(r.buf) > max(fuzzMaxFrame, DefaultReaderBufferBytes) {
			t.Fatalf("Reader buffer grew to %d", len(r.buf))
		}
	})
}

// writeSeed writes one corpus file in the `go test fuzz v1` format.
func writeSeed(t *testing.T, fuzzer, name string, args ...any) {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case uint8:
			fmt.Fprintf(&b, "uint8(%d)\n", v)
		case []byte:
			fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
		default:
			t.Fatalf("seed argument of type %T", a)
		}
	}
	dir := filepath.Join("testdata", "fuzz", fuzzer)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// seedStreams returns named streams for FuzzStream: valid frames, and the ways a stream
// goes wrong.
func seedStreams() map[string][]byte {
	var all []byte
	for _, m := range goldenSamples() {
		if fr := AppendMessageFrame(nil, 0, m); len(fr) <= fuzzMaxFrame {
			all = append(all, fr...)
		}
	}
	small := AppendMessageFrame(nil, 3, &TimeoutNow{Term: 1, From: 2, To: 3})
	big := AppendMessageFrame(nil, 0, &StateChunk{Data: make([]byte, fuzzMaxFrame)})
	corrupt := bytes.Clone(all)
	corrupt[len(corrupt)/2] ^= 0x40
	badType := bytes.Clone(small)
	badType[offType] = 0x7F
	badVersion := bytes.Clone(small)
	badVersion[offVersion] = 9
	return map[string][]byte{
		"all-types":      all,
		"small-repeated": bytes.Repeat(small, 5),
		"partial-tail":   append(bytes.Repeat(small, 2), small[:HeaderSize+5]...),
		"oversize":       append(bytes.Clone(small), big...),
		"corrupt-body":   corrupt,
		"bad-type":       append(bytes.Clone(small), badType...),
		"bad-version":    append(bytes.Clone(small), badVersion...),
		"bad-magic":      append(bytes.Clone(small), "GET / HTTP/1.1\r\n"...),
		"header-only":    small[:HeaderSize],
		"empty":          nil,
	}
}

func TestFuzzSeeds(t *testing.T) {
	if !*rewrite {
		for _, fz := range []string{"FuzzDecode", "FuzzRoundTrip", "FuzzStream"} {
			ents, err := os.ReadDir(filepath.Join("testdata", "fuzz", fz))
			if err != nil || len(ents) < len(Types()) && fz != "FuzzStream" {
				t.Errorf("%s seed corpus missing or short (%v); regenerate with -rewrite", fz, err)
			}
		}
		return
	}
	for i, m := range goldenSamples() {
		body := m.AppendBody(nil)
		name := m.Type().String()
		writeSeed(t, "FuzzDecode", name, uint8(m.Type()), body)
		writeSeed(t, "FuzzDecode", name+"-truncated", uint8(m.Type()), body[:len(body)/2])
		writeSeed(t, "FuzzDecode", name+"-min", uint8(m.Type()), minimal(m.Type()).AppendBody(nil))
		writeSeed(t, "FuzzRoundTrip", name, uint8(i), seeded(name, 512).b)
	}
	writeSeed(t, "FuzzDecode", "unknown-type", uint8(0xEE), []byte("x"))
	splits := map[string][]byte{"whole": nil, "bytewise": {1}, "mixed": {3, 17, 1, 200, 16, 5}}
	for name, s := range seedStreams() {
		for sn, sp := range splits {
			writeSeed(t, "FuzzStream", name+"-"+sn, s, sp)
		}
	}
}
