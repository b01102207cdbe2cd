package wire

import "github.com/consensusbench/consensusbench/internal/assert"

// Raft messages. Every one carries Term, From and To so that a message is self-describing
// for simulators, logs and multiplexed connections. Node IDs are nonzero in a cluster; wire
// does not check that (raftcore does).

// EntryType says how the state machine reads an entry's Data. wire carries the byte as is;
// raftcore gives the values their meaning.
type EntryType uint8

// Entry types used by raftcore.
const (
	EntryNormal     EntryType = 0 // Data is a client command batch
	EntryConfChange EntryType = 1 // Data is an encoded membership change
	EntryNoop       EntryType = 2 // a new leader's empty entry (Raft §5.4.2, §8)
)

// Entry is one Raft log entry. Its index is not sent: see AppendEntries.
type Entry struct {
	Term uint64
	Type EntryType
	Data []byte
}

const entryFixedSize = sizeU64 + sizeU8 + sizeLen

// AppendEntries replicates entries and doubles as the heartbeat (Raft §5.3). Entry i has
// index PrevIndex+1+i.
type AppendEntries struct {
	Term      uint64
	From      uint64
	To        uint64
	PrevIndex uint64 // index of the entry immediately preceding Entries
	PrevTerm  uint64 // term of that entry
	Commit    uint64 // leader's commit index
	// Seq is a leader-assigned round number echoed in the reply, so the leader can tell
	// which round a follower has answered (ReadIndex quorum checks, pipelining, stale
	// replies).
	Seq     uint64
	Entries []Entry
}

const appendEntriesFixedSize = 7*sizeU64 + sizeCount

// EntryIndex returns the log index of m.Entries[i].
func (m *AppendEntries) EntryIndex(i int) uint64 { return m.PrevIndex + 1 + uint64(i) }

// LastIndex returns the index of the last entry, or PrevIndex when there are none.
func (m *AppendEntries) LastIndex() uint64 { return m.PrevIndex + uint64(len(m.Entries)) }

// Type implements Message.
func (*AppendEntries) Type() Type { return TypeAppendEntries }

// Size implements Message.
func (m *AppendEntries) Size() int {
	n := appendEntriesFixedSize + entryFixedSize*len(m.Entries)
	for i := range m.Entries {
		n += len(m.Entries[i].Data)
	}
	return n
}

// AppendBody implements Message.
func (m *AppendEntries) AppendBody(dst []byte) []byte { return AppendAppendEntries(dst, m) }

// Decode implements Message.
func (m *AppendEntries) Decode(body []byte) error { return DecodeAppendEntries(body, m) }

// AppendAppendEntries appends the encoded body of m to dst. This is the replication hot
// path, so it writes at computed offsets into the once-grown slice instead of appending
// field by field.
func AppendAppendEntries(dst []byte, m *AppendEntries) []byte {
	if len(m.Entries) > MaxCount {
		assert.Failf("wire: AppendEntries with %d entries exceeds MaxCount %d", len(m.Entries), MaxCount)
	}
	n := m.Size()
	dst = grow(dst, n)
	start := len(dst)
	b := dst[start : start+n]
	le.PutUint64(b[0:], m.Term)
	le.PutUint64(b[8:], m.From)
	le.PutUint64(b[16:], m.To)
	le.PutUint64(b[24:], m.PrevIndex)
	le.PutUint64(b[32:], m.PrevTerm)
	le.PutUint64(b[40:], m.Commit)
	le.PutUint64(b[48:], m.Seq)
	le.PutUint32(b[56:], uint32(len(m.Entries)))
	// Loop over a local copy of the slice header: the stores into b could otherwise make
	// the compiler reload m.Entries on every iteration.
	ents := m.Entries
	i := appendEntriesFixedSize
	for k := range ents {
		e := &ents[k]
		h := b[i : i+entryFixedSize]
		le.PutUint64(h[0:], e.Term)
		h[8] = byte(e.Type)
		le.PutUint32(h[9:], uint32(len(e.Data)))
		i += entryFixedSize
		i += copy(b[i:], e.Data)
	}
	return dst[:start+n]
}

