package raftcore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
)

// None is the zero node ID: no leader, no vote.
const None uint64 = 0

// Limits on the shape of a cluster and on buffers the core keeps. Config fields bound the rest.
const (
	// MaxMembers bounds voters plus learners; quorum math uses fixed scratch arrays of this size.
	MaxMembers = 64
	// MaxHeldMessages bounds the messages held back until a persistence acknowledgement
	// (votes, vote requests, snapshot acknowledgements). Beyond it the oldest is dropped,
	// which Raft tolerates like any lost message.
	MaxHeldMessages = 1024
	// MaxPendingReads bounds ReadIndex requests waiting for a heartbeat round.
	MaxPendingReads = 4096
	// MaxEntryBytes bounds one entry's payload (the log stores sizes in 32 bits).
	MaxEntryBytes = 1 << 30
	// MaxTerm bounds every term a message may carry: far beyond what elections reach
	// (one per election timeout for millions of years), far enough below 2^64 that no
	// increment wraps.
	MaxTerm = 1 << 62
	// MaxIndex bounds every log index a message may carry, for the same reason.
	MaxIndex = 1 << 62
)

// Errors returned at the API boundary. Invariant violations panic instead.
var (
	// ErrNotLeader: the call needs the leader. NotLeaderError wraps it with a hint.
	ErrNotLeader = errors.New("raftcore: not the leader")
	// ErrProposalDropped: the leader is transferring leadership or over MaxUncommittedBytes.
	ErrProposalDropped = errors.New("raftcore: proposal dropped")
	// ErrConfChangePending: a membership change is still uncommitted, or the leader has not
	// yet committed an entry of its term (thesis §4.1 safety rule).
	ErrConfChangePending = errors.New("raftcore: membership change not allowed yet")
	// ErrBadConfChange: the change is not valid against the current membership.
	ErrBadConfChange = errors.New("raftcore: invalid membership change")
	// ErrBadTransfer: the leadership transfer target is not a voter of the configuration.
	ErrBadTransfer = errors.New("raftcore: invalid leadership transfer target")
	// ErrTooManyReads: MaxPendingReads requests already wait for confirmation.
	ErrTooManyReads = errors.New("raftcore: too many pending reads")
	// ErrStepLocal: Step was given a message type the core only generates internally.
	ErrStepLocal = errors.New("raftcore: message type not accepted by Step")
	// ErrMalformed: Step was given a message no correct peer sends (a term beyond MaxTerm,
	// entries out of order or from a future term, an append that contradicts a committed
	// entry, an acknowledgement of entries the leader never had). It is rejected and
	// counted (RejectedMessages); the core's state is unchanged.
	ErrMalformed = errors.New("raftcore: malformed message from a peer")
	// ErrSnapshotTooOld: ReportSnapshot named an index at or below the current snapshot.
	ErrSnapshotTooOld = errors.New("raftcore: snapshot older than the current one")
	// ErrUnavailable: ReportSnapshot named an index not yet applied.
	ErrUnavailable = errors.New("raftcore: index not applied yet")
)

// NotLeaderError is returned by Propose, ProposeConfChange and TransferLeader on a node that is
// not the leader. errors.Is(err, ErrNotLeader) holds. Leader is the last known leader or None.
type NotLeaderError struct{ Leader uint64 }

func (e *NotLeaderError) Error() string {
	return fmt.Sprintf("raftcore: not the leader (leader hint %d)", e.Leader)
}

// Unwrap makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

// ReadOnlyMode selects how linearizable reads are confirmed (thesis §6.4).
type ReadOnlyMode uint8

const (
	// ReadSafe confirms every batch of reads with a heartbeat round acknowledged by a quorum.
	ReadSafe ReadOnlyMode = iota
	// ReadLease serves reads without a round while the leader's lease holds (thesis §6.4.1).
	// It requires CheckQuorum and assumes clocks drift by at most Config.LeaseDriftTicks over
	// an election timeout. Outside the lease it falls back to ReadSafe.
	ReadLease
)

