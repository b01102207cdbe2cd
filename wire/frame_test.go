package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"testing/iotest"
)

func TestHeaderEncodedSize(t *testing.T) {
	b, start := StartFrame(nil, TypeTimeoutNow, 0)
	if start != 0 || len(b) != HeaderSize || HeaderSize != 16 {
		t.Fatalf("header is %d bytes (start %d), want HeaderSize = 16", len(b), start)
	}
	b = FinishFrame(b, start)
	if len(b) != HeaderSize {
		t.Fatalf("empty-body frame is %d bytes, want %d", len(b), HeaderSize)
	}
}

// The byte layout of the header is part of the format: pin it field by field.
func TestHeaderLayout(t *testing.T) {
	b := AppendFrame([]byte{0xAA}, TypeAppendEntries, 0x0102, []byte("body"))
	want := []byte{
		0xAA,                   // caller's prefix
		0x7E, 0x0A, 0x5D, 0xCB, // magic 0xCB5D0A7E little-endian
		Version,
		byte(TypeAppendEntries),
		0x02, 0x01, // flags
		4, 0, 0, 0, // body length
	}
	crc := binary.LittleEndian.AppendUint32(nil, Checksum([]byte("body")))
	want = append(want, crc...)
	want = append(want, "body"...)
	if !bytes.Equal(b, want) {
		t.Fatalf("frame\n got %x\nwant %x", b, want)
	}
	// CRC32C check value from RFC 3720 B.4: 32 bytes of zeros.
	if got := Checksum(make([]byte, 32)); got != 0x8A9136AA {
		t.Fatalf("Checksum(32 zero bytes) = %#x, want 0x8a9136aa (CRC32C)", got)
	}
}

func TestSplitFrameRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 100, 70000} {
		body := bytes.Repeat([]byte{0x5A}, n)
		b := AppendFrame(nil, TypeClientRequest, 7, body)
		f, used, err := SplitFrame(b, 0)
		if err != nil || used != len(b) || f.Type != TypeClientRequest || f.Flags != 7 || !bytes.Equal(f.Body, body) {
			t.Fatalf("n=%d: SplitFrame = %v,%d,%v", n, f.Type, used, err)
		}
		if cap(f.Body) != len(f.Body) {
			t.Fatalf("n=%d: body capacity %d exceeds its length: an append could overwrite the next frame", n, cap(f.Body))
		}
	}
}

func TestSplitFrameErrors(t *testing.T) {
	good := AppendFrame(nil, TypeCommit, 0, []byte("0123456789"))
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	hugeHeader := mut(func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[offLength:], DefaultMaxFrameBytes-HeaderSize+1)
		return b[:HeaderSize] // no body: the header alone must be rejected
	})
	cases := []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"empty", nil, 0, ErrShortBuffer},
		{"magic prefix", good[:3], 0, ErrShortBuffer},
		{"bad first byte", []byte{'G'}, 0, ErrBadMagic},
		{"bad magic in prefix", []byte{0x7E, 0x0A, 0x00}, 0, ErrBadMagic},
		{"bad magic", mut(func(b []byte) []byte { b[3] ^= 1; return b }), 0, ErrBadMagic},
		{"version", mut(func(b []byte) []byte { b[offVersion] = 2; return b }), 0, ErrVersion},
		{"unknown type", mut(func(b []byte) []byte { b[offType] = 0xFF; return b }), 0, ErrUnknownType},
		{"invalid type 0", mut(func(b []byte) []byte { b[offType] = 0; return b }), 0, ErrUnknownType},
		{"oversized header only", hugeHeader, 0, ErrFrameTooLarge},
		{"4 GiB length", mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[offLength:], 1<<32-1); return b }), 0, ErrFrameTooLarge},
		{"over configured max", good, len(good) - 1, ErrFrameTooLarge},
		{"at configured max", good, len(good), nil},
		{"partial header", good[:HeaderSize-1], 0, ErrShortBuffer},
		{"partial body", good[:len(good)-1], 0, ErrShortBuffer},
		{"crc", mut(func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }), 0, ErrChecksum},
		{"crc field", mut(func(b []byte) []byte { b[offCRC] ^= 1; return b }), 0, ErrChecksum},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, n, err := SplitFrame(c.in, c.max)
			if err != c.want {
				t.Fatalf("SplitFrame err = %v, want %v", err, c.want)
			}
			if err != nil && n != 0 {
				t.Fatalf("SplitFrame consumed %d bytes on error", n)
			}
		})
	}
	if _, err := DecodeFrame(append(bytes.Clone(good), 0), 0); err != ErrMalformed {
		t.Fatalf("DecodeFrame with a trailing byte: %v, want ErrMalformed", err)
	}
	if _, err := DecodeFrame(good, 0); err != nil {
		t.Fatalf("DecodeFrame: %v", err)
	}
}