// DecodeAppendEntries fills m from body. Entry data aliases body; m.Entries reuses its
// capacity.
func DecodeAppendEntries(body []byte, m *AppendEntries) error {
	if len(body) < appendEntriesFixedSize {
		return ErrMalformed
	}
	m.Term = le.Uint64(body[0:])
	m.From = le.Uint64(body[8:])
	m.To = le.Uint64(body[16:])
	m.PrevIndex = le.Uint64(body[24:])
	m.PrevTerm = le.Uint64(body[32:])
	m.Commit = le.Uint64(body[40:])
	m.Seq = le.Uint64(body[48:])
	count := le.Uint32(body[56:])
	b := body[appendEntriesFixedSize:]
	if count > MaxCount || uint64(count)*entryFixedSize > uint64(len(b)) {
		return ErrMalformed
	}
	ents := resize(m.Entries, int(count))
	m.Entries = ents
	for k := range ents {
		if len(b) < entryFixedSize {
			return ErrMalformed
		}
		e := &ents[k]
		e.Term = le.Uint64(b[0:])
		e.Type = EntryType(b[8])
		l := uint64(le.Uint32(b[9:]))
		b = b[entryFixedSize:]
		if l > uint64(len(b)) {
			return ErrMalformed
		}
		// An empty entry decodes as nil, like every empty byte string.
		var data []byte
		if l != 0 {
			data = b[:l:l]
		}
		e.Data = data
		b = b[l:]
	}
	if len(b) != 0 {
		return ErrMalformed
	}
	return nil
}

// AppendEntriesReply answers an AppendEntries (Raft §5.3). On rejection the follower
// reports the term of its entry at the rejected PrevIndex and the first index it holds for
// that term (or ConflictTerm 0 and ConflictIndex = its last index + 1 when its log is
// shorter), so the leader skips a whole term per round trip (Raft §5.3, fast backtracking).
type AppendEntriesReply struct {
	Term    uint64
	From    uint64
	To      uint64
	Seq     uint64 // AppendEntries.Seq of the message answered
	Success bool
	// MatchIndex is, on success, the index of the last entry known to match the leader's
	// log (PrevIndex + len(Entries)).
	MatchIndex uint64
	// RejectIndex is, on rejection, the PrevIndex of the rejected AppendEntries, so the
	// leader can ignore a stale rejection.
	RejectIndex   uint64
	ConflictTerm  uint64
	ConflictIndex uint64
}

const appendEntriesReplySize = 8*sizeU64 + sizeBool

// Type implements Message.
func (*AppendEntriesReply) Type() Type { return TypeAppendEntriesReply }

// Size implements Message.
func (*AppendEntriesReply) Size() int { return appendEntriesReplySize }

// AppendBody implements Message.
func (m *AppendEntriesReply) AppendBody(dst []byte) []byte { return AppendAppendEntriesReply(dst, m) }

// Decode implements Message.
func (m *AppendEntriesReply) Decode(body []byte) error { return DecodeAppendEntriesReply(body, m) }

// AppendAppendEntriesReply appends the encoded body of m to dst.
func AppendAppendEntriesReply(dst []byte, m *AppendEntriesReply) []byte {
	dst = grow(dst, appendEntriesReplySize)
	dst = appendU64(dst, m.Term)
	dst = appendU64(dst, m.From)
	dst = appendU64(dst, m.To)
	dst = appendU64(dst, m.Seq)
	dst = appendBool(dst, m.Success)
	dst = appendU64(dst, m.MatchIndex)
	dst = appendU64(dst, m.RejectIndex)
	dst = appendU64(dst, m.ConflictTerm)
	return appendU64(dst, m.ConflictIndex)
}

// DecodeAppendEntriesReply fills m from body.
func DecodeAppendEntriesReply(body []byte, m *AppendEntriesReply) error {
	d := decoder{b: body}
	m.Term = d.u64()
	m.From = d.u64()
	m.To = d.u64()
	m.Seq = d.u64()
	m.Success = d.boolean()
	m.MatchIndex = d.u64()
	m.RejectIndex = d.u64()
	m.ConflictTerm = d.u64()
	m.ConflictIndex = d.u64()
	return d.finish()
}