// Config configures a Node. Zero limits are rejected by validate, not defaulted, except where
// a field says otherwise; DefaultConfig gives sensible values.
type Config struct {
	// ID is this node's ID, nonzero.
	ID uint64

	// Membership is the initial configuration for a fresh cluster (no restored state). It is
	// ignored when Snapshot or Entries carry a configuration.
	Membership Membership

	// Restored state, from the application's storage (all zero for a fresh node).
	// HardState is the last durable term, vote and commit.
	HardState HardState
	// Snapshot is the latest durable snapshot; its Data is kept (not copied) to send to
	// lagging followers and must not be modified afterwards.
	Snapshot Snapshot
	// Entries are the durable log entries after Snapshot.Meta.Index, contiguous. Their Data is
	// copied into the core's log.
	Entries []Entry
	// Applied is the index up to which the application's state already reflects the log (at
	// least Snapshot.Meta.Index). Committed entries after it are handed out again.
	Applied uint64

	// ElectionTick: a follower that hears no leader for a random timeout in
	// [ElectionTick, 2*ElectionTick) ticks campaigns. Must exceed HeartbeatTick.
	ElectionTick int
	// HeartbeatTick: ticks between leader heartbeats.
	HeartbeatTick int
	// Rand draws election timeouts. Required: the core never uses a global RNG.
	Rand *rand.Rand

	// PreVote runs a pre-election before bumping the term (thesis §9.6).
	PreVote bool
	// CheckQuorum makes a leader step down when it has not heard from a quorum within an
	// election timeout (thesis §6.2). Independently of it, nodes ignore vote requests while
	// they hear a leader (thesis §4.2.3), except those of a leadership transfer.
	CheckQuorum bool
	// ReadOnly selects safe (ReadIndex round) or lease-based reads.
	ReadOnly ReadOnlyMode
	// LeaseDriftTicks is subtracted from the election timeout to bound the lease, covering
	// clock drift between nodes and one tick of granularity. Must be in [1, ElectionTick)
	// when ReadOnly is ReadLease. The lease is measured in ticks: the driver must deliver
	// every tick that has come due (by a monotonic clock) before it steps any input, or a
	// leader resumed after a stall answers reads with a lease that expired (docs/RAFTCORE.md).
	LeaseDriftTicks int

	// MaxInflightMsgs bounds AppendEntries messages in flight to one follower.
	MaxInflightMsgs int
	// MaxInflightBytes bounds payload bytes in flight to one follower.
	MaxInflightBytes uint64
	// MaxSizePerMsg bounds the payload bytes of one AppendEntries (at least one entry is sent).
	MaxSizePerMsg uint64
	// MaxEntriesPerMsg bounds the entries in one AppendEntries.
	MaxEntriesPerMsg int
	// MaxBatchEntries bounds entries accepted by one Propose call.
	MaxBatchEntries int
	// MaxBatchBytes bounds payload bytes accepted by one Propose call.
	MaxBatchBytes uint64
	// MaxApplyBytes bounds the payload bytes of CommittedEntries in one Ready (at least one
	// entry is handed out).
	MaxApplyBytes uint64
	// MaxUncommittedBytes bounds payload bytes the leader holds uncommitted; proposals beyond
	// it fail with ErrProposalDropped.
	MaxUncommittedBytes uint64

	// SnapshotThreshold: the core asks for a snapshot (Ready.SnapshotRequest) once this many
	// entries have been applied since the last request. Zero disables the count bound.
	SnapshotThreshold uint64
	// SnapshotThresholdBytes: it also asks once this many payload bytes have been applied
	// since the last request, whichever bound comes first. The log between snapshots, which
	// the core holds in memory, is bounded by it. Zero disables the byte bound.
	SnapshotThresholdBytes uint64
	// SnapshotRetainEntries: entries kept below a reported snapshot so that slightly lagging
	// followers catch up from the log instead of a snapshot.
	SnapshotRetainEntries uint64
	// SnapshotRetainBytes bounds, in payload bytes, the entries kept below a reported
	// snapshot (the smaller of the two bounds wins). Zero: only the entry count bounds it.
	SnapshotRetainBytes uint64
	// SnapshotChunkBytes is the data size of one InstallSnapshot chunk.
	SnapshotChunkBytes uint64
	// MaxSnapshotBytes bounds a snapshot a follower accepts from chunks.
	MaxSnapshotBytes uint64
}

