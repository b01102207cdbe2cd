package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

func newStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func put(k, v string) *Op { return &Op{Kind: OpPut, Key: []byte(k), Value: []byte(v)} }
func get(k string) *Op    { return &Op{Kind: OpGet, Key: []byte(k)} }
func del(k string) *Op    { return &Op{Kind: OpDelete, Key: []byte(k)} }
func cas(k, e, v string) *Op {
	return &Op{Kind: OpCAS, Key: []byte(k), Expected: []byte(e), Value: []byte(v)}
}
func sess(op *Op, c, q uint64) *Op { op.ClientID, op.Seq = c, q; return op }

func TestOperations(t *testing.T) {
	s := newStore(t, Config{MaxKeyBytes: 8, MaxValueBytes: 16})
	steps := []struct {
		name   string
		op     *Op
		status Status
		value  string
	}{
		{"get missing", get("a"), StatusNotFound, ""},
		{"put", put("a", "1"), StatusOK, ""},
		{"get", get("a"), StatusOK, "1"},
		{"overwrite shorter", put("a", ""), StatusOK, ""},
		{"get empty value", get("a"), StatusOK, ""},
		{"overwrite longer", put("a", "0123456789"), StatusOK, ""},
		{"get longer", get("a"), StatusOK, "0123456789"},
		{"cas mismatch", cas("a", "x", "2"), StatusMismatch, ""},
		{"cas unchanged after mismatch", get("a"), StatusOK, "0123456789"},
		{"cas ok", cas("a", "0123456789", "2"), StatusOK, ""},
		{"get after cas", get("a"), StatusOK, "2"},
		{"cas missing", cas("b", "", "1"), StatusNotFound, ""},
		{"delete", del("a"), StatusOK, ""},
		{"delete again", del("a"), StatusNotFound, ""},
		{"get deleted", get("a"), StatusNotFound, ""},
		{"key too long", put("123456789", "v"), StatusInvalid, ""},
		{"value too long", put("k", "01234567890123456"), StatusInvalid, ""},
		{"unknown kind", &Op{Kind: 9, Key: []byte("k")}, StatusInvalid, ""},
		{"seq 0 with client", sess(put("k", "v"), 7, 0), StatusInvalid, ""},
	}
	for i, st := range steps {
		r := s.Apply(uint64(i+1), st.op)
		if r.Status != st.status || string(r.Value) != st.value {
			t.Fatalf("%s: got %v %q, want %v %q", st.name, r.Status, r.Value, st.status, st.value)
		}
	}
	if s.Len() != 0 || s.AppliedIndex() != uint64(len(steps)) {
		t.Fatalf("len %d applied %d", s.Len(), s.AppliedIndex())
	}
}

// recomputeDigest rebuilds the digest from scratch, the reference for the incremental one.
func recomputeDigest(s *Store) [32]byte {
	ref, _ := New(s.cfg)
	for _, sl := range s.slots {
		if sl.ref != 0 {
			r := s.rec(sl.ref)
			var h [32]byte
			ref.pairHash(recKey(r), recValue(r), &h)
			ref.digestAdd(&h)
		}
	}
	for id, se := range s.sessions {
		c := *se // sessionHash writes the hash: work on a copy
		ref.sessionHash(id, &c)
		ref.digestAdd(&c.hash)
	}
	return ref.Digest()
}

