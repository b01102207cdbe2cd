package server

import (
	"encoding/binary"
	"fmt"

	"github.com/consensusbench/consensusbench/raftcore"
	"github.com/consensusbench/consensusbench/wire"
)

// raftCodec maps raftcore's flat Message union to wire's per-type messages and back. It owns
// scratch structs and slices that every call reuses, so encoding and decoding allocate
// nothing in steady state. Not safe for concurrent use: the driver goroutine owns it.
type raftCodec struct {
	ae  wire.AppendEntries
	aer wire.AppendEntriesReply
	rv  wire.RequestVote
	rvr wire.RequestVoteReply
	hb  wire.Heartbeat
	hbr wire.HeartbeatReply
	is  wire.InstallSnapshot
	isr wire.InstallSnapshotReply
	tn  wire.TimeoutNow
	ri  wire.ReadIndex
	rir wire.ReadIndexReply

	ctx  [8]byte
	ents []raftcore.Entry
}

// appendFrame appends m as one whole frame to dst.
func (c *raftCodec) appendFrame(dst []byte, m *raftcore.Message) []byte {
	var wm wire.Message
	switch m.Type {
	case raftcore.MsgApp:
		c.ae = wire.AppendEntries{Term: m.Term, From: m.From, To: m.To, PrevIndex: m.Index, PrevTerm: m.LogTerm,
			Commit: m.Commit, Entries: c.ae.Entries[:0]}
		for i := range m.Entries {
			e := &m.Entries[i]
			c.ae.Entries = append(c.ae.Entries, wire.Entry{Term: e.Term, Type: wire.EntryType(e.Type), Data: e.Data})
		}
		wm = &c.ae
	case raftcore.MsgAppResp:
		c.aer = wire.AppendEntriesReply{Term: m.Term, From: m.From, To: m.To, Success: !m.Reject}
		if m.Reject {
			c.aer.RejectIndex, c.aer.ConflictTerm, c.aer.ConflictIndex = m.Index, m.ConflictTerm, m.RejectHint
		} else {
			c.aer.MatchIndex = m.Index
		}
		wm = &c.aer
	case raftcore.MsgVote, raftcore.MsgPreVote:
		c.rv = wire.RequestVote{Term: m.Term, From: m.From, To: m.To, LastLogIndex: m.Index, LastLogTerm: m.LogTerm,
			PreVote: m.Type == raftcore.MsgPreVote, LeaderTransfer: m.Transfer}
		wm = &c.rv
	case raftcore.MsgVoteResp, raftcore.MsgPreVoteResp:
		c.rvr = wire.RequestVoteReply{Term: m.Term, From: m.From, To: m.To, Granted: !m.Reject,
			PreVote: m.Type == raftcore.MsgPreVoteResp}
		wm = &c.rvr
	case raftcore.MsgHeartbeat:
		c.hb = wire.Heartbeat{Term: m.Term, From: m.From, To: m.To, Commit: m.Commit, Context: m.Context}
		wm = &c.hb
	case raftcore.MsgHeartbeatResp:
		c.hbr = wire.HeartbeatReply{Term: m.Term, From: m.From, To: m.To, Context: m.Context, LastIndex: m.Index}
		wm = &c.hbr
	case raftcore.MsgSnap:
		c.is = wire.InstallSnapshot{Term: m.Term, From: m.From, To: m.To, SnapshotIndex: m.Snapshot.Index,
			SnapshotTerm: m.Snapshot.Term, Voters: m.Snapshot.Membership.Voters, Learners: m.Snapshot.Membership.Learners,
			Offset: m.SnapOffset, Done: m.SnapDone, Data: m.SnapData}
		wm = &c.is
	case raftcore.MsgSnapResp:
		c.isr = wire.InstallSnapshotReply{Term: m.Term, From: m.From, To: m.To, SnapshotIndex: m.Snapshot.Index,
			SnapshotTerm: m.Snapshot.Term, NextOffset: m.SnapOffset, Reject: m.Reject, Done: m.SnapDone}
		wm = &c.isr
	case raftcore.MsgTimeoutNow:
		c.tn = wire.TimeoutNow{Term: m.Term, From: m.From, To: m.To}
		wm = &c.tn
	case raftcore.MsgReadIndex:
		binary.LittleEndian.PutUint64(c.ctx[:], m.Context)
		c.ri = wire.ReadIndex{Term: m.Term, From: m.From, To: m.To, Context: c.ctx[:]}
		wm = &c.ri
	case raftcore.MsgReadIndexResp:
		binary.LittleEndian.PutUint64(c.ctx[:], m.Context)
		c.rir = wire.ReadIndexReply{Term: m.Term, From: m.From, To: m.To, Context: c.ctx[:]}
		if !m.Reject {
			c.rir.Index = m.Index // Index 0 means refused on the wire
		}
		wm = &c.rir
	default:
		panic(fmt.Sprintf("server: no wire mapping for raft message %v", m.Type))
	}
	return wire.AppendMessageFrame(dst, 0, wm)
}

// isRaftType reports whether t is a Raft peer message.
func isRaftType(t wire.Type) bool {
	switch t {
	case wire.TypeAppendEntries, wire.TypeAppendEntriesReply, wire.TypeRequestVote, wire.TypeRequestVoteReply,
		wire.TypeHeartbeat, wire.TypeHeartbeatReply, wire.TypeInstallSnapshot, wire.TypeInstallSnapshotReply,
		wire.TypeTimeoutNow, wire.TypeReadIndex, wire.TypeReadIndexReply:
		return true
	}
	return false
}