// RequestVote asks for a vote (Raft §5.2, §5.4.1). With PreVote set it is the pre-vote round
// of the thesis (§9.6): Term is the term the candidate would campaign in, and granting it
// changes no state. LeaderTransfer marks a campaign started by TimeoutNow (thesis §3.10),
// which voters honour even while they believe a leader is alive.
type RequestVote struct {
	Term           uint64
	From           uint64
	To             uint64
	LastLogIndex   uint64
	LastLogTerm    uint64
	PreVote        bool
	LeaderTransfer bool
}

const (
	voteFlagPreVote        = 1 << 0
	voteFlagLeaderTransfer = 1 << 1
	voteFlagGranted        = 1 << 2

	requestVoteSize      = 5*sizeU64 + sizeU8
	requestVoteReplySize = 3*sizeU64 + sizeU8
)

// Type implements Message.
func (*RequestVote) Type() Type { return TypeRequestVote }

// Size implements Message.
func (*RequestVote) Size() int { return requestVoteSize }

// AppendBody implements Message.
func (m *RequestVote) AppendBody(dst []byte) []byte { return AppendRequestVote(dst, m) }

// Decode implements Message.
func (m *RequestVote) Decode(body []byte) error { return DecodeRequestVote(body, m) }

// AppendRequestVote appends the encoded body of m to dst.
func AppendRequestVote(dst []byte, m *RequestVote) []byte {
	dst = grow(dst, requestVoteSize)
	dst = appendU64(dst, m.Term)
	dst = appendU64(dst, m.From)
	dst = appendU64(dst, m.To)
	dst = appendU64(dst, m.LastLogIndex)
	dst = appendU64(dst, m.LastLogTerm)
	var f uint8
	if m.PreVote {
		f |= voteFlagPreVote
	}
	if m.LeaderTransfer {
		f |= voteFlagLeaderTransfer
	}
	return appendU8(dst, f)
}

// DecodeRequestVote fills m from body.
func DecodeRequestVote(body []byte, m *RequestVote) error {
	d := decoder{b: body}
	m.Term = d.u64()
	m.From = d.u64()
	m.To = d.u64()
	m.LastLogIndex = d.u64()
	m.LastLogTerm = d.u64()
	f := d.flags(voteFlagPreVote | voteFlagLeaderTransfer)
	m.PreVote = f&voteFlagPreVote != 0
	m.LeaderTransfer = f&voteFlagLeaderTransfer != 0
	return d.finish()
}

// RequestVoteReply answers a RequestVote; PreVote echoes the request's flag.
type RequestVoteReply struct {
	Term    uint64
	From    uint64
	To      uint64
	Granted bool
	PreVote bool
}

// Type implements Message.
func (*RequestVoteReply) Type() Type { return TypeRequestVoteReply }

// Size implements Message.
func (*RequestVoteReply) Size() int { return requestVoteReplySize }

// AppendBody implements Message.
func (m *RequestVoteReply) AppendBody(dst []byte) []byte { return AppendRequestVoteReply(dst, m) }

// Decode implements Message.
func (m *RequestVoteReply) Decode(body []byte) error { return DecodeRequestVoteReply(body, m) }

// AppendRequestVoteReply appends the encoded body of m to dst.
func AppendRequestVoteReply(dst []byte, m *RequestVoteReply) []byte {
	dst = grow(dst, requestVoteReplySize)
	dst = appendU64(dst, m.Term)
	dst = appendU64(dst, m.From)
	dst = appendU64(dst, m.To)
	var f uint8
	if m.Granted {
		f |= voteFlagGranted
	}
	if m.PreVote {
		f |= voteFlagPreVote
	}
	return appendU8(dst, f)
}

// DecodeRequestVoteReply fills m from body.
func DecodeRequestVoteReply(body []byte, m *RequestVoteReply) error {
	d := decoder{b: body}
	m.Term = d.u64()
	m.From = d.u64()
	m.To = d.u64()
	f := d.flags(voteFlagGranted | voteFlagPreVote)
	m.Granted = f&voteFlagGranted != 0
	m.PreVote = f&voteFlagPreVote != 0
	return d.finish()
}

