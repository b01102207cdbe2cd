package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/consensusbench/consensusbench/raftcore"
)

// The Raft adapter: drives raftcore.Node on simulated hosts exactly as the Ready contract in
// raftcore/api.go says, and checks Raft's safety properties (Raft Figure 3) incrementally
// after every Ready of every node:
//
//   - Election safety (§5.2): at most one leader per term.
//   - Log matching (§5.3): two logs with an entry of the same index and term hold the same
//     entries up to it. Each node keeps a chain hash per index (hash of the previous chain
//     hash, the entry's term, type and data); one global table maps (index, term) to the
//     first chain hash seen, and every other node's entry there must agree.
//   - Leader completeness (§5.4): an entry committed in term T is in the log of every leader
//     of a term > T. A node records the term it is in when it first applies an index (an
//     upper bound of the term the entry was committed in, so the check never fires falsely);
//     a new leader's chain must match the committed chain at the highest index committed in
//     a lower term.
//   - State machine safety (§5.4.3): no two nodes apply different entries at an index (chain
//     hashes agree), and KV states agree wherever a snapshot is taken or installed.
//
// Linearizability of the client history and liveness after heal come from the simulator.

// Bounds of the Raft runs' drawn parameters.
const (
	raftVotersMin        = 3
	raftVotersMax        = 7
	raftElectionTickMin  = 6
	raftElectionTickMax  = 20
	raftHeartbeatTickMax = 3
	raftTightUncommitted = 64 * OpEncodedSize // a small MaxUncommittedBytes, drawn in some runs
	raftSparesMax        = 2                  // idle hosts that membership changes can add
	raftRetryTicksMin    = 3                  // client retransmission period, drawn per run
	raftRetryTicksMax    = 8
	raftSnapThresholdMax = 60
	raftPendingReadsMax  = 256 // ReadIndex requests a node tracks; older ones are forgotten
)

// raftReadMode is how the adapter serves gets.
type raftReadMode uint8

const (
	raftReadLog   raftReadMode = iota // gets go through the log like writes
	raftReadIndex                     // ReadIndex with a heartbeat round (thesis §6.4)
	raftReadLease                     // lease reads (thesis §6.4.1)
)

var raftReadModeNames = [...]string{"log", "readindex", "lease"}

// Messages between workload clients and Raft hosts.
type (
	raftRequest struct{ op Op }
	raftReply   struct {
		seq uint64
		out Output
	}
	raftRedirect struct {
		seq    uint64
		leader NodeID // 0: unknown
	}
)

// RaftOptions are the drawn Raft parameters of a run.
type RaftOptions struct {
	Voters, Spares int
	PreVote        bool
	CheckQuorum    bool
	Read           raftReadMode
	SnapThreshold  uint64 // 0: no snapshots
	SnapRetain     uint64
	// SnapBytes and SnapRetainBytes are raftcore's byte bounds (0: off), drawn small so that
	// they, not the entry counts, decide in some runs.
	SnapBytes, SnapRetainBytes uint64
	SnapChunk                  uint64
	MaxInflight                int
	MaxSizePerMsg              uint64
	MaxEntriesMsg              int
	RetryTicks                 int
	ElectionTick               int
	HeartbeatTick              int

	// MaxUncommitted, when nonzero, replaces the default MaxUncommittedBytes so that a slow
	// quorum makes the leader refuse proposals (ErrProposalDropped).
	MaxUncommitted uint64
	// LazyCommit acknowledges a Ready whose only change is the commit index (MustSync false)
	// at once and lets its write land with a later flush (or be lost in a crash), as the Ready
	// contract allows.
	LazyCommit bool
	// SpreadReads sends each get to a host drawn at random instead of the believed leader,
	// as a client behind a load balancer would: reads reach stalled, partitioned and deposed
	// leaders, where a stale read would show.
	SpreadReads bool
	// Broken injects a deliberate bug into the adapter so tests can show the checkers fail.
	Broken raftBreakage
}

type raftBreakage uint8

const (
	raftCorrect       raftBreakage = iota
	raftAckEarly                   // AckPersisted before the write is durable (ack at issue)
	raftApplyWrongOps              // host 2 applies a corrupted op at one index
	raftForgeVotes                 // host 1 grants its vote to every candidate of a term
	raftCorruptAppend              // entries sent to host 2 carry a flipped payload bit
	raftStaleClock                 // the driver ticks the core only when Tick is called, not before inputs
)

func drawRaftOptions(r *rand.Rand) RaftOptions {
	o := RaftOptions{
		Voters:        raftVotersMin + 2*r.IntN((raftVotersMax-raftVotersMin)/2+1),
		Spares:        r.IntN(raftSparesMax + 1),
		PreVote:       r.IntN(4) != 0,
		CheckQuorum:   r.IntN(4) != 0,
		Read:          raftReadMode(r.IntN(3)),
		SnapRetain:    uint64(r.IntN(20)),
		SnapChunk:     uint64(64 << r.IntN(5)),
		MaxInflight:   1 + r.IntN(8),
		MaxSizePerMsg: uint64(OpEncodedSize * (1 + r.IntN(32))),
		MaxEntriesMsg: 1 + r.IntN(16),
		RetryTicks:    raftRetryTicksMin + r.IntN(raftRetryTicksMax-raftRetryTicksMin+1),
		LazyCommit:    r.IntN(2) == 0,
		ElectionTick:  raftElectionTickMin + r.IntN(raftElectionTickMax-raftElectionTickMin+1),
		HeartbeatTick: 1 + r.IntN(raftHeartbeatTickMax),
	}
	if r.IntN(4) == 0 {
		o.MaxUncommitted = raftTightUncommitted
	}
	if r.IntN(4) != 0 {
		o.SnapThreshold = 5 + uint64(r.IntN(raftSnapThresholdMax))
		if r.IntN(2) == 0 {
			o.SnapBytes = OpEncodedSize * (3 + uint64(r.IntN(raftSnapThresholdMax)))
			o.SnapRetainBytes = OpEncodedSize * uint64(r.IntN(20))
		}
	}
	o.SpreadReads = r.IntN(2) == 0
	if o.Read == raftReadLease && !o.CheckQuorum {
		o.CheckQuorum = true // lease reads require CheckQuorum (raftcore validate)
	}
	return o
}

