package server

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/consensusbench/consensusbench/kv"
	"github.com/consensusbench/consensusbench/pbftcore"
	"github.com/consensusbench/consensusbench/wire"
)

// equalMsg compares two pbftcore messages field by field, treating nil and empty slices as
// equal (the wire has no nil).
func equalMsg(a, b any) bool { return equalVal(reflect.ValueOf(a), reflect.ValueOf(b)) }

func equalVal(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Pointer:
		return equalVal(a.Elem(), b.Elem())
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !equalVal(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Struct, reflect.Array:
		n := a.Len
		if a.Kind() == reflect.Struct {
			n = a.NumField
		}
		for i := range n() {
			var x, y reflect.Value
			if a.Kind() == reflect.Struct {
				x, y = a.Field(i), b.Field(i)
			} else {
				x, y = a.Index(i), b.Index(i)
			}
			if !equalVal(x, y) {
				return false
			}
		}
		return true
	}
	return a.Equal(b)
}

// normalizeNested sets the To of nested proofs to what the codec decodes them with (To is
// routing, not content, and is not on the wire): C and V entries were multicast (ToAll), O
// entries are built with To = 0.
func normalizeNested(m *pbftcore.Message) pbftcore.Message {
	c := pbftcore.CloneMessage(m)
	for i := range c.Checkpoints {
		c.Checkpoints[i].To = pbftcore.ToAll
	}
	for i := range c.ViewChanges {
		c.ViewChanges[i].To = pbftcore.ToAll
		for j := range c.ViewChanges[i].Checkpoints {
			c.ViewChanges[i].Checkpoints[j].To = pbftcore.ToAll
		}
	}
	for i := range c.PrePrepares {
		c.PrePrepares[i].To = 0
	}
	return c
}

// roundTrip encodes m into a frame, decodes it as the receiver to would, and reports a
// difference.
func roundTrip(c *pbftCodec, m *pbftcore.Message, to int) error {
	frame := c.appendFrame(nil, m)
	f, err := wire.DecodeFrame(frame, 0)
	if err != nil {
		return fmt.Errorf("%v: frame: %w", m.Type, err)
	}
	var dec pbftCodec
	var got pbftcore.Message
	from := m.From
	if err := dec.decode(f.Type, f.Body, from, to, &got); err != nil {
		return fmt.Errorf("%v: decode: %w", m.Type, err)
	}
	want := normalizeNested(m)
	want.To = to
	if !equalMsg(&got, &want) {
		return fmt.Errorf("%v round trip differs:\n got %+v\nwant %+v", m.Type, got, want)
	}
	return nil
}

func sig(b byte) []byte { return bytes.Repeat([]byte{b}, 64) }

func macs(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n*pbftcore.MACSize) }