// DefaultConfig returns a Config with the given ID, membership and RNG and production limits.
func DefaultConfig(id uint64, m Membership, rng *rand.Rand) Config {
	return Config{
		ID:                     id,
		Membership:             m,
		ElectionTick:           10,
		HeartbeatTick:          1,
		Rand:                   rng,
		PreVote:                true,
		CheckQuorum:            true,
		ReadOnly:               ReadSafe,
		LeaseDriftTicks:        2,
		MaxInflightMsgs:        256,
		MaxInflightBytes:       8 << 20,
		MaxSizePerMsg:          1 << 20,
		MaxEntriesPerMsg:       4096,
		MaxBatchEntries:        4096,
		MaxBatchBytes:          4 << 20,
		MaxApplyBytes:          16 << 20,
		MaxUncommittedBytes:    64 << 20,
		SnapshotThreshold:      100000,
		SnapshotThresholdBytes: 64 << 20,
		SnapshotRetainEntries:  5000,
		SnapshotRetainBytes:    8 << 20,
		SnapshotChunkBytes:     1 << 20,
		MaxSnapshotBytes:       1 << 30,
	}
}

// validate names every bad field in one error.
func (c *Config) validate() error {
	var bad []string
	add := func(f string, args ...any) { bad = append(bad, fmt.Sprintf(f, args...)) }
	if c.ID == None {
		add("ID must be nonzero")
	}
	if c.HeartbeatTick <= 0 {
		add("HeartbeatTick must be > 0")
	}
	if c.ElectionTick <= c.HeartbeatTick {
		add("ElectionTick must be > HeartbeatTick")
	}
	if c.Rand == nil {
		add("Rand must be set (seeded RNG)")
	}
	if c.ReadOnly > ReadLease {
		add("ReadOnly unknown mode %d", c.ReadOnly)
	}
	if c.ReadOnly == ReadLease && !c.CheckQuorum {
		add("ReadOnly=ReadLease requires CheckQuorum")
	}
	if c.LeaseDriftTicks < 0 || (c.ReadOnly == ReadLease && (c.LeaseDriftTicks < 1 || c.LeaseDriftTicks >= c.ElectionTick)) {
		// At least one tick: a follower's first tick after it heard the leader may come at
		// once, so it may vote after ElectionTick-1 tick intervals of real time.
		add("LeaseDriftTicks must be in [0, ElectionTick), and at least 1 with ReadLease")
	}
	if c.MaxInflightMsgs <= 0 {
		add("MaxInflightMsgs must be > 0")
	}
	if c.MaxInflightBytes == 0 {
		add("MaxInflightBytes must be > 0")
	}
	if c.MaxSizePerMsg == 0 {
		add("MaxSizePerMsg must be > 0")
	}
	if c.MaxEntriesPerMsg <= 0 {
		add("MaxEntriesPerMsg must be > 0")
	}
	if c.MaxBatchEntries <= 0 {
		add("MaxBatchEntries must be > 0")
	}
	if c.MaxBatchBytes == 0 || c.MaxBatchBytes > MaxEntryBytes {
		add("MaxBatchBytes must be in [1, MaxEntryBytes]")
	}
	if c.MaxApplyBytes == 0 {
		add("MaxApplyBytes must be > 0")
	}
	if c.MaxUncommittedBytes < c.MaxBatchBytes {
		add("MaxUncommittedBytes must be >= MaxBatchBytes")
	}
	if c.SnapshotChunkBytes == 0 {
		add("SnapshotChunkBytes must be > 0")
	}
	if c.MaxSnapshotBytes == 0 {
		add("MaxSnapshotBytes must be > 0")
	}
	hasRestored := c.Snapshot.Meta.Index > 0 || len(c.Entries) > 0
	if !hasRestored {
		if err := c.Membership.validate(); err != nil {
			add("Membership: %v", err)
		}
	}
	if c.Snapshot.Meta.Index > 0 {
		if err := c.Snapshot.Meta.Membership.validate(); err != nil {
			add("Snapshot.Meta.Membership: %v", err)
		}
	}
	for i := range c.Entries {
		want := c.Snapshot.Meta.Index + 1 + uint64(i)
		if c.Entries[i].Index != want {
			add("Entries[%d].Index = %d, want %d (contiguous after the snapshot)", i, c.Entries[i].Index, want)
			break
		}
		if c.Entries[i].Term == 0 || c.Entries[i].Term > c.HardState.Term {
			add("Entries[%d].Term = %d, must be in [1, HardState.Term]", i, c.Entries[i].Term)
			break
		}
	}
	// HardState.Commit is not validated: a crash between the writes of one Ready may leave
	// it below the snapshot, and the commit index needs no durability; New clamps it into
	// [max(Snapshot.Meta.Index, Applied), last restored index].
	last := c.Snapshot.Meta.Index + uint64(len(c.Entries))
	if c.Applied < c.Snapshot.Meta.Index || c.Applied > last {
		add("Applied %d must be in [Snapshot.Meta.Index, last restored index %d]", c.Applied, last)
	}
	if len(bad) > 0 {
		return errors.New("raftcore: bad config: " + strings.Join(bad, "; "))
	}
	return nil
}