// NewRaft is the Factory for Raft runs.
func NewRaft(c *Cluster) Protocol { return newRaftWith(c, raftCorrect) }

func newRaftWith(c *Cluster, broken raftBreakage) *raftProtocol {
	return newRaftTuned(c, func(o *RaftOptions) { o.Broken = broken })
}

// newRaftTuned draws the options and lets tune adjust them (measurements with a fixed shape).
func newRaftTuned(c *Cluster, tune func(*RaftOptions)) *raftProtocol {
	o := drawRaftOptions(c.ProtoRand())
	tune(&o)
	p := &raftProtocol{c: c, opts: o, leaders: map[uint64]NodeID{}, tableChain: map[[2]uint64]uint64{}, digests: map[uint64]uint64{}}
	for i := range o.Voters {
		p.initial.Voters = append(p.initial.Voters, uint64(i+1))
	}
	p.replicas = make([]*raftReplica, o.Voters+o.Spares)
	return p
}

type raftProtocol struct {
	c        *Cluster
	opts     RaftOptions
	initial  raftcore.Membership
	replicas []*raftReplica // by host index; nil while crashed
	err      error          // first safety violation

	leaders    map[uint64]NodeID    // term -> leader (election safety)
	tableChain map[[2]uint64]uint64 // (index, term) -> chain hash (log matching)
	applied    []uint64             // index -> chain hash of the applied entry (state machine safety)
	commitTerm []uint64             // index -> term of the node that first applied it
	digests    map[uint64]uint64    // index -> KV digest where a snapshot was taken or installed
	nextRctx   uint64
	count      raftCounters

	// Leaderless time: nLeaders counts hosts in the Leader role; while it is 0 the cluster
	// is leaderless (a stale leader cut off from the rest still counts as one).
	nLeaders        int
	leaderlessSince int64 // units; valid while nLeaders == 0
	leaderless      int64 // units, closed stretches
	longestGap      int64 // units, longest closed stretch
}

// leaderChange moves the leader count by d (+1 or -1) at the current time.
func (p *raftProtocol) leaderChange(d int) {
	now := p.c.Now()
	if p.nLeaders == 0 && d > 0 {
		gap := now - p.leaderlessSince
		p.leaderless += gap
		p.longestGap = max(p.longestGap, gap)
	}
	p.nLeaders += d
	if p.nLeaders == 0 {
		p.leaderlessSince = now
	}
}

// leaderlessUnits returns the time without a leader so far and the longest such stretch.
func (p *raftProtocol) leaderlessUnits() (total, longest int64) {
	total, longest = p.leaderless, p.longestGap
	if p.nLeaders == 0 {
		gap := p.c.Now() - p.leaderlessSince
		total += gap
		longest = max(longest, gap)
	}
	return total, longest
}

// raftCounters show which protocol paths a run exercised.
type raftCounters struct {
	leaders, truncations, snapsTaken, snapsInstalled, restartsFromSnap int
	confChanges, transfers, readsServed, redirects                     int
	leaderStalls, staleClockReads                                      int
}

func (p *raftProtocol) Counters() []Counter {
	k := &p.count
	leaderless, _ := p.leaderlessUnits()
	return []Counter{{"leaderless-ticks", int(leaderless / TickUnits)}, {"leaders", k.leaders}, {"truncations", k.truncations}, {"snapshots-taken", k.snapsTaken},
		{"snapshots-installed", k.snapsInstalled}, {"restarts-from-snapshot", k.restartsFromSnap},
		{"conf-changes-committed", k.confChanges}, {"transfers", k.transfers}, {"readindex-reads", k.readsServed},
		{"redirects", k.redirects}, {"leader-stalls", k.leaderStalls}, {"reads-queued-in-stall", k.staleClockReads}}
}

func (p *raftProtocol) Describe() string {
	o := p.opts
	return fmt.Sprintf("raft voters=%d spares=%d prevote=%v checkquorum=%v reads=%s snap=%d/retain=%d/chunk=%d snapbytes=%d/retain=%d inflight=%d msgbytes=%d msgentries=%d retry=%dt lazycommit=%v election=%dt heartbeat=%dt uncommitted=%d spreadreads=%v broken=%d",
		o.Voters, o.Spares, o.PreVote, o.CheckQuorum, raftReadModeNames[o.Read], o.SnapThreshold, o.SnapRetain,
		o.SnapChunk, o.SnapBytes, o.SnapRetainBytes, o.MaxInflight, o.MaxSizePerMsg, o.MaxEntriesMsg, o.RetryTicks, o.LazyCommit, o.ElectionTick, o.HeartbeatTick, o.MaxUncommitted, o.SpreadReads, o.Broken)
}

func (p *raftProtocol) Hosts() int   { return p.opts.Voters + p.opts.Spares }
func (p *raftProtocol) MaxDown() int { return p.Hosts() }
func (p *raftProtocol) Check() error { return p.err }
func (p *raftProtocol) Heal()        {}

// Converged reports whether the cluster has one leader and every member of its
// configuration applied exactly what the leader applied, with the same KV state.
func (p *raftProtocol) Converged() bool { return p.convergence() == nil }

