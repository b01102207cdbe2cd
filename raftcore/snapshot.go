package raftcore

// Snapshots (Raft §7). The application takes snapshots when asked (Ready.SnapshotRequest)
// and reports them; the leader sends its latest snapshot in chunks of SnapshotChunkBytes to
// a follower whose next entry was compacted, one chunk in flight, resending after an
// election timeout of silence. The follower assembles the chunks and, on the last one,
// replaces its log and hands the snapshot out in a Ready; it acknowledges installation only
// once that Ready is durable.

func (n *Node) snapshotMetaAt(index uint64) (SnapshotMeta, error) {
	if index <= n.snapshot.Meta.Index {
		return SnapshotMeta{}, ErrSnapshotTooOld
	}
	if index > max(n.applied, n.applying) {
		return SnapshotMeta{}, ErrUnavailable // entries of the outstanding Ready count as applied
	}
	t, ok := n.log.term(index)
	if !ok {
		return SnapshotMeta{}, ErrSnapshotTooOld
	}
	// Configurations are immutable values and those at or above the log's first index are
	// all kept (pruneConfs), so this one is exact and may be shared.
	return SnapshotMeta{Index: index, Term: t, Membership: n.membershipAt(index)}, nil
}

// compactionPoint is the highest index compaction after a snapshot at index may drop: it
// keeps SnapshotRetainEntries entries below index, or fewer when they would hold more than
// SnapshotRetainBytes of payload.
func (n *Node) compactionPoint(index uint64) uint64 {
	c := uint64(0)
	if index > n.cfg.SnapshotRetainEntries {
		c = index - n.cfg.SnapshotRetainEntries
	}
	if limit := n.cfg.SnapshotRetainBytes; limit > 0 {
		// Walk down from index while the kept entries fit the byte bound.
		var kept uint64
		i := index
		for i > max(c, n.log.snapIndex) {
			b := uint64(n.log.hdr(i).n)
			if kept+b > limit {
				break
			}
			kept += b
			i--
		}
		c = max(c, i)
	}
	return min(c, index)
}

func (n *Node) reportSnapshot(index uint64, data []byte) (SnapshotMeta, error) {
	meta, err := n.snapshotMetaAt(index)
	if err != nil {
		return SnapshotMeta{}, err
	}
	n.snapshot = Snapshot{Meta: meta, Data: data}
	n.snapRequested = max(n.snapRequested, index)
	if c := n.compactionPoint(index); c > n.log.snapIndex {
		n.log.compactTo(c)
		n.pruneConfs(c)
	}
	return meta, nil
}

func (n *Node) handleSnapshotChunk(m *Message) {
	meta := m.Snapshot
	id := SnapshotMeta{Index: meta.Index, Term: meta.Term}
	if meta.Index <= n.commit {
		// Already covered by our committed log: acknowledge as an append instead.
		n.recvSnap.open = false
		n.oweAck(m.From, n.commit)
		return
	}
	r := &n.recvSnap
	if m.SnapOffset == 0 {
		*r = snapAssembly{meta: cloneMeta(meta), from: m.From, open: true}
	} else if !r.open || r.meta.Index != meta.Index || r.meta.Term != meta.Term || m.SnapOffset != uint64(len(r.buf)) {
		var off uint64
		if r.open && r.meta.Index == meta.Index && r.meta.Term == meta.Term {
			off = uint64(len(r.buf))
		}
		n.send(Message{Type: MsgSnapResp, To: m.From, Snapshot: id, SnapOffset: off, Reject: true})
		return
	}
	if uint64(len(r.buf)+len(m.SnapData)) > n.cfg.MaxSnapshotBytes {
		r.open = false
		n.send(Message{Type: MsgSnapResp, To: m.From, Snapshot: id, Reject: true})
		return
	}
	r.buf = append(r.buf, m.SnapData...)
	if !m.SnapDone {
		n.send(Message{Type: MsgSnapResp, To: m.From, Snapshot: id, SnapOffset: uint64(len(r.buf))})
		return
	}
	r.open = false
	data := r.buf
	r.buf = nil
	n.restore(r.meta, data)
	n.sendDurable(Message{Type: MsgSnapResp, To: m.From, Snapshot: id, SnapOffset: uint64(len(data)), SnapDone: true})
}

// restore installs a snapshot received from the leader (Raft §7).
func (n *Node) restore(meta SnapshotMeta, data []byte) {
	if n.log.matchTerm(meta.Index, meta.Term) {
		// Our log already holds the snapshot's last entry: keep the log, commit up to it.
		n.commitTo(meta.Index)
		return
	}
	n.log.reset(meta.Index, meta.Term)
	clear(n.confs)
	n.confs = append(n.confs[:0], confAt{index: meta.Index, m: cloneMembership(meta.Membership)})
	n.lastConfIndex = meta.Index
	n.setMembership(n.confs[0].m)
	n.commit = meta.Index
	n.stableTo = meta.Index
	n.persisted = 0
	n.ackIndex, n.ackSent, n.ackOwed = 0, 0, false
	n.noteTruncation(0)
	n.snapshot = Snapshot{Meta: meta, Data: data}
	n.readySnapshot = n.snapshot
	n.snapRequested = meta.Index
	n.appliedBytes = 0
}
