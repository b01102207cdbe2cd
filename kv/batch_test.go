package kv

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// batchGen generates random client batches: every kind of op (invalid ones included),
// sessions of a few clients with fresh, retried, reordered and expired sequence numbers,
// writes without a session, and values of changing sizes so that records are overwritten
// in place, moved and deleted.
type batchGen struct {
	rng     *rand.Rand
	keys    int
	maxKey  int
	maxVal  int
	seq     map[uint64]uint64
	present map[string][]byte // a recent value per key, so CAS sometimes matches
}

func newBatchGen(seed uint64, keys, maxKey, maxVal int) *batchGen {
	g := &batchGen{rng: rand.New(rand.NewPCG(seed, seed^0x9e37)), keys: keys, maxKey: maxKey, maxVal: maxVal,
		seq: map[uint64]uint64{}, present: map[string][]byte{}}
	return g
}

func (g *batchGen) key() []byte {
	if g.rng.IntN(200) == 0 {
		return bytes.Repeat([]byte{'x'}, g.maxKey+1) // too long: invalid
	}
	k := fmt.Appendf(nil, "k%d", g.rng.IntN(g.keys))
	if g.rng.IntN(4) == 0 {
		k = append(k, "-with-a-longer-tail"...)
	}
	return k
}

func (g *batchGen) value() []byte {
	n := g.rng.IntN(g.maxVal + 1)
	if g.rng.IntN(3) == 0 {
		n = g.rng.IntN(8)
	}
	if g.rng.IntN(300) == 0 {
		n = g.maxVal + 1 // too large: invalid
	}
	return bytes.Repeat([]byte{byte('a' + g.rng.IntN(26))}, n)
}

// batch returns one batch of n ops from one client (0: no session), as a server builds it,
// or now and then ops of several clients interleaved.
func (g *batchGen) batch(n int) []Op {
	if g.rng.IntN(8) == 0 {
		return g.mixedBatch(n)
	}
	client := uint64(0)
	if g.rng.IntN(5) != 0 {
		client = uint64(1 + g.rng.IntN(6))
	}
	first := g.seq[client] + 1
	switch g.rng.IntN(12) {
	case 0: // a retry of an earlier batch, maybe partly applied
		if first > 1 {
			first -= uint64(1 + g.rng.IntN(int(min(first-1, 40))))
		}
	case 1: // older than the window
		if first > SessionWindow+2 {
			first -= SessionWindow + 1
		}
	case 2: // a gap: later batches arrived first
		first += uint64(g.rng.IntN(8))
	case 3: // an unknown client beyond the window
		if client != 0 && g.seq[client] == 0 {
			first = SessionWindow + 5
		}
	}
	ops := make([]Op, n)
	for i := range ops {
		op := &ops[i]
		op.ClientID = client
		if client != 0 {
			op.Seq = first + uint64(i)
			if g.rng.IntN(150) == 0 {
				op.Seq = 0 // invalid with a client
			}
		}
		op.Key = g.key()
		switch r := g.rng.IntN(20); {
		case r < 6:
			op.Kind = OpGet
		case r < 12:
			op.Kind, op.Value = OpPut, g.value()
		case r < 15:
			op.Kind = OpDelete
		case r < 19:
			op.Kind, op.Value = OpCAS, g.value()
			op.Expected = g.present[string(op.Key)]
			if g.rng.IntN(3) == 0 {
				op.Expected = g.value()
			}
		default:
			op.Kind = OpKind(g.rng.IntN(8)) // 0 and 5..7 are invalid
		}
		if op.Kind == OpPut || op.Kind == OpCAS {
			g.present[string(op.Key)] = op.Value
		}
	}
	if last := first + uint64(n) - 1; client != 0 && last > g.seq[client] {
		g.seq[client] = last
	}
	return ops
}

// mixedBatch returns n ops, each of a random client (0 included) with its next sequence
// number, or now and then a retried one.
func (g *batchGen) mixedBatch(n int) []Op {
	ops := make([]Op, 0, n)
	for len(ops) < n {
		one := g.batch(1) // a one-op batch of one client, usually its next sequence number
		if g.rng.IntN(3) == 0 && len(ops) > 0 {
			one[0].ClientID, one[0].Seq = ops[len(ops)-1].ClientID, ops[len(ops)-1].Seq // a retry at once
		}
		ops = append(ops, one[0])
	}
	return ops
}