// Final fails a run whose cluster did not converge after the quiet period.
func (p *raftProtocol) Final() error {
	if p.err != nil {
		return p.err
	}
	if err := p.convergence(); err != nil {
		return fmt.Errorf("not converged %d ticks after the workload finished: %w", QuiesceTicksMax, err)
	}
	return nil
}

func (p *raftProtocol) convergence() error {
	var lead *raftReplica
	for _, r := range p.replicas {
		if r != nil && r.n.Role() == raftcore.Leader && (lead == nil || r.term > lead.term) {
			lead = r
		}
	}
	if lead == nil {
		return errors.New("no leader")
	}
	m := lead.n.Status().Membership
	want := lead.kv.Digest()
	for _, ids := range [][]uint64{m.Voters, m.Learners} {
		for _, id := range ids {
			r := p.replicas[id-1]
			if r.applied != lead.applied || r.kv.Digest() != want {
				return fmt.Errorf("member %d applied %d, leader %d applied %d (same state: %v)",
					id, r.applied, lead.h.ID(), lead.applied, r.kv.Digest() == want)
			}
		}
	}
	return nil
}

func (p *raftProtocol) Crashed(id NodeID) {
	if r := p.replicas[id-1]; r != nil && r.role == raftcore.Leader {
		p.leaderChange(-1)
	}
	p.replicas[id-1] = nil
}

// StateDump describes every node for a failure report.
func (p *raftProtocol) StateDump() string {
	s := ""
	for i, r := range p.replicas {
		if r == nil {
			s += fmt.Sprintf("  host %d: down\n", i+1)
			continue
		}
		st := r.n.Status()
		s += fmt.Sprintf("  host %d: %v lead=%d hs=%+v applied=%d persisted=%d log=%d..%d members=%v learners=%v disk-pending=%d\n",
			i+1, st.Role, st.Lead, st.HardState, st.Applied, st.Persisted, st.FirstIndex, st.LastIndex,
			st.Membership.Voters, st.Membership.Learners, r.h.Disk().Pending())
		for _, pr := range st.Peers {
			s += fmt.Sprintf("      peer %d learner=%v match=%d next=%d state=%d inflight=%d\n", pr.ID, pr.Learner, pr.Match, pr.Next, pr.State, pr.Inflight)
		}
	}
	return s
}

func (p *raftProtocol) fail(format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf(format, args...)
	}
}

// raftImage is what a host's disk holds: the durable HardState, snapshot and log. Only Disk
// land callbacks modify it; it owns all its bytes.
type raftImage struct {
	hs        raftcore.HardState
	snap      raftcore.Snapshot
	snapChain uint64
	entries   []raftcore.Entry // after snap.Meta.Index, contiguous
	chain     []uint64         // chain[i] belongs to entries[i]
}

// raftWrite is one Ready's persistence work, deep-copied out of core memory.
type raftWrite struct {
	hs        raftcore.HardState
	hasHS     bool
	snap      raftcore.Snapshot // Meta.Index 0: none
	snapChain uint64
	entries   []raftcore.Entry
	chain     []uint64
	localSnap bool // an application snapshot (compaction), not a leader's InstallSnapshot
}

func (img *raftImage) land(w *raftWrite) {
	if w.snap.Meta.Index > 0 {
		switch {
		case w.localSnap && w.snap.Meta.Index <= img.snap.Meta.Index:
			// An InstallSnapshot that landed earlier already covers it.
		case w.localSnap:
			k := int(w.snap.Meta.Index - img.snap.Meta.Index)
			if k > len(img.entries) {
				panic(fmt.Sprintf("sim/raft: local snapshot at %d beyond the durable log (last %d)",
					w.snap.Meta.Index, img.snap.Meta.Index+uint64(len(img.entries))))
			}
			img.entries = slices.Delete(img.entries, 0, k)
			img.chain = slices.Delete(img.chain, 0, k)
			img.snap, img.snapChain = w.snap, w.snapChain
		default:
			// An installed snapshot replaces the whole stored log (raftcore's Ready rule 2).
			img.entries, img.chain = img.entries[:0], img.chain[:0]
			img.snap, img.snapChain = w.snap, w.snapChain
		}
		img.hs.Commit = max(img.hs.Commit, img.snap.Meta.Index)
	}
	if len(w.entries) > 0 {
		first := w.entries[0].Index
		if first <= img.snap.Meta.Index || first > img.snap.Meta.Index+uint64(len(img.entries))+1 {
			panic(fmt.Sprintf("sim/raft: durable write of entries from %d does not fit the log (snapshot %d, %d entries)",
				first, img.snap.Meta.Index, len(img.entries)))
		}
		k := int(first - img.snap.Meta.Index - 1)
		img.entries = append(img.entries[:k], w.entries...)
		img.chain = append(img.chain[:k], w.chain...)
	}
	if w.hasHS {
		img.hs = w.hs
		img.hs.Commit = max(w.hs.Commit, img.snap.Meta.Index)
	}
	if last := img.snap.Meta.Index + uint64(len(img.entries)); img.hs.Commit > last {
		panic(fmt.Sprintf("sim/raft: durable HardState commit %d beyond the durable log's last index %d", img.hs.Commit, last))
	}
}