// InstallSnapshot carries one chunk of a snapshot (Raft §7). Every chunk repeats the
// snapshot's identity and membership so a receiver can validate any chunk on its own.
type InstallSnapshot struct {
	Term          uint64
	From          uint64
	To            uint64
	SnapshotIndex uint64 // last index the snapshot covers
	SnapshotTerm  uint64 // term of that entry
	// Membership at SnapshotIndex. VotersOutgoing is non-empty only inside a joint
	// configuration (Raft §6: C_old while C_old,new is in effect).
	Voters         []uint64
	VotersOutgoing []uint64
	Learners       []uint64
	Offset         uint64 // byte offset of Data in the snapshot
	Done           bool   // last chunk
	Data           []byte
}

const installSnapshotFixedSize = 6*sizeU64 + 3*sizeCount + sizeBool + sizeLen

// Type implements Message.
func (*InstallSnapshot) Type() Type { return TypeInstallSnapshot }

// Size implements Message.
func (m *InstallSnapshot) Size() int {
	return installSnapshotFixedSize + sizeU64*(len(m.Voters)+len(m.VotersOutgoing)+len(m.Learners)) + len(m.Data)
}

// AppendBody implements Message.
func (m *InstallSnapshot) AppendBody(dst []byte) []byte { return AppendInstallSnapshot(dst, m) }

// Decode implements Message.
func (m *InstallSnapshot) Decode(body []byte) error { return DecodeInstallSnapshot(body, m) }

// AppendInstallSnapshot appends the encoded body of m to dst.
func AppendInstallSnapshot(dst []byte, m *InstallSnapshot) []byte {
	dst = grow(dst, m.Size())
	dst = appendU64(dst, m.Term)
	dst = appendU64(dst, m.From)
	dst = appendU64(dst, m.To)
	dst = appendU64(dst, m.SnapshotIndex)
	dst = appendU64(dst, m.SnapshotTerm)
	dst = appendU64s(dst, m.Voters)
	dst = appendU64s(dst, m.VotersOutgoing)
	dst = appendU64s(dst, m.Learners)
	dst = appendU64(dst, m.Offset)
	dst = appendBool(dst, m.Done)
	return appendBytes(dst, m.Data)
}

// DecodeInstallSnapshot fills m from body. Data aliases body; the ID slices reuse their
// capacity.
func DecodeInstallSnapshot(body []byte, m *InstallSnapshot) error {
	d := decoder{b: body}
	m.Term = d.u64()
	m.From = d.u64()
	m.To = d.u64()
	m.SnapshotIndex = d.u64()
	m.SnapshotTerm = d.u64()
	m.Voters = d.u64s(m.Voters)
	m.VotersOutgoing = d.u64s(m.VotersOutgoing)
	m.Learners = d.u64s(m.Learners)
	m.Offset = d.u64()
	m.Done = d.boolean()
	m.Data = d.bytes()
	return d.finish()
}

// InstallSnapshotReply acknowledges a chunk. NextOffset is the byte offset the follower
// expects next (so a lost or duplicated chunk resumes at the right place); Done says the
// follower has durably installed the whole snapshot (sent only after its fsync); Reject says
// the follower refused the snapshot (stale term or index) and the leader should restart it.
type InstallSnapshotReply struct {
	Term          uint64
	From          uint64
	To            uint64
	SnapshotIndex uint64
	SnapshotTerm  uint64
	NextOffset    uint64
	Reject        bool
	Done          bool
}

const installSnapshotReplySize = 6*sizeU64 + 2*sizeBool

// Type implements Message.
func (*InstallSnapshotReply) Type() Type { return TypeInstallSnapshotReply }

// Size implements Message.
func (*InstallSnapshotReply) Size() int { return installSnapshotReplySize }

// AppendBody implements Message.
func (m *InstallSnapshotReply) AppendBody(dst []byte) []byte {
	return AppendInstallSnapshotReply(dst, m)
}

// Decode implements Message.
func (m *InstallSnapshotReply) Decode(body []byte) error { return DecodeInstallSnapshotReply(body, m) }

// AppendInstallSnapshotReply appends the encoded body of m to dst.
func AppendInstallSnapshotReply(dst []byte, m *InstallSnapshotReply) []byte {
	dst = grow(dst, installSnapshotReplySize)
	dst = appendU64(dst, m.Term)
	dst = appendU64(dst, m.From)
	dst = appendU64(dst, m.To)
	dst = appendU64(dst, m.SnapshotIndex)
	dst = appendU64(dst, m.SnapshotTerm)
	dst = appendU64(dst, m.NextOffset)
	dst = appendBool(dst, m.Reject)
	return appendBool(dst, m.Done)
}