// TestRandomAgainstModel drives random ops against a map and checks every read, the key
// count, the incremental digest against a full recomputation, and arena compaction.
func TestRandomAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := newStore(t, Config{ChunkBytes: MinChunkBytes})
	model := map[string]string{}
	val := func() string { return string(bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, rng.IntN(300))) }
	for i := 1; i <= 20000; i++ {
		k := fmt.Sprintf("k%d", rng.IntN(500))
		var op *Op
		var want Status
		cur, ok := model[k]
		switch rng.IntN(5) {
		case 0, 1:
			v := val()
			op, want = put(k, v), StatusOK
			model[k] = v
		case 2:
			op, want = del(k), StatusNotFound
			if ok {
				want = StatusOK
				delete(model, k)
			}
		case 3:
			exp := cur
			if rng.IntN(2) == 0 {
				exp = "nope"
			}
			v := val()
			op = cas(k, exp, v)
			switch {
			case !ok:
				want = StatusNotFound
			case exp != cur:
				want = StatusMismatch
			default:
				want = StatusOK
				model[k] = v
			}
		default:
			op, want = get(k), StatusNotFound
			if ok {
				want = StatusOK
			}
		}
		r := s.Apply(uint64(i), op)
		if r.Status != want {
			t.Fatalf("op %d %v %s: status %v want %v", i, op.Kind, k, r.Status, want)
		}
		if op.Kind == OpGet && ok && string(r.Value) != cur {
			t.Fatalf("op %d get %s: %q want %q", i, k, r.Value, cur)
		}
		if i%1000 == 0 {
			if s.Digest() != recomputeDigest(s) {
				t.Fatalf("op %d: incremental digest drifted from recomputation", i)
			}
		}
	}
	if s.Len() != len(model) {
		t.Fatalf("len %d, model %d", s.Len(), len(model))
	}
	for k, v := range model {
		if r := s.Get([]byte(k)); r.Status != StatusOK || string(r.Value) != v {
			t.Fatalf("final get %s: %v %q want %q", k, r.Status, r.Value, v)
		}
	}
	arena := 0
	for _, c := range s.chunks {
		arena += cap(c)
	}
	// Holes are reclaimed once they outweigh live data: the arena stays near 2x live.
	if limit := 2*s.live + (arenaCompactMinChunks+2)*s.cfg.ChunkBytes; arena > limit {
		t.Fatalf("arena %d bytes for %d live: compaction not reclaiming holes (limit %d)", arena, s.live, limit)
	}
}

// PBFT checkpoints need equal digests for equal states whatever the write order.
func TestDigestOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	final := map[string]string{}
	for i := range 300 {
		final[fmt.Sprintf("key-%d", i)] = fmt.Sprintf("value-%d", rng.IntN(1000))
	}
	keys := make([]string, 0, len(final))
	for k := range final {
		keys = append(keys, k)
	}
	build := func(seed uint64) *Store {
		r := rand.New(rand.NewPCG(seed, seed))
		s := newStore(t, Config{})
		idx := uint64(0)
		order := r.Perm(len(keys))
		// Noise that ends in the same state: temporary keys deleted again, stale values overwritten.
		for _, j := range order {
			idx++
			s.Apply(idx, put(keys[j], "stale-"+fmt.Sprint(r.IntN(1e6))))
			idx++
			s.Apply(idx, put(fmt.Sprintf("tmp-%d", r.IntN(1e6)), "x"))
		}
		for _, j := range r.Perm(len(keys)) {
			idx++
			s.Apply(idx, put(keys[j], final[keys[j]]))
		}
		// Drop every temporary key.
		var tmps []string
		for _, sl := range s.slots {
			if sl.ref != 0 {
				if k := string(recKey(s.rec(sl.ref))); k[:4] == "tmp-" {
					tmps = append(tmps, k)
				}
			}
		}
		for _, k := range tmps {
			idx++
			s.Apply(idx, del(k))
		}
		return s
	}
	a, b := build(10), build(20)
	if a.Len() != len(final) || b.Len() != len(final) {
		t.Fatalf("lens %d %d want %d", a.Len(), b.Len(), len(final))
	}
	if a.Digest() != b.Digest() {
		t.Fatal("equal states, different write orders: digests differ")
	}
	var sa, sb bytes.Buffer
	if _, err := a.Snapshot(&sa); err != nil {
		t.Fatal(err)
	}
	// b applied at other indexes; align applied index to compare the bytes of the state.
	b.applied = a.applied
	if _, err := b.Snapshot(&sb); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sa.Bytes(), sb.Bytes()) {
		t.Fatal("equal states produced different snapshot bytes")
	}
	b.Apply(b.applied+1, put("key-0", "different"))
	if a.Digest() == b.Digest() {
		t.Fatal("different states, same digest")
	}
	c := newStore(t, Config{})
	if c.Digest() != ([32]byte{}) {
		t.Fatal("empty store digest must be zero")
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	s := newStore(t, Config{})
	for i := range 2000 {
		s.Apply(uint64(i+1), sess(put(fmt.Sprintf("k%04d", i), fmt.Sprintf("v%d", i*i)), uint64(i%7+1), uint64(i/7+1)))
	}
	s.Apply(2001, del("k0005"))
	var buf bytes.Buffer
	n, err := s.Snapshot(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("snapshot: %d %v (buffer %d)", n, err, buf.Len())
	}
	r := newStore(t, Config{})
	if err := r.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if r.Digest() != s.Digest() || r.Len() != s.Len() || r.AppliedIndex() != 2001 || r.Sessions() != 7 {
		t.Fatalf("restored len %d applied %d sessions %d", r.Len(), r.AppliedIndex(), r.Sessions())
	}
	var again bytes.Buffer
	r.Snapshot(&again)
	if !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Fatal("snapshot of restored state differs from the original snapshot")
	}
	if g := r.Get([]byte("k1999")); string(g.Value) != fmt.Sprint("v", 1999*1999) {
		t.Fatalf("restored value %q", g.Value)
	}
	// Any damage must be refused and leave the target unchanged.
	for _, at := range []int{0, 20, buf.Len() / 2, buf.Len() - 1} {
		b := bytes.Clone(buf.Bytes())
		b[at] ^= 0x40
		x := newStore(t, Config{})
		x.Apply(1, put("keep", "me"))
		if err := x.Restore(bytes.NewReader(b)); err == nil {
			t.Fatalf("flipped byte %d: restore accepted", at)
		}
		if x.Len() != 1 || x.AppliedIndex() != 1 {
			t.Fatalf("failed restore changed the store")
		}
	}
	if err := newStore(t, Config{}).Restore(bytes.NewReader(buf.Bytes()[:buf.Len()-40])); err == nil {
		t.Fatal("truncated snapshot accepted")
	}
}