func (p *raftProtocol) StartReplica(h *Host, restart bool) Replica {
	img, _ := h.Disk().Image.(*raftImage)
	if img == nil {
		img = &raftImage{}
		h.Disk().Image = img
	}
	o := p.opts
	cfg := raftcore.DefaultConfig(uint64(h.ID()), p.initial, h.Rand())
	cfg.PreVote, cfg.CheckQuorum = o.PreVote, o.CheckQuorum
	switch o.Read {
	case raftReadLease:
		cfg.ReadOnly = raftcore.ReadLease
	default:
		cfg.ReadOnly = raftcore.ReadSafe
	}
	cfg.SnapshotThreshold, cfg.SnapshotRetainEntries, cfg.SnapshotChunkBytes = o.SnapThreshold, o.SnapRetain, o.SnapChunk
	cfg.SnapshotThresholdBytes, cfg.SnapshotRetainBytes = o.SnapBytes, o.SnapRetainBytes
	cfg.MaxInflightMsgs, cfg.MaxSizePerMsg, cfg.MaxEntriesPerMsg = o.MaxInflight, o.MaxSizePerMsg, o.MaxEntriesMsg
	cfg.ElectionTick, cfg.HeartbeatTick = o.ElectionTick, o.HeartbeatTick
	// The lease margin covers the sim's clock drift (ClockDriftPctMax over an election
	// timeout) plus one tick of phase difference between hosts.
	cfg.LeaseDriftTicks = 2 + o.ElectionTick*ClockDriftPctMax*2/100
	if o.MaxUncommitted > 0 {
		cfg.MaxUncommittedBytes = o.MaxUncommitted
		cfg.MaxBatchBytes = min(cfg.MaxBatchBytes, o.MaxUncommitted)
	}
	r := &raftReplica{p: p, h: h, img: img, membership: cloneMembership(p.initial)}
	if restart {
		cfg.HardState = img.hs
		cfg.Snapshot = img.snap
		cfg.Entries = img.entries
		cfg.Applied = img.snap.Meta.Index
		r.term = img.hs.Term
		if img.snap.Meta.Index > 0 {
			if err := r.kv.UnmarshalBinary(img.snap.Data); err != nil {
				panic(fmt.Sprintf("sim/raft: host %d durable snapshot: %v", h.ID(), err))
			}
			r.membership = cloneMembership(img.snap.Meta.Membership)
			r.appliedTerm = img.snap.Meta.Term
		}
		r.applied = img.snap.Meta.Index
		r.base, r.baseChain = img.snap.Meta.Index, img.snapChain
		r.chain = append(r.chain, img.chain...)
		if r.base > 0 {
			p.checkDigest(r, r.base, "restart")
			p.count.restartsFromSnap++
		}
	}
	n, err := raftcore.New(cfg)
	if err != nil {
		panic(fmt.Sprintf("sim/raft: host %d (restart=%v): %v", h.ID(), restart, err))
	}
	r.n = n
	p.replicas[h.ID()-1] = r
	h.Logf("start restart=%v hs=%+v snap=%d entries=%d", restart, img.hs, img.snap.Meta.Index, len(img.entries))
	r.drive()
	return r
}

// sameIDs reports whether a and b hold the same IDs in any order.
func sameIDs(a, b []uint64) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func cloneMembership(m raftcore.Membership) raftcore.Membership {
	return raftcore.Membership{Voters: slices.Clone(m.Voters), Learners: slices.Clone(m.Learners)}
}

// raftReplica is one host's Raft node plus its KV state machine and client bookkeeping.
type raftReplica struct {
	p   *raftProtocol
	h   *Host
	n   *raftcore.Node
	img *raftImage

	kv          KV
	applied     uint64
	appliedTerm uint64
	membership  raftcore.Membership // as of applied (for snapshots)
	term        uint64              // latest HardState term handed out by the core
	role        raftcore.Role       // latest role handed out by the core

	// Log matching: chain hash per index. chain[i] is index base+1+i.
	base      uint64
	baseChain uint64
	chain     []uint64

	unacked     int                // persistence writes issued and not yet acknowledged
	waiting     [ClientsMax]uint64 // per client: seq proposed here and not yet answered
	waitingTerm [ClientsMax]uint64 // the term it was proposed in
	reads       []raftRead         // ReadIndex requests, pending and confirmed
	ticked      int64              // ticks handed to the core (catchUp keeps it at the host's clock)
}

type raftRead struct {
	rctx   uint64
	client uint32
	seq    uint64
	key    uint8
	index  uint64 // confirmed read index; 0 while unconfirmed
	ok     bool
}

func (r *raftReplica) Tick() {
	if r.p.opts.Broken == raftStaleClock {
		r.n.Tick()
		r.ticked++
	}
	r.catchUp()
	r.drive()
}

// catchUp hands the core every tick of the host's clock it has not seen. It runs before any
// input reaches the core, as the server's driver does with the monotonic clock: after a
// stall the simulator delivers queued input before the missed ticks, and a leader that
// answered a read with its pre-stall clock would trust an expired lease (thesis §6.4.1).
func (r *raftReplica) catchUp() {
	if r.p.opts.Broken == raftStaleClock {
		return
	}
	for ; r.ticked < r.h.Ticks(); r.ticked++ {
		r.n.Tick()
	}
}

func (r *raftReplica) Deliver(from NodeID, msg any) {
	r.catchUp()
	switch m := msg.(type) {
	case *raftcore.Message:
		if r.h.c.Tracing() {
			r.h.Logf("recv %v <- %d term=%d idx=%d commit=%d", m.Type, m.From, m.Term, m.Index, m.Commit)
		}
		if err := r.n.Step(m); err != nil {
			// A correct peer never sends what the core refuses as malformed. A deliberately
			// broken run has incorrect peers: the core refusing their messages is it defending
			// itself, and the run goes on so that the checker the breakage targets can fire.
			if r.p.opts.Broken == raftCorrect || !errors.Is(err, raftcore.ErrMalformed) {
				r.p.fail("host %d: Step(%v from %d): %v", r.h.ID(), m.Type, from, err)
			}
		}
	case raftRequest:
		if m.op.Kind == OpGet && r.h.Resuming() {
			r.p.count.staleClockReads++
		}
		r.request(from, m.op)
	}
	r.drive()
}

