package wire

import (
	"encoding/binary"
	"math"

	"github.com/consensusbench/consensusbench/internal/assert"
)

// le is the byte order of every integer in the format.
var le = binary.LittleEndian

// Encoded sizes of the primitive fields.
const (
	sizeU8    = 1
	sizeU16   = 2
	sizeU32   = 4
	sizeU64   = 8
	sizeBool  = 1
	sizeLen   = sizeU32 // length prefix of a byte string
	sizeCount = sizeU32 // count prefix of a repeated field
)

func appendU8(b []byte, v uint8) []byte   { return append(b, v) }
func appendU16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// MaxCount bounds every repeated field (entries, operations, requests, certificates, node
// IDs). Together with the per-element minimum size it caps what one decode allocates: a
// repeated field never allocates more than MaxCount elements, however large the frame.
const MaxCount = 1 << 16

// appendCount appends the count prefix of a repeated field. A count above MaxCount is a
// sender bug (its batching limits must stay below it), so it panics.
func appendCount(b []byte, n int) []byte {
	if n > MaxCount {
		assert.Failf("wire: repeated field of %d elements exceeds MaxCount %d", n, MaxCount)
	}
	return binary.LittleEndian.AppendUint32(b, uint32(n))
}

// appendBytes appends a length-prefixed byte string.
func appendBytes(b, p []byte) []byte {
	if uint64(len(p)) > math.MaxUint32 {
		assert.Failf("wire: byte string of %d bytes exceeds the 32-bit length", len(p))
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
	return append(b, p...)
}

// decoder reads a body front to back. A failed read marks it bad, empties it and returns
// zero values, so a decode function reads its fields straight through and checks once at
// the end (finish). Counts are bounded before any loop runs, so a bad decoder never loops
// long.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) fail() {
	d.bad = true
	d.b = nil
}

func (d *decoder) u8() uint8 {
	if len(d.b) < sizeU8 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) u16() uint16 {
	if len(d.b) < sizeU16 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint16(d.b)
	d.b = d.b[sizeU16:]
	return v
}

func (d *decoder) u32() uint32 {
	if len(d.b) < sizeU32 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[sizeU32:]
	return v
}

func (d *decoder) u64() uint64 {
	if len(d.b) < sizeU64 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[sizeU64:]
	return v
}

// boolean accepts only 0 and 1, keeping the encoding canonical.
func (d *decoder) boolean() bool {
	v := d.u8()
	if v > 1 {
		d.fail()
	}
	return v == 1
}

// flags reads a flag byte and rejects bits outside known.
func (d *decoder) flags(known uint8) uint8 {
	v := d.u8()
	if v&^known != 0 {
		d.fail()
	}
	return v
}

// bytes reads a length-prefixed byte string. The result aliases the body, with its capacity
// cut to its length so that an append by the caller cannot overwrite the next field. An
// empty string decodes as nil.
func (d *decoder) bytes() []byte {
	if len(d.b) < sizeLen {
		d.fail()
		return nil
	}
	n := le.Uint32(d.b)
	rest := d.b[sizeLen:]
	if uint64(n) > uint64(len(rest)) {
		d.fail()
		return nil
	}
	d.b = rest[n:]
	if n == 0 {
		return nil
	}
	return rest[:n:n]
}

// fixed reads n raw bytes (n is a constant of the format, not input).
func (d *decoder) fixed(n int) []byte {
	if len(d.b) < n {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) digest(dg *Digest) {
	if len(d.b) < DigestSize {
		d.fail()
		*dg = Digest{}
		return
	}
	copy(dg[:], d.b)
	d.b = d.b[DigestSize:]
}

// count reads the count prefix of a repeated field whose elements encode to at least
// minElem bytes, and rejects counts above MaxCount or that the remaining body cannot hold.
// This is what bounds the memory a decoder allocates by the size of its input.
func (d *decoder) count(minElem int) int {
	n := d.u32()
	if n > MaxCount || uint64(n)*uint64(minElem) > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

// finish reports ErrMalformed if any read failed or bytes are left over.
func (d *decoder) finish() error {
	if d.bad || len(d.b) != 0 {
		return ErrMalformed
	}
	return nil
}

// resize returns s with length n, reusing its capacity. When it must allocate it copies
// the old elements (up to the old capacity) so that their own nested slices keep their
// capacity for reuse. n has been bounded by the input size (decoder.count).
func resize[T any](s []T, n int) []T {
	if n <= cap(s) {
		return s[:n]
	}
	ns := make([]T, n)
	copy(ns, s[:cap(s)])
	return ns
}

// appendU64s appends a repeated uint64 field.
func appendU64s(b []byte, vs []uint64) []byte {
	b = appendCount(b, len(vs))
	for _, v := range vs {
		b = appendU64(b, v)
	}
	return b
}

func (d *decoder) u64s(dst []uint64) []uint64 {
	n := d.count(sizeU64)
	dst = resize(dst, n)
	for i := range dst {
		dst[i] = d.u64()
	}
	return dst
}
