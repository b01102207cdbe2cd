package raftcore

import (
	"fmt"
	"math/rand/v2"

	"github.com/consensusbench/consensusbench/internal/assert"
	"github.com/consensusbench/consensusbench/raftcore/quorum"
	"github.com/consensusbench/consensusbench/raftcore/tracker"
)

// leaseRoundRing bounds the heartbeat rounds whose send tick is remembered for leases.
const leaseRoundRing = 64

// Node is one Raft replica's state machine. Not safe for concurrent use.
type Node struct {
	id  uint64
	cfg Config
	rng *rand.Rand

	// Persistent state (Raft Figure 2).
	term uint64
	vote uint64
	log  *entryLog

	role   Role
	lead   uint64
	commit uint64

	// applied: last index the application applied (advanced). applying: the last index
	// handed out in the outstanding Ready.
	applied  uint64
	applying uint64
	// stableTo: entries up to it were handed to storage. persisted: entries up to it are
	// durable and still in the log.
	stableTo  uint64
	persisted uint64

	// Persistence bookkeeping (see Ready).
	readySeq    uint64 // last Seq given to a Ready with persistence work
	ackedSeq    uint64 // last Seq acknowledged
	truncActive bool   // a truncation happened while marks up to truncSeq were unacked
	truncSeq    uint64
	truncIdx    uint64
	lastHS      HardState // last HardState handed out
	held        []heldMsg
	heldHead    int

	// Membership: confs[0] is the configuration at or below the compaction point, later
	// ones come from configuration entries in the log (applied when appended, thesis §4.1).
	confs         []confAt
	voters        []uint64 // current configuration
	learners      []uint64
	lastConfIndex uint64

	// Timers, in ticks.
	ticks                     uint64
	electionElapsed           int
	heartbeatElapsed          int
	randomizedElectionTimeout int

	// Candidate state.
	granted  []uint64
	rejected []uint64
	// votes are the grants of this node's own candidacy in the current term, kept when a
	// candidate whose election timed out falls back to pre-candidate: a grant for that term
	// that arrives late still counts (see stepCandidate).
	votes []uint64

	// Leader state.
	prs              []*tracker.Progress // every member except this node
	self             *tracker.Progress   // this node's own match (its persisted index)
	leadTransferee   uint64
	transferElapsed  int
	uncommittedBytes uint64
	readRound        uint64 // last heartbeat round started
	roundTicks       [leaseRoundRing]roundTick
	leaseUntil       uint64 // tick before which lease reads are safe
	leaseDisabled    bool   // a TimeoutNow left this term: no lease until the next term
	pendingReads     []readReq
	readStates       []ReadState
	readStatesSpare  []ReadState

	// Follower acknowledgement coalescing: ackIndex is the highest index known to match the
	// leader; one MsgAppResp covers every append received since the last.
	ackOwed  bool
	ackTo    uint64
	ackIndex uint64
	ackSent  uint64

	// Snapshots.
	snapshot      Snapshot // latest snapshot (sent to lagging followers)
	readySnapshot Snapshot // received snapshot to hand out in the next Ready
	snapInReady   bool     // outstanding Ready carries a snapshot
	recvSnap      snapAssembly
	snapRequested uint64 // index last asked for through Ready.SnapshotRequest
	malformedIn   uint64 // malformed messages refused (RejectedMessages)
	appliedBytes  uint64 // payload bytes handed out to apply since the last snapshot request

	// Output buffers, double-buffered so a Ready stays valid until Advance.
	msgs      []Message
	msgsSpare []Message
	entSlab   []Entry
	window    []Entry // this Ready's Entries while sendAppends runs (see entriesFor)
	readyOut  bool
	lastLead  uint64
	lastRole  Role
}

type heldMsg struct {
	seq uint64
	m   Message
}

type confAt struct {
	index uint64
	m     Membership
}

type roundTick struct {
	round uint64
	tick  uint64
}

type readReq struct {
	ctx   uint64
	from  uint64
	index uint64 // 0 until the leader has committed an entry of its term
	round uint64
}

type snapAssembly struct {
	meta SnapshotMeta
	from uint64
	buf  []byte
	open bool
}

func newNode(cfg Config) *Node {
	n := &Node{id: cfg.ID, cfg: cfg, rng: cfg.Rand}
	snap := cfg.Snapshot
	n.log = newEntryLog(snap.Meta.Index, snap.Meta.Term)
	base := cfg.Membership
	if !snap.IsEmpty() {
		base = snap.Meta.Membership
		n.snapshot = Snapshot{Meta: cloneMeta(snap.Meta), Data: snap.Data}
	}
	n.confs = append(n.confs, confAt{index: snap.Meta.Index, m: cloneMembership(base)})
	n.setMembership(n.confs[0].m)
	for i := range cfg.Entries {
		e := &cfg.Entries[i]
		n.log.append(e.Term, e.Type, e.Data)
		if e.Type == EntryConfChange {
			n.applyConfEntry(e.Index, e.Data)
		}
	}
	n.term, n.vote = cfg.HardState.Term, cfg.HardState.Vote
	n.commit = min(max(cfg.HardState.Commit, snap.Meta.Index, cfg.Applied), n.log.lastIndex())
	n.lastHS = HardState{Term: n.term, Vote: n.vote, Commit: n.commit}
	n.applied = max(cfg.Applied, snap.Meta.Index)
	n.applying = n.applied
	n.snapRequested = n.snapshot.Meta.Index
	n.stableTo = n.log.lastIndex()
	n.persisted = n.log.lastIndex()
	n.self = tracker.New(n.id, false, n.persisted+1, 1, 1)
	n.becomeFollower(n.term, None)
	n.lastLead, n.lastRole = None, Follower
	return n
}

// ---- membership ----

func cloneMembership(m Membership) Membership {
	return Membership{Voters: append([]uint64(nil), m.Voters...), Learners: append([]uint64(nil), m.Learners...)}
}

func cloneMeta(m SnapshotMeta) SnapshotMeta {
	m.Membership = cloneMembership(m.Membership)
	return m
}

