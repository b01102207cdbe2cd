// Package kvapp is a small deterministic key-value application for pbftcore's tests, the
// simulator and benchmarks. It implements pbftcore.App: full-copy checkpoints serialized in
// key order, a SHA-256 state digest, and chunked state transfer. It is not the production
// state machine (kv/ is) and must not be used as one: checkpoints copy the whole map.
package kvapp

import (
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"slices"

	"github.com/consensusbench/consensusbench/pbftcore"
)

// Operation codes (first byte of an op).
const (
	OpPut    = 'P' // P key value: set, result is the old value
	OpGet    = 'G' // G key: result is the value
	OpAppend = 'A' // A key value: append, result is the new value
)

// DefaultChunkBytes is the state-transfer chunk size.
const DefaultChunkBytes = 1024

// Put, Get and Append encode operations.
func Put(key, value string) []byte    { return encode(OpPut, key, value) }
func Get(key string) []byte           { return encode(OpGet, key, "") }
func Append(key, value string) []byte { return encode(OpAppend, key, value) }

func encode(code byte, key, value string) []byte {
	b := []byte{code}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(key)))
	b = append(b, key...)
	return append(b, value...)
}

// Decode splits an op; ok is false if it is malformed.
func Decode(op []byte) (code byte, key, value []byte, ok bool) {
	if len(op) < 3 {
		return 0, nil, nil, false
	}
	l := int(binary.LittleEndian.Uint16(op[1:]))
	if 3+l > len(op) {
		return 0, nil, nil, false
	}
	return op[0], op[3 : 3+l], op[3+l:], true
}

// App is the key-value application.
type App struct {
	data       map[string][]byte
	snaps      map[uint64][]byte
	ChunkBytes int
}

// New returns an empty store.
func New() *App {
	return &App{data: map[string][]byte{}, snaps: map[uint64][]byte{}, ChunkBytes: DefaultChunkBytes}
}

// Execute implements pbftcore.App.
func (a *App) Execute(_ uint64, req *pbftcore.Request, dst []byte) []byte {
	code, key, value, ok := Decode(req.Op)
	if !ok {
		return append(dst, "ERR"...)
	}
	old := a.data[string(key)]
	switch code {
	case OpPut:
		a.data[string(key)] = append([]byte(nil), value...)
		return append(dst, old...)
	case OpAppend:
		nv := append(append([]byte(nil), old...), value...)
		a.data[string(key)] = nv
		return append(dst, nv...)
	case OpGet:
		return append(dst, old...)
	}
	return append(dst, "ERR"...)
}

// Read implements pbftcore.App: only gets are read-only.
func (a *App) Read(op []byte, dst []byte) []byte {
	code, key, _, ok := Decode(op)
	if !ok || code != OpGet {
		return append(dst, "ERR"...)
	}
	return append(dst, a.data[string(key)]...)
}

func (a *App) serialize() []byte {
	var b []byte
	for _, k := range slices.Sorted(maps.Keys(a.data)) {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(k)))
		b = append(b, k...)
		v := a.data[k]
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	return b
}

// Checkpoint implements pbftcore.App.
func (a *App) Checkpoint(seq uint64) pbftcore.Digest {
	s := a.serialize()
	a.snaps[seq] = s
	return sha256.Sum256(s)
}

// StateChunk implements pbftcore.App.
func (a *App) StateChunk(seq uint64, i int, dst []byte) ([]byte, int, bool) {
	s, ok := a.snaps[seq]
	if !ok {
		return dst, 0, false
	}
	chunks := max(1, (len(s)+a.ChunkBytes-1)/a.ChunkBytes)
	if i < 0 || i >= chunks {
		return dst, chunks, false
	}
	end := min(len(s), (i+1)*a.ChunkBytes)
	return append(dst, s[i*a.ChunkBytes:end]...), chunks, true
}

// StateDigest implements pbftcore.App.
func (a *App) StateDigest(chunks [][]byte) pbftcore.Digest {
	h := sha256.New()
	for _, c := range chunks {
		h.Write(c)
	}
	var d pbftcore.Digest
	h.Sum(d[:0])
	return d
}

// Restore implements pbftcore.App. A malformed state (which cannot match a certified digest)
// restores what parses.
func (a *App) Restore(seq uint64, chunks [][]byte) {
	var s []byte
	for _, c := range chunks {
		s = append(s, c...)
	}
	a.data = map[string][]byte{}
	for b := s; len(b) >= 4; {
		kl := int(binary.LittleEndian.Uint32(b))
		if 4+kl+4 > len(b) {
			break
		}
		k := string(b[4 : 4+kl])
		b = b[4+kl:]
		vl := int(binary.LittleEndian.Uint32(b))
		if 4+vl > len(b) {
			break
		}
		a.data[k] = append([]byte(nil), b[4:4+vl]...)
		b = b[4+vl:]
	}
	a.snaps[seq] = s
}

// DiscardBelow implements pbftcore.App.
func (a *App) DiscardBelow(seq uint64) {
	for s := range a.snaps {
		if s < seq {
			delete(a.snaps, s)
		}
	}
}

// Value returns the current value of key (tests).
func (a *App) Value(key string) string { return string(a.data[key]) }