// handMessages has one message of every type with every field the type uses set, including
// nested view-change proofs (C, P and Q, digests only) inside a NEW-VIEW with a null request.
func handMessages() []pbftcore.Message {
	req := func(c, ts uint64, ro bool) pbftcore.Request {
		return pbftcore.Request{Client: c, Timestamp: ts, ReadOnly: ro, Op: []byte(fmt.Sprintf("op-%d-%d", c, ts)), Auth: macs(byte(c), 4)}
	}
	ckpt := func(from int) pbftcore.Message {
		return pbftcore.Message{Type: pbftcore.MsgCheckpoint, From: from, To: pbftcore.ToAll, Seq: 128, Digest: [32]byte{0xC0}, Auth: sig(byte(from))}
	}
	vc := func(from int) pbftcore.Message {
		return pbftcore.Message{Type: pbftcore.MsgViewChange, From: from, To: pbftcore.ToAll, View: 5, Seq: 128, Digest: [32]byte{0xC0},
			Checkpoints: []pbftcore.Message{ckpt(0), ckpt(1), ckpt(2)},
			Prepared: []pbftcore.PreparedEntry{
				{Seq: 129, View: 3, Digest: [32]byte{0xD1}},
				{Seq: 131, View: 4, Digest: [32]byte{0xD3}},
			},
			PrePrepared: []pbftcore.PrePreparedEntry{{Seq: 129, View: 3, Digest: [32]byte{0xD1}}, {Seq: 130, View: 2, Digest: [32]byte{0xD2}}},
			Auth:        sig(0x40 + byte(from))}
	}
	return []pbftcore.Message{
		{Type: pbftcore.MsgRequest, From: pbftcore.FromClient, To: 0, Requests: []pbftcore.Request{req(3, 99, true)}},
		{Type: pbftcore.MsgRequest, From: 2, To: 1, Requests: []pbftcore.Request{req(3, 100, false)}},
		{Type: pbftcore.MsgPrePrepare, From: 1, To: pbftcore.ToAll, View: 1, Seq: 7, Digest: [32]byte{7},
			Requests: []pbftcore.Request{req(1, 1, false), req(2, 2, false)}, Auth: macs(0xA, 4)},
		{Type: pbftcore.MsgPrePrepare, From: 1, To: 3, View: 1, Seq: 8, Digest: [32]byte{8}, Auth: macs(0xB, 1)},
		{Type: pbftcore.MsgPrepare, From: 2, To: pbftcore.ToAll, View: 1, Seq: 7, Digest: [32]byte{7}, Auth: macs(0xC, 4)},
		{Type: pbftcore.MsgCommit, From: 3, To: 0, View: 1, Seq: 7, Digest: [32]byte{7}, Auth: macs(0xD, 1)},
		{Type: pbftcore.MsgReply, From: 3, To: pbftcore.ToClient, View: 1, Client: 5, Timestamp: 9, ReadOnly: true, Result: []byte("result"), Auth: macs(0xE, 1)},
		// A refused read-only reply (OSDI '99 §5.1.3): the flag survives both directions.
		{Type: pbftcore.MsgReply, From: 2, To: pbftcore.ToClient, View: 1, Client: 5, Timestamp: 9, ReadOnly: true, Refused: true, Auth: macs(0xE, 1)},
		ckpt(2),
		vc(1),
		{Type: pbftcore.MsgNewView, From: 1, To: pbftcore.ToAll, View: 5, Seq: 128, Digest: [32]byte{0xC0},
			ViewChanges: []pbftcore.Message{vc(0), vc(1), vc(2)},
			PrePrepares: []pbftcore.Message{
				{Type: pbftcore.MsgPrePrepare, From: 1, View: 5, Seq: 129, Digest: [32]byte{0xD1}},
				{Type: pbftcore.MsgPrePrepare, From: 1, View: 5, Seq: 130, Digest: pbftcore.BatchDigest(nil)},
			},
			Auth: sig(0x70)},
		{Type: pbftcore.MsgFetchState, From: 3, To: 2, Seq: 128, Chunk: 2, Auth: macs(0xF, 1)},
		{Type: pbftcore.MsgStateChunk, From: 2, To: 3, Seq: 128, Digest: [32]byte{0xC0}, Chunk: 2, Chunks: 5, Data: []byte("chunk"), Auth: macs(0x1, 1)},
		{Type: pbftcore.MsgFetchBatch, From: 3, To: pbftcore.ToAll, Seq: 129, Digest: [32]byte{0xD1}, Auth: macs(0x2, 4)},
		{Type: pbftcore.MsgBatch, From: 2, To: 3, Seq: 129, Digest: [32]byte{0xD1}, Requests: []pbftcore.Request{req(1, 10, false), req(2, 7, false)}, Auth: macs(0x3, 1)},
	}
}

// Every pbftcore message type survives pbftcore -> wire frame -> pbftcore unchanged,
// including the nested proofs of VIEW-CHANGE and NEW-VIEW (TOCS 2002 §4.5).
func TestPBFTCodecRoundTripEveryType(t *testing.T) {
	var c pbftCodec
	seen := map[pbftcore.MsgType]bool{}
	for _, m := range handMessages() {
		to := m.To
		if to == pbftcore.ToAll || to == pbftcore.ToClient {
			to = 0
		}
		if err := roundTrip(&c, &m, m.To); err != nil {
			t.Fatal(err)
		}
		if err := roundTrip(&c, &m, to); err != nil {
			t.Fatal(err)
		}
		seen[m.Type] = true
	}
	for ty := pbftcore.MsgRequest; ty <= pbftcore.MsgBatch; ty++ {
		if !seen[ty] {
			t.Fatalf("no sample of %v", ty)
		}
	}
}

// A message on a peer connection that names another sender is refused: the transport
// authenticated the connection's peer.
func TestPBFTCodecRejectsMisattributedSender(t *testing.T) {
	var c pbftCodec
	m := pbftcore.Message{Type: pbftcore.MsgPrepare, From: 2, To: pbftcore.ToAll, View: 1, Seq: 7, Auth: macs(1, 4)}
	f, _ := wire.DecodeFrame(c.appendFrame(nil, &m), 0)
	var got pbftcore.Message
	if err := c.decode(f.Type, f.Body, 3, 0, &got); err != errMisattributed {
		t.Fatalf("decode as from replica 3: %v", err)
	}
}