// DecodeInstallSnapshotReply fills m from body.
func DecodeInstallSnapshotReply(body []byte, m *InstallSnapshotReply) error {
	d := decoder{b: body}
	m.Term = d.u64()
	m.From = d.u64()
	m.To = d.u64()
	m.SnapshotIndex = d.u64()
	m.SnapshotTerm = d.u64()
	m.NextOffset = d.u64()
	m.Reject = d.boolean()
	m.Done = d.boolean()
	return d.finish()
}

// Heartbeat is the leader's empty round (Raft §5.2): it asserts leadership, carries the
// commit index the follower may apply (at most the follower's known match, so a follower
// never commits entries it has not been shown to hold), and Context, the leader's heartbeat
// round, which the follower echoes so that one round confirms every ReadIndex read that
// waits for it (thesis §6.4). It differs from an empty AppendEntries: no log check.
type Heartbeat struct {
	Term    uint64
	From    uint64
	To      uint64
	Commit  uint64
	Context uint64
}

const heartbeatSize = 5 * sizeU64

// Type implements Message.
func (*Heartbeat) Type() Type { return TypeHeartbeat }

// Size implements Message.
func (*Heartbeat) Size() int { return heartbeatSize }

// AppendBody implements Message.
func (m *Heartbeat) AppendBody(dst []byte) []byte { return AppendHeartbeat(dst, m) }

// Decode implements Message.
func (m *Heartbeat) Decode(body []byte) error { return DecodeHeartbeat(body, m) }

// AppendHeartbeat appends the encoded body of m to dst.
func AppendHeartbeat(dst []byte, m *Heartbeat) []byte {
	dst = grow(dst, heartbeatSize)
	dst = appendU64(dst, m.Term)
	dst = appendU64(dst, m.From)
	dst = appendU64(dst, m.To)
	dst = appendU64(dst, m.Commit)
	return appendU64(dst, m.Context)
}

// DecodeHeartbeat fills m from body.
func DecodeHeartbeat(body []byte, m *Heartbeat) error {
	d := decoder{b: body}
	m.Term = d.u64()
	m.From = d.u64()
	m.To = d.u64()
	m.Commit = d.u64()
	m.Context = d.u64()
	return d.finish()
}

// HeartbeatReply answers a Heartbeat: Context echoes the round and LastIndex is the
// follower's last log index, so a leader that paused replication to it resumes.
type HeartbeatReply struct {
	Term      uint64
	From      uint64
	To        uint64
	Context   uint64
	LastIndex uint64
}

const heartbeatReplySize = 5 * sizeU64

// Type implements Message.
func (*HeartbeatReply) Type() Type { return TypeHeartbeatReply }

// Size implements Message.
func (*HeartbeatReply) Size() int { return heartbeatReplySize }

// AppendBody implements Message.
func (m *HeartbeatReply) AppendBody(dst []byte) []byte { return AppendHeartbeatReply(dst, m) }

// Decode implements Message.
func (m *HeartbeatReply) Decode(body []byte) error { return DecodeHeartbeatReply(body, m) }

// AppendHeartbeatReply appends the encoded body of m to dst.
func AppendHeartbeatReply(dst []byte, m *HeartbeatReply) []byte {
	dst = grow(dst, heartbeatReplySize)
	dst = appendU64(dst, m.Term)
	dst = appendU64(dst, m.From)
	dst = appendU64(dst, m.To)
	dst = appendU64(dst, m.Context)
	return appendU64(dst, m.LastIndex)
}

// DecodeHeartbeatReply fills m from body.
func DecodeHeartbeatReply(body []byte, m *HeartbeatReply) error {
	d := decoder{b: body}
	m.Term = d.u64()
	m.From = d.u64()
	m.To = d.u64()
	m.Context = d.u64()
	m.LastIndex = d.u64()
	return d.finish()
}

// TimeoutNow tells the leadership-transfer target to campaign at once (Raft thesis §3.10).
type TimeoutNow struct {
	Term uint64
	From uint64
	To   uint64
}

const timeoutNowSize = 3 * sizeU64

