package wire

// Every message type implements Message.
var (
	_ Message = (*PeerHello)(nil)
	_ Message = (*PeerAuth)(nil)
	_ Message = (*AppendEntries)(nil)
	_ Message = (*AppendEntriesReply)(nil)
	_ Message = (*RequestVote)(nil)
	_ Message = (*RequestVoteReply)(nil)
	_ Message = (*InstallSnapshot)(nil)
	_ Message = (*InstallSnapshotReply)(nil)
	_ Message = (*TimeoutNow)(nil)
	_ Message = (*ReadIndex)(nil)
	_ Message = (*ReadIndexReply)(nil)
	_ Message = (*Heartbeat)(nil)
	_ Message = (*HeartbeatReply)(nil)
	_ Message = (*Request)(nil)
	_ Message = (*PrePrepare)(nil)
	_ Message = (*Prepare)(nil)
	_ Message = (*Commit)(nil)
	_ Message = (*PBFTReply)(nil)
	_ Message = (*Checkpoint)(nil)
	_ Message = (*ViewChange)(nil)
	_ Message = (*NewView)(nil)
	_ Message = (*FetchState)(nil)
	_ Message = (*StateChunk)(nil)
	_ Message = (*ClientRequest)(nil)
	_ Message = (*ClientReply)(nil)
)

// NewMessage returns a new, zero message of type t, or nil for an unknown type. It
// allocates: hot paths keep one struct per type and decode into it again.
func NewMessage(t Type) Message {
	switch t {
	case TypePeerHello:
		return new(PeerHello)
	case TypePeerAuth:
		return new(PeerAuth)
	case TypeAppendEntries:
		return new(AppendEntries)
	case TypeAppendEntriesReply:
		return new(AppendEntriesReply)
	case TypeRequestVote:
		return new(RequestVote)
	case TypeRequestVoteReply:
		return new(RequestVoteReply)
	case TypeInstallSnapshot:
		return new(InstallSnapshot)
	case TypeInstallSnapshotReply:
		return new(InstallSnapshotReply)
	case TypeTimeoutNow:
		return new(TimeoutNow)
	case TypeReadIndex:
		return new(ReadIndex)
	case TypeReadIndexReply:
		return new(ReadIndexReply)
	case TypeHeartbeat:
		return new(Heartbeat)
	case TypeHeartbeatReply:
		return new(HeartbeatReply)
	case TypePBFTRequest:
		return new(Request)
	case TypePrePrepare:
		return new(PrePrepare)
	case TypePrepare:
		return new(Prepare)
	case TypeCommit:
		return new(Commit)
	case TypePBFTReply:
		return new(PBFTReply)
	case TypeCheckpoint:
		return new(Checkpoint)
	case TypeViewChange:
		return new(ViewChange)
	case TypeNewView:
		return new(NewView)
	case TypeFetchState:
		return new(FetchState)
	case TypeStateChunk:
		return new(StateChunk)
	case TypeFetchBatch:
		return new(FetchBatch)
	case TypeBatch:
		return new(Batch)
	case TypeClientRequest:
		return new(ClientRequest)
	case TypeClientReply:
		return new(ClientReply)
	}
	return nil
}

// DecodeMessage decodes the body of f into m, which must be of f's type (ErrUnknownType
// otherwise: the caller dispatched on the wrong type).
func DecodeMessage(f Frame, m Message) error {
	if m.Type() != f.Type {
		return ErrUnknownType
	}
	return m.Decode(f.Body)
}