// Membership is a configuration: the voters and the non-voting learners. IDs are distinct
// and nonzero; a node is either a voter or a learner.
type Membership struct {
	Voters   []uint64
	Learners []uint64
}

func (m *Membership) validate() error {
	if len(m.Voters) == 0 {
		return errors.New("no voters")
	}
	if len(m.Voters)+len(m.Learners) > MaxMembers {
		return fmt.Errorf("more than MaxMembers=%d members", MaxMembers)
	}
	seen := make(map[uint64]bool, len(m.Voters)+len(m.Learners))
	for _, ids := range [][]uint64{m.Voters, m.Learners} {
		for _, id := range ids {
			if id == None || seen[id] {
				return fmt.Errorf("member ID %d is zero or repeated", id)
			}
			seen[id] = true
		}
	}
	return nil
}

// EntryType distinguishes application entries from the core's own.
type EntryType uint8

const (
	// EntryNormal carries an application payload.
	EntryNormal EntryType = iota
	// EntryConfChange carries an encoded ConfChange (see ConfChange.Encode).
	EntryConfChange
	// EntryNoop is the empty entry a new leader appends to commit its term (Raft §5.4.2, §8).
	EntryNoop
)

// Entry is one log entry. Data handed out by the core aliases the core's log memory: valid
// until the next Advance. Data handed in (Step, Config) is copied.
type Entry struct {
	Index uint64
	Term  uint64
	Type  EntryType
	Data  []byte
}

// ConfChangeType is the kind of a single-server membership change.
type ConfChangeType uint8

const (
	// AddVoter adds a new voter, or promotes a learner.
	AddVoter ConfChangeType = iota + 1
	// AddLearner adds a new learner, or demotes a voter.
	AddLearner
	// RemoveNode removes a voter or a learner.
	RemoveNode
)

// ConfChange is a single-server membership change (thesis §4.1).
type ConfChange struct {
	Type   ConfChangeType
	NodeID uint64
}

// ConfChangeSize is the encoded size of a ConfChange.
const ConfChangeSize = 9