// simCluster runs four pbftcore replicas in memory, every message passing through the
// codec (encode, frame, decode) before it is stepped, and every message checked to round-trip.
type simCluster struct {
	t       *testing.T
	nodes   []*pbftcore.Node
	stores  []*kv.Store
	codec   pbftCodec
	client  *pbftcore.Client
	queue   []simMsg
	down    map[int]bool
	seen    map[pbftcore.MsgType]int
	nextTS  uint64
	lastRes []byte
}

type simMsg struct {
	from, to int // to == pbftcore.ToClient for the client
	frame    []byte
}

func newSimCluster(t *testing.T) *simCluster {
	const n, clients = 4, 2
	ring := pbftcore.NewKeyring([]byte("codec-sim"), n, clients)
	s := &simCluster{t: t, down: map[int]bool{}, seen: map[pbftcore.MsgType]int{}}
	for i := 0; i < n; i++ {
		store, _ := kv.New(kv.Config{NoDigest: true}) // as the replica keeps it
		cfg := pbftcore.DefaultConfig(i, n, ring.Replica(i), newKVApp(store), rand.New(rand.NewPCG(1, uint64(i))))
		cfg.CheckpointInterval, cfg.WindowSize, cfg.MaxInflightBatches = 4, 8, 8
		cfg.MaxBatchRequests = 4
		cfg.RequestTimeoutTicks, cfg.RetransmitTicks = 8, 2
		cfg.MaxOpBytes, cfg.MaxResultBytes = PBFTMaxOpBytes, PBFTMaxResultBytes
		nd, err := pbftcore.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s.nodes = append(s.nodes, nd)
		s.stores = append(s.stores, store)
	}
	cl, err := pbftcore.NewClient(pbftcore.ClientConfig{ID: 1, N: n, Keys: ring.Client(1), TimeoutTicks: 6, MaxOpBytes: PBFTMaxOpBytes})
	if err != nil {
		t.Fatal(err)
	}
	s.client = cl
	return s
}

func (s *simCluster) emit(from int, m *pbftcore.Message) {
	s.seen[m.Type]++
	if err := roundTrip(&s.codec, m, m.To); err != nil {
		s.t.Fatal(err)
	}
	frame := s.codec.appendFrame(nil, m)
	switch m.To {
	case pbftcore.ToAll:
		for j := range s.nodes {
			if j != from {
				s.queue = append(s.queue, simMsg{from, j, frame})
			}
		}
	default:
		s.queue = append(s.queue, simMsg{from, m.To, frame})
	}
}

// step drains every Ready and delivers the queue once; it reports whether anything moved.
func (s *simCluster) step() bool {
	moved := false
	rd := s.client.Ready()
	for i := range rd.Messages {
		s.emit(pbftcore.FromClient, &rd.Messages[i])
		moved = true
	}
	if rd.Done {
		s.lastRes = append(s.lastRes[:0], rd.Result...)
	}
	s.client.Advance()
	for i, nd := range s.nodes {
		for nd.HasReady() {
			rd := nd.Ready()
			for j := range rd.Messages {
				if !s.down[i] {
					s.emit(i, &rd.Messages[j])
				}
			}
			nd.Advance()
			moved = true
		}
	}
	q := s.queue
	s.queue = nil
	var dec pbftCodec
	var m pbftcore.Message
	for _, x := range q {
		if s.down[x.from] || s.down[x.to] {
			continue
		}
		f, err := wire.DecodeFrame(x.frame, 0)
		if err != nil {
			s.t.Fatal(err)
		}
		to := x.to
		if to == pbftcore.ToClient {
			to = pbftcore.ToClient
		}
		if err := dec.decode(f.Type, f.Body, x.from, to, &m); err != nil {
			s.t.Fatalf("decode %v: %v", f.Type, err)
		}
		moved = true
		if x.to == pbftcore.ToClient {
			s.client.Step(&m)
			continue
		}
		_ = s.nodes[x.to].Step(&m)
	}
	return moved
}

func (s *simCluster) tick() {
	s.client.Tick()
	for i, nd := range s.nodes {
		if !s.down[i] {
			nd.Tick()
		}
	}
}