// decode fills m from a frame body of type t. m's slices alias body and the codec's scratch:
// valid until the next decode. The caller checks that m.From is the peer the connection's
// hello named.
func (c *raftCodec) decode(t wire.Type, body []byte, m *raftcore.Message) error {
	*m = raftcore.Message{}
	switch t {
	case wire.TypeAppendEntries:
		if err := wire.DecodeAppendEntries(body, &c.ae); err != nil {
			return err
		}
		a := &c.ae
		c.ents = c.ents[:0]
		for i := range a.Entries {
			e := &a.Entries[i]
			c.ents = append(c.ents, raftcore.Entry{Index: a.EntryIndex(i), Term: e.Term, Type: raftcore.EntryType(e.Type), Data: e.Data})
		}
		*m = raftcore.Message{Type: raftcore.MsgApp, Term: a.Term, From: a.From, To: a.To, Index: a.PrevIndex,
			LogTerm: a.PrevTerm, Commit: a.Commit, Entries: c.ents}
	case wire.TypeAppendEntriesReply:
		if err := wire.DecodeAppendEntriesReply(body, &c.aer); err != nil {
			return err
		}
		r := &c.aer
		*m = raftcore.Message{Type: raftcore.MsgAppResp, Term: r.Term, From: r.From, To: r.To, Reject: !r.Success}
		if r.Success {
			m.Index = r.MatchIndex
		} else {
			m.Index, m.ConflictTerm, m.RejectHint = r.RejectIndex, r.ConflictTerm, r.ConflictIndex
		}
	case wire.TypeRequestVote:
		if err := wire.DecodeRequestVote(body, &c.rv); err != nil {
			return err
		}
		v := &c.rv
		*m = raftcore.Message{Type: raftcore.MsgVote, Term: v.Term, From: v.From, To: v.To, Index: v.LastLogIndex,
			LogTerm: v.LastLogTerm, Transfer: v.LeaderTransfer}
		if v.PreVote {
			m.Type = raftcore.MsgPreVote
		}
	case wire.TypeRequestVoteReply:
		if err := wire.DecodeRequestVoteReply(body, &c.rvr); err != nil {
			return err
		}
		v := &c.rvr
		*m = raftcore.Message{Type: raftcore.MsgVoteResp, Term: v.Term, From: v.From, To: v.To, Reject: !v.Granted}
		if v.PreVote {
			m.Type = raftcore.MsgPreVoteResp
		}
	case wire.TypeHeartbeat:
		if err := wire.DecodeHeartbeat(body, &c.hb); err != nil {
			return err
		}
		h := &c.hb
		*m = raftcore.Message{Type: raftcore.MsgHeartbeat, Term: h.Term, From: h.From, To: h.To, Commit: h.Commit, Context: h.Context}
	case wire.TypeHeartbeatReply:
		if err := wire.DecodeHeartbeatReply(body, &c.hbr); err != nil {
			return err
		}
		h := &c.hbr
		*m = raftcore.Message{Type: raftcore.MsgHeartbeatResp, Term: h.Term, From: h.From, To: h.To, Context: h.Context, Index: h.LastIndex}
	case wire.TypeInstallSnapshot:
		if err := wire.DecodeInstallSnapshot(body, &c.is); err != nil {
			return err
		}
		s := &c.is
		*m = raftcore.Message{Type: raftcore.MsgSnap, Term: s.Term, From: s.From, To: s.To,
			Snapshot: raftcore.SnapshotMeta{Index: s.SnapshotIndex, Term: s.SnapshotTerm,
				Membership: raftcore.Membership{Voters: s.Voters, Learners: s.Learners}},
			SnapOffset: s.Offset, SnapData: s.Data, SnapDone: s.Done}
	case wire.TypeInstallSnapshotReply:
		if err := wire.DecodeInstallSnapshotReply(body, &c.isr); err != nil {
			return err
		}
		s := &c.isr
		*m = raftcore.Message{Type: raftcore.MsgSnapResp, Term: s.Term, From: s.From, To: s.To,
			Snapshot: raftcore.SnapshotMeta{Index: s.SnapshotIndex, Term: s.SnapshotTerm}, SnapOffset: s.NextOffset,
			Reject: s.Reject, SnapDone: s.Done}
	case wire.TypeTimeoutNow:
		if err := wire.DecodeTimeoutNow(body, &c.tn); err != nil {
			return err
		}
		*m = raftcore.Message{Type: raftcore.MsgTimeoutNow, Term: c.tn.Term, From: c.tn.From, To: c.tn.To}
	case wire.TypeReadIndex:
		if err := wire.DecodeReadIndex(body, &c.ri); err != nil {
			return err
		}
		if len(c.ri.Context) != 8 {
			return fmt.Errorf("%w: read index context of %d bytes, want 8", wire.ErrMalformed, len(c.ri.Context))
		}
		*m = raftcore.Message{Type: raftcore.MsgReadIndex, Term: c.ri.Term, From: c.ri.From, To: c.ri.To,
			Context: binary.LittleEndian.Uint64(c.ri.Context)}
	case wire.TypeReadIndexReply:
		if err := wire.DecodeReadIndexReply(body, &c.rir); err != nil {
			return err
		}
		if len(c.rir.Context) != 8 {
			return fmt.Errorf("%w: read index context of %d bytes, want 8", wire.ErrMalformed, len(c.rir.Context))
		}
		*m = raftcore.Message{Type: raftcore.MsgReadIndexResp, Term: c.rir.Term, From: c.rir.From, To: c.rir.To,
			Index: c.rir.Index, Reject: c.rir.Index == 0, Context: binary.LittleEndian.Uint64(c.rir.Context)}
	default:
		return fmt.Errorf("%w: %v is not a raft peer message", wire.ErrUnknownType, t)
	}
	return nil
}