// Encode appends the 9-byte encoding (type, little-endian node ID) to dst.
func (cc ConfChange) Encode(dst []byte) []byte {
	dst = append(dst, byte(cc.Type))
	for i := 0; i < 8; i++ {
		dst = append(dst, byte(cc.NodeID>>(8*i)))
	}
	return dst
}

// DecodeConfChange decodes the payload of an EntryConfChange.
func DecodeConfChange(b []byte) (ConfChange, error) {
	if len(b) != ConfChangeSize || b[0] < byte(AddVoter) || b[0] > byte(RemoveNode) {
		return ConfChange{}, ErrBadConfChange
	}
	var id uint64
	for i := 0; i < 8; i++ {
		id |= uint64(b[1+i]) << (8 * i)
	}
	return ConfChange{Type: ConfChangeType(b[0]), NodeID: id}, nil
}

// HardState is the state that must be durable before votes or acknowledgements leave
// (Raft Figure 2 "persistent state", plus the commit index so restarts re-apply less).
type HardState struct {
	Term   uint64
	Vote   uint64
	Commit uint64
}

// IsEmpty reports whether hs is the zero HardState.
func (hs HardState) IsEmpty() bool { return hs == HardState{} }

// SnapshotMeta describes a snapshot: the last entry it covers and the membership at it.
type SnapshotMeta struct {
	Index      uint64
	Term       uint64
	Membership Membership
}

// Snapshot is a snapshot's metadata and the application's state bytes.
type Snapshot struct {
	Meta SnapshotMeta
	Data []byte
}

// IsEmpty reports whether s holds no snapshot.
func (s *Snapshot) IsEmpty() bool { return s.Meta.Index == 0 }

// MessageType names a Raft message. Every message carries Type, From, To and Term.
type MessageType uint8

const (
	// MsgApp is AppendEntries (Raft §5.3): Index/LogTerm = previous entry, Entries, Commit.
	MsgApp MessageType = iota + 1
	// MsgAppResp answers MsgApp. Accept: Index = highest index durable on the follower and
	// matching the leader. Reject: Index = the rejected previous index, RejectHint = the
	// follower's conflict index and ConflictTerm its term there (0 when the follower's log is
	// shorter) for fast backtracking (Raft §5.3, thesis §5.3.1 end).
	MsgAppResp
	// MsgVote is RequestVote (Raft §5.2, §5.4.1): Index/LogTerm = candidate's last entry;
	// Transfer marks a campaign started by MsgTimeoutNow (ignores leader stickiness).
	MsgVote
	// MsgVoteResp answers MsgVote; Reject = not granted.
	MsgVoteResp
	// MsgPreVote asks whether a vote would be granted at Term (not yet adopted) (thesis §9.6).
	MsgPreVote
	// MsgPreVoteResp answers MsgPreVote.
	MsgPreVoteResp
	// MsgHeartbeat is an empty AppendEntries: Commit = min(leader commit, follower match);
	// Context = the leader's heartbeat round, echoed back to confirm reads.
	MsgHeartbeat
	// MsgHeartbeatResp answers MsgHeartbeat; Context echoes the round; Index is the follower's
	// last index (so a leader resumes replication after it paused).
	MsgHeartbeatResp
	// MsgSnap is one InstallSnapshot chunk (Raft §7): Snapshot (metadata), SnapOffset,
	// SnapData, SnapDone on the last chunk.
	MsgSnap
	// MsgSnapResp acknowledges a chunk (SnapOffset = bytes received) or, with SnapDone, the
	// durable installation of the snapshot at Snapshot.Meta.Index; Reject asks to restart.
	MsgSnapResp
	// MsgTimeoutNow tells the target of a leadership transfer to campaign now (thesis §3.10).
	MsgTimeoutNow
	// MsgReadIndex forwards a follower's read request (Context) to the leader (thesis §6.4).
	MsgReadIndex
	// MsgReadIndexResp returns the confirmed read index (Index) for Context; Reject when the
	// leader could not serve it (the follower retries).
	MsgReadIndexResp
)

