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
// (fillBatch writes bufs[cur] == bufs[pBuf]); restored, acceptPrePrepare puts it in freeBuf(),
// the other buffer, and the P entry points at an invalid buffer.
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