func contains(ids []uint64, id uint64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func without(ids []uint64, id uint64) []uint64 {
	out := make([]uint64, 0, len(ids))
	for _, x := range ids {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}

// changed returns the membership after cc, or an error when cc is not a change.
func changed(m Membership, cc ConfChange) (Membership, error) {
	isVoter, isLearner := contains(m.Voters, cc.NodeID), contains(m.Learners, cc.NodeID)
	var out Membership
	switch cc.Type {
	case AddVoter:
		if isVoter {
			return m, fmt.Errorf("%w: %d is already a voter", ErrBadConfChange, cc.NodeID)
		}
		out = Membership{Voters: append(append([]uint64(nil), m.Voters...), cc.NodeID), Learners: without(m.Learners, cc.NodeID)}
	case AddLearner:
		if isLearner {
			return m, fmt.Errorf("%w: %d is already a learner", ErrBadConfChange, cc.NodeID)
		}
		out = Membership{Voters: without(m.Voters, cc.NodeID), Learners: append(append([]uint64(nil), m.Learners...), cc.NodeID)}
	case RemoveNode:
		if !isVoter && !isLearner {
			return m, fmt.Errorf("%w: %d is not a member", ErrBadConfChange, cc.NodeID)
		}
		out = Membership{Voters: without(m.Voters, cc.NodeID), Learners: without(m.Learners, cc.NodeID)}
	default:
		return m, fmt.Errorf("%w: type %d", ErrBadConfChange, cc.Type)
	}
	if cc.NodeID == None {
		return m, fmt.Errorf("%w: node ID 0", ErrBadConfChange)
	}
	if len(out.Voters) == 0 {
		return m, fmt.Errorf("%w: would remove the last voter", ErrBadConfChange)
	}
	if len(out.Voters)+len(out.Learners) > MaxMembers {
		return m, fmt.Errorf("%w: more than MaxMembers", ErrBadConfChange)
	}
	return out, nil
}

// applyConfEntry applies the configuration entry at index as soon as it is in the log
// (thesis §4.1). An entry that is not a valid change against the current configuration is
// recorded as no change (every node reaches the same verdict from the same log).
func (n *Node) applyConfEntry(index uint64, data []byte) {
	cur := n.confs[len(n.confs)-1].m
	next := cur
	if cc, err := DecodeConfChange(data); err == nil {
		if m, err := changed(cur, cc); err == nil {
			next = m
		}
	}
	n.confs = append(n.confs, confAt{index: index, m: next})
	n.lastConfIndex = index
	n.setMembership(next)
}

// revertConfs drops configurations from entries at or after index (truncated).
func (n *Node) revertConfs(index uint64) {
	k := len(n.confs)
	for k > 1 && n.confs[k-1].index >= index {
		k--
	}
	if k == len(n.confs) {
		return
	}
	clear(n.confs[k:])
	n.confs = n.confs[:k]
	n.lastConfIndex = n.confs[k-1].index
	n.setMembership(n.confs[k-1].m)
}

// membershipAt returns the configuration in effect at index.
func (n *Node) membershipAt(index uint64) Membership {
	m := n.confs[0].m
	for _, c := range n.confs {
		if c.index <= index {
			m = c.m
		}
	}
	return m
}

// pruneConfs drops configurations superseded at or below the compaction point c.
func (n *Node) pruneConfs(c uint64) {
	k := 0
	for k+1 < len(n.confs) && n.confs[k+1].index <= c {
		k++
	}
	if k > 0 {
		m := copy(n.confs, n.confs[k:])
		clear(n.confs[m:])
		n.confs = n.confs[:m]
	}
}

// setMembership installs m as the current configuration and, on a leader, adds and removes
// progress trackers to match.
func (n *Node) setMembership(m Membership) {
	n.voters, n.learners = m.Voters, m.Learners
	if n.role != Leader {
		return
	}
	keep := n.prs[:0]
	for _, pr := range n.prs {
		switch {
		case contains(n.voters, pr.ID):
			pr.Learner = false
			keep = append(keep, pr)
		case contains(n.learners, pr.ID):
			pr.Learner = true
			keep = append(keep, pr)
		}
	}
	clear(n.prs[len(keep):])
	n.prs = keep
	for _, ids := range [][]uint64{n.voters, n.learners} {
		for _, id := range ids {
			if id != n.id && n.progress(id) == nil {
				n.prs = append(n.prs, n.newProgress(id, contains(n.learners, id)))
			}
		}
	}
	n.maybeCommit()
}

func (n *Node) newProgress(id uint64, learner bool) *tracker.Progress {
	pr := tracker.New(id, learner, n.log.lastIndex()+1, n.cfg.MaxInflightMsgs, n.cfg.MaxInflightBytes)
	pr.RecentActive = true
	return pr
}

func (n *Node) progress(id uint64) *tracker.Progress {
	for _, pr := range n.prs {
		if pr.ID == id {
			return pr
		}
	}
	return nil
}

func (n *Node) isVoter(id uint64) bool { return contains(n.voters, id) }

// promotable: voters of the latest configuration campaign, and so do voters of the
// committed configuration whose removal is still uncommitted. The latter may hold the only
// up-to-date log (a leader that removed itself and stepped down before the removal
// committed); it campaigns under its latest configuration, wins with the votes of that
// configuration's majority, commits the removal and then steps down (thesis §4.2.2).
func (n *Node) promotable() bool {
	if n.isVoter(n.id) {
		return true
	}
	return n.lastConfIndex > n.commit && contains(n.membershipAt(n.commit).Voters, n.id)
}

// ---- role transitions ----

func (n *Node) resetTerm(term uint64) {
	if n.term != term {
		n.term = term
		n.vote = None
		n.ackIndex, n.ackSent, n.ackOwed = 0, 0, false
	}
	n.lead = None
	n.electionElapsed = 0
	n.heartbeatElapsed = 0
	n.drawElectionTimeout()
	n.leadTransferee = None
	n.transferElapsed = 0
	n.granted = n.granted[:0]
	n.rejected = n.rejected[:0]
	n.votes = n.votes[:0]
	n.dropPendingReads()
}

func (n *Node) becomeFollower(term, lead uint64) {
	n.resetTerm(term)
	n.role = Follower
	n.lead = lead
	n.prs = nil
}

func (n *Node) becomePreCandidate() {
	assert.True(n.role != Leader, "raftcore: leader cannot become pre-candidate")
	// PreVote does not change the term or the vote (thesis §9.6).
	if n.role == Candidate {
		n.votes = append(n.votes[:0], n.granted...)
	}
	n.granted = n.granted[:0]
	n.rejected = n.rejected[:0]
	n.role = PreCandidate
	n.lead = None
	n.electionElapsed = 0
	n.drawElectionTimeout()
}

// drawElectionTimeout picks the next election timeout from [ElectionTick, 2*ElectionTick).
func (n *Node) drawElectionTimeout() {
	n.randomizedElectionTimeout = n.cfg.ElectionTick + n.rng.IntN(n.cfg.ElectionTick)
}

func (n *Node) becomeCandidate() {
	assert.True(n.role != Leader, "raftcore: leader cannot become candidate")
	n.resetTerm(n.term + 1)
	n.vote = n.id
	n.role = Candidate
}

func (n *Node) becomeLeader() {
	assert.True(n.role == Candidate, "raftcore: only a candidate becomes leader")
	n.resetTerm(n.term)
	n.role = Leader
	n.lead = n.id
	n.prs = n.prs[:0]
	for _, ids := range [][]uint64{n.voters, n.learners} {
		for _, id := range ids {
			if id != n.id {
				n.prs = append(n.prs, n.newProgress(id, contains(n.learners, id)))
			}
		}
	}
	n.self.Match = n.persisted
	n.uncommittedBytes = 0
	n.leaseUntil = 0
	n.leaseDisabled = false
	// The no-op commits the new term and with it every earlier entry (Raft §5.4.2, §8).
	n.log.append(n.term, EntryNoop, nil)
	n.maybeCommit()
}

// ---- ticks ----

func (n *Node) tick() {
	n.ticks++
	if n.role == Leader {
		n.tickLeader()
		return
	}
	n.electionElapsed++
	// Only nodes that may campaign reset the timer: a learner or removed node must let it
	// run past ElectionTick, or it would ignore vote requests forever (§4.2.3 stickiness).
	if n.promotable() && n.electionElapsed >= n.randomizedElectionTimeout {
		n.electionElapsed = 0
		n.hup(false)
	}
}

func (n *Node) tickLeader() {
	n.heartbeatElapsed++
	n.electionElapsed++
	if n.electionElapsed >= n.cfg.ElectionTick {
		n.electionElapsed = 0
		if n.cfg.CheckQuorum && !n.quorumActive() {
			// Thesis §6.2: a leader that cannot reach a quorum steps down.
			n.becomeFollower(n.term, None)
			return
		}
		if n.leadTransferee != None {
			n.leadTransferee = None // abandoned (thesis §3.10)
		}
	}
	if n.leadTransferee != None {
		n.transferElapsed++
	}
	for _, pr := range n.prs {
		if pr.State == tracker.StateSnapshot && pr.SnapInFlight && n.ticks-pr.SnapSentTick >= uint64(n.cfg.ElectionTick) {
			pr.SnapInFlight = false // chunk or its answer lost: resend from the last acked offset
		}
	}
	if n.heartbeatElapsed >= n.cfg.HeartbeatTick {
		n.heartbeatElapsed = 0
		n.bcastHeartbeat()
	}
}

// quorumActive counts voters heard from since the last check and clears the marks.
func (n *Node) quorumActive() bool {
	active, voters := 0, 0
	if n.isVoter(n.id) {
		active, voters = 1, 1
	}
	for _, pr := range n.prs {
		if !pr.Learner {
			voters++
			if pr.RecentActive {
				active++
			}
		}
		pr.RecentActive = false
	}
	return voters > 0 && active >= quorum.Majority(voters)
}

// ---- elections ----

func (n *Node) campaignNow() { n.hup(false) }

func (n *Node) hup(transfer bool) {
	if n.role == Leader || !n.promotable() {
		return
	}
	// A node with unapplied configuration entries must not campaign with a stale view: the
	// thesis applies configurations on append, so the current one is always in effect here.
	if n.cfg.PreVote && !transfer {
		n.campaign(true, false)
	} else {
		n.campaign(false, transfer)
	}
}

func (n *Node) campaign(pre, transfer bool) {
	var voteTerm uint64
	var typ MessageType
	if pre {
		n.becomePreCandidate()
		voteTerm, typ = n.term+1, MsgPreVote
	} else {
		n.becomeCandidate()
		voteTerm, typ = n.term, MsgVote
	}
	n.granted = append(n.granted, n.id)
	if n.tally() == quorum.VoteWon {
		if pre {
			n.campaign(false, transfer)
		} else {
			n.becomeLeader()
		}
		return
	}
	for _, id := range n.voters {
		if id == n.id {
			continue
		}
		m := Message{Type: typ, To: id, Term: voteTerm, Index: n.log.lastIndex(), LogTerm: n.log.lastTerm(), Transfer: transfer}
		if pre {
			n.send(m)
		} else {
			n.sendDurable(m) // the candidate's term and self-vote must be durable first
		}
	}
}

func (n *Node) tally() quorum.VoteResult {
	g, r := 0, 0
	for _, id := range n.granted {
		if n.isVoter(id) {
			g++
		}
	}
	for _, id := range n.rejected {
		if n.isVoter(id) {
			r++
		}
	}
	return quorum.Tally(len(n.voters), g, r)
}

// ---- output ----

func (n *Node) send(m Message) {
	m.From = n.id
	if m.Term == 0 {
		m.Term = n.term
	}
	n.msgs = append(n.msgs, m)
}

// sendDurable queues m until the state it depends on (everything up to now) is durable.
func (n *Node) sendDurable(m Message) {
	m.From = n.id
	if m.Term == 0 {
		m.Term = n.term
	}
	seq := n.readySeq
	if n.dirty() {
		seq++ // the next Ready with persistence work carries the state m depends on
	}
	if seq <= n.ackedSeq {
		n.msgs = append(n.msgs, m)
		return
	}
	if len(n.held)-n.heldHead >= MaxHeldMessages {
		n.held[n.heldHead] = heldMsg{}
		n.heldHead++
	}
	n.held = append(n.held, heldMsg{seq: seq, m: m})
}

// dirty reports whether state not yet handed out in a Ready needs persisting.
func (n *Node) dirty() bool {
	return n.stableTo < n.log.lastIndex() || n.hardState() != n.lastHS || !n.readySnapshot.IsEmpty()
}

func (n *Node) hardState() HardState { return HardState{Term: n.term, Vote: n.vote, Commit: n.commit} }

func (n *Node) releaseHeld() {
	for n.heldHead < len(n.held) && n.held[n.heldHead].seq <= n.ackedSeq {
		n.msgs = append(n.msgs, n.held[n.heldHead].m)
		n.held[n.heldHead] = heldMsg{}
		n.heldHead++
	}
	if n.heldHead == len(n.held) {
		n.held = n.held[:0]
		n.heldHead = 0
	}
}

// ---- Step ----

func (n *Node) step(m *Message) error {
	if m.Type < MsgApp || m.Type > MsgReadIndexResp {
		return fmt.Errorf("%w: %v", ErrStepLocal, m.Type)
	}
	if m.To != n.id || m.From == None || m.From == n.id {
		return nil
	}
	if m.Term == 0 {
		return fmt.Errorf("raftcore: %v from %d without a term", m.Type, m.From)
	}
	if err := n.checkMessage(m); err != nil {
		n.malformedIn++
		return err
	}
	switch {
	case m.Term > n.term:
		if m.Type == MsgVote || m.Type == MsgPreVote {
			// Thesis §4.2.3: while a leader is heard (within an election timeout), ignore
			// vote requests, unless they come from a leadership transfer.
			heard := n.lead != None && n.electionElapsed < n.cfg.ElectionTick
			// A restarted node may have promised a lease to a leader it no longer remembers:
			// under lease reads it sits out one election timeout before voting.
			recentStart := n.cfg.ReadOnly == ReadLease && n.ticks < uint64(n.cfg.ElectionTick)
			// Thesis §4.2.3 makes this rule unconditional: it is what keeps removed servers
			// (which never learn of their removal) from deposing leaders when PreVote and
			// CheckQuorum are off.
			// A transfer campaign is one term above the leader's (its target got
			// MsgTimeoutNow from the leader of our term): a
			// "transfer" vote from further ahead is treated as an ordinary one.
			transfer := m.Transfer && m.Term == n.term+1
			if (heard || recentStart) && !transfer {
				return nil
			}
		}
		switch {
		case m.Type == MsgPreVote:
			// A pre-vote does not move our term.
		case m.Type == MsgPreVoteResp && !m.Reject:
			// Granted pre-votes carry the future term; the term moves when we campaign.
		case m.Type == MsgApp || m.Type == MsgHeartbeat || m.Type == MsgSnap:
			n.becomeFollower(m.Term, m.From)
		default:
			n.becomeFollower(m.Term, None)
		}
	case m.Term < n.term:
		switch {
		case m.Type == MsgHeartbeat || m.Type == MsgApp:
			// A stale leader learns the newer term from this reply and steps down. Without
			// it, a node that raised its term while partitioned could never rejoin: leaders
			// ignore its vote requests (§4.2.3) and PreVote keeps its term from advancing.
			n.send(Message{Type: MsgAppResp, To: m.From})
		case m.Type == MsgPreVote:
			n.send(Message{Type: MsgPreVoteResp, To: m.From, Reject: true})
		case m.Type == MsgVote:
			// Raft Figure 2: the stale candidate adopts our term from the answer and its
			// next campaign can win; dropping the request could leave it behind forever.
			n.send(Message{Type: MsgVoteResp, To: m.From, Reject: true})
		}
		return nil
	}

	switch m.Type {
	case MsgVote, MsgPreVote:
		n.handleVote(m)
		return nil
	}
	switch n.role {
	case Leader:
		n.stepLeader(m)
	case Candidate, PreCandidate:
		n.stepCandidate(m)
	default:
		n.stepFollower(m)
	}
	return nil
}

// handleVote decides a (pre-)vote (Raft §5.2, §5.4.1).
func (n *Node) handleVote(m *Message) {
	canVote := n.vote == m.From ||
		(n.vote == None && n.lead == None) ||
		(m.Type == MsgPreVote && m.Term > n.term)
	upToDate := m.LogTerm > n.log.lastTerm() || (m.LogTerm == n.log.lastTerm() && m.Index >= n.log.lastIndex())
	resp := MsgVoteResp
	if m.Type == MsgPreVote {
		resp = MsgPreVoteResp
	}
	if canVote && upToDate {
		if m.Type == MsgVote {
			n.electionElapsed = 0
			n.vote = m.From
			n.sendDurable(Message{Type: resp, To: m.From, Term: m.Term})
			return
		}
		n.send(Message{Type: resp, To: m.From, Term: m.Term})
		return
	}
	n.send(Message{Type: resp, To: m.From, Reject: true})
}

func (n *Node) stepCandidate(m *Message) {
	want := MsgVoteResp
	if n.role == PreCandidate {
		want = MsgPreVoteResp
	}
	switch m.Type {
	case MsgApp, MsgHeartbeat, MsgSnap:
		n.becomeFollower(m.Term, m.From)
		n.stepFollower(m)
	case MsgVoteResp:
		if n.role == PreCandidate {
			n.lateVote(m)
			return
		}
		fallthrough
	case want:
		if contains(n.granted, m.From) || contains(n.rejected, m.From) {
			return
		}
		if m.Reject {
			n.rejected = append(n.rejected, m.From)
		} else {
			n.granted = append(n.granted, m.From)
		}
		switch n.tally() {
		case quorum.VoteWon:
			if n.role == PreCandidate {
				n.campaign(false, false)
			} else {
				n.becomeLeader()
			}
		case quorum.VoteLost:
			n.becomeFollower(n.term, None)
		}
	}
}

// lateVote counts a grant of this node's candidacy in the current term that arrived after
// its election timed out and it fell back to pre-candidate. Winning with it is safe: the
// node is still in that term and voted for itself in it, each voter grants one candidate per
// term (and made that durable before answering), and the log the voters judged has not
// changed, because only a leader's entries change it and any message from a leader of this
// term or a later one would have made this node a follower (which clears the grants). Raft
// with PreVote otherwise drops such grants (etcd/raft's stepCandidate counts only the
// response type of its current state), and when replies take longer than the election
// timeout no candidacy ever sees its own votes: a cluster can go without a leader for many
// timeouts.
func (n *Node) lateVote(m *Message) {
	if m.Reject || len(n.votes) == 0 || n.vote != n.id || contains(n.votes, m.From) {
		return
	}
	n.votes = append(n.votes, m.From)
	g := 0
	for _, id := range n.votes {
		if n.isVoter(id) {
			g++
		}
	}
	if quorum.Tally(len(n.voters), g, 0) == quorum.VoteWon {
		n.role = Candidate
		n.becomeLeader()
	}
}

func (n *Node) stepFollower(m *Message) {
	switch m.Type {
	case MsgApp:
		n.electionElapsed = 0
		n.lead = m.From
		n.handleAppend(m)
	case MsgHeartbeat:
		n.electionElapsed = 0
		n.lead = m.From
		n.commitTo(min(m.Commit, n.log.lastIndex()))
		n.send(Message{Type: MsgHeartbeatResp, To: m.From, Context: m.Context, Index: n.log.lastIndex()})
	case MsgSnap:
		n.electionElapsed = 0
		n.lead = m.From
		n.handleSnapshotChunk(m)
	case MsgTimeoutNow:
		// Thesis §3.10: campaign at once, skipping PreVote and leader stickiness.
		n.hup(true)
	case MsgReadIndexResp:
		if !m.Reject {
			n.readStates = append(n.readStates, ReadState{Index: m.Index, Context: m.Context})
		}
	}
}

func (n *Node) commitTo(c uint64) {
	if c > n.commit {
		n.commit = c
	}
}

// handleAppend is the follower side of AppendEntries (Raft §5.3).
func (n *Node) handleAppend(m *Message) {
	ents := m.Entries
	prev, prevTerm := m.Index, m.LogTerm
	if prev < n.log.snapIndex {
		// Entries up to the compaction point are committed and match; skip them.
		skip := n.log.snapIndex - prev
		if skip >= uint64(len(ents)) {
			n.oweAck(m.From, n.log.snapIndex)
			return
		}
		ents = ents[skip:]
		prev, prevTerm = n.log.snapIndex, n.log.snapTerm
	}
	if !n.log.matchTerm(prev, prevTerm) {
		// Fast backtracking: the last index whose term is <= the leader's prevTerm.
		hint := n.log.findConflictByTerm(min(prev, n.log.lastIndex()), prevTerm)
		ht, _ := n.log.term(hint)
		n.send(Message{Type: MsgAppResp, To: m.From, Reject: true, Index: m.Index, RejectHint: hint, ConflictTerm: ht})
		return
	}
	lastNew := prev + uint64(len(ents))
	for i := range ents {
		e := &ents[i]
		if e.Index != prev+1+uint64(i) {
			assert.Failf("raftcore: MsgApp entry %d has index %d, want %d", i, e.Index, prev+1+uint64(i))
		}
		if n.log.matchTerm(e.Index, e.Term) {
			continue
		}
		if e.Index <= n.log.lastIndex() {
			if e.Index <= n.commit {
				assert.Failf("raftcore: entry %d conflicts with committed index %d", e.Index, n.commit)
			}
			n.truncate(e.Index)
		}
		for _, f := range ents[i:] {
			n.log.append(f.Term, f.Type, f.Data)
			if f.Type == EntryConfChange {
				n.applyConfEntry(f.Index, f.Data)
			}
		}
		break
	}
	n.commitTo(min(m.Commit, lastNew))
	n.oweAck(m.From, lastNew)
}

// truncate removes entries from i on (a follower's conflicting suffix).
func (n *Node) truncate(i uint64) {
	n.log.truncateFrom(i)
	n.revertConfs(i)
	n.stableTo = min(n.stableTo, i-1)
	n.persisted = min(n.persisted, i-1)
	n.ackIndex = min(n.ackIndex, i-1)
	n.ackSent = min(n.ackSent, i-1)
	n.noteTruncation(i - 1)
}

// noteTruncation clamps what unacknowledged marks may claim: storage overwrites entries
// after idx only with writes of later Readies.
func (n *Node) noteTruncation(idx uint64) {
	if n.truncActive {
		n.truncIdx = min(n.truncIdx, idx)
	} else {
		n.truncIdx = idx
	}
	n.truncSeq = n.readySeq
	n.truncActive = n.readySeq > n.ackedSeq
}

func (n *Node) oweAck(to, index uint64) {
	if to != n.ackTo {
		n.ackTo, n.ackIndex, n.ackSent = to, 0, 0
	}
	n.ackIndex = max(n.ackIndex, index)
	n.ackOwed = true
}

// ackReady reports whether a coalesced MsgAppResp can go out now.
func (n *Node) ackReady() (uint64, bool) {
	if !n.ackOwed || n.role != Follower {
		return 0, false
	}
	a := min(n.ackIndex, n.persisted)
	return a, a > n.ackSent || (a == n.ackIndex && a >= n.ackSent)
}

func (n *Node) flushAck() {
	a, ok := n.ackReady()
	if !ok {
		return
	}
	n.send(Message{Type: MsgAppResp, To: n.ackTo, Index: a})
	n.ackSent = a
	if a >= n.ackIndex {
		n.ackOwed = false
	}
}

// ---- leader ----

func (n *Node) stepLeader(m *Message) {
	if m.Type == MsgReadIndex {
		if n.progress(m.From) == nil {
			return
		}
		n.addRead(m.Context, m.From)
		return
	}
	pr := n.progress(m.From)
	if pr == nil {
		return
	}
	switch m.Type {
	case MsgAppResp:
		pr.RecentActive = true
		if m.Reject {
			probe := m.RejectHint
			if m.ConflictTerm > 0 {
				probe = n.log.findConflictByTerm(m.RejectHint, m.ConflictTerm)
			}
			pr.MaybeDecrTo(m.Index, probe+1)
			return
		}
		old := pr.Match
		if pr.MaybeUpdate(m.Index) || (old == m.Index && pr.State == tracker.StateProbe) {
			switch {
			case pr.State == tracker.StateProbe:
				pr.BecomeReplicate()
			case pr.State == tracker.StateSnapshot && pr.Match >= pr.PendingSnapshot:
				pr.BecomeProbe()
				pr.BecomeReplicate()
			case pr.State == tracker.StateReplicate:
				pr.Inflights.FreeLE(m.Index)
			}
			n.maybeCommit()
			if n.leadTransferee == m.From && pr.Match == n.log.lastIndex() {
				n.sendTimeoutNow(m.From)
			}
		}
	case MsgHeartbeatResp:
		pr.RecentActive = true
		pr.ProbeSent = false
		if pr.State == tracker.StateReplicate && pr.Match < n.log.lastIndex() && m.Context > pr.SentRound {
			// The heartbeat answered left after the last append did.
			switch {
			case m.Index < pr.Next-1:
				// The follower's log is shorter than what was sent: appends may have been
				// lost. One append at Next-1 either confirms the pipeline or draws a
				// rejection that restarts probing; a full window probes from Match.
				pr.CheckSent = true
				if pr.Inflights.Full() {
					pr.BecomeProbe()
				}
			default:
				// The follower has what was sent, but acknowledgements may be lost: an
				// append at Next-1 draws a fresh one (a full window gives up a slot).
				pr.CheckSent = true
				if pr.Inflights.Full() {
					pr.Inflights.FreeFirstOne()
				}
			}
		}
		if m.Context > pr.ReadRound {
			pr.ReadRound = m.Context
			n.checkReads()
		}
	case MsgSnapResp:
		pr.RecentActive = true
		if pr.State != tracker.StateSnapshot || m.Snapshot.Index != pr.PendingSnapshot {
			return
		}
		switch {
		case m.Reject:
			pr.SnapOffset = min(m.SnapOffset, uint64(len(n.snapshot.Data)))
			pr.SnapInFlight = false
		case m.SnapDone:
			pr.MaybeUpdate(m.Snapshot.Index)
			pr.BecomeProbe()
			n.maybeCommit()
		default:
			pr.SnapOffset = m.SnapOffset
			pr.SnapInFlight = false
		}
	}
}

// maybeCommit advances the commit index to what a majority of voters store durably, but
// only for an entry of the current term (Raft §5.4.2, Figure 8).
func (n *Node) maybeCommit() {
	if n.role != Leader {
		return
	}
	var acked [MaxMembers]uint64
	k := 0
	if n.isVoter(n.id) {
		acked[k] = n.self.Match
		k++
	}
	for _, pr := range n.prs {
		if !pr.Learner {
			acked[k] = pr.Match
			k++
		}
	}
	ci := quorum.CommittedIndex(acked[:k])
	if ci <= n.commit {
		return
	}
	if t, _ := n.log.term(ci); t != n.term {
		return
	}
	oldCommit := n.commit
	n.commit = ci
	n.uncommittedBytes -= min(n.uncommittedBytes, n.log.rangeBytes(oldCommit+1, ci))
	if n.firstCommitInTerm(oldCommit) {
		n.startPendingReads()
	}
	// Thesis §4.2.2: a leader removed from the configuration steps down once the removal
	// commits.
	if n.lastConfIndex <= n.commit && !n.isVoter(n.id) {
		n.becomeFollower(n.term, None)
	}
}

func (n *Node) firstCommitInTerm(old uint64) bool {
	t, _ := n.log.term(old)
	return t != n.term
}

func (n *Node) committedInTerm() bool {
	t, _ := n.log.term(n.commit)
	return t == n.term
}

func (n *Node) bcastHeartbeat() {
	n.startRound()
	for _, pr := range n.prs {
		n.send(Message{Type: MsgHeartbeat, To: pr.ID, Commit: min(n.commit, pr.Match), Context: n.readRound})
	}
	if len(n.pendingReads) > 0 {
		n.checkReads() // a single voter confirms its own round at once
	}
}

func (n *Node) sendTimeoutNow(to uint64) {
	n.leaseDisabled = true // the target ignores leases when it campaigns
	n.leaseUntil = 0
	n.send(Message{Type: MsgTimeoutNow, To: to})
}

// sendAppends sends what each follower may receive now: pipelined appends up to its window,
// a probe, or the next snapshot chunk. It runs once per Ready, so every proposal since the
// last Ready leaves in one batch.
func (n *Node) sendAppends() {
	for _, pr := range n.prs {
		n.sendAppendsTo(pr)
	}
}

func (n *Node) canSend(pr *tracker.Progress) bool {
	switch pr.State {
	case tracker.StateSnapshot:
		return !pr.SnapInFlight
	case tracker.StateProbe:
		return !pr.ProbeSent && (pr.Next <= n.log.lastIndex() || pr.Match+1 < pr.Next)
	default:
		return !pr.Inflights.Full() && (pr.Next <= n.log.lastIndex() || pr.CheckSent)
	}
}

func (n *Node) sendAppendsTo(pr *tracker.Progress) {
	for n.canSend(pr) {
		if pr.State != tracker.StateSnapshot && pr.Next <= n.log.snapIndex {
			pr.BecomeSnapshot(n.snapshot.Meta.Index)
		}
		if pr.State == tracker.StateSnapshot {
			n.sendSnapshotChunk(pr)
			return
		}
		prev := pr.Next - 1
		prevTerm, ok := n.log.term(prev)
		assert.True(ok, "raftcore: previous entry of an append is available")
		var bytes uint64
		var ents []Entry
		if pr.Next <= n.log.lastIndex() {
			ents, bytes = n.entriesFor(pr.Next, n.log.lastIndex(), n.cfg.MaxSizePerMsg, n.cfg.MaxEntriesPerMsg)
		}
		n.send(Message{Type: MsgApp, To: pr.ID, Index: prev, LogTerm: prevTerm, Entries: ents, Commit: n.commit})
		pr.CheckSent = false
		pr.SentRound = n.readRound
		pr.SentEntries(prev+uint64(len(ents)), bytes)
	}
}

// entriesFor returns entries [lo, hi] within the limits for a message. When they lie in the
// range this Ready hands to storage (the usual case on a leader: the new entries go to
// storage and to every follower), it returns a subslice of it instead of copying the
// headers again.
func (n *Node) entriesFor(lo, hi, maxBytes uint64, maxEntries int) ([]Entry, uint64) {
	w := n.window
	if len(w) > 0 && lo >= w[0].Index && hi <= w[len(w)-1].Index {
		w = w[lo-w[0].Index : hi-w[0].Index+1]
		var bytes uint64
		k := 0
		for k < len(w) && k < maxEntries {
			sz := uint64(len(w[k].Data))
			if k > 0 && bytes+sz > maxBytes {
				break
			}
			bytes += sz
			k++
		}
		return w[:k:k], bytes
	}
	start := len(n.entSlab)
	var bytes uint64
	n.entSlab, bytes = n.log.appendTo(n.entSlab, lo, hi, maxBytes, maxEntries)
	return n.entSlab[start:len(n.entSlab):len(n.entSlab)], bytes
}

func (n *Node) sendSnapshotChunk(pr *tracker.Progress) {
	if pr.PendingSnapshot != n.snapshot.Meta.Index {
		pr.BecomeSnapshot(n.snapshot.Meta.Index) // a newer snapshot replaced the one being sent
	}
	data := n.snapshot.Data
	off := min(pr.SnapOffset, uint64(len(data)))
	end := min(off+n.cfg.SnapshotChunkBytes, uint64(len(data)))
	n.send(Message{Type: MsgSnap, To: pr.ID, Snapshot: n.snapshot.Meta, SnapOffset: off,
		SnapData: data[off:end:end], SnapDone: end == uint64(len(data))})
	pr.SnapInFlight = true
	pr.SnapSentTick = n.ticks
}

// ---- proposals ----

func (n *Node) notLeader() error { return &NotLeaderError{Leader: n.lead} }

func (n *Node) propose(batch [][]byte) (uint64, error) {
	if n.role != Leader {
		return 0, n.notLeader()
	}
	if n.leadTransferee != None {
		return 0, ErrProposalDropped
	}
	if len(batch) > n.cfg.MaxBatchEntries {
		return 0, fmt.Errorf("%w: batch of %d entries over MaxBatchEntries", ErrProposalDropped, len(batch))
	}
	var bytes uint64
	for _, p := range batch {
		bytes += uint64(len(p))
	}
	if bytes > n.cfg.MaxBatchBytes || n.uncommittedBytes+bytes > n.cfg.MaxUncommittedBytes {
		return 0, ErrProposalDropped
	}
	first := n.log.lastIndex() + 1
	for _, p := range batch {
		n.log.append(n.term, EntryNormal, p)
	}
	n.uncommittedBytes += bytes
	n.maybeCommit() // a single voter commits once its own log is durable
	return first, nil
}

func (n *Node) proposeConfChange(cc ConfChange) (uint64, error) {
	if n.role != Leader {
		return 0, n.notLeader()
	}
	if n.leadTransferee != None {
		return 0, ErrProposalDropped
	}
	// Thesis §4.1 (and Ongaro's 2015 raft-dev correction): one change at a time, and only
	// after the leader committed an entry of its own term.
	if !n.committedInTerm() || n.lastConfIndex > n.commit {
		return 0, ErrConfChangePending
	}
	if cc.NodeID == n.id && cc.Type == AddLearner {
		return 0, fmt.Errorf("%w: demote the leader after transferring leadership", ErrBadConfChange)
	}
	if _, err := changed(n.confs[len(n.confs)-1].m, cc); err != nil {
		return 0, err
	}
	var buf [ConfChangeSize]byte
	n.log.append(n.term, EntryConfChange, cc.Encode(buf[:0]))
	index := n.log.lastIndex()
	n.applyConfEntry(index, buf[:])
	return index, nil
}

func (n *Node) transferLeader(to uint64) error {
	if n.role != Leader {
		return n.notLeader()
	}
	if to == n.id {
		return nil
	}
	pr := n.progress(to)
	if pr == nil || pr.Learner {
		return fmt.Errorf("%w: %d is not a voter", ErrBadTransfer, to)
	}
	if n.leadTransferee == to {
		return nil
	}
	n.leadTransferee = to
	n.transferElapsed = 0
	n.electionElapsed = 0 // the transfer gets one election timeout
	if pr.Match == n.log.lastIndex() {
		n.sendTimeoutNow(to)
		return nil
	}
	// Catch the target up now rather than at the next heartbeat.
	switch pr.State {
	case tracker.StateProbe:
		pr.ProbeSent = false
	case tracker.StateReplicate:
		pr.CheckSent = true
	}
	return nil
}

// ---- persistence ----

func (n *Node) ackPersisted(mark PersistMark) {
	if mark.Seq <= n.ackedSeq {
		return
	}
	if mark.Seq > n.readySeq {
		assert.Failf("raftcore: AckPersisted seq %d beyond the last Ready's %d", mark.Seq, n.readySeq)
	}
	idx := mark.Index
	if n.truncActive && mark.Seq <= n.truncSeq {
		idx = min(idx, n.truncIdx)
	}
	if n.truncActive && mark.Seq >= n.truncSeq {
		n.truncActive = false
	}
	idx = min(idx, n.stableTo)
	n.persisted = max(n.persisted, idx)
	n.ackedSeq = mark.Seq
	if n.role == Leader {
		n.self.Match = max(n.self.Match, n.persisted)
		n.maybeCommit()
	}
}

// ---- Ready ----

func (n *Node) hasReady() bool {
	if len(n.msgs) > 0 || n.dirty() || len(n.readStates) > 0 {
		return true
	}
	if n.heldHead < len(n.held) && n.held[n.heldHead].seq <= n.ackedSeq {
		return true
	}
	if min(n.commit, n.persisted) > n.applied {
		return true
	}
	if n.lead != n.lastLead || n.role != n.lastRole {
		return true
	}
	if _, ok := n.ackReady(); ok {
		return true
	}
	if n.snapshotWanted() || n.needRound() {
		return true
	}
	if n.role == Leader {
		for _, pr := range n.prs {
			if n.canSend(pr) {
				return true
			}
		}
	}
	return false
}

func (n *Node) snapshotWanted() bool {
	return (n.cfg.SnapshotThreshold > 0 && n.applied >= n.snapRequested+n.cfg.SnapshotThreshold) ||
		(n.cfg.SnapshotThresholdBytes > 0 && n.appliedBytes >= n.cfg.SnapshotThresholdBytes && n.applied > n.snapRequested)
}

func (n *Node) ready() Ready {
	if n.readyOut {
		assert.Failf("raftcore: Ready called again before Advance")
	}
	n.entSlab = n.entSlab[:0]
	n.log.releaseFreed()
	var rd Ready

	// Persistence work first: its entries are also what the leader sends (entriesFor).
	if !n.readySnapshot.IsEmpty() {
		rd.Snapshot = n.readySnapshot
		n.readySnapshot = Snapshot{}
		n.snapInReady = true
	}
	n.window = nil
	if n.stableTo < n.log.lastIndex() {
		n.entSlab, _ = n.log.appendTo(n.entSlab, n.stableTo+1, n.log.lastIndex(), ^uint64(0), int(^uint(0)>>1))
		rd.Entries = n.entSlab[len(n.entSlab)-int(n.log.lastIndex()-n.stableTo):]
		n.window = rd.Entries
		n.stableTo = n.log.lastIndex()
	}
	if n.role == Leader {
		if n.needRound() {
			n.heartbeatElapsed = 0
			n.bcastHeartbeat()
		}
		n.sendAppends()
	}
	n.flushAck()
	n.releaseHeld()
	n.window = nil
	if hs := n.hardState(); hs != n.lastHS {
		rd.HardState, rd.HasHardState = hs, true
		rd.MustSync = hs.Term != n.lastHS.Term || hs.Vote != n.lastHS.Vote
		n.lastHS = hs
	}
	rd.MustSync = rd.MustSync || len(rd.Entries) > 0 || !rd.Snapshot.IsEmpty()
	if rd.HasHardState || len(rd.Entries) > 0 || !rd.Snapshot.IsEmpty() {
		n.readySeq++
		rd.Mark = PersistMark{Seq: n.readySeq, Index: n.log.lastIndex(), Term: n.log.lastTerm()}
	}

	// Apply: committed and durable locally.
	first := max(n.applied, n.log.snapIndex) + 1
	if hi := min(n.commit, n.persisted); hi >= first && rd.Snapshot.IsEmpty() {
		start := len(n.entSlab)
		var b uint64
		n.entSlab, b = n.log.appendTo(n.entSlab, first, hi, n.cfg.MaxApplyBytes, int(^uint(0)>>1))
		n.appliedBytes += b
		rd.CommittedEntries = n.entSlab[start:]
		n.applying = rd.CommittedEntries[len(rd.CommittedEntries)-1].Index
	}
	if !rd.Snapshot.IsEmpty() {
		n.applying = rd.Snapshot.Meta.Index
	}
	if len(n.readStates) > 0 {
		rd.ReadStates = n.readStates
		n.readStates, n.readStatesSpare = n.readStatesSpare[:0], n.readStates
	}
	if n.applying > n.snapRequested && ((n.cfg.SnapshotThreshold > 0 && n.applying >= n.snapRequested+n.cfg.SnapshotThreshold) ||
		(n.cfg.SnapshotThresholdBytes > 0 && n.appliedBytes >= n.cfg.SnapshotThresholdBytes)) {
		rd.SnapshotRequest = n.applying
		n.snapRequested = n.applying
		n.appliedBytes = 0
	}
	if n.lead != n.lastLead || n.role != n.lastRole {
		rd.Lead, rd.Role, rd.HasSoftState = n.lead, n.role, true
		n.lastLead, n.lastRole = n.lead, n.role
	}
	rd.Messages = n.msgs
	n.msgs, n.msgsSpare = n.msgsSpare[:0], n.msgs
	n.readyOut = true
	return rd
}

func (n *Node) advance() {
	assert.True(n.readyOut, "raftcore: Advance without a Ready")
	n.readyOut = false
	n.applied = max(n.applied, n.applying)
	n.snapInReady = false
}

// ---- status ----

func (n *Node) status() Status {
	s := Status{
		ID: n.id, Role: n.role, Lead: n.lead, HardState: n.hardState(), Applied: n.applied,
		Persisted: n.persisted, FirstIndex: n.log.firstIndex(), LastIndex: n.log.lastIndex(),
		Membership: cloneMembership(Membership{Voters: n.voters, Learners: n.learners}),
	}
	if n.role == Leader {
		s.Peers = append(s.Peers, PeerStatus{ID: n.id, Learner: !n.isVoter(n.id), Match: n.self.Match, Next: n.log.lastIndex() + 1, State: StateReplicate})
		for _, pr := range n.prs {
			s.Peers = append(s.Peers, PeerStatus{ID: pr.ID, Learner: pr.Learner, Match: pr.Match, Next: pr.Next,
				State: ProgressState(pr.State), Inflight: pr.Inflights.Count()})
		}
	}
	return s
}