func TestSentinelsDistinct(t *testing.T) {
	errs := []error{ErrShortBuffer, ErrFrameTooLarge, ErrBadMagic, ErrVersion, ErrUnknownType, ErrChecksum, ErrMalformed}
	for i, a := range errs {
		for j, b := range errs {
			if i != j && (errors.Is(a, b) || a.Error() == b.Error()) {
				t.Fatalf("sentinels %d and %d are not distinct: %v, %v", i, j, a, b)
			}
		}
	}
}

func TestCheckMaxFrameBytes(t *testing.T) {
	for _, c := range []struct {
		n  int
		ok bool
	}{{0, true}, {HeaderSize, true}, {HeaderSize - 1, false}, {MaxFrameBytesLimit, true}, {MaxFrameBytesLimit + 1, false}, {-1, false}} {
		if got := CheckMaxFrameBytes(c.n) == nil; got != c.ok {
			t.Errorf("CheckMaxFrameBytes(%d) ok = %v, want %v", c.n, got, c.ok)
		}
	}
	if ValidMaxFrameBytes(0) != DefaultMaxFrameBytes {
		t.Fatal("ValidMaxFrameBytes(0) is not the default")
	}
}

func TestTypeNames(t *testing.T) {
	seen := map[string]bool{}
	for _, ty := range Types() {
		s := ty.String()
		if s == "" || seen[s] {
			t.Fatalf("type %d has empty or duplicate name %q", ty, s)
		}
		seen[s] = true
	}
	if len(seen) != 27 {
		t.Fatalf("%d message types, want 27", len(seen))
	}
	if TypeInvalid.Valid() || Type(0xEE).String() != "Type(238)" {
		t.Fatalf("unknown type naming: %q", Type(0xEE).String())
	}
}

// stream builds a byte stream of frames with bodies of the given sizes.
func stream(sizes ...int) ([]byte, [][]byte) {
	var b []byte
	var bodies [][]byte
	for i, n := range sizes {
		body := bytes.Repeat([]byte{byte(i + 1)}, n)
		bodies = append(bodies, body)
		b = AppendFrame(b, TypePrepare, uint16(i), body)
	}
	return b, bodies
}

func TestScannerWholeAndPartial(t *testing.T) {
	b, bodies := stream(0, 5, 300)
	partial := AppendFrame(nil, TypePrepare, 9, []byte("tail-body"))
	buf := append(bytes.Clone(b), partial[:HeaderSize+3]...)
	var s Scanner
	s.Reset(buf)
	for i, want := range bodies {
		f, ok, err := s.Next()
		if !ok || err != nil || !bytes.Equal(f.Body, want) || f.Flags != uint16(i) {
			t.Fatalf("frame %d: ok=%v err=%v", i, ok, err)
		}
	}
	f, ok, err := s.Next()
	if ok || err != nil || f.Body != nil {
		t.Fatalf("partial frame: ok=%v err=%v", ok, err)
	}
	if s.Consumed() != len(b) || s.Need() != len("tail-body")-3 {
		t.Fatalf("Consumed=%d (want %d) Need=%d (want %d)", s.Consumed(), len(b), s.Need(), len("tail-body")-3)
	}
	// Partial header: Need asks for the rest of the header.
	s.Reset(partial[:5])
	if _, ok, err := s.Next(); ok || err != nil || s.Need() != HeaderSize-5 || s.Consumed() != 0 {
		t.Fatalf("partial header: ok=%v err=%v need=%d", ok, err, s.Need())
	}
	// The connection delivers the rest: the remainder plus new bytes scan as a whole frame.
	s.Reset(partial)
	if f, ok, err := s.Next(); !ok || err != nil || string(f.Body) != "tail-body" {
		t.Fatalf("completed frame: ok=%v err=%v", ok, err)
	}
	// Errors are sticky until Reset.
	s.Reset(append(bytes.Clone(b[:HeaderSize]), 0xFF))
	s.buf[offType] = 0xFF
	for range 2 {
		if _, ok, err := s.Next(); ok || err != ErrUnknownType {
			t.Fatalf("corrupt stream: ok=%v err=%v", ok, err)
		}
	}
}