// checkSameState fails unless a and b hold the same state: key count, sessions, applied
// index, digest and byte-identical snapshots.
func checkSameState(t *testing.T, what string, a, b *Store) {
	t.Helper()
	if a.Len() != b.Len() || a.Sessions() != b.Sessions() || a.AppliedIndex() != b.AppliedIndex() {
		t.Fatalf("%s: len %d/%d sessions %d/%d applied %d/%d", what, a.Len(), b.Len(),
			a.Sessions(), b.Sessions(), a.AppliedIndex(), b.AppliedIndex())
	}
	if a.Digest() != b.Digest() {
		t.Fatalf("%s: digests differ", what)
	}
	var sa, sb bytes.Buffer
	if _, err := a.Snapshot(&sa); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Snapshot(&sb); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sa.Bytes(), sb.Bytes()) {
		t.Fatalf("%s: snapshots differ", what)
	}
}

// TestApplyBatchMatchesApply applies the same random batches with ApplyBatch to one store
// and with Apply op by op to another: every result (status, duplicate flag, value, and for
// a CAS mismatch the value current at that op) and the final state must agree. Results of
// ApplyBatch are checked only once the whole batch is applied, so a later op of the batch
// that overwrote a value a result aliases would show. Small chunks and a small table force
// arena compaction and table growth; a small session bound and TTL force evictions and
// sweeps.
func TestApplyBatchMatchesApply(t *testing.T) {
	for ci := range batchConfigs {
		for seed := range uint64(4) {
			t.Run(fmt.Sprintf("cfg=%d/seed=%d", ci, seed), func(t *testing.T) {
				checkBatchesMatch(t, batchConfigs[ci], seed*31+uint64(ci), []int{40, 3000}[seed%2], 1500, false)
			})
			t.Run(fmt.Sprintf("indexed/cfg=%d/seed=%d", ci, seed), func(t *testing.T) {
				checkBatchesMatch(t, batchConfigs[ci], seed*37+uint64(ci), []int{40, 3000}[seed%2], 1500, true)
			})
		}
	}
}

// FuzzApplyBatch is TestApplyBatchMatchesApply with the seed, configuration, key space and
// length drawn by the fuzzer.
func FuzzApplyBatch(f *testing.F) {
	f.Add(uint64(1), uint8(0), uint16(40), uint8(50))
	f.Add(uint64(2), uint8(1), uint16(3000), uint8(200))
	f.Add(uint64(3), uint8(2), uint16(7), uint8(100))
	f.Fuzz(func(t *testing.T, seed uint64, cfg uint8, keys uint16, batches uint8) {
		checkBatchesMatch(t, batchConfigs[int(cfg)%len(batchConfigs)], seed, 1+int(keys), int(batches), seed%2 == 1)
	})
}

var batchConfigs = []Config{
	{MaxKeyBytes: 32, MaxValueBytes: 200, ChunkBytes: MinChunkBytes, MaxSessions: 4, SessionTTL: 64},
	{MaxKeyBytes: 32, MaxValueBytes: 200, ChunkBytes: MinChunkBytes, NoDigest: true},
	{MaxKeyBytes: 32, MaxValueBytes: 600, MaxSessions: 3, SessionTTL: 8},
	{MaxKeyBytes: 32, MaxValueBytes: 64, MaxSessions: 1, SessionTTL: 16},
}

// checkBatchesMatch applies n random batches over keys keys to two stores configured by
// cfg, with ApplyBatch and with Apply, and fails at the first difference. indexed spreads
// each batch over several log indexes (ApplyIndexed, as a replica applying many one-op
// entries at once), crossing session sweeps inside a batch.
func checkBatchesMatch(t *testing.T, cfg Config, seed uint64, keys, n int, indexed bool) {
	g := newBatchGen(seed, keys, cfg.MaxKeyBytes, cfg.MaxValueBytes)
	a, b := newStore(t, cfg), newStore(t, cfg)
	results := make([]Result, 64)
	indexes := make([]uint64, 64)
	index := uint64(0)
	for bn := range n {
		if g.rng.IntN(3) != 0 {
			index++
		}
		size := 1 + g.rng.IntN(40)
		if g.rng.IntN(10) == 0 {
			size = 0
		}
		ops := g.batch(size)
		for i := range ops {
			if indexed && i > 0 && g.rng.IntN(3) == 0 {
				index += 1 + uint64(g.rng.IntN(3))
			}
			indexes[i] = index
		}
		if indexed {
			a.ApplyIndexed(indexes[:len(ops)], ops, results)
		} else {
			a.ApplyBatch(index, ops, results)
		}
		for i := range ops {
			want := b.Apply(indexes[i], &ops[i])
			if want.Status == StatusMismatch {
				want.Value = b.Get(ops[i].Key).Value
			}
			want.Value = bytes.Clone(want.Value)
			got := results[i]
			if got.Status != want.Status || got.Duplicate != want.Duplicate || !bytes.Equal(got.Value, want.Value) ||
				(got.Value == nil) != (want.Value == nil) {
				t.Fatalf("batch %d op %d %+v:\nApplyBatch %+v %q\nApply      %+v %q",
					bn, i, ops[i], got, got.Value, want, want.Value)
			}
		}
		if bn%100 == 0 {
			checkSameState(t, fmt.Sprintf("after batch %d", bn), a, b)
			if !cfg.NoDigest && a.Digest() != recomputeDigest(a) {
				t.Fatalf("batch %d: digest drifted from recomputation", bn)
			}
		}
	}
	checkSameState(t, "at the end", a, b)
	if !cfg.NoDigest && a.Digest() != recomputeDigest(a) {
		t.Fatal("digest drifted from recomputation")
	}
}