var msgTypeNames = [...]string{"?", "MsgApp", "MsgAppResp", "MsgVote", "MsgVoteResp", "MsgPreVote",
	"MsgPreVoteResp", "MsgHeartbeat", "MsgHeartbeatResp", "MsgSnap", "MsgSnapResp", "MsgTimeoutNow",
	"MsgReadIndex", "MsgReadIndexResp"}

func (t MessageType) String() string {
	if int(t) < len(msgTypeNames) {
		return msgTypeNames[t]
	}
	return fmt.Sprintf("MsgType(%d)", uint8(t))
}

// Message is a flat union of every Raft message (the fields each type uses are listed on
// its MessageType). Byte slices in messages from Ready alias core memory until the next
// Advance: encode or copy them before. Step copies what it keeps, so the caller may reuse
// the message and its buffers after Step returns.
type Message struct {
	Type MessageType
	From uint64
	To   uint64
	Term uint64

	LogTerm      uint64
	Index        uint64
	Commit       uint64
	Entries      []Entry
	Reject       bool
	RejectHint   uint64
	ConflictTerm uint64
	Context      uint64
	Transfer     bool

	Snapshot   SnapshotMeta
	SnapOffset uint64
	SnapData   []byte
	SnapDone   bool
}

// ReadState is a confirmed linearizable read: once the application has applied Index, it may
// serve the read identified by Context from its state (thesis §6.4).
type ReadState struct {
	Index   uint64
	Context uint64
}

// PersistMark identifies the persistence work of one Ready. Hand it back to AckPersisted once
// that Ready's HardState, Entries and Snapshot (and every earlier Ready's) are durable.
type PersistMark struct {
	// Seq numbers the Readies that carry persistence work, from 1; 0 means nothing to persist.
	Seq uint64
	// Index and Term name the last log entry after this Ready's writes.
	Index uint64
	Term  uint64
}

// Ready is everything the application must do after calling Tick, Step, Propose and friends.
// All slices alias core memory (and may alias each other: a leader's MsgApp entries share
// Entries' backing array) and stay valid until Advance; treat them as read-only. Take one
// Ready, act on it, call Advance, then take the next.
//
// Durability contract (thesis §10.2.1; this is the one place it is written down):
//
//  1. Messages may be sent at once, before, during or after persisting this Ready. The core
//     itself holds back every message whose meaning depends on state not yet durable (a vote
//     or vote request needs the HardState; a follower's MsgAppResp needs the entries it
//     acknowledges; a snapshot acknowledgement needs the snapshot) and releases it in a later
//     Ready after AckPersisted covers that state. So a leader's AppendEntries leave before its
//     own disk write, and followers and voters never promise what a crash could lose.
//  2. HardState, Entries and Snapshot must be written in Ready order: Snapshot first, then
//     Entries (which overwrite any stored entries from Entries[0].Index on), then HardState.
//     A Snapshot replaces the WHOLE stored log: discard every stored entry, below and above
//     Snapshot.Meta.Index, and keep the snapshot. The core hands one out only when its log
//     did not hold the snapshot's last entry with the snapshot's term (Raft §7: otherwise it
//     keeps its log and only commits up to the index, and no Snapshot appears), so any entry
//     above the index belongs to a superseded branch; kept, a restart would bring it back. When MustSync is set the write
//     must be synced before acknowledging; otherwise (only Commit changed) it needs no sync
//     of its own, but since acknowledgements are cumulative it is acknowledged only once
//     every earlier Ready is durable.
//  3. Once durable, call AckPersisted(Mark) (acknowledgements may be batched: acking a Mark
//     covers every earlier one). The leader counts its own log in the commit quorum only up
//     to acknowledged entries, and held messages are released.
//  4. CommittedEntries are committed and durable locally: apply them in order. Advance marks
//     them applied. Snapshot, when set, must be applied to the state machine before them.
//  5. ReadStates may be served once the application has applied their Index.
//  6. SnapshotRequest > 0 asks the application to snapshot its state as of that applied index
//     (after applying this Ready's entries) and to call ReportSnapshot when done; it is asked
//     once per threshold crossing.
type Ready struct {
	// HardState is set when it changed since the last Ready (check HasHardState).
	HardState    HardState
	HasHardState bool
	// MustSync: the write carries Term, Vote or entries changes and must be synced.
	MustSync bool
	// Entries to append to stable storage.
	Entries []Entry
	// Snapshot received from the leader, to store in place of the whole log and apply (check
	// Snapshot.IsEmpty; see rule 2).
	Snapshot Snapshot
	// Mark identifies this Ready's persistence work; Mark.Seq is 0 when there is none.
	Mark PersistMark

	// Messages may be sent at once (see the contract above).
	Messages []Message
	// CommittedEntries to apply in order.
	CommittedEntries []Entry
	// ReadStates are confirmed reads.
	ReadStates []ReadState
	// SnapshotRequest asks for a snapshot at this applied index (0: none).
	SnapshotRequest uint64
	// SoftState changes: Lead and Role are set when HasSoftState.
	Lead         uint64
	Role         Role
	HasSoftState bool
}