func TestReader(t *testing.T) {
	b, bodies := stream(0, 1, 200, 3*DefaultReaderBufferBytes, 17)
	for _, wrap := range []struct {
		name string
		r    func(io.Reader) io.Reader
	}{
		{"plain", func(r io.Reader) io.Reader { return r }},
		{"one-byte", iotest.OneByteReader},
		{"half", iotest.HalfReader},
		{"data-err", iotest.DataErrReader},
	} {
		t.Run(wrap.name, func(t *testing.T) {
			r := NewReader(wrap.r(bytes.NewReader(b)), 0)
			for i, want := range bodies {
				f, err := r.ReadFrame()
				if err != nil || !bytes.Equal(f.Body, want) {
					t.Fatalf("frame %d: err %v, body %d bytes want %d", i, err, len(f.Body), len(want))
				}
			}
			if _, err := r.ReadFrame(); err != io.EOF {
				t.Fatalf("end: %v, want io.EOF", err)
			}
			if _, err := r.ReadFrame(); err != io.EOF {
				t.Fatalf("sticky end: %v, want io.EOF", err)
			}
		})
	}
	r := NewReader(bytes.NewReader(b[:len(b)-1]), 0)
	var err error
	for err == nil {
		_, err = r.ReadFrame()
	}
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated stream: %v, want io.ErrUnexpectedEOF", err)
	}
}

// headerThenFail yields its bytes once, then fails the test if read again.
type headerThenFail struct {
	t    *testing.T
	b    []byte
	done bool
}

func (h *headerThenFail) Read(p []byte) (int, error) {
	if h.done {
		h.t.Fatal("Reader waited for the body of a frame whose header exceeds MaxFrameBytes")
	}
	h.done = true
	return copy(p, h.b), nil
}

func TestReaderRejectsOversizeBeforeBody(t *testing.T) {
	h, _ := StartFrame(nil, TypeStateChunk, 0)
	binary.LittleEndian.PutUint32(h[offLength:], 1<<20)
	r := NewReader(&headerThenFail{t: t, b: h}, 1<<16)
	if _, err := r.ReadFrame(); err != ErrFrameTooLarge {
		t.Fatalf("ReadFrame = %v, want ErrFrameTooLarge", err)
	}
	if len(r.buf) > 1<<16 {
		t.Fatalf("buffer grew to %d for a rejected frame", len(r.buf))
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func TestReaderNoProgress(t *testing.T) {
	if _, err := NewReader(zeroReader{}, 0).ReadFrame(); err != io.ErrNoProgress {
		t.Fatalf("ReadFrame on a reader that returns nothing: %v, want io.ErrNoProgress", err)
	}
}

func TestFrameZeroAllocs(t *testing.T) {
	b, _ := stream(10, 20, 30)
	var s Scanner
	allocs := testing.AllocsPerRun(100, func() {
		s.Reset(b)
		for {
			_, ok, err := s.Next()
			if err != nil || !ok {
				break
			}
		}
	})
	if allocs != 0 {
		t.Errorf("Scanner: %v allocs/op, want 0", allocs)
	}
	dst := make([]byte, 0, 1024)
	body := []byte("payload")
	allocs = testing.AllocsPerRun(100, func() { dst = AppendFrame(dst[:0], TypeCommit, 0, body) })
	if allocs != 0 {
		t.Errorf("AppendFrame: %v allocs/op, want 0", allocs)
	}
	src := bytes.NewReader(nil)
	r := NewReader(src, 0)
	allocs = testing.AllocsPerRun(100, func() {
		src.Reset(b)
		r.err = nil
		for {
			if _, err := r.ReadFrame(); err != nil {
				break
			}
		}
	})
	if allocs != 0 {
		t.Errorf("Reader: %v allocs/op, want 0", allocs)
	}
}

// The Reader over a real net.Conn: frames written in pieces by another goroutine arrive
// whole and in order.
func TestReaderNetConn(t *testing.T) {
	client, server := net.Pipe()
	b, bodies := stream(3, 0, 5000, 70000, 1)
	go func() {
		defer client.Close()
		for _, part := range chunks(b, []byte{7, 200, 16, 1}) {
			if _, err := client.Write(part); err != nil {
				return
			}
		}
	}()
	r := NewReader(server, 0)
	for i, want := range bodies {
		f, err := r.ReadFrame()
		if err != nil || !bytes.Equal(f.Body, want) {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

// HasFrame says whether the next ReadFrame can return without reading: true for a whole
// buffered frame, false for none or part of one.
func TestReaderHasFrame(t *testing.T) {
	var stream []byte
	for i := range 3 {
		stream = AppendFrame(stream, TypeClientRequest, 0, bytes.Repeat([]byte{byte(i)}, 100))
	}
	pr, pw := io.Pipe()
	r := NewReader(pr, 0)
	if r.HasFrame() {
		t.Fatal("HasFrame before any read")
	}
	go func() {
		pw.Write(stream[:len(stream)-10]) // two frames and most of the third
		pw.Write(stream[len(stream)-10:])
		pw.Close()
	}()
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if !r.HasFrame() {
		t.Fatal("second frame buffered, HasFrame false")
	}
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if r.HasFrame() {
		t.Fatal("only part of the third frame buffered, HasFrame true")
	}
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if r.HasFrame() {
		t.Fatal("nothing buffered, HasFrame true")
	}
}