// Raft thesis §6.3: a retried command is applied once and answered from the session.
func TestSessionDedup(t *testing.T) {
	s := newStore(t, Config{})
	s.Apply(1, put("x", "0"))
	r := s.Apply(2, sess(cas("x", "0", "1"), 42, 1))
	if r.Status != StatusOK || r.Duplicate {
		t.Fatalf("first cas: %+v", r)
	}
	// Retry of seq 1: answered OK (the recorded outcome), not Mismatch from re-applying.
	r = s.Apply(3, sess(cas("x", "0", "1"), 42, 1))
	if r.Status != StatusOK || !r.Duplicate {
		t.Fatalf("retried cas: %+v", r)
	}
	// Pipelined writes arriving out of order: 5 before 3 and 4; each applied once.
	for _, q := range []uint64{5, 3, 4} {
		if r := s.Apply(4, sess(put(fmt.Sprint("p", q), "v"), 42, q)); r.Duplicate || r.Status != StatusOK {
			t.Fatalf("seq %d: %+v", q, r)
		}
	}
	s.Apply(5, sess(del("p3"), 42, 6))
	if r := s.Apply(6, sess(put("p3", "again"), 42, 3)); !r.Duplicate {
		t.Fatalf("retry of seq 3 after later writes re-applied: %+v", r)
	}
	if g := s.Get([]byte("p3")); g.Status != StatusNotFound {
		t.Fatal("duplicate re-created a deleted key")
	}
	// Window: once seq 100+SessionWindow-1 is applied, seq 30 is older than the window and
	// is refused (seq 100 is still inside it).
	s.Apply(7, sess(put("y", "1"), 42, 100))
	s.Apply(7, sess(put("w", "1"), 42, 100+SessionWindow-1))
	if r := s.Apply(8, sess(put("y", "2"), 42, 30)); r.Status != StatusSessionExpired {
		t.Fatalf("seq outside window: %+v", r)
	}
	// An unknown client starting beyond the window cannot be told apart from an expired one.
	if r := s.Apply(9, sess(put("z", "1"), 77, SessionWindow+1)); r.Status != StatusSessionExpired {
		t.Fatalf("unknown client far seq: %+v", r)
	}
	if g := s.Get([]byte("y")); string(g.Value) != "1" {
		t.Fatal("refused write was applied")
	}

	// Dedup survives snapshot and restore.
	var buf bytes.Buffer
	s.Snapshot(&buf)
	r2 := newStore(t, Config{})
	if err := r2.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if r := r2.Apply(10, sess(put("y", "3"), 42, 100)); !r.Duplicate || r.Status != StatusOK {
		t.Fatalf("retry after restore: %+v", r)
	}
	if g := r2.Get([]byte("y")); string(g.Value) != "1" {
		t.Fatal("retry after restore re-applied the write")
	}
	if r := r2.Apply(11, sess(put("y", "4"), 42, 101)); r.Duplicate {
		t.Fatal("new seq after restore treated as duplicate")
	}
}