func (r *raftReplica) request(from NodeID, op Op) {
	if op.Kind == OpGet && r.p.opts.Read != raftReadLog {
		r.p.nextRctx++
		ctx := r.p.nextRctx
		if err := r.n.ReadIndex(ctx); err != nil {
			return // too many pending reads: the client retries
		}
		if len(r.reads) >= raftPendingReadsMax {
			r.reads = slices.Delete(r.reads, 0, 1)
		}
		r.reads = append(r.reads, raftRead{rctx: ctx, client: op.Client, seq: op.Seq, key: op.Key})
		return
	}
	if r.waiting[op.Client] == op.Seq && r.waitingTerm[op.Client] == r.term && r.n.Role() == raftcore.Leader {
		// A retransmission to the leader that already holds the op in its log this term:
		// a leader never truncates its own log, so the entry commits or the term ends.
		// Proposing it again would only add duplicates behind a slow follower.
		return
	}
	first, err := r.n.Propose([][]byte{AppendOp(nil, op)})
	if err == nil && (first != r.n.LastIndex() || first <= r.n.Committed()) {
		r.p.fail("host %d: Propose returned index %d, log ends at %d, commit %d", r.h.ID(), first, r.n.LastIndex(), r.n.Committed())
	}
	if r.h.c.Tracing() {
		r.h.Logf("propose c%d#%d: %v", op.Client, op.Seq, err)
	}
	var nl *raftcore.NotLeaderError
	switch {
	case err == nil:
		r.waiting[op.Client], r.waitingTerm[op.Client] = op.Seq, r.term
	case errors.As(err, &nl):
		p := r.p
		p.count.redirects++
		r.h.Send(from, raftRedirect{seq: op.Seq, leader: NodeID(nl.Leader)})
	case errors.Is(err, raftcore.ErrProposalDropped):
		// Transferring leadership: the client retries.
	default:
		r.p.fail("host %d: Propose: %v", r.h.ID(), err)
	}
}

// drive runs the Ready loop until the core has nothing left (raftcore-api.md "The loop").
func (r *raftReplica) drive() {
	p := r.p
	for r.n.HasReady() {
		rd := r.n.Ready()
		if rd.HasHardState {
			r.term = rd.HardState.Term
		}
		// 1. Messages may leave at once; the core holds back what needs durability. They are
		// deep-copied: the network delivers them after Advance, maybe twice.
		for i := range rd.Messages {
			m := copyMessage(&rd.Messages[i])
			if p.opts.Broken == raftForgeVotes && r.h.ID() == 1 && m.Type == raftcore.MsgVoteResp && !m.Reject {
				for to := NodeID(2); int(to) <= p.Hosts(); to++ {
					if to != NodeID(m.To) {
						forged := *m
						forged.To, forged.Reject = uint64(to), false
						r.h.Send(to, &forged)
					}
				}
			}
			if p.opts.Broken == raftCorruptAppend && m.To == 2 && m.Type == raftcore.MsgApp {
				for k := range m.Entries {
					if len(m.Entries[k].Data) > 0 {
						m.Entries[k].Data[len(m.Entries[k].Data)-1] ^= 0x80
					}
				}
			}
			if r.h.c.Tracing() {
				r.h.Logf("send %v -> %d term=%d idx=%d logterm=%d ents=%d commit=%d reject=%v hint=%d ctx=%d snap=%d/%d",
					m.Type, m.To, m.Term, m.Index, m.LogTerm, len(m.Entries), m.Commit, m.Reject, m.RejectHint, m.Context, m.Snapshot.Index, m.SnapOffset)
			}
			r.h.Send(NodeID(m.To), m)
		}
		// Checks on the log as the core now holds it.
		w := r.trackLog(&rd)
		if rd.HasSoftState {
			if was := r.role == raftcore.Leader; was != (rd.Role == raftcore.Leader) {
				if was {
					p.leaderChange(-1)
				} else {
					p.leaderChange(+1)
				}
			}
			r.role = rd.Role
			r.h.Logf("role=%v lead=%d term=%d", rd.Role, rd.Lead, r.term)
			if rd.Role == raftcore.Leader {
				r.checkNewLeader()
			}
		}
		// 2. Persist in Ready order; ack when durable.
		if rd.MustPersist() || w.hasHS {
			mark := rd.Mark
			img := r.img
			switch {
			case rd.MustPersist() && p.opts.Broken == raftAckEarly,
				// Acks are cumulative: a lazy ack is only honest when every earlier write
				// is already acknowledged.
				rd.MustPersist() && !rd.MustSync && p.opts.LazyCommit && r.unacked == 0:
				r.h.Disk().Write(func() { img.land(w) }, nil)
				r.n.AckPersisted(mark)
			case mark.Seq != 0:
				r.unacked++
				r.h.Disk().Write(func() { img.land(w) }, func() {
					r.catchUp()
					r.unacked--
					r.n.AckPersisted(mark)
					r.drive()
				})
			default:
				r.h.Disk().Write(func() { img.land(w) }, nil)
			}
		}
		// 3. Apply: snapshot first, then committed entries.
		if !rd.Snapshot.IsEmpty() {
			r.installSnapshot(&rd.Snapshot)
		}
		for i := range rd.CommittedEntries {
			r.apply(&rd.CommittedEntries[i])
		}
		// 4. Reads.
		for _, rs := range rd.ReadStates {
			for i := range r.reads {
				if r.reads[i].rctx == rs.Context {
					r.reads[i].index, r.reads[i].ok = rs.Index, true
				}
			}
		}
		r.serveReads()
		r.n.Advance()
		// 5. Snapshot when asked, as of the applied index (now Advanced).
		if rd.SnapshotRequest > 0 {
			r.takeSnapshot(rd.SnapshotRequest)
		}
	}
}

