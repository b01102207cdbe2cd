package wire

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math"

	"github.com/consensusbench/consensusbench/internal/assert"
)

// Frame header layout; see the package documentation.
const (
	// HeaderSize is the encoded size of a frame header in bytes.
	HeaderSize = 16
	// Magic starts every frame. It is not ASCII, so a text protocol (HTTP, a stray telnet)
	// hitting a port fails on the first bytes.
	Magic uint32 = 0xCB5D0A7E
	// Version is the only frame and body format version this package reads and writes.
	Version uint8 = 1

	// DefaultMaxFrameBytes bounds a whole frame (header + body) when the caller configures
	// no limit: large enough for a 4 MiB snapshot chunk or a big AppendEntries batch, small
	// enough that a corrupt length cannot make a receiver reserve much memory.
	DefaultMaxFrameBytes = 16 << 20
	// MaxFrameBytesLimit is the largest MaxFrameBytes a caller may configure (the body length
	// field is 32 bits; 1 GiB keeps buffer sizes within int on every platform).
	MaxFrameBytesLimit = 1 << 30

	offMagic   = 0
	offVersion = 4
	offType    = 5
	offFlags   = 6
	offLength  = 8
	offCRC     = 12
)

// Sentinel errors. Decoders return them unwrapped so that callers can compare with == or
// errors.Is and the error path allocates nothing.
var (
	// ErrShortBuffer: the buffer ends before the frame does (a partial frame). On a stream
	// this only means "wait for more bytes".
	ErrShortBuffer = errors.New("wire: short buffer: partial frame")
	// ErrFrameTooLarge: the header announces a frame larger than MaxFrameBytes.
	ErrFrameTooLarge = errors.New("wire: frame larger than MaxFrameBytes")
	// ErrBadMagic: the first bytes are not Magic; the stream is not ours or lost sync.
	ErrBadMagic = errors.New("wire: bad magic")
	// ErrVersion: the header's version is not Version.
	ErrVersion = errors.New("wire: unsupported version")
	// ErrUnknownType: the header's message type is not one this package knows.
	ErrUnknownType = errors.New("wire: unknown message type")
	// ErrChecksum: the body's CRC32C does not match the header.
	ErrChecksum = errors.New("wire: CRC32C mismatch")
	// ErrMalformed: a body does not decode: a length or count overruns the body, an enum or
	// boolean is out of range, unknown flag bits are set, or bytes are left over.
	ErrMalformed = errors.New("wire: malformed body")
)

// castagnoli selects the hardware-accelerated CRC32C path of hash/crc32 (SSE4.2 on amd64,
// CRC32 instructions on arm64).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC32C (Castagnoli) of b, as stored in a frame header.
func Checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Type identifies the message in a frame body.
type Type uint8

// Message types. Values are part of the format (golden vectors pin them): add new types at
// the end of a group, never renumber.
const (
	TypeInvalid Type = 0

	// Connection set-up.
	TypePeerHello Type = 1
	TypePeerAuth  Type = 2

	// Raft.
	TypeAppendEntries        Type = 0x10
	TypeAppendEntriesReply   Type = 0x11
	TypeRequestVote          Type = 0x12
	TypeRequestVoteReply     Type = 0x13
	TypeInstallSnapshot      Type = 0x14
	TypeInstallSnapshotReply Type = 0x15
	TypeTimeoutNow           Type = 0x16
	TypeReadIndex            Type = 0x17
	TypeReadIndexReply       Type = 0x18
	TypeHeartbeat            Type = 0x19
	TypeHeartbeatReply       Type = 0x1A

	// PBFT.
	TypePBFTRequest Type = 0x20
	TypePrePrepare  Type = 0x21
	TypePrepare     Type = 0x22
	TypeCommit      Type = 0x23
	TypePBFTReply   Type = 0x24
	TypeCheckpoint  Type = 0x25
	TypeViewChange  Type = 0x26
	TypeNewView     Type = 0x27
	TypeFetchState  Type = 0x28
	TypeStateChunk  Type = 0x29
	TypeFetchBatch  Type = 0x2A
	TypeBatch       Type = 0x2B

	// Client.
	TypeClientRequest Type = 0x30
	TypeClientReply   Type = 0x31
)