func TestSessionExpiryAndBound(t *testing.T) {
	cfg := Config{MaxSessions: 4, SessionTTL: 80}
	run := func() *Store {
		s := newStore(t, cfg)
		idx := uint64(0)
		for c := uint64(1); c <= 6; c++ {
			idx++
			s.Apply(idx, sess(put("k", fmt.Sprint(c)), c, 1))
		}
		return s
	}
	a := run()
	if a.Sessions() != 4 {
		t.Fatalf("sessions %d, bound 4", a.Sessions())
	}
	// The two idle longest (clients 1 and 2) were evicted; 3..6 remain.
	for c := uint64(1); c <= 6; c++ {
		_, ok := a.sessions[c]
		if ok != (c >= 3) {
			t.Fatalf("client %d present=%v", c, ok)
		}
	}
	b := run()
	if a.Digest() != b.Digest() {
		t.Fatal("replicas disagree after eviction")
	}
	// Client 6 keeps writing; the others go idle and expire by index, not by time.
	for i := uint64(7); i < 200; i++ {
		a.Apply(i, sess(put("k", "v"), 6, i))
	}
	if a.Sessions() != 1 {
		t.Fatalf("after TTL: %d sessions, want 1", a.Sessions())
	}
	if a.Digest() != recomputeDigest(a) {
		t.Fatal("digest wrong after expiry")
	}
}

func TestApplyDecreasingIndexPanics(t *testing.T) {
	s := newStore(t, Config{})
	s.Apply(5, put("a", "b"))
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for a decreasing index")
		}
	}()
	s.Apply(4, put("a", "c"))
}

func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("race detector allocates")
	}
	s := newStore(t, Config{})
	key, val := []byte("some-key-0001"), bytes.Repeat([]byte{1}, 128)
	s.Apply(1, &Op{Kind: OpPut, Key: key, Value: val})
	op := &Op{Kind: OpPut, Key: key, Value: val[:100]}
	if n := testing.AllocsPerRun(1000, func() { s.Apply(2, op) }); n != 0 {
		t.Fatalf("overwrite with smaller value: %v allocs", n)
	}
	g := &Op{Kind: OpGet, Key: key}
	if n := testing.AllocsPerRun(1000, func() { s.Apply(2, g) }); n != 0 {
		t.Fatalf("get: %v allocs", n)
	}
	sop := &Op{Kind: OpPut, Key: key, Value: val, ClientID: 9}
	if n := testing.AllocsPerRun(1000, func() { sop.Seq++; s.Apply(3, sop) }); n != 0 {
		t.Fatalf("overwrite with a session: %v allocs", n)
	}
	i := 0
	k := []byte("new0000000000000")
	nop := &Op{Kind: OpPut, Key: k, Value: val}
	if n := testing.AllocsPerRun(10000, func() { i++; copy(k[3:], strconv.AppendInt(k[3:3], int64(i)+1e12, 10)); s.Apply(4, nop) }); n > 1 {
		t.Fatalf("new key: %v allocs", n)
	}
}

