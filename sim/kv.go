package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// OpKind is the kind of a client operation on the KV model.
type OpKind uint8

// The KV model's operations.
const (
	OpGet OpKind = 1 + iota
	OpPut
	OpCAS
)

func (k OpKind) String() string {
	switch k {
	case OpGet:
		return "get"
	case OpPut:
		return "put"
	case OpCAS:
		return "cas"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Op is one client operation. (Client, Seq) identifies it: the state machine executes each
// (Client, Seq) at most once, which makes retransmissions and network duplicates harmless.
type Op struct {
	Client uint32 // workload client index, < ClientsMax
	Seq    uint64 // per-client sequence number, starts at 1, strictly increasing
	Kind   OpKind
	Key    uint8 // < KeysMax
	Value  int64 // put: value to write; cas: new value
	Expect int64 // cas: expected current value
}

// Output is the result of an executed Op.
type Output struct {
	Value int64 // get: the value read (0 when absent)
	OK    bool  // put: always true; cas: whether it swapped
}

// OpEncodedSize is the fixed size of an encoded Op.
const OpEncodedSize = 4 + 8 + 1 + 1 + 8 + 8

// Limits of the KV model and its workload.
const (
	KeysMax    = 16 // keys are 0..KeysMax-1
	ClientsMax = 64 // clients are 0..ClientsMax-1
)

// ErrBadOp reports an encoded op that does not decode.
var ErrBadOp = errors.New("sim: malformed op")

// AppendOp appends op's fixed-size encoding to dst.
func AppendOp(dst []byte, op Op) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, op.Client)
	dst = binary.LittleEndian.AppendUint64(dst, op.Seq)
	dst = append(dst, byte(op.Kind), op.Key)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(op.Value))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(op.Expect))
	return dst
}

// DecodeOp decodes an op written by AppendOp.
func DecodeOp(b []byte) (Op, error) {
	if len(b) != OpEncodedSize {
		return Op{}, ErrBadOp
	}
	op := Op{
		Client: binary.LittleEndian.Uint32(b[0:4]),
		Seq:    binary.LittleEndian.Uint64(b[4:12]),
		Kind:   OpKind(b[12]),
		Key:    b[13],
		Value:  int64(binary.LittleEndian.Uint64(b[14:22])),
		Expect: int64(binary.LittleEndian.Uint64(b[22:30])),
	}
	if op.Kind < OpGet || op.Kind > OpCAS || op.Key >= KeysMax || op.Client >= ClientsMax || op.Seq == 0 {
		return Op{}, ErrBadOp
	}
	return op, nil
}

// KV is the replicated state machine every protocol adapter applies committed ops to: a small
// key space of int64 values plus one session per client for exactly-once execution. It has
// fixed-size arrays only, so copying a KV is a snapshot.
type KV struct {
	values  [KeysMax]int64
	lastSeq [ClientsMax]uint64
	lastOut [ClientsMax]Output
	applied uint64 // number of ops executed (not counting duplicates)
}

// Apply executes op unless its session already executed it, and returns the op's output
// (for a duplicate, the output recorded when it first ran; a duplicate older than the
// session's last op reports dup=true and a zero Output, which no client still waits for).
func (kv *KV) Apply(op Op) (out Output, dup bool) {
	last := kv.lastSeq[op.Client]
	if op.Seq < last {
		return Output{}, true
	}
	if op.Seq == last {
		return kv.lastOut[op.Client], true
	}
	switch op.Kind {
	case OpGet:
		out = Output{Value: kv.values[op.Key], OK: true}
	case OpPut:
		kv.values[op.Key] = op.Value
		out = Output{OK: true}
	case OpCAS:
		if kv.values[op.Key] == op.Expect {
			kv.values[op.Key] = op.Value
			out = Output{OK: true}
		}
	}
	kv.lastSeq[op.Client] = op.Seq
	kv.lastOut[op.Client] = out
	kv.applied++
	return out, false
}

// Get reads a key without going through the log (for protocol read paths such as ReadIndex,
// lease reads or PBFT's read-only optimisation). It does not touch sessions.
func (kv *KV) Get(key uint8) int64 { return kv.values[key] }

// Applied is the number of distinct ops executed.
func (kv *KV) Applied() uint64 { return kv.applied }

// Digest is a cheap fingerprint of the whole state (values and sessions), equal on replicas
// that executed the same ops (FNV-1a over the arrays).
func (kv *KV) Digest() uint64 {
	h := uint64(14695981039346656037)
	mix := func(v uint64) {
		for i := 0; i < 8; i++ {
			h ^= v & 0xff
			h *= 1099511628211
			v >>= 8
		}
	}
	for _, v := range kv.values {
		mix(uint64(v))
	}
	for i := range kv.lastSeq {
		mix(kv.lastSeq[i])
		mix(uint64(kv.lastOut[i].Value))
		if kv.lastOut[i].OK {
			mix(1)
		} else {
			mix(0)
		}
	}
	return h
}

// KVEncodedSize is the size of a KV's binary encoding (snapshot data).
const KVEncodedSize = 8*KeysMax + ClientsMax*(8+8+1) + 8

// AppendBinary appends the KV's fixed-size encoding (values, sessions, applied count) to dst:
// the snapshot payload protocol adapters ship and store.
func (kv *KV) AppendBinary(dst []byte) []byte {
	for _, v := range kv.values {
		dst = binary.LittleEndian.AppendUint64(dst, uint64(v))
	}
	for i := range kv.lastSeq {
		dst = binary.LittleEndian.AppendUint64(dst, kv.lastSeq[i])
		dst = binary.LittleEndian.AppendUint64(dst, uint64(kv.lastOut[i].Value))
		ok := byte(0)
		if kv.lastOut[i].OK {
			ok = 1
		}
		dst = append(dst, ok)
	}
	return binary.LittleEndian.AppendUint64(dst, kv.applied)
}

// ErrBadSnapshot reports KV snapshot data that does not decode.
var ErrBadSnapshot = errors.New("sim: malformed KV snapshot")

// UnmarshalBinary replaces the KV's state with an encoding written by AppendBinary.
func (kv *KV) UnmarshalBinary(b []byte) error {
	if len(b) != KVEncodedSize {
		return ErrBadSnapshot
	}
	for i := range kv.values {
		kv.values[i] = int64(binary.LittleEndian.Uint64(b))
		b = b[8:]
	}
	for i := range kv.lastSeq {
		kv.lastSeq[i] = binary.LittleEndian.Uint64(b)
		kv.lastOut[i] = Output{Value: int64(binary.LittleEndian.Uint64(b[8:])), OK: b[16] == 1}
		b = b[17:]
	}
	kv.applied = binary.LittleEndian.Uint64(b)
	return nil
}