var typeNames = [256]string{
	TypePeerHello:            "PeerHello",
	TypePeerAuth:             "PeerAuth",
	TypeAppendEntries:        "AppendEntries",
	TypeAppendEntriesReply:   "AppendEntriesReply",
	TypeRequestVote:          "RequestVote",
	TypeRequestVoteReply:     "RequestVoteReply",
	TypeInstallSnapshot:      "InstallSnapshot",
	TypeInstallSnapshotReply: "InstallSnapshotReply",
	TypeTimeoutNow:           "TimeoutNow",
	TypeReadIndex:            "ReadIndex",
	TypeReadIndexReply:       "ReadIndexReply",
	TypeHeartbeat:            "Heartbeat",
	TypeHeartbeatReply:       "HeartbeatReply",
	TypePBFTRequest:          "PBFTRequest",
	TypePrePrepare:           "PrePrepare",
	TypePrepare:              "Prepare",
	TypeCommit:               "Commit",
	TypePBFTReply:            "PBFTReply",
	TypeCheckpoint:           "Checkpoint",
	TypeViewChange:           "ViewChange",
	TypeNewView:              "NewView",
	TypeFetchState:           "FetchState",
	TypeStateChunk:           "StateChunk",
	TypeFetchBatch:           "FetchBatch",
	TypeBatch:                "Batch",
	TypeClientRequest:        "ClientRequest",
	TypeClientReply:          "ClientReply",
}

// Valid reports whether t is a message type this package encodes and decodes.
func (t Type) Valid() bool { return typeNames[t] != "" }

// String returns the message name, or "Type(n)" for an unknown type.
func (t Type) String() string {
	if t.Valid() {
		return typeNames[t]
	}
	return "Type(" + itoa(int(t)) + ")"
}

