package pbftcore

import (
	"math/rand/v2"
	"testing"
)

type nopApp struct{}

func (nopApp) Execute(uint64, *Request, []byte) []byte            { return nil }
func (nopApp) Read([]byte, []byte) []byte                         { return nil }
func (nopApp) Checkpoint(uint64) Digest                           { return Digest{} }
func (nopApp) StateChunk(uint64, int, []byte) ([]byte, int, bool) { return nil, 0, false }
func (nopApp) StateDigest([][]byte) Digest                        { return Digest{} }
func (nopApp) Restore(uint64, [][]byte)                           {}
func (nopApp) DiscardBelow(uint64)                                {}

// A NEW-VIEW names n=1 by digest (missing), the slot prepares in that view before the batch
// arrives, then the fetched batch is logged: live, the batch lands in the P entry's buffer
// (fillBatch writes bufs[cur] == bufs[pBuf]); restored, it must land in the same one, or the
// P entry would point at an invalid buffer.
func TestRestoreFetchedBatchLandsInItsPrepareBuffer(t *testing.T) {
	kr := NewKeyring([]byte("x"), 4, 1)
	reqs := []Request{{Client: 0, Timestamp: 1, Op: []byte("op")}}
	d := BatchDigest(reqs)
	log := []Record{
		{Kind: RecView, View: 1, Active: true},
		{Kind: RecPrePrepared, View: 1, Seq: 1, Digest: d},                 // O entry, batch missing
		{Kind: RecPrepared, View: 1, Seq: 1, Digest: d},                    // prepared by digest
		{Kind: RecPrePrepared, View: 1, Seq: 1, Digest: d, Requests: reqs}, // fillBatch's record
	}
	cfg := DefaultConfig(2, 4, kr.Replica(2), nopApp{}, rand.New(rand.NewPCG(1, 2)))
	cfg.Log, cfg.LogSynced = log, true
	nd, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := nd.existingSlot(1)
	t.Logf("cur=%d pBuf=%d bufs[pBuf].valid=%v bufs[cur].valid=%v", s.cur, s.pBuf, s.bufs[s.pBuf].valid, s.bufs[s.cur].valid)
	if s.pBuf != s.cur {
		t.Errorf("restored P entry's buffer %d is not the one holding its batch (%d); live it is", s.pBuf, s.cur)
	}
}

// PBFT TOCS 2002 §4.5 (rule A2): a replica restored from its log lists in its VIEW-CHANGE the
// Q entries whose batches it logged (each in its own buffer, whatever later views pre-prepared
// at that number), and not a digest a NEW-VIEW named whose batch never came.
func TestRestoreListsOnlyHeldQEntries(t *testing.T) {
	kr := NewKeyring([]byte("x"), 4, 1)
	a := []Request{{Client: 0, Timestamp: 1, Op: []byte("a")}}
	b := []Request{{Client: 0, Timestamp: 2, Op: []byte("b")}}
	c := []Request{{Client: 0, Timestamp: 3, Op: []byte("c")}}
	da, db, dc := BatchDigest(a), BatchDigest(b), BatchDigest(c)
	log := []Record{
		{Kind: RecPrePrepared, View: 0, Seq: 1, Digest: da, Requests: a},
		{Kind: RecView, View: 1, Active: true},
		{Kind: RecPrePrepared, View: 1, Seq: 1, Digest: db, Requests: b},
		{Kind: RecView, View: 2, Active: true},
		{Kind: RecPrePrepared, View: 2, Seq: 1, Digest: dc}, // a NEW-VIEW's digest, batch never fetched
		{Kind: RecView, View: 3},
	}
	cfg := DefaultConfig(2, 4, kr.Replica(2), nopApp{}, rand.New(rand.NewPCG(1, 2)))
	cfg.Log, cfg.LogSynced = log, true
	nd, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var vc *Message
	rd := nd.Ready()
	for i := range rd.Messages {
		if rd.Messages[i].Type == MsgViewChange {
			vc = &rd.Messages[i]
		}
	}
	if vc == nil || vc.View != 3 {
		t.Fatalf("restored replica changing to view 3 did not re-send its VIEW-CHANGE: %+v", rd.Messages)
	}
	got := map[Digest]uint64{}
	for _, q := range vc.PrePrepared {
		got[q.Digest] = q.View
	}
	if len(got) != 2 || got[da] != 0 || got[db] != 1 {
		t.Errorf("VIEW-CHANGE Q = %+v, want A in view 0 and B in view 1 only (C is not held)", vc.PrePrepared)
	}
	if _, ok := got[dc]; ok {
		t.Errorf("VIEW-CHANGE lists C, whose batch the replica never had")
	}
	s := nd.existingSlot(1)
	if i := s.findBuf(da); i < 0 || len(s.bufs[i].reqs) != 1 || string(s.bufs[i].reqs[0].Op) != "a" {
		t.Errorf("A's batch is not held after the restore")
	}
}

// A huge Ready's output buffers are not kept for reuse after Advance (only buffers up to
// MaxRetainedOutputBytes and MaxRetainedOutputRequests are), so a replica's memory does not
// stay at twice the largest Ready it ever produced; ordinary ones are reused.
func TestAdvanceDropsHugeOutputBuffers(t *testing.T) {
	kr := NewKeyring([]byte("x"), 4, 1)
	nd, err := New(DefaultConfig(0, 4, kr.Replica(0), nopApp{}, rand.New(rand.NewPCG(1, 2))))
	if err != nil {
		t.Fatal(err)
	}
	produce := func(opBytes, requests int) {
		reqs := make([]Request, requests)
		for i := range reqs {
			reqs[i] = Request{Client: uint64(i), Timestamp: 1, Op: make([]byte, opBytes/requests)}
		}
		nd.arenaRequests(reqs)
		nd.Ready()
		nd.Advance()
	}
	produce(1<<20, 64) // ordinary: its buffers become the spare
	if cap(nd.spare.arena) < 1<<20 || cap(nd.spare.reqArena) < 64 {
		t.Fatalf("an ordinary Ready's buffers were not kept: arena %d, requests %d", cap(nd.spare.arena), cap(nd.spare.reqArena))
	}
	produce(0, 1)           // swap the kept pair around
	produce(48<<20, 20_000) // a window's worth of re-sent pre-prepares
	if c := cap(nd.spare.arena); c > MaxRetainedOutputBytes {
		t.Fatalf("kept a %d-byte output arena, limit %d", c, MaxRetainedOutputBytes)
	}
	if c := cap(nd.spare.reqArena); c > MaxRetainedOutputRequests {
		t.Fatalf("kept a %d-request output arena, limit %d", c, MaxRetainedOutputRequests)
	}
}
