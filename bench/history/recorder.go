package history

import (
	"context"
	"encoding/binary"
	"hash/fnv"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/nemesis"
)

// Defaults and limits.
const (
	// DefaultMaxOps bounds the history kept in full (about 40 bytes an op).
	DefaultMaxOps = 200_000
	// MaxSpans bounds the successful-batch spans kept for the fault figures.
	MaxSpans = 4 << 20
	// TagBytes is the size of the unique tag stamped at the front of every written value.
	TagBytes = 8
	// maxSampleBits bounds the key sample's halvings.
	maxSampleBits = 40
)

// Config configures a Recorder.
type Config struct {
	// MaxOps bounds the ops kept (0: DefaultMaxOps); see the package comment.
	MaxOps int
}

// kind of a recorded op.
const (
	opGet uint8 = iota + 1
	opPut
)

// unknownReturn marks an op whose outcome is unknown (its batch failed or timed out): it may
// take effect at any time after its call.
const unknownReturn = math.MaxInt64

// op is one recorded operation. Values are tags (0: key absent).
type op struct {
	client int32
	kind   uint8
	found  bool
	key    uint32
	val    uint64
	call   int64 // ns since the Recorder started
	ret    int64 // unknownReturn when the outcome is unknown
}

type keyInfo struct {
	name string
	hash uint64
}

// Recorder holds one run's history. Its methods are safe for concurrent use.
type Recorder struct {
	cfg   Config
	start time.Time
	tags  atomic.Uint64
	conns atomic.Int32

	mu      sync.Mutex
	ops     []op
	keys    map[string]uint32
	info    []keyInfo
	bits    uint // sample: keep keys whose hash has `bits` low zero bits
	dropped int64
	spans   []span // successful batches that wrote (commits)
	rspans  []span // successful read-only batches, for read-only workloads
}

type span struct{ call, ret int64 }

// New returns an empty Recorder; its clock starts now.
func New(cfg Config) *Recorder {
	if cfg.MaxOps <= 0 {
		cfg.MaxOps = DefaultMaxOps
	}
	return &Recorder{cfg: cfg, start: time.Now(), keys: map[string]uint32{}}
}

func (r *Recorder) now() int64 { return int64(time.Since(r.start)) }

// Wrap returns a Target whose Sessions record into r.
func (r *Recorder) Wrap(t bench.Target) bench.Target { return &target{Target: t, r: r} }

type target struct {
	bench.Target
	r *Recorder
}

// Open implements bench.Target.
func (t *target) Open(ctx context.Context, worker int) (bench.Session, error) {
	s, err := t.Target.Open(ctx, worker)
	if err != nil {
		return nil, err
	}
	return &session{s: s, r: t.r, client: t.r.conns.Add(1) - 1}, nil
}

// Unwrap exposes the wrapped Target, so optional interfaces (Describer, CPUReporter) can be
// found on it.
func (t *target) Unwrap() bench.Target { return t.Target }

type session struct {
	s      bench.Session
	r      *Recorder
	client int32
	pool   sync.Pool // *scratch
}

type scratch struct {
	ops  []bench.Op
	vals [][]byte
}

// Do implements bench.Session: stamps every written value, runs the batch, records it.
func (s *session) Do(ctx context.Context, ops []bench.Op) error {
	b, _ := s.pool.Get().(*scratch)
	if b == nil {
		b = &scratch{}
	}
	defer s.pool.Put(b)
	b.ops = append(b.ops[:0], ops...)
	for len(b.vals) < len(ops) {
		b.vals = append(b.vals, nil)
	}
	for i := range b.ops {
		o := &b.ops[i]
		if o.Kind != bench.OpWrite {
			continue
		}
		v := append(b.vals[i][:0], o.Value...)
		for len(v) < TagBytes {
			v = append(v, 0)
		}
		binary.BigEndian.PutUint64(v, s.r.tags.Add(1))
		b.vals[i], o.Value = v, v
	}
	call := s.r.now()
	err := s.s.Do(ctx, b.ops)
	ret := s.r.now()
	for i := range ops {
		if ops[i].Kind == bench.OpRead {
			ops[i].Out, ops[i].Found = append(ops[i].Out[:0], b.ops[i].Out...), b.ops[i].Found
		}
	}
	s.r.record(s.client, b, call, ret, err == nil)
	return err
}

// Close implements bench.Session.
func (s *session) Close() error { return s.s.Close() }

// TagOf decodes the tag a recording Session stamped into a value (0 for a value too short
// to hold one, which no recorded write produces).
func TagOf(v []byte) uint64 {
	if len(v) < TagBytes {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (r *Recorder) record(client int32, b *scratch, call, ret int64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ok {
		wrote := false
		for i := range b.ops {
			wrote = wrote || b.ops[i].Kind == bench.OpWrite
		}
		if wrote && len(r.spans) < MaxSpans {
			r.spans = append(r.spans, span{call, ret})
		} else if !wrote && len(r.rspans) < MaxSpans {
			r.rspans = append(r.rspans, span{call, ret})
		}
	}
	for i := range b.ops {
		o := &b.ops[i]
		rec := op{client: client, call: call, ret: ret}
		switch {
		case o.Kind == bench.OpWrite:
			rec.kind, rec.val = opPut, TagOf(o.Value)
			if !ok {
				rec.ret = unknownReturn
			}
		case ok:
			rec.kind, rec.found = opGet, o.Found
			if o.Found {
				rec.val = TagOf(o.Out)
				if rec.val == 0 {
					rec.val = math.MaxUint64 // a value no recorded write wrote
				}
			}
		default:
			continue // a failed read changed nothing
		}
		k, keep := r.intern(o.Key)
		if !keep {
			r.dropped++
			continue
		}
		rec.key = k
		r.ops = append(r.ops, rec)
	}
	for len(r.ops) > r.cfg.MaxOps && r.bits < maxSampleBits {
		r.halve()
	}
}

// intern returns the key's index and whether the key is in the sample.
func (r *Recorder) intern(key []byte) (uint32, bool) {
	k, ok := r.keys[string(key)]
	if !ok {
		h := fnv.New64a()
		h.Write(key)
		k = uint32(len(r.info))
		r.info = append(r.info, keyInfo{name: string(key), hash: h.Sum64()})
		r.keys[string(key)] = k
	}
	return k, r.sampled(k)
}

func (r *Recorder) sampled(k uint32) bool {
	return r.info[k].hash&(1<<r.bits-1) == 0
}

// halve drops half of the sampled keys and their ops.
func (r *Recorder) halve() {
	r.bits++
	kept := r.ops[:0]
	for _, o := range r.ops {
		if r.sampled(o.key) {
			kept = append(kept, o)
		} else {
			r.dropped++
		}
	}
	r.ops = kept
}

// Spans returns the call and return of every successful batch that wrote (a commit), as
// offsets from windowStart, for nemesis.Analyze; for a read-only workload, of every
// successful batch. Reads are not commits: PBFT's read-only path, for one, answers without
// the primary, so counting them would hide a primary's crash.
func (r *Recorder) Spans(windowStart time.Time) []nemesis.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	off := int64(windowStart.Sub(r.start))
	src := r.spans
	if len(src) == 0 {
		src = r.rspans
	}
	out := make([]nemesis.Span, len(src))
	for i, s := range src {
		out[i] = nemesis.Span{Call: time.Duration(s.call - off), Return: time.Duration(s.ret - off)}
	}
	return out
}

// Len returns the ops kept and the ops dropped by sampling.
func (r *Recorder) Len() (kept int, dropped int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ops), r.dropped
}