// MustPersist reports whether the Ready carries work for storage (and thus an AckPersisted).
func (rd *Ready) MustPersist() bool { return rd.Mark.Seq != 0 }

// Role is a node's Raft role.
type Role uint8

const (
	Follower Role = iota
	PreCandidate
	Candidate
	Leader
)

var roleNames = [...]string{"Follower", "PreCandidate", "Candidate", "Leader"}

func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// ProgressState is the leader's replication mode toward one follower (etcd-io/raft design).
type ProgressState uint8

const (
	// StateProbe: one AppendEntries at a time until the follower's match is known.
	StateProbe ProgressState = iota
	// StateReplicate: optimistic pipelining up to the in-flight window.
	StateReplicate
	// StateSnapshot: the follower needs a snapshot; no AppendEntries until it is installed.
	StateSnapshot
)

// PeerStatus is the leader's view of one peer.
type PeerStatus struct {
	ID       uint64
	Learner  bool
	Match    uint64
	Next     uint64
	State    ProgressState
	Inflight int
}

// Status is a snapshot of the node's state for tests, metrics and debugging. It allocates.
type Status struct {
	ID         uint64
	Role       Role
	Lead       uint64
	HardState  HardState
	Applied    uint64
	Persisted  uint64
	FirstIndex uint64
	LastIndex  uint64
	Membership Membership
	Peers      []PeerStatus // leader only
}

// New creates a node from cfg (fresh or restored). It fails if cfg.validate does.
func New(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return newNode(cfg), nil
}

// Tick advances logical time by one tick: election and heartbeat timers, CheckQuorum,
// transfer and snapshot-chunk timeouts.
func (n *Node) Tick() { n.tick() }

// Step feeds one message received from a peer. Messages for another node, from unknown
// terms that are stale, or from non-members are dropped (nil error); malformed input returns
// an error. The core copies whatever it keeps.
func (n *Node) Step(m *Message) error { return n.step(m) }

// Propose appends a batch of application payloads (copied) as consecutive entries, on the
// leader only (NotLeaderError with a leader hint elsewhere), and returns the index of the
// first (batch[i] is at index first+i, in the current Term). The batch is replicated in the
// next Ready, together with every other proposal since the last one.
func (n *Node) Propose(batch [][]byte) (first uint64, err error) { return n.propose(batch) }

// ProposeConfChange proposes a single-server membership change (thesis §4.1) and returns the
// index of its entry. It fails with ErrConfChangePending while an earlier change is
// uncommitted or before the leader committed an entry of its term, and with
// ErrBadConfChange when it would not change the membership, remove the last voter, or
// exceed MaxMembers.
func (n *Node) ProposeConfChange(cc ConfChange) (index uint64, err error) {
	return n.proposeConfChange(cc)
}

