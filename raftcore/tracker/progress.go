package tracker

import "fmt"

// State is a follower's replication mode.
type State uint8

const (
	// StateProbe sends one AppendEntries at a time until it learns where the logs match.
	StateProbe State = iota
	// StateReplicate pipelines AppendEntries optimistically, bounded by Inflights.
	StateReplicate
	// StateSnapshot waits for a snapshot transfer; no AppendEntries are sent.
	StateSnapshot
)

func (s State) String() string {
	switch s {
	case StateProbe:
		return "probe"
	case StateReplicate:
		return "replicate"
	case StateSnapshot:
		return "snapshot"
	}
	return "?"
}

// Progress is the leader's view of one follower (Raft Figure 2 nextIndex and matchIndex,
// plus flow control).
type Progress struct {
	ID      uint64
	Learner bool
	// Match is the highest index known to be replicated (durably) on the follower.
	Match uint64
	// Next is the next index to send.
	Next  uint64
	State State
	// ProbeSent pauses a probing follower after one message until it answers or a heartbeat
	// interval passes.
	ProbeSent bool
	// ProbeLast and ProbeBytes describe the entries of the last probe sent, so that the
	// switch to replicate does not send them again.
	ProbeLast  uint64
	ProbeBytes uint64
	// CheckSent asks for one (possibly empty) append at Next-1 in replicate state: a
	// heartbeat answer showed the follower behind what was sent, so appends may be lost.
	CheckSent bool
	// SentRound is the leader's heartbeat round when the last append left: only a
	// heartbeat answer of a later round can show that the append was lost.
	SentRound uint64
	// PendingSnapshot is the index of the snapshot being sent in StateSnapshot.
	PendingSnapshot uint64
	// SnapOffset is the byte offset of the next snapshot chunk; SnapSentTick when the
	// last chunk left (to resend on silence).
	SnapOffset   uint64
	SnapSentTick uint64
	SnapInFlight bool
	// RecentActive: the follower answered since the last CheckQuorum round.
	RecentActive bool
	// ReadRound is the highest heartbeat round the follower acknowledged (ReadIndex).
	ReadRound uint64
	Inflights *Inflights
}

// New returns a probing progress that will first send next.
func New(id uint64, learner bool, next uint64, maxInflight int, maxInflightBytes uint64) *Progress {
	return &Progress{ID: id, Learner: learner, Next: next, Inflights: NewInflights(maxInflight, maxInflightBytes)}
}

func (p *Progress) reset(s State) {
	p.State = s
	p.ProbeSent = false
	p.ProbeLast, p.ProbeBytes = 0, 0
	p.CheckSent = false
	p.PendingSnapshot = 0
	p.SnapOffset = 0
	p.SnapInFlight = false
	p.Inflights.Reset()
}

// BecomeProbe restarts probing from Match+1 (or after a finished snapshot).
func (p *Progress) BecomeProbe() {
	if p.State == StateSnapshot {
		snap := p.PendingSnapshot
		p.reset(StateProbe)
		p.Next = max(p.Match+1, snap+1)
		return
	}
	p.reset(StateProbe)
	p.Next = p.Match + 1
}

// BecomeReplicate starts pipelining after Match. Entries of an outstanding probe beyond
// Match count as in flight rather than being sent again.
func (p *Progress) BecomeReplicate() {
	probeLast, probeBytes := p.ProbeLast, p.ProbeBytes
	p.reset(StateReplicate)
	p.Next = p.Match + 1
	if probeLast > p.Match {
		p.Next = probeLast + 1
		p.Inflights.Add(probeLast, probeBytes)
	}
}

// BecomeSnapshot starts sending the snapshot at index.
func (p *Progress) BecomeSnapshot(index uint64) {
	p.reset(StateSnapshot)
	p.PendingSnapshot = index
}

// MaybeUpdate records an acknowledgement of n. It reports whether Match advanced.
func (p *Progress) MaybeUpdate(n uint64) bool {
	updated := false
	if p.Match < n {
		p.Match = n
		updated = true
		p.ProbeSent = false
	}
	p.Next = max(p.Next, n+1)
	return updated
}

// SentEntries records an AppendEntries whose last entry is last carrying bytes of payload.
func (p *Progress) SentEntries(last, bytes uint64) {
	switch p.State {
	case StateReplicate:
		if last >= p.Next {
			p.Next = last + 1
			p.Inflights.Add(last, bytes)
		}
	case StateProbe:
		p.ProbeSent = true
		p.ProbeLast, p.ProbeBytes = last, bytes
	default:
		panic(fmt.Sprintf("invariant violated: tracker: sending entries in state %v", p.State))
	}
}

// MaybeDecrTo handles a rejection of the append after index rejected. hint is the next
// index the leader should try (derived from the follower's conflict hint). It reports
// whether the rejection was news (not stale).
func (p *Progress) MaybeDecrTo(rejected, hint uint64) bool {
	if p.State == StateReplicate {
		// Stale: the follower already matched beyond it.
		if rejected <= p.Match {
			return false
		}
		p.BecomeProbe()
		p.Next = max(p.Match+1, min(hint, rejected))
		return true
	}
	// In probe only the rejection of the last probe (Next-1) counts.
	if p.Next-1 != rejected {
		return false
	}
	p.Next = max(min(rejected, hint), p.Match+1)
	p.ProbeSent = false
	return true
}

// IsPaused reports whether no AppendEntries may be sent now.
func (p *Progress) IsPaused() bool {
	switch p.State {
	case StateProbe:
		return p.ProbeSent
	case StateReplicate:
		return p.Inflights.Full()
	default:
		return true
	}
}

func (p *Progress) String() string {
	return fmt.Sprintf("%d: %v match=%d next=%d inflight=%d", p.ID, p.State, p.Match, p.Next, p.Inflights.Count())
}
