package raftcore

import "fmt"

// Input validation. Raft assumes peers follow the protocol (it does not tolerate Byzantine
// ones; authenticating them is the transport's job), but whatever reaches Step comes from
// the network: a message no correct peer could send is refused with ErrMalformed and
// counted, never asserted. Assertions stay for states the core itself produces.

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// checkMessage rejects what no correct peer sends, before any state changes.
func (n *Node) checkMessage(m *Message) error {
	if m.Term > MaxTerm || m.LogTerm > MaxTerm || m.Index > MaxIndex || m.Commit > MaxIndex ||
		m.RejectHint > MaxIndex || m.ConflictTerm > MaxTerm {
		return malformed("%v from %d beyond MaxTerm/MaxIndex (term %d, index %d)", m.Type, m.From, m.Term, m.Index)
	}
	switch m.Type {
	case MsgApp:
		return n.checkAppend(m)
	case MsgSnap:
		if meta := &m.Snapshot; meta.Index == 0 || meta.Index > MaxIndex || meta.Term == 0 || meta.Term > m.Term {
			return malformed("snapshot %d/%d from %d in term %d", meta.Index, meta.Term, m.From, m.Term)
		}
		if err := m.Snapshot.Membership.validate(); err != nil && m.SnapDone {
			return malformed("snapshot membership from %d: %v", m.From, err)
		}
		if m.SnapOffset > n.cfg.MaxSnapshotBytes {
			return malformed("snapshot offset %d from %d", m.SnapOffset, m.From)
		}
	case MsgAppResp:
		// A follower cannot hold entries the leader never had: an acknowledgement beyond the
		// leader's log (in its term) would commit what does not exist. (A heartbeat answer
		// carries the follower's last index, which may exceed ours: it is only a hint.)
		if n.role == Leader && m.Term == n.term && !m.Reject && m.Index > n.log.lastIndex() {
			return malformed("%v from %d acknowledges index %d beyond the last %d", m.Type, m.From, m.Index, n.log.lastIndex())
		}
	case MsgSnapResp:
		if m.Snapshot.Index > MaxIndex || m.SnapOffset > n.cfg.MaxSnapshotBytes {
			return malformed("snapshot response from %d for %d at offset %d", m.From, m.Snapshot.Index, m.SnapOffset)
		}
	}
	return nil
}

// checkAppend validates an AppendEntries: contiguous indices after the previous entry,
// terms that never decrease, start at or after the previous entry's and never exceed the
// message's, known entry types, bounded payloads, and nothing that contradicts an entry
// this node already committed (a correct leader holds every committed entry, Raft §5.4).
func (n *Node) checkAppend(m *Message) error {
	if uint64(len(m.Entries)) > MaxIndex-m.Index {
		return malformed("append from %d overflows the index space", m.From)
	}
	if m.LogTerm > m.Term {
		return malformed("append from %d: previous term %d after the message's %d", m.From, m.LogTerm, m.Term)
	}
	prevTerm := m.LogTerm
	for i := range m.Entries {
		e := &m.Entries[i]
		switch {
		case e.Index != m.Index+1+uint64(i):
			return malformed("append from %d: entry %d has index %d, want %d", m.From, i, e.Index, m.Index+1+uint64(i))
		case e.Term < prevTerm || e.Term > m.Term:
			return malformed("append from %d: entry %d of term %d after term %d (message term %d)", m.From, e.Index, e.Term, prevTerm, m.Term)
		case e.Type != EntryNormal && e.Type != EntryNoop && e.Type != EntryConfChange:
			return malformed("append from %d: entry %d of unknown type %d", m.From, e.Index, e.Type)
		case len(e.Data) > MaxEntryBytes:
			return malformed("append from %d: entry %d of %d bytes", m.From, e.Index, len(e.Data))
		}
		prevTerm = e.Term
		// An entry at or below our commit index must be the one we committed, if the
		// leader is of our term or a later one (Leader Completeness). A leader of an older
		// term may well have held another: its delayed append is stale, not malformed, and
		// is answered with our term.
		if m.Term >= n.term && e.Index <= n.commit && e.Index > n.log.snapIndex && !n.log.matchTerm(e.Index, e.Term) {
			return malformed("append from %d: entry %d of term %d contradicts the committed one", m.From, e.Index, e.Term)
		}
	}
	return nil
}