// run invokes one operation and steps until it completes (bounded).
func (s *simCluster) run(ops ...wire.Op) []byte {
	s.t.Helper()
	s.nextTS++
	op := wire.AppendClientRequest(nil, &wire.ClientRequest{ClientID: 1, FirstSeq: s.nextTS, Ops: ops})
	ro := true
	for _, o := range ops {
		ro = ro && o.Kind == wire.OpGet
	}
	if err := s.client.InvokeAt(s.nextTS, op, ro); err != nil {
		s.t.Fatal(err)
	}
	s.lastRes = nil
	for i := 0; i < 2000; i++ {
		for s.step() {
			if s.lastRes != nil {
				return s.lastRes
			}
		}
		if s.lastRes != nil {
			return s.lastRes
		}
		s.tick()
	}
	s.t.Fatalf("operation did not complete; replica status %+v %+v %+v %+v",
		s.nodes[0].Status(), s.nodes[1].Status(), s.nodes[2].Status(), s.nodes[3].Status())
	return nil
}

// Every message a real cluster sends through the normal case (§4.2), checkpoints (§4.3), a
// view change with a NEW-VIEW (§4.4), state transfer (TOCS §5.3.2) and the read-only path
// (§5.1.3) round-trips through the codec, and the replicas' MACs and signatures verify on
// the decoded copies (or the cluster would not make progress).
func TestPBFTCodecCarriesARealClusterRun(t *testing.T) {
	s := newSimCluster(t)
	for i := 0; i < 12; i++ {
		s.run(put(fmt.Sprintf("k%d", i), "v"))
	}
	// Replica 3 misses a stretch; the primary then fails, forcing a view change.
	s.down[3] = true
	for i := 12; i < 30; i++ {
		s.run(put(fmt.Sprintf("k%d", i), "v"))
	}
	s.down[3] = false
	s.down[0] = true
	for i := 30; i < 40; i++ {
		s.run(put(fmt.Sprintf("k%d", i), "v"))
	}
	var rep wire.ClientReply
	res := s.run(get("k5"), get("k35"))
	if err := wire.DecodeClientReply(res, &rep); err != nil || string(rep.Results[0].Value) != "v" || string(rep.Results[1].Value) != "v" {
		t.Fatalf("read result %+v (%v)", rep.Results, err)
	}
	if st := s.nodes[3].Status(); st.View == 0 || st.LastExecuted < 30 {
		t.Fatalf("replica 3 did not catch up and change view: %+v", st)
	}
	for ty := pbftcore.MsgRequest; ty <= pbftcore.MsgStateChunk; ty++ {
		if s.seen[ty] == 0 {
			t.Fatalf("the run sent no %v (seen %v)", ty, s.seen)
		}
	}
	if s.stores[1].Digest() != s.stores[3].Digest() {
		t.Fatal("replicas 1 and 3 diverged")
	}
}

