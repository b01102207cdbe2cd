package raftcore

import "github.com/consensusbench/consensusbench/raftcore/quorum"

// Linearizable reads (thesis §6.4). Every heartbeat broadcast starts a numbered round;
// followers echo the round, and a read waiting for round r is confirmed once a quorum has
// acknowledged a round >= r. Reads that arrive while a round is outstanding wait for the
// next one, so one round confirms a whole batch. A read's index is the commit index when it
// arrived, once the leader has committed an entry of its term (until then it waits).
//
// Lease reads (thesis §6.4.1): the quorum acknowledgement of a round sent at tick t shows
// that no other leader can be elected before t + ElectionTick (followers refuse votes while
// they hear a leader, CheckQuorum), so reads are served locally until
// t + ElectionTick - LeaseDriftTicks.

func (n *Node) readIndex(rctx uint64) error {
	if n.role != Leader {
		if n.lead != None {
			n.send(Message{Type: MsgReadIndex, To: n.lead, Context: rctx})
		}
		return nil
	}
	return n.addRead(rctx, n.id)
}

func (n *Node) addRead(ctx, from uint64) error {
	if n.leaseValid() {
		n.answerRead(ctx, from, n.commit)
		return nil
	}
	if len(n.pendingReads) >= MaxPendingReads {
		if from != n.id {
			n.send(Message{Type: MsgReadIndexResp, To: from, Context: ctx, Reject: true})
			return nil
		}
		return ErrTooManyReads
	}
	var idx uint64
	if n.committedInTerm() {
		idx = n.commit
	}
	n.pendingReads = append(n.pendingReads, readReq{ctx: ctx, from: from, index: idx, round: n.readRound + 1})
	n.checkReads() // a single voter confirms at once
	return nil
}

// needRound reports whether pending reads wait for a round that has not started while no
// round is outstanding. The round starts in the next Ready, so every read that arrives
// before it shares it.
func (n *Node) needRound() bool {
	k := len(n.pendingReads)
	return n.role == Leader && k > 0 && n.pendingReads[k-1].round > n.readRound && n.ackedRound() >= n.readRound
}

func (n *Node) leaseValid() bool {
	return n.cfg.ReadOnly == ReadLease && !n.leaseDisabled && n.committedInTerm() && n.ticks < n.leaseUntil
}

func (n *Node) answerRead(ctx, from, index uint64) {
	if from == n.id {
		n.readStates = append(n.readStates, ReadState{Index: index, Context: ctx})
		return
	}
	n.send(Message{Type: MsgReadIndexResp, To: from, Context: ctx, Index: index})
}

func (n *Node) startRound() {
	n.readRound++
	n.roundTicks[n.readRound%leaseRoundRing] = roundTick{round: n.readRound, tick: n.ticks}
}

// ackedRound is the highest round a quorum of voters acknowledged.
func (n *Node) ackedRound() uint64 {
	var acked [MaxMembers]uint64
	k := 0
	if n.isVoter(n.id) {
		acked[k] = n.readRound
		k++
	}
	for _, pr := range n.prs {
		if !pr.Learner {
			acked[k] = pr.ReadRound
			k++
		}
	}
	return quorum.CommittedIndex(acked[:k])
}

// checkReads releases confirmed reads and extends the lease.
func (n *Node) checkReads() {
	if n.role != Leader {
		return
	}
	ar := n.ackedRound()
	if n.cfg.ReadOnly == ReadLease && !n.leaseDisabled {
		if rt := n.roundTicks[ar%leaseRoundRing]; rt.round == ar && ar > 0 {
			n.leaseUntil = max(n.leaseUntil, rt.tick+uint64(n.cfg.ElectionTick-n.cfg.LeaseDriftTicks))
		}
	}
	if !n.committedInTerm() || len(n.pendingReads) == 0 {
		return
	}
	k := 0
	for k < len(n.pendingReads) && n.pendingReads[k].round <= ar {
		r := n.pendingReads[k]
		idx := r.index
		if idx == 0 {
			idx = n.commit
		}
		n.answerRead(r.ctx, r.from, idx)
		k++
	}
	if k > 0 {
		m := copy(n.pendingReads, n.pendingReads[k:])
		n.pendingReads = n.pendingReads[:m]
	}
}

// startPendingReads runs when the leader first commits in its term: reads waiting for that
// may now be confirmed.
func (n *Node) startPendingReads() { n.checkReads() }

func (n *Node) dropPendingReads() {
	for _, r := range n.pendingReads {
		if r.from != n.id {
			n.send(Message{Type: MsgReadIndexResp, To: r.from, Context: r.ctx, Reject: true})
		}
	}
	n.pendingReads = n.pendingReads[:0]
}
