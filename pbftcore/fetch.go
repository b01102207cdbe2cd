package pbftcore

import "github.com/consensusbench/consensusbench/internal/assert"

// Batch fetching (TOCS 2002 §5.2; Castro's thesis §5.2). VIEW-CHANGE and NEW-VIEW name
// prepared batches by digest only, so their size depends on n and the window, never on how
// much the batches weigh, and a Byzantine replica cannot pad them past what a frame holds.
// A replica that enters a view whose O set names a batch it does not hold agrees on the
// digest at once (PREPARE and COMMIT carry nothing else) and asks every replica for the
// batch; any replica holding a batch with that digest for that sequence number answers, and
// the digest alone proves the answer, since it is the hash of the requests. Execution of the
// sequence number waits for the batch. Requests are retried once per retransmission period;
// answers are rate-limited per asker and period, so a faulty asker cannot make a replica
// stream batches.

// stepFetchBatch answers ⟨FETCH-BATCH, n, d⟩ with the batch this replica holds for n with
// digest d. A number below the low watermark is answered with the stable checkpoint instead:
// the asker is behind and catches up by state transfer.
func (nd *Node) stepFetchBatch(m *Message) error {
	if m.From == nd.id || m.From < 0 {
		return ErrMalformed
	}
	if m.Seq <= nd.h {
		nd.helpLagging(m.From)
		return ErrStale
	}
	s := nd.existingSlot(m.Seq)
	if s == nil {
		return ErrStale
	}
	i := s.findBuf(m.Digest)
	if i < 0 {
		return ErrStale // not held here: another replica answers
	}
	if s.served&(1<<m.From) != 0 {
		return nil
	}
	s.served |= 1 << m.From
	nd.send(Message{Type: MsgBatch, To: m.From, Seq: m.Seq, Digest: m.Digest,
		Requests: nd.arenaRequests(s.bufs[i].reqs)})
	return nil
}

// stepBatch takes a fetched batch if this replica is still missing it and the requests hash
// to the digest its NEW-VIEW chose.
func (nd *Node) stepBatch(m *Message) error {
	s := nd.existingSlot(m.Seq)
	if s == nil || !s.missing {
		return ErrStale
	}
	if m.Digest != s.digest {
		return ErrBadDigest
	}
	return nd.fillBatch(s, m.Requests)
}

// fillBatch installs reqs as the missing batch of s after checking their shape and that they
// hash to s.digest. Client authenticators are not checked again: 2f+1 replicas prepared this
// digest, so correct replicas checked them when the batch was first pre-prepared, and a
// digest covers only the requests' content.
func (nd *Node) fillBatch(s *slot, reqs []Request) error {
	if err := nd.checkHeldBatch(reqs, s.digest); err != nil {
		return err
	}
	b := &s.bufs[s.cur]
	assert.True(!b.valid && s.q[s.cur].Digest == s.digest, "pbftcore: a fetched batch fills its own Q entry's buffer")
	b.set(reqs, nd.reqDigests)
	b.batch, b.valid = s.digest, true
	s.missing = false
	nd.logRecord(Record{Kind: RecPrePrepared, View: s.view, Seq: s.seq, Digest: s.digest, Requests: b.reqs})
	// A backup PREPAREs a NEW-VIEW's batch only once it holds it (see checkPrepared).
	if s.hasPP && s.view == nd.view && nd.viewActive && nd.primaryOf(s.view) != nd.id && s.prepMask&(1<<nd.id) == 0 {
		nd.sendOwnPrepare(s)
	}
	nd.checkPrepared(s)
	nd.executeCommitted()
	return nil
}