// A get's value stays valid to the end of the batch even when a later op of the same batch
// overwrites the key with a value that would fit in place, and a CAS mismatch carries the
// value current at that op.
func TestApplyBatchResultsSurviveTheBatch(t *testing.T) {
	for _, nodigest := range []bool{false, true} {
		s := newStore(t, Config{NoDigest: nodigest})
		s.Apply(1, put("k", "original"))
		ops := []Op{*get("k"), *cas("k", "nope", "x"), *put("k", "new!"), *get("k"), *put("k", "newer"), *cas("k", "no", "y"), *del("k"), *cas("k", "", "z")}
		res := make([]Result, len(ops))
		s.ApplyBatch(2, ops, res)
		want := []struct {
			st Status
			v  string
		}{{StatusOK, "original"}, {StatusMismatch, "original"}, {StatusOK, ""}, {StatusOK, "new!"}, {StatusOK, ""}, {StatusMismatch, "newer"}, {StatusOK, ""}, {StatusNotFound, ""}}
		for i, w := range want {
			if res[i].Status != w.st || string(res[i].Value) != w.v {
				t.Fatalf("nodigest=%v op %d: %v %q, want %v %q", nodigest, i, res[i].Status, res[i].Value, w.st, w.v)
			}
		}
		if len(s.pins) != 0 {
			t.Fatalf("%d pins left after the batch", len(s.pins))
		}
		// Between batches, a put of a value that fits overwrites in place again.
		s.Apply(3, put("k", "0123456789"))
		ref := s.slots[s.find([]byte("k"), s.hashKey([]byte("k")))].ref
		s.ApplyBatch(4, []Op{*put("k", "short")}, res)
		if got := s.slots[s.find([]byte("k"), s.hashKey([]byte("k")))].ref; got != ref {
			t.Fatal("an unpinned overwrite that fits moved the record")
		}
	}
}

func TestApplyBatchPanics(t *testing.T) {
	s := newStore(t, Config{})
	s.ApplyBatch(5, []Op{*put("a", "b")}, make([]Result, 1))
	for name, f := range map[string]func(){
		"decreasing index": func() { s.ApplyBatch(4, []Op{*put("a", "c")}, make([]Result, 1)) },
		"short results":    func() { s.ApplyBatch(6, []Op{*put("a", "c"), *put("b", "c")}, make([]Result, 1)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatalf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func TestApplyBatchAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("race detector allocates")
	}
	s := newStore(t, Config{NoDigest: true})
	val := bytes.Repeat([]byte{1}, 128)
	ops := make([]Op, 2*BatchPrefetch+3)
	for i := range ops {
		ops[i] = Op{Kind: OpPut, Key: fmt.Appendf(nil, "key-%d", i), Value: val, ClientID: 3}
		if i%3 == 0 {
			ops[i].Kind = OpGet
		}
		if i%5 == 0 {
			ops[i].Kind, ops[i].Expected = OpCAS, []byte("mismatch")
		}
	}
	res := make([]Result, len(ops))
	seq, index := uint64(0), uint64(1)
	step := func() {
		index++
		for i := range ops {
			seq++
			ops[i].Seq = seq
		}
		s.ApplyBatch(index, ops, res)
	}
	step()
	if n := testing.AllocsPerRun(1000, step); n != 0 {
		t.Fatalf("ApplyBatch: %v allocs", n)
	}
}