// Types returns every valid message type in ascending order (a fresh slice; for tests,
// fuzzers and tools, not hot paths).
func Types() []Type {
	var ts []Type
	for i := range typeNames {
		if typeNames[i] != "" {
			ts = append(ts, Type(i))
		}
	}
	return ts
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// Message is implemented by a pointer to every message struct of this package.
type Message interface {
	// Type returns the frame type of the message.
	Type() Type
	// Size returns the encoded body size in bytes.
	Size() int
	// AppendBody appends the encoded body to dst (the same bytes as AppendX).
	AppendBody(dst []byte) []byte
	// Decode fills the message from body (the same as DecodeX): byte fields alias body,
	// slices reuse the receiver's capacity.
	Decode(body []byte) error
}

// Header is a decoded frame header.
type Header struct {
	Version uint8
	Type    Type
	Flags   uint16
	BodyLen uint32
	CRC     uint32
}

// FrameLen returns the whole frame's size, header included.
func (h Header) FrameLen() int { return HeaderSize + int(h.BodyLen) }

// Frame is one whole, checked frame. Body aliases the buffer it was split from.
type Frame struct {
	Type  Type
	Flags uint16
	Body  []byte
}

// StartFrame appends a header for a frame of type t with the given flags, with body length
// and CRC left zero, and returns the extended dst and start, the offset of the header in it.
// Append the body to the returned slice, then call FinishFrame(dst, start).
func StartFrame(dst []byte, t Type, flags uint16) (out []byte, start int) {
	start = len(dst)
	var h [HeaderSize]byte
	binary.LittleEndian.PutUint32(h[offMagic:], Magic)
	h[offVersion] = Version
	h[offType] = byte(t)
	binary.LittleEndian.PutUint16(h[offFlags:], flags)
	return append(dst, h[:]...), start
}

// FinishFrame fills in the body length and CRC32C of the frame that starts at offset start
// of dst; the body is everything in dst after that frame's header. It returns dst.
// It panics if start does not point at a header made by StartFrame or if the body exceeds
// MaxFrameBytesLimit: senders bound their batches well below the receivers' limits, so
// either is a bug, not an input error.
func FinishFrame(dst []byte, start int) []byte {
	if start < 0 || len(dst)-start < HeaderSize || binary.LittleEndian.Uint32(dst[start+offMagic:]) != Magic {
		assert.Failf("wire: FinishFrame start %d does not point at a frame header (len %d)", start, len(dst))
	}
	body := dst[start+HeaderSize:]
	if len(body) > MaxFrameBytesLimit-HeaderSize {
		assert.Failf("wire: frame body of %d bytes exceeds MaxFrameBytesLimit", len(body))
	}
	binary.LittleEndian.PutUint32(dst[start+offLength:], uint32(len(body)))
	binary.LittleEndian.PutUint32(dst[start+offCRC:], Checksum(body))
	return dst
}

// AppendFrame appends a whole frame of type t with an already encoded body.
func AppendFrame(dst []byte, t Type, flags uint16, body []byte) []byte {
	dst, start := StartFrame(dst, t, flags)
	dst = append(dst, body...)
	return FinishFrame(dst, start)
}

// AppendMessageFrame appends a whole frame holding m, growing dst once.
func AppendMessageFrame(dst []byte, flags uint16, m Message) []byte {
	dst = grow(dst, HeaderSize+m.Size())
	dst, start := StartFrame(dst, m.Type(), flags)
	dst = m.AppendBody(dst)
	return FinishFrame(dst, start)
}

// ValidMaxFrameBytes returns the effective limit for a configured MaxFrameBytes: 0 selects
// DefaultMaxFrameBytes. It panics on a value below HeaderSize or above MaxFrameBytesLimit;
// configuration code should check with CheckMaxFrameBytes first.
func ValidMaxFrameBytes(maxFrameBytes int) int {
	if maxFrameBytes == 0 {
		return DefaultMaxFrameBytes
	}
	if CheckMaxFrameBytes(maxFrameBytes) != nil {
		assert.Failf("wire: MaxFrameBytes %d outside [%d, %d]", maxFrameBytes, HeaderSize, MaxFrameBytesLimit)
	}
	return maxFrameBytes
}

// errMaxFrameBytes is returned by CheckMaxFrameBytes.
var errMaxFrameBytes = errors.New("wire: MaxFrameBytes must be 0 (default) or within [HeaderSize, MaxFrameBytesLimit]")

// CheckMaxFrameBytes validates a configured MaxFrameBytes (0 means the default).
func CheckMaxFrameBytes(maxFrameBytes int) error {
	if maxFrameBytes != 0 && (maxFrameBytes < HeaderSize || maxFrameBytes > MaxFrameBytesLimit) {
		return errMaxFrameBytes
	}
	return nil
}

// ParseHeader decodes and checks the header at the start of b against maxFrameBytes (0 for
// the default). It checks, in order: that b holds a header (ErrShortBuffer, also returned
// when b is a matching prefix of one), the magic (ErrBadMagic, detected on any prefix of it),
// the version (ErrVersion), the type (ErrUnknownType) and the frame size (ErrFrameTooLarge).
// It does not look at the body.
func ParseHeader(b []byte, maxFrameBytes int) (Header, error) {
	maxFrameBytes = ValidMaxFrameBytes(maxFrameBytes)
	if len(b) < HeaderSize {
		// Reject a wrong magic as soon as its first byte arrives, so a peer speaking another
		// protocol is dropped without waiting for a whole header.
		var m [4]byte
		binary.LittleEndian.PutUint32(m[:], Magic)
		for i := 0; i < len(b) && i < len(m); i++ {
			if b[i] != m[i] {
				return Header{}, ErrBadMagic
			}
		}
		return Header{}, ErrShortBuffer
	}
	if binary.LittleEndian.Uint32(b[offMagic:]) != Magic {
		return Header{}, ErrBadMagic
	}
	h := Header{
		Version: b[offVersion],
		Type:    Type(b[offType]),
		Flags:   binary.LittleEndian.Uint16(b[offFlags:]),
		BodyLen: binary.LittleEndian.Uint32(b[offLength:]),
		CRC:     binary.LittleEndian.Uint32(b[offCRC:]),
	}
	if h.Version != Version {
		return Header{}, ErrVersion
	}
	if !h.Type.Valid() {
		return Header{}, ErrUnknownType
	}
	// Compare in uint64 so that a 4 GiB body length cannot overflow int on 32-bit platforms.
	if uint64(h.BodyLen)+HeaderSize > uint64(maxFrameBytes) {
		return Header{}, ErrFrameTooLarge
	}
	return h, nil
}

// SplitFrame returns the first whole frame in buf and n, the number of bytes it occupies.
// Frame.Body aliases buf. If buf holds only part of a frame it returns ErrShortBuffer with
// n == 0; every other error means the stream is corrupt or hostile and cannot be resynchronised
// (close the connection). The header is checked (ParseHeader) before the body's absence is
// reported, so an oversized frame fails as soon as its header arrives.
func SplitFrame(buf []byte, maxFrameBytes int) (f Frame, n int, err error) {
	h, err := ParseHeader(buf, maxFrameBytes)
	if err != nil {
		return Frame{}, 0, err
	}
	n = h.FrameLen()
	if len(buf) < n {
		return Frame{}, 0, ErrShortBuffer
	}
	body := buf[HeaderSize:n:n]
	if Checksum(body) != h.CRC {
		return Frame{}, 0, ErrChecksum
	}
	return Frame{Type: h.Type, Flags: h.Flags, Body: body}, n, nil
}

// DecodeFrame checks that b is exactly one whole frame and returns it. Trailing bytes are
// ErrMalformed.
func DecodeFrame(b []byte, maxFrameBytes int) (Frame, error) {
	f, n, err := SplitFrame(b, maxFrameBytes)
	if err != nil {
		return Frame{}, err
	}
	if n != len(b) {
		return Frame{}, ErrMalformed
	}
	return f, nil
}

// Scanner returns the whole frames of a byte buffer one by one. It is made for gnet's
// OnTraffic: Reset it with the Peek'ed bytes, call Next until it reports no more whole
// frames, then Discard(Consumed()). A Scanner does not copy or allocate; frames alias the
// buffer given to Reset and are valid only as long as that buffer is. The zero value is
// ready to use with DefaultMaxFrameBytes. Not safe for concurrent use.
//
//	s.Reset(buf)
//	for {
//		f, ok, err := s.Next()
//		if err != nil { close the connection }
//		if !ok { break }
//		handle(f)
//	}
//	c.Discard(s.Consumed())
type Scanner struct {
	// MaxFrameBytes bounds each frame; 0 selects DefaultMaxFrameBytes.
	MaxFrameBytes int

	buf  []byte
	off  int
	need int
	err  error
}

// NewScanner returns a Scanner with the given frame limit (0 for the default).
func NewScanner(maxFrameBytes int) *Scanner {
	return &Scanner{MaxFrameBytes: ValidMaxFrameBytes(maxFrameBytes)}
}

// Reset starts scanning buf from its beginning and clears any previous error.
func (s *Scanner) Reset(buf []byte) {
	s.buf, s.off, s.need, s.err = buf, 0, 0, nil
}

// Next returns the next whole frame. ok is false when the rest of the buffer is empty or a
// partial frame (then err is nil and Need says how many more bytes complete it). A non-nil
// err (any sentinel but ErrShortBuffer) is sticky until Reset: the stream is unusable.
func (s *Scanner) Next() (f Frame, ok bool, err error) {
	if s.err != nil {
		return Frame{}, false, s.err
	}
	rest := s.buf[s.off:]
	f, n, err := SplitFrame(rest, s.MaxFrameBytes)
	switch err {
	case nil:
		s.off += n
		s.need = 0
		return f, true, nil
	case ErrShortBuffer:
		if len(rest) >= HeaderSize {
			s.need = HeaderSize + int(binary.LittleEndian.Uint32(rest[offLength:])) - len(rest)
		} else {
			s.need = HeaderSize - len(rest)
		}
		return Frame{}, false, nil
	default:
		s.err = err
		return Frame{}, false, err
	}
}

// Consumed returns how many bytes from the start of the buffer the frames returned so far
// occupy: the amount to discard from the connection's inbound buffer.
func (s *Scanner) Consumed() int { return s.off }

// Need returns, after Next reported no whole frame, the number of further bytes the partial
// frame at the end needs (the rest of the header, or, once the header is known and checked,
// the rest of the frame). It is 0 after a whole frame.
func (s *Scanner) Need() int { return s.need }

// DefaultReaderBufferBytes is the initial buffer of a Reader: enough for many small frames
// per read system call.
const DefaultReaderBufferBytes = 64 << 10

// Reader reads whole frames from an io.Reader (a net.Conn) through one reusable buffer.
// The buffer grows only to fit a frame whose header has been checked against MaxFrameBytes.
// Not safe for concurrent use.
type Reader struct {
	r     io.Reader
	max   int
	buf   []byte
	start int // first unconsumed byte
	end   int // end of valid bytes
	empty int // consecutive reads that returned no bytes and no error
	err   error
}

// maxEmptyReads bounds consecutive (0, nil) reads before ReadFrame gives up with
// io.ErrNoProgress.
const maxEmptyReads = 100

var errReaderCount = errors.New("wire: io.Reader returned an invalid count")

// NewReader returns a Reader of r with the given frame limit (0 for the default) and an
// initial buffer of min(DefaultReaderBufferBytes, limit) bytes.
func NewReader(r io.Reader, maxFrameBytes int) *Reader {
	maxFrameBytes = ValidMaxFrameBytes(maxFrameBytes)
	return &Reader{r: r, max: maxFrameBytes, buf: make([]byte, min(DefaultReaderBufferBytes, maxFrameBytes))}
}

// ReadFrame returns the next whole frame. Its Body aliases the Reader's buffer and is valid
// only until the next call. At a clean end of stream (no partial frame) it returns io.EOF; a
// stream that ends inside a frame gives io.ErrUnexpectedEOF. Errors are sticky.
func (r *Reader) ReadFrame() (Frame, error) {
	if r.err != nil {
		return Frame{}, r.err
	}
	for {
		f, n, err := SplitFrame(r.buf[r.start:r.end], r.max)
		if err == nil {
			r.start += n
			return f, nil
		}
		if err != ErrShortBuffer {
			r.err = err
			return Frame{}, err
		}
		need := HeaderSize
		if r.end-r.start >= HeaderSize {
			need = HeaderSize + int(binary.LittleEndian.Uint32(r.buf[r.start+offLength:]))
		}
		r.makeRoom(need)
		k, rerr := r.r.Read(r.buf[r.end:])
		if k < 0 || k > len(r.buf)-r.end {
			r.err = errReaderCount
			return Frame{}, r.err
		}
		r.end += k
		if k > 0 {
			r.empty = 0
			continue
		}
		if rerr == nil {
			// Bound the retries of a reader that keeps returning nothing (as bufio does).
			if r.empty++; r.empty < maxEmptyReads {
				continue
			}
			rerr = io.ErrNoProgress
		}
		if rerr == io.EOF && r.end > r.start {
			rerr = io.ErrUnexpectedEOF
		}
		r.err = rerr
		return Frame{}, rerr
	}
}

// HasFrame reports whether a whole frame is buffered, so that the next ReadFrame returns
// without reading (or with the error of a bad header). A reader that answers frames in
// batches flushes its answers when this turns false, before ReadFrame may block.
func (r *Reader) HasFrame() bool {
	b := r.buf[r.start:r.end]
	if r.err != nil || len(b) < HeaderSize {
		return r.err != nil
	}
	return len(b) >= HeaderSize+int(binary.LittleEndian.Uint32(b[offLength:]))
}

// makeRoom ensures the buffer can hold need bytes from start, moving the unconsumed bytes to
// the front (frames handed out earlier become invalid, as documented) and growing the buffer
// when the frame is larger than it. need has been checked against MaxFrameBytes.
func (r *Reader) makeRoom(need int) {
	if r.start == r.end {
		r.start, r.end = 0, 0
	}
	if len(r.buf)-r.start >= need && r.end < len(r.buf) {
		return
	}
	if need > len(r.buf) {
		nb := make([]byte, min(max(need, 2*len(r.buf)), r.max))
		r.end = copy(nb, r.buf[r.start:r.end])
		r.buf, r.start = nb, 0
		return
	}
	r.end = copy(r.buf, r.buf[r.start:r.end])
	r.start = 0
}

// grow returns dst with room for at least n more bytes, reallocating at most once.
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	if n > math.MaxInt-len(dst) {
		assert.Failf("wire: encoded size overflows int")
	}
	nb := make([]byte, len(dst), max(len(dst)+n, 2*cap(dst)))
	copy(nb, dst)
	return nb
}