// A pipelined client's retries may reach the store in any order within the window (a
// redirect makes every in-flight batch retry on its own): each op still applies exactly
// once, whatever the order, for a new session and for an established one.
func TestSessionWindowReorderedRetries(t *testing.T) {
	s := newStore(t, Config{})
	rng := rand.New(rand.NewPCG(7, 7))
	idx := uint64(0)
	for base := uint64(0); base < 3*SessionWindow; base += SessionWindow {
		seqs := rng.Perm(SessionWindow)
		for _, q := range seqs {
			idx++
			seq := base + uint64(q) + 1
			if r := s.Apply(idx, sess(put(fmt.Sprint("k", seq), "v"), 9, seq)); r.Status != StatusOK || r.Duplicate {
				t.Fatalf("seq %d first attempt: %+v", seq, r)
			}
		}
		for _, q := range rng.Perm(SessionWindow)[:64] {
			idx++
			seq := base + uint64(q) + 1
			if r := s.Apply(idx, sess(put(fmt.Sprint("k", seq), "again"), 9, seq)); !r.Duplicate {
				t.Fatalf("retry of seq %d re-applied: %+v", seq, r)
			}
			if g := s.Get([]byte(fmt.Sprint("k", seq))); string(g.Value) != "v" {
				t.Fatalf("retry of seq %d changed the value to %q", seq, g.Value)
			}
		}
	}
	if s.Len() != 3*SessionWindow {
		t.Fatalf("%d keys, want %d", s.Len(), 3*SessionWindow)
	}
}

// With NoDigest the store skips hashing: the digest stays zero, and snapshots still round
// trip between stores configured alike.
func TestNoDigest(t *testing.T) {
	s := newStore(t, Config{NoDigest: true})
	for i := uint64(1); i <= 100; i++ {
		s.Apply(i, sess(put(fmt.Sprint("k", i%7), fmt.Sprint(i)), 3, i))
	}
	if s.Digest() != ([32]byte{}) {
		t.Fatal("NoDigest store has a nonzero digest")
	}
	var buf bytes.Buffer
	if _, err := s.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	r := newStore(t, Config{NoDigest: true})
	if err := r.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if g := r.Get([]byte("k2")); string(g.Value) != "100" {
		t.Fatalf("restored k2 = %q", g.Value)
	}
	if res := r.Apply(101, sess(put("k2", "x"), 3, 100)); !res.Duplicate {
		t.Fatal("session lost in a NoDigest snapshot")
	}
}

// A clone is independent: writes to either side do not show in the other, and the clone's
// snapshot is the original's state at the time of the clone, byte for byte.
func TestCloneIsIndependent(t *testing.T) {
	s := newStore(t, Config{})
	for i := uint64(1); i <= 500; i++ {
		s.Apply(i, sess(put(fmt.Sprint("k", i%97), fmt.Sprint("v", i)), 7, i))
	}
	var want bytes.Buffer
	if _, err := s.Snapshot(&want); err != nil {
		t.Fatal(err)
	}
	c := s.Clone()
	for i := uint64(501); i <= 600; i++ { // overwrite in place and grow on the original
		s.Apply(i, sess(put(fmt.Sprint("k", i%97), fmt.Sprint("value-", i)), 7, i))
	}
	s.Apply(601, sess(del("k1"), 7, 601))
	var got bytes.Buffer
	if _, err := c.Snapshot(&got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatal("the clone's snapshot changed with writes to the original")
	}
	c.Apply(700, sess(put("only-in-clone", "x"), 8, 1))
	if r := s.Get([]byte("only-in-clone")); r.Status != StatusNotFound {
		t.Fatal("a write to the clone reached the original")
	}
	if r := c.Get([]byte("k1")); r.Status != StatusOK {
		t.Fatal("a delete on the original reached the clone")
	}
}

