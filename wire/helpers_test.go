package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"reflect"
)

// source turns fuzz input (or a seed) into field values. An exhausted source yields zeros,
// so any input builds a valid message. In max mode it yields the largest values instead:
// all-ones integers, true, and byte strings and repeated fields of the given lengths.
type source struct {
	b        []byte
	max      bool
	maxLen   int // byte-string length in max mode, and the bound otherwise
	maxCount int // repeated-field length in max mode, and the bound otherwise
}

func (s *source) byte() byte {
	if s.max {
		return 0xFF
	}
	if len(s.b) == 0 {
		return 0
	}
	v := s.b[0]
	s.b = s.b[1:]
	return v
}

func (s *source) u64() uint64 {
	if s.max {
		return math.MaxUint64
	}
	var a [8]byte
	n := copy(a[:], s.b)
	s.b = s.b[n:]
	return binary.LittleEndian.Uint64(a[:])
}

// n returns a number in [0, limit].
func (s *source) n(limit int) int {
	if s.max {
		return limit
	}
	return int(s.byte()) % (limit + 1)
}

func (s *source) bytes(limit int) []byte {
	n := s.n(limit)
	out := make([]byte, n)
	for i := range out {
		out[i] = s.byte() ^ byte(i)
	}
	return out
}

var (
	authType     = reflect.TypeFor[Authenticator]()
	protocolType = reflect.TypeFor[Protocol]()
	opKindType   = reflect.TypeFor[OpKind]()
	statusType   = reflect.TypeFor[Status]()
)

// fill sets every field of v from s, keeping enums and authenticators valid.
func fill(v reflect.Value, s *source) {
	switch v.Type() {
	case authType:
		a := v.Addr().Interface().(*Authenticator)
		*a = Authenticator{Kind: AuthKind(s.n(int(authKindMax)))}
		switch a.Kind {
		case AuthMACs, AuthShortMACs:
			a.MACs = make([]byte, a.tagSize()*s.n(s.maxCount+1))
			for i := range a.MACs {
				a.MACs[i] = s.byte()
			}
		case AuthSignature:
			a.Signature = make([]byte, SignatureSize)
			for i := range a.Signature {
				a.Signature[i] = s.byte()
			}
		}
		return
	case protocolType:
		v.SetUint(uint64(1 + s.n(int(protocolMax)-1)))
		return
	case opKindType:
		v.SetUint(uint64(1 + s.n(int(opKindMax)-1)))
		return
	case statusType:
		v.SetUint(uint64(s.n(int(statusMax))))
		return
	}
	switch v.Kind() {
	case reflect.Uint64:
		v.SetUint(s.u64())
	case reflect.Uint16:
		v.SetUint(s.u64() & 0xFFFF)
	case reflect.Uint8:
		v.SetUint(uint64(s.byte()))
	case reflect.Bool:
		v.SetBool(s.byte()&1 == 1)
	case reflect.Array:
		for i := range v.Len() {
			fill(v.Index(i), s)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes(s.bytes(s.maxLen))
			return
		}
		n := s.n(s.maxCount)
		v.Set(reflect.MakeSlice(v.Type(), n, n))
		for i := range n {
			fill(v.Index(i), s)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), s)
		}
		if op, ok := v.Addr().Interface().(*Op); ok {
			canonicalOp(op)
		}
	default:
		panic("fill: unhandled kind " + v.Kind().String() + " of " + v.Type().String())
	}
}

// canonicalOp clears the fields an op of its kind does not encode.
func canonicalOp(o *Op) {
	switch o.Kind {
	case OpPut:
		o.Expected = nil
	case OpCAS:
	default:
		o.Value, o.Expected = nil, nil
	}
}

// gen builds a valid message of type t from s.
func gen(t Type, s *source) Message {
	m := NewMessage(t)
	fill(reflect.ValueOf(m).Elem(), s)
	return m
}

// seeded returns a source of pseudo-random bytes derived from a label.
func seeded(label string, n int) *source {
	out := make([]byte, 0, n+sha256.Size)
	for i := 0; len(out) < n; i++ {
		h := sha256.Sum256([]byte(label + string(rune('A'+i%26)) + string(rune(i))))
		out = append(out, h[:]...)
	}
	return &source{b: out, maxLen: 40, maxCount: 4}
}

// equal compares two values field by field, treating nil and empty slices as equal (a
// decoder returns nil for an empty byte string).
func equal(a, b any) bool { return equalValue(reflect.ValueOf(a), reflect.ValueOf(b)) }

func equalValue(a, b reflect.Value) bool {
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalValue(a.Elem(), b.Elem())
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		if a.Type().Elem().Kind() == reflect.Uint8 {
			return bytes.Equal(a.Bytes(), b.Bytes())
		}
		for i := range a.Len() {
			if !equalValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Array:
		for i := range a.Len() {
			if !equalValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := range a.NumField() {
			if !equalValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Uint64, reflect.Uint32, reflect.Uint16, reflect.Uint8:
		return a.Uint() == b.Uint()
	case reflect.Bool:
		return a.Bool() == b.Bool()
	}
	panic("equal: unhandled kind " + a.Kind().String())
}

// minimal returns the smallest valid message of type t: the zero value, except where zero
// is not a valid value of a field.
func minimal(t Type) Message {
	m := NewMessage(t)
	if h, ok := m.(*PeerHello); ok {
		h.Protocol = ProtocolRaft
	}
	return m
}