// Type implements Message.
func (*TimeoutNow) Type() Type { return TypeTimeoutNow }

// Size implements Message.
func (*TimeoutNow) Size() int { return timeoutNowSize }

// AppendBody implements Message.
func (m *TimeoutNow) AppendBody(dst []byte) []byte { return AppendTimeoutNow(dst, m) }

// Decode implements Message.
func (m *TimeoutNow) Decode(body []byte) error { return DecodeTimeoutNow(body, m) }

// AppendTimeoutNow appends the encoded body of m to dst.
func AppendTimeoutNow(dst []byte, m *TimeoutNow) []byte {
	dst = grow(dst, timeoutNowSize)
	dst = appendU64(dst, m.Term)
	dst = appendU64(dst, m.From)
	return appendU64(dst, m.To)
}

// DecodeTimeoutNow fills m from body.
func DecodeTimeoutNow(body []byte, m *TimeoutNow) error {
	d := decoder{b: body}
	m.Term = d.u64()
	m.From = d.u64()
	m.To = d.u64()
	return d.finish()
}

// ReadIndex asks the leader for a read index (Raft thesis §6.4): sent by a follower that
// serves a linearizable read. Context identifies the read and is echoed in the reply.
type ReadIndex struct {
	Term    uint64
	From    uint64
	To      uint64
	Context []byte
}

const readIndexFixedSize = 3*sizeU64 + sizeLen

// Type implements Message.
func (*ReadIndex) Type() Type { return TypeReadIndex }

// Size implements Message.
func (m *ReadIndex) Size() int { return readIndexFixedSize + len(m.Context) }

// AppendBody implements Message.
func (m *ReadIndex) AppendBody(dst []byte) []byte { return AppendReadIndex(dst, m) }

// Decode implements Message.
func (m *ReadIndex) Decode(body []byte) error { return DecodeReadIndex(body, m) }

// AppendReadIndex appends the encoded body of m to dst.
func AppendReadIndex(dst []byte, m *ReadIndex) []byte {
	dst = grow(dst, m.Size())
	dst = appendU64(dst, m.Term)
	dst = appendU64(dst, m.From)
	dst = appendU64(dst, m.To)
	return appendBytes(dst, m.Context)
}

// DecodeReadIndex fills m from body; Context aliases body.
func DecodeReadIndex(body []byte, m *ReadIndex) error {
	d := decoder{b: body}
	m.Term = d.u64()
	m.From = d.u64()
	m.To = d.u64()
	m.Context = d.bytes()
	return d.finish()
}

// ReadIndexReply carries the leader's commit index once it has confirmed its leadership
// for the read identified by Context. Index 0 means the read was refused (no leader, or
// the leader has not committed an entry in its term yet); log indices start at 1.
type ReadIndexReply struct {
	Term    uint64
	From    uint64
	To      uint64
	Index   uint64
	Context []byte
}

const readIndexReplyFixedSize = 4*sizeU64 + sizeLen

// Type implements Message.
func (*ReadIndexReply) Type() Type { return TypeReadIndexReply }

// Size implements Message.
func (m *ReadIndexReply) Size() int { return readIndexReplyFixedSize + len(m.Context) }

// AppendBody implements Message.
func (m *ReadIndexReply) AppendBody(dst []byte) []byte { return AppendReadIndexReply(dst, m) }

// Decode implements Message.
func (m *ReadIndexReply) Decode(body []byte) error { return DecodeReadIndexReply(body, m) }

// AppendReadIndexReply appends the encoded body of m to dst.
func AppendReadIndexReply(dst []byte, m *ReadIndexReply) []byte {
	dst = grow(dst, m.Size())
	dst = appendU64(dst, m.Term)
	dst = appendU64(dst, m.From)
	dst = appendU64(dst, m.To)
	dst = appendU64(dst, m.Index)
	return appendBytes(dst, m.Context)
}

// DecodeReadIndexReply fills m from body; Context aliases body.
func DecodeReadIndexReply(body []byte, m *ReadIndexReply) error {
	d := decoder{b: body}
	m.Term = d.u64()
	m.From = d.u64()
	m.To = d.u64()
	m.Index = d.u64()
	m.Context = d.bytes()
	return d.finish()
}