// trackLog updates the node's chain hashes from the Ready's snapshot and entries, checks log
// matching, and returns the deep-copied persistence work.
func (r *raftReplica) trackLog(rd *raftcore.Ready) *raftWrite {
	p := r.p
	w := &raftWrite{hs: rd.HardState, hasHS: rd.HasHardState}
	if !rd.Snapshot.IsEmpty() {
		meta := rd.Snapshot.Meta
		ch, ok := p.appliedChain(meta.Index)
		if !ok {
			p.fail("host %d: received a snapshot at %d that no node applied", r.h.ID(), meta.Index)
		}
		r.base, r.baseChain, r.chain = meta.Index, ch, r.chain[:0]
		w.snap = raftcore.Snapshot{Meta: raftcore.SnapshotMeta{Index: meta.Index, Term: meta.Term,
			Membership: cloneMembership(meta.Membership)}, Data: slices.Clone(rd.Snapshot.Data)}
		w.snapChain = ch
	}
	if len(rd.Entries) == 0 {
		return w
	}
	first := rd.Entries[0].Index
	if first <= r.base || first > r.last()+1 {
		p.fail("host %d: Ready entries start at %d, log holds %d..%d", r.h.ID(), first, r.base, r.last())
		return w
	}
	if first <= r.last() {
		p.count.truncations++
	}
	r.chain = r.chain[:first-r.base-1]
	w.entries = make([]raftcore.Entry, len(rd.Entries))
	w.chain = make([]uint64, len(rd.Entries))
	size := 0
	for i := range rd.Entries {
		size += len(rd.Entries[i].Data)
	}
	buf := make([]byte, 0, size)
	prev := r.chainAt(first - 1)
	for i := range rd.Entries {
		e := &rd.Entries[i]
		if e.Index != first+uint64(i) {
			p.fail("host %d: Ready entries not contiguous at %d", r.h.ID(), e.Index)
			return w
		}
		h := chainHash(prev, e)
		key := [2]uint64{e.Index, e.Term}
		if old, ok := p.tableChain[key]; !ok {
			p.tableChain[key] = h
		} else if old != h {
			p.fail("log matching (Raft §5.3) violated: host %d holds a different log up to index %d term %d than another node had", r.h.ID(), e.Index, e.Term)
		}
		r.chain = append(r.chain, h)
		prev = h
		start := len(buf)
		buf = append(buf, e.Data...)
		w.entries[i] = raftcore.Entry{Index: e.Index, Term: e.Term, Type: e.Type, Data: buf[start:len(buf):len(buf)]}
		w.chain[i] = h
	}
	return w
}

func (r *raftReplica) last() uint64 { return r.base + uint64(len(r.chain)) }

func (r *raftReplica) chainAt(i uint64) uint64 {
	switch {
	case i == r.base:
		return r.baseChain
	case i > r.base && i <= r.last():
		return r.chain[i-r.base-1]
	}
	// Below the node's base: the committed prefix; use the applied chain.
	h, _ := r.p.appliedChain(i)
	return h
}

// chainHash extends prev with one entry (FNV-1a over term, type and data).
func chainHash(prev uint64, e *raftcore.Entry) uint64 {
	h := prev ^ 14695981039346656037
	mix := func(b byte) {
		h ^= uint64(b)
		h *= 1099511628211
	}
	for k := 0; k < 8; k++ {
		mix(byte(e.Term >> (8 * k)))
	}
	mix(byte(e.Type))
	for _, b := range e.Data {
		mix(b)
	}
	return h | 1 // 0 means "unset" in the tables
}

func (p *raftProtocol) appliedChain(i uint64) (uint64, bool) {
	if i == 0 {
		return 0, true
	}
	if i < uint64(len(p.applied)) && p.applied[i] != 0 {
		return p.applied[i], true
	}
	return 0, false
}

// checkNewLeader runs when the node becomes leader: election safety and leader completeness.
func (r *raftReplica) checkNewLeader() {
	p := r.p
	term := r.n.Status().HardState.Term
	if other, ok := p.leaders[term]; ok && other != r.h.ID() {
		p.fail("election safety (Raft §5.2) violated: hosts %d and %d both leader in term %d", other, r.h.ID(), term)
		return
	}
	p.leaders[term] = r.h.ID()
	p.count.leaders++
	r.h.Logf("leader term=%d last=%d", term, r.last())
	// Leader completeness (Raft §5.4): the highest index committed in a lower term.
	for i := len(p.commitTerm) - 1; i > 0; i-- {
		ct := p.commitTerm[i]
		if ct == 0 || ct >= term {
			continue
		}
		idx := uint64(i)
		if idx < r.base {
			return // covered by the node's snapshot
		}
		if idx > r.last() || r.chainAt(idx) != p.applied[idx] {
			p.fail("leader completeness (Raft §5.4) violated: host %d leads term %d without index %d committed in term %d (its log ends at %d)",
				r.h.ID(), term, idx, ct, r.last())
		}
		return
	}
}

