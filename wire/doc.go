// Package wire owns the bytes that travel between replicas and clients: the frame header
// (magic, version, type, flags, body length, CRC32C of the body), the stream frame reader,
// and one struct per message with an append-style encoder and an aliasing decoder.
//
// # Frame
//
// A frame is a fixed [HeaderSize]-byte header followed by the body:
//
//	offset size field
//	0      4    magic        ([Magic], little-endian)
//	4      1    version      ([Version])
//	5      1    type         ([Type])
//	6      2    flags        (carried for the transport; wire assigns no meaning)
//	8      4    body length  (bytes after the header)
//	12     4    CRC32C       (Castagnoli, of the body only)
//
// The whole frame (header plus body) may not exceed the receiver's MaxFrameBytes
// ([DefaultMaxFrameBytes] unless configured). The limit is checked as soon as the 16 header
// bytes are present, before a byte of the body is waited for or a buffer is grown for it.
//
// # Body encoding
//
// Integers are little-endian and fixed-width. Byte strings are a uint32 length followed by the
// bytes. Repeated fields are a uint32 count followed by the elements. Booleans are one byte,
// 0 or 1. Raft entry indices are not sent: entry i of an AppendEntries has index
// PrevIndex+1+i. Every decoder is strict, so the encoding is canonical: a body that decodes
// re-encodes to the same bytes (unknown flag bits, booleans other than 0/1, unknown enum
// values and trailing bytes are all [ErrMalformed]).
//
// # Encoders and decoders
//
// Each message X has AppendX(dst []byte, m *X) []byte, which grows dst once by the body's
// computed size and appends the body, and DecodeX(body []byte, m *X) error, which fills a
// caller-owned struct. Decoded byte fields alias body (valid only while the caller keeps the
// buffer unchanged; copy what must outlive it) and decoded slices reuse the capacity of the
// struct's previous slices, so encode and decode allocate nothing in steady state. Each
// message type also implements [Message], and [AppendMessageFrame] writes a complete frame.
// A decoder that returns an error leaves the struct partly filled: do not use it. Encoders
// trust their input and panic (internal/assert) on a message no decoder would accept (an
// invalid enum, an authenticator inconsistent with its kind, more than [MaxCount] elements):
// that is a bug of the sender, never a property of received bytes.
//
// # Hostile input
//
// Decoders check every length against the bytes that remain before slicing, and bound every
// count by [MaxCount] and by what the remaining bytes could hold at the element's minimum
// encoded size, so no input makes them panic or loop, and what a decode allocates (only when
// the caller's slices lack capacity) is at most a small constant factor of the body: the
// ratio of an element's in-memory size to its minimum encoded size, 16 at worst (an empty
// Get in a ClientRequest), and never more than MaxCount elements per repeated field. A
// count the body cannot hold is rejected before anything is allocated. The
// errors are distinct sentinels: [ErrShortBuffer], [ErrFrameTooLarge], [ErrBadMagic],
// [ErrVersion], [ErrUnknownType], [ErrChecksum], [ErrMalformed].
//
// # What wire must not do
//
// It has no dependencies outside the standard library (and internal/assert), starts no
// goroutines, keeps no global mutable state, allocates nothing per message in steady state,
// and never trusts a length or count before checking it against the input. It carries
// protocol fields; it does not interpret them (that is raftcore's and pbftcore's job).
package wire