// A snapshot lists keys in bytewise order whatever their shape: keys sharing the 16-byte
// prefix the radix sort uses, keys shorter than it (zero-padded there, so "ab" must still
// precede "ab\x00"), bytes at and above 0x80, and a store of one key.
func TestSnapshotOrdersKeysBytewise(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	alphabet := []byte{0x00, 0x01, 'a', 'b', 0x7f, 0x80, 0xfe, 0xff}
	for _, n := range []int{1, 2, 50, 3000} {
		s := newStore(t, Config{})
		want := map[string]bool{}
		for len(want) < n {
			var k []byte
			switch rng.IntN(3) {
			case 0: // a shared 16-byte prefix, then a tail
				k = append([]byte("shared-prefix-16"), alphabet[rng.IntN(len(alphabet))])
				for range rng.IntN(3) {
					k = append(k, alphabet[rng.IntN(len(alphabet))])
				}
			default:
				for range 1 + rng.IntN(20) {
					k = append(k, alphabet[rng.IntN(len(alphabet))])
				}
			}
			want[string(k)] = true
		}
		keys := make([]string, 0, n)
		for k := range want {
			keys = append(keys, k)
		}
		for i, k := range keys {
			s.Apply(uint64(i+1), put(k, "v"))
		}
		slices.Sort(keys)
		var buf bytes.Buffer
		if _, err := s.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()[snapHdrLen:] // no sessions: the pairs follow the header
		for i, k := range keys {
			kl, vl := int(binary.LittleEndian.Uint32(b)), int(binary.LittleEndian.Uint32(b[4:]))
			if got := string(b[8 : 8+kl]); got != k {
				t.Fatalf("n=%d: pair %d is %q, want %q", n, i, got, k)
			}
			b = b[8+kl+vl:]
		}
		if len(b) != 32 {
			t.Fatalf("n=%d: %d bytes after the pairs, want the 32-byte digest", n, len(b))
		}
	}
}

// CloneInto reuses a spare store's memory and gives exactly what Clone gives, whatever the
// spare held before (a larger store, other sessions), and stays independent of the original.
func TestCloneIntoReusesASpareStore(t *testing.T) {
	s := newStore(t, Config{})
	spare := newStore(t, Config{})
	for i := uint64(1); i <= 3000; i++ { // the spare holds a bigger, different store
		spare.Apply(i, sess(put(fmt.Sprint("other", i), fmt.Sprint("x", i)), 9, i))
	}
	for round := uint64(0); round < 3; round++ {
		for i := uint64(1); i <= 500; i++ {
			idx := round*1000 + i
			s.Apply(idx, sess(put(fmt.Sprint("k", i%97), fmt.Sprint("v", idx)), 7+round, round*500+i))
		}
		var want bytes.Buffer
		if _, err := s.Clone().Snapshot(&want); err != nil {
			t.Fatal(err)
		}
		c := s.CloneInto(spare)
		if c != spare {
			t.Fatal("CloneInto did not return its destination")
		}
		var got bytes.Buffer
		if _, err := c.Snapshot(&got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("round %d: CloneInto's snapshot differs from Clone's", round)
		}
		s.Apply(round*1000+999, sess(put("k1", "changed"), 7+round, round*500+499+1))
		if r := c.Get([]byte("k1")); r.Status != StatusOK || string(r.Value) == "changed" {
			t.Fatalf("round %d: a write to the original reached the copy", round)
		}
	}
	if a := testing.AllocsPerRun(10, func() { s.CloneInto(spare) }); a > 3 {
		t.Errorf("CloneInto into a large enough spare allocates %.0f times", a)
	}
}

// restCounter is a Rester that counts the rests Snapshot asks for.
type restCounter struct {
	bytes.Buffer
	rests int
}

func (r *restCounter) Rest() { r.rests++ }

// A snapshot into a Rester rests during the steps that write nothing (collecting and sorting
// the keys), not only between writes, and writes the same bytes as one into a plain writer.
func TestSnapshotRestsWhileSorting(t *testing.T) {
	s := newStore(t, Config{})
	for i := range 50_000 {
		s.Apply(uint64(i+1), put(fmt.Sprintf("key-%08d", i*7919%50_000), "v"))
	}
	var plain bytes.Buffer
	if _, err := s.Snapshot(&plain); err != nil {
		t.Fatal(err)
	}
	var rc restCounter
	if _, err := s.Snapshot(&rc); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rc.Bytes(), plain.Bytes()) {
		t.Fatal("a paced snapshot differs from an unpaced one")
	}
	// The table has at least 65,536 slots for 50,000 keys: 8 rests while collecting, and at
	// least one per radix pass that moves anything.
	if rc.rests < 8+4 {
		t.Fatalf("%d rests, want at least 12", rc.rests)
	}
}