func (r *raftReplica) apply(e *raftcore.Entry) {
	p := r.p
	if e.Index != r.applied+1 {
		p.fail("host %d applies index %d after %d", r.h.ID(), e.Index, r.applied)
		return
	}
	ch := r.chainAt(e.Index)
	if e.Index <= r.base {
		p.fail("host %d applies index %d below its log base %d", r.h.ID(), e.Index, r.base)
	}
	data := e.Data
	if p.opts.Broken == raftApplyWrongOps && r.h.ID() == 2 && e.Type == raftcore.EntryNormal && len(data) == OpEncodedSize {
		corrupt := slices.Clone(data)
		corrupt[22] ^= 1 // flip a bit of Value: host 2 executes a different op
		data = corrupt
		ch ^= 2
	}
	for uint64(len(p.applied)) <= e.Index {
		p.applied = append(p.applied, 0)
		p.commitTerm = append(p.commitTerm, 0)
	}
	if old := p.applied[e.Index]; old == 0 {
		p.applied[e.Index] = ch
		p.commitTerm[e.Index] = r.term
		if e.Type == raftcore.EntryConfChange {
			p.count.confChanges++
		}
	} else if old != ch {
		p.fail("state machine safety (Raft §5.4.3) violated: host %d applies a different entry at index %d", r.h.ID(), e.Index)
	}
	r.applied, r.appliedTerm = e.Index, e.Term
	switch e.Type {
	case raftcore.EntryNormal:
		op, err := DecodeOp(data)
		if err != nil {
			p.fail("host %d: committed entry %d: %v", r.h.ID(), e.Index, err)
			return
		}
		out, dup := r.kv.Apply(op)
		if r.h.c.Tracing() {
			r.h.Logf("apply %d/%d c%d#%d %s k%d -> %+v dup=%v", e.Index, e.Term, op.Client, op.Seq, op.Kind, op.Key, out, dup)
		}
		if r.waiting[op.Client] == op.Seq {
			r.waiting[op.Client] = 0
			r.h.Send(ClientIDBase+NodeID(op.Client), raftReply{seq: op.Seq, out: out})
		}
	case raftcore.EntryConfChange:
		cc, err := raftcore.DecodeConfChange(data)
		if err != nil {
			p.fail("host %d: committed conf change %d: %v", r.h.ID(), e.Index, err)
			return
		}
		applyConfChange(&r.membership, cc)
		r.h.Logf("applied conf change %d %+v -> %+v", e.Index, cc, r.membership)
	}
}

// applyConfChange mirrors raftcore's single-server change semantics on a membership.
func applyConfChange(m *raftcore.Membership, cc raftcore.ConfChange) {
	m.Voters = slices.DeleteFunc(m.Voters, func(id uint64) bool { return id == cc.NodeID })
	m.Learners = slices.DeleteFunc(m.Learners, func(id uint64) bool { return id == cc.NodeID })
	switch cc.Type {
	case raftcore.AddVoter:
		m.Voters = append(m.Voters, cc.NodeID)
		slices.Sort(m.Voters)
	case raftcore.AddLearner:
		m.Learners = append(m.Learners, cc.NodeID)
		slices.Sort(m.Learners)
	}
}

func (r *raftReplica) installSnapshot(s *raftcore.Snapshot) {
	if err := r.kv.UnmarshalBinary(s.Data); err != nil {
		r.p.fail("host %d: snapshot at %d: %v", r.h.ID(), s.Meta.Index, err)
		return
	}
	r.applied, r.appliedTerm = s.Meta.Index, s.Meta.Term
	r.membership = cloneMembership(s.Meta.Membership)
	clear(r.waiting[:])
	r.h.Logf("installed snapshot %d term %d", s.Meta.Index, s.Meta.Term)
	r.p.count.snapsInstalled++
	r.p.checkDigest(r, s.Meta.Index, "installed snapshot")
}

func (p *raftProtocol) checkDigest(r *raftReplica, index uint64, what string) {
	d := r.kv.Digest()
	if old, ok := p.digests[index]; !ok {
		p.digests[index] = d
	} else if old != d {
		p.fail("state machine safety (Raft §5.4.3) violated: host %d's state at index %d (%s) differs from another node's", r.h.ID(), index, what)
	}
}

// takeSnapshot answers Ready.SnapshotRequest: snapshot the KV, report it to the core, and
// persist it (compacting the durable log) in disk order behind earlier writes.
func (r *raftReplica) takeSnapshot(index uint64) {
	p := r.p
	if index != r.applied {
		p.fail("host %d: snapshot requested at %d, applied %d", r.h.ID(), index, r.applied)
		return
	}
	p.checkDigest(r, index, "snapshot")
	data := r.kv.AppendBinary(make([]byte, 0, KVEncodedSize))
	meta, err := r.n.ReportSnapshot(index, data)
	if err != nil {
		if !errors.Is(err, raftcore.ErrSnapshotTooOld) {
			p.fail("host %d: ReportSnapshot(%d): %v", r.h.ID(), index, err)
		}
		return
	}
	// The core's metadata must agree with what the adapter tracked from the applied entries.
	if meta.Index != index || meta.Term != r.appliedTerm || !sameIDs(meta.Membership.Voters, r.membership.Voters) ||
		!sameIDs(meta.Membership.Learners, r.membership.Learners) {
		p.fail("host %d: ReportSnapshot(%d) says %+v, the applied entries say term %d membership %+v", r.h.ID(), index, meta, r.appliedTerm, r.membership)
	}
	p.count.snapsTaken++
	w := &raftWrite{localSnap: true, snapChain: r.chainAt(index), snap: raftcore.Snapshot{
		Meta: raftcore.SnapshotMeta{Index: index, Term: r.appliedTerm, Membership: cloneMembership(r.membership)},
		Data: data,
	}}
	img := r.img
	r.h.Disk().Write(func() { img.land(w) }, nil)
}

func (r *raftReplica) serveReads() {
	k := 0
	for _, rd := range r.reads {
		if rd.ok && r.applied >= rd.index {
			r.p.count.readsServed++
			r.h.Send(ClientIDBase+NodeID(rd.client), raftReply{seq: rd.seq, out: Output{Value: r.kv.Get(rd.key), OK: true}})
			continue
		}
		r.reads[k] = rd
		k++
	}
	r.reads = r.reads[:k]
}