// The normal case allocates nothing once the scratch has grown.
func TestPBFTCodecNormalCaseDoesNotAllocate(t *testing.T) {
	batch := make([]pbftcore.Request, 16)
	for i := range batch {
		batch[i] = pbftcore.Request{Client: uint64(i), Timestamp: 5, Op: make([]byte, 40), Auth: macs(1, 4)}
	}
	msgs := []pbftcore.Message{
		{Type: pbftcore.MsgRequest, From: pbftcore.FromClient, Requests: batch[:1]},
		{Type: pbftcore.MsgPrePrepare, From: 0, To: pbftcore.ToAll, View: 1, Seq: 7, Requests: batch, Auth: macs(2, 4)},
		{Type: pbftcore.MsgPrepare, From: 1, To: pbftcore.ToAll, View: 1, Seq: 7, Auth: macs(3, 4)},
		{Type: pbftcore.MsgCommit, From: 1, To: pbftcore.ToAll, View: 1, Seq: 7, Auth: macs(4, 4)},
		{Type: pbftcore.MsgReply, From: 1, To: pbftcore.ToClient, Client: 3, Timestamp: 5, Result: make([]byte, 30), Auth: macs(5, 1)},
	}
	var enc, dec pbftCodec
	var out []byte
	var m pbftcore.Message
	for i := range msgs {
		from := msgs[i].From
		cycle := func() {
			out = enc.appendFrame(out[:0], &msgs[i])
			f, err := wire.DecodeFrame(out, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := dec.decode(f.Type, f.Body, from, 2, &m); err != nil {
				t.Fatal(err)
			}
		}
		cycle()
		if a := testing.AllocsPerRun(100, cycle); a != 0 {
			t.Fatalf("%v: %.1f allocs per encode+decode", msgs[i].Type, a)
		}
	}
}

func BenchmarkPBFTCodec(b *testing.B) {
	for _, n := range []int{1, 64} {
		batch := make([]pbftcore.Request, n)
		for i := range batch {
			batch[i] = pbftcore.Request{Client: uint64(i), Timestamp: 5, Op: make([]byte, 40), Auth: macs(1, 4)}
		}
		m := pbftcore.Message{Type: pbftcore.MsgPrePrepare, From: 0, To: pbftcore.ToAll, View: 1, Seq: 7, Requests: batch, Auth: macs(2, 4)}
		b.Run(fmt.Sprintf("type=preprepare/batch=%d", n), func(b *testing.B) {
			var enc, dec pbftCodec
			var out []byte
			var got pbftcore.Message
			b.ReportAllocs()
			out = enc.appendFrame(out[:0], &m)
			b.SetBytes(int64(len(out)))
			for b.Loop() {
				out = enc.appendFrame(out[:0], &m)
				f, _ := wire.DecodeFrame(out, 0)
				if err := dec.decode(f.Type, f.Body, 0, 1, &got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// VIEW-CHANGE and NEW-VIEW carry digests, never batches (TOCS 2002 §5.2), so the largest
// NEW-VIEW the core can build (n = MaxReplicas VIEW-CHANGEs, each with a full checkpoint
// proof, a P entry for every number in the largest window and MaxPrePreparedPerSeq Q
// entries each, and an O entry for every number) fits one frame however large the batches
// are: a faulty replica cannot pad a view change past what a frame holds.
func TestPBFTLargestNewViewFitsAFrame(t *testing.T) {
	const n, L = pbftcore.MaxReplicas, pbftcore.MaxWindowSize
	vc := func(from int) pbftcore.Message {
		m := pbftcore.Message{Type: pbftcore.MsgViewChange, From: from, To: pbftcore.ToAll, View: 1 << 40, Seq: 1 << 40,
			Digest: [32]byte{0xC0}, Auth: sig(byte(from))}
		for i := range n {
			m.Checkpoints = append(m.Checkpoints, pbftcore.Message{Type: pbftcore.MsgCheckpoint, From: i, To: pbftcore.ToAll,
				Seq: 1 << 40, Digest: [32]byte{0xC0}, Auth: sig(byte(i))})
		}
		for s := uint64(1); s <= L; s++ {
			m.Prepared = append(m.Prepared, pbftcore.PreparedEntry{Seq: 1<<40 + s, View: 1<<40 - 1, Digest: [32]byte{0xD1}})
			for q := range pbftcore.MaxPrePreparedPerSeq {
				m.PrePrepared = append(m.PrePrepared, pbftcore.PrePreparedEntry{Seq: 1<<40 + s, View: 1<<40 - 1 - uint64(q), Digest: [32]byte{byte(q)}})
			}
		}
		return m
	}
	nv := pbftcore.Message{Type: pbftcore.MsgNewView, From: 0, To: pbftcore.ToAll, View: 1 << 40, Seq: 1 << 40, Auth: sig(0x70)}
	for i := range n {
		nv.ViewChanges = append(nv.ViewChanges, vc(i))
	}
	for s := uint64(1); s <= L; s++ {
		nv.PrePrepares = append(nv.PrePrepares, pbftcore.Message{Type: pbftcore.MsgPrePrepare, From: 0, View: 1 << 40, Seq: 1<<40 + s, Digest: [32]byte{0xD1}})
	}
	var c pbftCodec
	frame := c.appendFrame(nil, &nv)
	t.Logf("largest NEW-VIEW (n=%d, L=%d): %d bytes; one VIEW-CHANGE: %d bytes", n, L, len(frame), len(c.appendFrame(nil, &nv.ViewChanges[0])))
	if len(frame) > PBFTMaxFrameBytes {
		t.Fatalf("largest NEW-VIEW is %d bytes, over the %d-byte frame limit", len(frame), PBFTMaxFrameBytes)
	}
	f, err := wire.DecodeFrame(frame, PBFTMaxFrameBytes)
	if err != nil {
		t.Fatal(err)
	}
	var got pbftcore.Message
	if err := c.decode(f.Type, f.Body, 0, 1, &got); err != nil || len(got.ViewChanges) != n || len(got.PrePrepares) != L {
		t.Fatalf("decode: %v (%d view changes, %d O entries)", err, len(got.ViewChanges), len(got.PrePrepares))
	}
}