// TransferLeader starts a leadership transfer to the voter `to` (thesis §3.10): the leader
// stops accepting proposals, brings `to` up to date and sends it MsgTimeoutNow. The transfer
// is abandoned after an election timeout.
func (n *Node) TransferLeader(to uint64) error { return n.transferLeader(to) }

// Campaign makes this node start an election now (PreVote first when configured). Tests and
// bootstrapping use it; elections otherwise start from Tick.
func (n *Node) Campaign() { n.campaignNow() }

// ReadIndex requests a linearizable read identified by rctx. The answer arrives as a
// ReadState in a later Ready. Followers forward it to the leader. Requests that cannot be
// served (no leader) are dropped silently; the application retries on its own timeout.
func (n *Node) ReadIndex(rctx uint64) error { return n.readIndex(rctx) }

// HasReady reports whether Ready would return any work.
func (n *Node) HasReady() bool { return n.hasReady() }

// Ready returns the pending work (see the Ready type for the contract). The previous Ready
// must have been Advanced.
func (n *Node) Ready() Ready { return n.ready() }

// Advance tells the core that the application is done with the last Ready: its
// CommittedEntries are applied and its buffers may be reused.
func (n *Node) Advance() { n.advance() }

// AckPersisted tells the core that the persistence work of every Ready up to mark.Seq is
// durable. Marks must be acknowledged in order; a repeated or older mark is ignored.
func (n *Node) AckPersisted(mark PersistMark) { n.ackPersisted(mark) }

// ReportSnapshot tells the core that the application took a snapshot of its state as of
// the applied index `index` (usually answering Ready.SnapshotRequest; it may be called
// before or after Advance of the Ready that asked). The core records the
// membership and term at index, keeps data (not copied; it must stay unmodified) to send to
// lagging followers, and compacts its log up to index-SnapshotRetainEntries. It returns the
// snapshot's metadata as recorded (Membership is read-only: the core never modifies it).
func (n *Node) ReportSnapshot(index uint64, data []byte) (SnapshotMeta, error) {
	return n.reportSnapshot(index, data)
}

// SnapshotMetaAt returns the metadata a snapshot of the state as of applied index `index`
// carries: the term of entry index and the membership in effect there (read-only: the core
// never modifies it). A driver that writes the snapshot durably before it reports it (to
// restart from it) takes the metadata from here; the current membership (Status) may
// already include a later, uncommitted change. It does not allocate. Errors:
// ErrSnapshotTooOld when index is below the log's first index or the latest snapshot,
// ErrUnavailable when index has not been applied.
func (n *Node) SnapshotMetaAt(index uint64) (SnapshotMeta, error) { return n.snapshotMetaAt(index) }

// Term returns the node's current term. It does not allocate.
func (n *Node) Term() uint64 { return n.term }

// Committed returns the node's commit index. It does not allocate.
func (n *Node) Committed() uint64 { return n.commit }

// LastIndex returns the index of the last entry in the node's log (durable or not). It does
// not allocate.
func (n *Node) LastIndex() uint64 { return n.log.lastIndex() }

// FirstIndex returns the index of the first entry the node's log still holds (compaction
// removed everything before it): a driver compacts its own stored log up to FirstIndex()-1
// after ReportSnapshot. It does not allocate.
func (n *Node) FirstIndex() uint64 { return n.log.firstIndex() }

// Status returns a copy of the node's state. It allocates; not for hot paths.
func (n *Node) Status() Status { return n.status() }

// ID returns the node's ID.
func (n *Node) ID() uint64 { return n.id }

// Lead returns the current leader as this node knows it, or None.
func (n *Node) Lead() uint64 { return n.lead }

// RejectedMessages counts the messages Step refused as malformed (ErrMalformed) since the
// node started. It does not allocate.
func (n *Node) RejectedMessages() uint64 { return n.malformedIn }

// Role returns the node's current role.
func (n *Node) Role() Role { return n.role }