// copyMessage deep-copies a message out of core memory (one allocation for all entry data).
func copyMessage(m *raftcore.Message) *raftcore.Message {
	c := *m
	if len(m.Entries) > 0 {
		size := 0
		for i := range m.Entries {
			size += len(m.Entries[i].Data)
		}
		buf := make([]byte, 0, size)
		c.Entries = make([]raftcore.Entry, len(m.Entries))
		for i, e := range m.Entries {
			start := len(buf)
			buf = append(buf, e.Data...)
			e.Data = buf[start:len(buf):len(buf)]
			c.Entries[i] = e
		}
	}
	if m.SnapData != nil {
		c.SnapData = slices.Clone(m.SnapData)
	}
	c.Snapshot.Membership = cloneMembership(m.Snapshot.Membership)
	return &c
}

// Nemesis: leadership transfers and single-server membership changes, proposed to the
// current leader, and stalls of the leader's process (the pause-leader fault: the rest of
// the cluster elects a new leader while the old one still believes it leads).
func (p *raftProtocol) Nemesis(rng *rand.Rand) string {
	var lead *raftReplica
	var leadTerm uint64
	for _, r := range p.replicas {
		if r != nil && r.n.Role() == raftcore.Leader && !r.h.Stalled() {
			if t := r.n.Status().HardState.Term; lead == nil || t > leadTerm {
				lead, leadTerm = r, t
			}
		}
	}
	if lead == nil {
		return ""
	}
	st := lead.n.Status()
	m := st.Membership
	hosts := uint64(p.Hosts())
	target := 1 + rng.Uint64N(hosts)
	switch k := rng.IntN(100); {
	case k < 20:
		// Long enough, mostly, for an election and a write elsewhere: up to 4 election timeouts.
		units := int64(1 + rng.IntN(4*p.opts.ElectionTick*TickUnits))
		if !p.c.Stall(lead.h.ID(), units) {
			return ""
		}
		p.count.leaderStalls++
		return fmt.Sprintf("stall leader %d (term %d) for %d units", lead.h.ID(), leadTerm, units)
	case k < 50:
		if target == uint64(lead.h.ID()) || !slices.Contains(m.Voters, target) {
			return ""
		}
		err := lead.n.TransferLeader(target)
		p.count.transfers++
		lead.drive()
		return fmt.Sprintf("transfer leadership %d -> %d (term %d): %v", lead.h.ID(), target, leadTerm, err)
	default:
		var cc raftcore.ConfChange
		switch {
		case k < 60:
			cc = raftcore.ConfChange{Type: raftcore.AddVoter, NodeID: target}
		case k < 75:
			cc = raftcore.ConfChange{Type: raftcore.AddLearner, NodeID: target}
		default:
			cc = raftcore.ConfChange{Type: raftcore.RemoveNode, NodeID: target}
		}
		_, err := lead.n.ProposeConfChange(cc)
		if err != nil && !errors.Is(err, raftcore.ErrConfChangePending) && !errors.Is(err, raftcore.ErrBadConfChange) &&
			!errors.Is(err, raftcore.ErrProposalDropped) {
			p.fail("host %d: ProposeConfChange(%+v): %v", lead.h.ID(), cc, err)
		}
		lead.drive()
		return fmt.Sprintf("leader %d (term %d) proposes %+v on voters=%v learners=%v: %v", lead.h.ID(), leadTerm, cc, m.Voters, m.Learners, err)
	}
}

// raftClient is a workload client: it sends its op to the host it believes leads, follows
// one leader hint at a time, and otherwise walks the hosts round-robin. Hints can be stale
// (a removed node keeps naming the leader it last heard), so a hint that leads to another
// redirect is not followed further: the walk goes on from its own cursor, which reaches
// every host.
type raftClient struct {
	h        *ClientHost
	hosts    int
	retry    int
	op       Op
	busy     bool
	target   NodeID
	cursor   NodeID // round-robin position, independent of hints
	followed bool   // target came from a hint
	idle     int    // ticks since the last send
	moved    bool   // target already advanced after a redirect without a usable hint
	spread   bool   // gets go to a random host (RaftOptions.SpreadReads)
}

func (p *raftProtocol) NewClient(h *ClientHost) Client {
	return &raftClient{h: h, hosts: p.Hosts(), retry: p.opts.RetryTicks, target: 1, cursor: 1, spread: p.opts.SpreadReads}
}

func (c *raftClient) Start(op Op) {
	c.op, c.busy = op, true
	if c.spread && op.Kind == OpGet {
		c.target, c.followed = NodeID(1+c.h.Rand().IntN(c.hosts)), false
	}
	c.send()
}

func (c *raftClient) send() {
	c.idle, c.moved = 0, false
	c.h.Send(c.target, raftRequest{op: c.op})
}

// next moves to the next host of the round-robin walk.
func (c *raftClient) next() {
	c.cursor = c.cursor%NodeID(c.hosts) + 1
	c.target, c.followed = c.cursor, false
}

func (c *raftClient) Deliver(from NodeID, msg any) {
	if !c.busy {
		return
	}
	switch m := msg.(type) {
	case raftReply:
		if m.seq == c.op.Seq {
			c.busy, c.followed = false, false
			c.h.Complete(m.seq, m.out)
		}
	case raftRedirect:
		if m.seq != c.op.Seq || from != c.target {
			return
		}
		if m.leader != 0 && m.leader != c.target && int(m.leader) <= c.hosts && !c.followed {
			c.target, c.followed = m.leader, true
			c.send()
			return
		}
		// No usable hint: try the next host on the next Tick.
		c.next()
		c.moved = true
		c.idle = c.retry - 1
	}
}

func (c *raftClient) Tick() {
	if !c.busy {
		return
	}
	c.idle++
	if c.idle >= c.retry {
		if !c.moved {
			c.next()
		}
		c.send()
	}
}
