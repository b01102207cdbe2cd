package pbftcore

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/consensusbench/consensusbench/internal/assert"
)

// batchBuf holds one batch with its bytes owned by the core; capacity is kept across reuse
// so the steady state does not allocate. Every slot of the window keeps one, so their
// capacity is the core's largest memory use (window size x the largest batch a slot held):
// a buffer grows to its batch plus an eighth, not to twice it, since a slot's batches vary
// little once the load is steady and a doubling would keep the whole window at twice its
// data (82 MB instead of about 45 at 64 requests of 16 ops per batch and L = 256).
type batchBuf struct {
	reqs    []Request
	digests []Digest
	data    []byte
	batch   Digest // the batch digest, when valid
	valid   bool   // reqs hold the batch with digest batch
}

// set copies reqs (whose request digests are ds) into b.
func (b *batchBuf) set(reqs []Request, ds []Digest) {
	total := 0
	for i := range reqs {
		total += len(reqs[i].Op) + len(reqs[i].Auth)
	}
	if cap(b.data) < total {
		b.data = make([]byte, 0, total+total/8)
	}
	b.data = b.data[:0]
	b.reqs = b.reqs[:0]
	for i := range reqs {
		r := reqs[i]
		start := len(b.data)
		b.data = append(b.data, r.Op...)
		r.Op = b.data[start:len(b.data):len(b.data)]
		start = len(b.data)
		b.data = append(b.data, r.Auth...)
		r.Auth = b.data[start:len(b.data):len(b.data)]
		b.reqs = append(b.reqs, r)
	}
	b.digests = append(b.digests[:0], ds...)
	b.valid = false
}

// slot is the log entry of one sequence number inside the watermark window (seq % L).
type slot struct {
	seq uint64
	// The instance of the current view.
	view       uint64
	hasPP      bool
	digest     Digest
	cur        int // Q entry (and batch buffer) of the current pre-prepare
	prepMask   uint64
	commitMask uint64
	prepDig    []Digest // per sender
	commitDig  []Digest
	prepared   bool
	committed  bool
	sentCommit bool
	// unvouched: the current pre-prepare was accepted although a request in it did not
	// authenticate here; this backup sends its PREPARE only once f other backups have
	// prepared it (checkPrepared).
	unvouched bool
	helped    uint64 // senders helped in this retransmission period (no help ping-pong)
	// History for the view change (TOCS 2002 §4.5): P and Q.
	hasP    bool
	pView   uint64
	pDigest Digest
	pBuf    int // Q entry (and batch buffer) of the P entry's batch
	// q[:nq] is the Q set for this sequence number (one entry per digest, its latest view),
	// and bufs[i] holds q[i]'s batch when bufs[i].valid. A VIEW-CHANGE lists only the entries
	// whose batch is held (see takeEntry).
	q    [MaxPrePreparedPerSeq]PrePreparedEntry
	bufs [MaxPrePreparedPerSeq]batchBuf
	nq   int
	// missing: pre-prepared by a NEW-VIEW by digest alone; execution waits for the batch,
	// fetched from the replicas that hold it (TOCS 2002 §5.2).
	missing bool
	served  uint64 // replicas sent this slot's batch in this retransmission period
	// executed digest, to assert that a later view never changes an executed sequence number.
	executed   bool
	execDigest Digest
}

func (s *slot) resetFor(seq uint64) {
	s.seq = seq
	s.view = 0
	s.hasPP = false
	s.prepMask, s.commitMask = 0, 0
	s.prepared, s.committed, s.sentCommit = false, false, false
	s.unvouched = false
	s.helped = 0
	s.hasP = false
	s.pBuf = -1
	s.nq = 0
	s.executed = false
	s.missing = false
	s.served = 0
	for i := range s.bufs {
		s.bufs[i].valid = false
	}
}

// resetView clears the per-view instance when the replica enters a new view; P and Q stay.
func (s *slot) resetView() {
	s.hasPP = false
	s.prepMask, s.commitMask = 0, 0
	s.prepared, s.committed, s.sentCommit = false, false, false
	s.unvouched = false
}

func (s *slot) batch() *batchBuf { return &s.bufs[s.cur] }

// hasVoteFrom reports whether replica's PREPARE or COMMIT for this view's instance is here:
// a replica votes only for a pre-prepare it accepted, so it holds the batch.
func (s *slot) hasVoteFrom(replica int) bool {
	return (s.prepMask|s.commitMask)&(1<<replica) != 0
}

// vote records from's PREPARE (or COMMIT) for digest d; false if from already voted.
func (s *slot) vote(commit bool, from int, d Digest) bool {
	mask, digs := &s.prepMask, s.prepDig
	if commit {
		mask, digs = &s.commitMask, s.commitDig
	}
	bit := uint64(1) << from
	if *mask&bit != 0 {
		return false
	}
	*mask |= bit
	digs[from] = d
	return true
}

// entryOf returns the Q entry for digest d, or -1.
func (s *slot) entryOf(d Digest) int {
	for i := range s.nq {
		if s.q[i].Digest == d {
			return i
		}
	}
	return -1
}

// findBuf returns the Q entry whose batch, with digest d, this replica holds, or -1.
func (s *slot) findBuf(d Digest) int {
	if i := s.entryOf(d); i >= 0 && s.bufs[i].valid {
		return i
	}
	return -1
}

// takeEntry notes that digest d pre-prepared here in view (the latest view for that digest)
// and returns its Q entry, whose buffer holds the batch if it is already here; a new entry's
// buffer is empty until the caller fills it.
//
// Every Q entry has its own batch buffer, and a VIEW-CHANGE lists an entry only while its
// batch is held (sendViewChange). This is what rule A2 relies on (PBFT TOCS 2002 §4.5: the
// new primary picks d only if f+1 VIEW-CHANGEs list d in Q, so that a correct replica among
// them can supply the batch, and condition A3 has the new primary obtain it; §5.2 fetches it
// by digest). A Q entry without its batch would count towards A2 while nobody correct can
// serve the batch: a faulty replica that hid a batch from all but one correct replica, whose
// buffer a later view then reused, could claim that batch prepared and have it chosen for
// good (testdata/hidden_batch.txt). So:
//
//   - Accepting a pre-prepare for a new digest never overwrites another entry's batch: the
//     entry and its batch go, together, only when the slot has MaxPrePreparedPerSeq entries
//     and a new digest needs one (evictable: never the P entry's).
//   - A digest a NEW-VIEW chose that is not held here (missing) is an entry that is not
//     listed until fetchBatch fills it: until then this replica cannot supply it.
//
// Safety: a VIEW-CHANGE lists a subset of what the paper's Q would (each listed entry is a
// real pre-prepare of d in that view or later), and A2 only counts Q entries, so fewer entries
// can only make rule A choose less often; A1 and B do not read Q. Liveness: a committed (or
// prepared) batch stays listed by the replicas that prepared it, since a replica holds every
// batch it prepares (checkPrepared) and its P entry's batch is never evicted; a replica that
// pre-prepared a NEW-VIEW's batch by digest lists it once fetched, which it can always do from
// a correct replica that listed it, so a view change that finds too few listers for the
// highest prepared batch times out, and the next one (sent after the fetches) decides.
func (s *slot) takeEntry(view uint64, d Digest) int {
	if i := s.entryOf(d); i >= 0 {
		s.q[i].View = max(s.q[i].View, view)
		return i
	}
	i := s.nq
	if s.nq < MaxPrePreparedPerSeq {
		s.nq++
	} else {
		i = s.evictable()
	}
	s.q[i] = PrePreparedEntry{Seq: s.seq, View: view, Digest: d}
	s.bufs[i].valid = false
	return i
}

// evictable returns the Q entry to replace when every one is in use: never the P entry's,
// whose batch a later view change may have to re-propose; an entry whose batch is not held
// (not listed anyway) before one that is; then the oldest view.
func (s *slot) evictable() int {
	best := -1
	for i := range s.nq {
		if s.hasP && i == s.pBuf {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		hi, hb := s.bufs[i].valid, s.bufs[best].valid
		if (!hi && hb) || (hi == hb && s.q[i].View < s.q[best].View) {
			best = i
		}
	}
	assert.True(best >= 0, "pbftcore: a Q entry to evict")
	return best
}

// clientState is the per-client exactly-once record (OSDI '99 §4.1) plus bookkeeping.
type clientState struct {
	lastTs   uint64 // last executed timestamp
	result   []byte // reply to lastTs
	hasReply bool
	queuedTs uint64 // primary: highest timestamp queued or proposed in this view
	waitTs   uint64 // timestamp this replica waits to see executed (request timer)
	claimState
	// held is the latest request the client retransmitted to this replica while it could not
	// order it (a backup, or a primary changing view), kept until it executes: the next
	// primary orders it on entering its view, and the other replicas relay it there
	// (takeOverHeld). At most one per client (one outstanding request per client, OSDI '99
	// §4.1), so a replica holds at most Keys' client count of them, each within MaxOpBytes.
	held queued
}

// queued is a request waiting at the primary for a batch.
type queued struct {
	req    Request
	digest Digest
	data   []byte
}

// Ready is what the driver must act on after an input.
//
// Messages are to be sent (ToAll: to every other replica with the same bytes; ToClient: to
// Message.Client). Executed lists the requests executed since the last Advance, in order.
// Every slice aliases core memory and stays valid until Advance: send or copy before it.
type Ready struct {
	// Persist lists protocol records (persist.go) that a driver promising durability must
	// make durable before it sends Messages.
	Persist  []Record
	Messages []Message
	Executed []Executed
	// Batches lists the digests of the batches executed since the last Advance, in sequence
	// order, null requests included (agreement checkers compare them per sequence number).
	Batches []ExecutedBatch
	// Stable, when not nil, is a new stable checkpoint whose state this replica holds: the
	// driver may persist it (with App state at Stable.Seq) to restart from (Config.Start).
	Stable *StableCheckpoint
}

// ExecutedBatch is one executed sequence number and its batch digest.
type ExecutedBatch struct {
	Seq    uint64
	View   uint64
	Digest Digest
}

// Status is a snapshot of a replica's protocol state for tests, the simulator and metrics.
type Status struct {
	ID           int
	View         uint64
	ViewActive   bool // false while changing view
	Primary      int
	LowWatermark uint64 // h, the stable checkpoint
	LastExecuted uint64
	Fetching     bool   // state transfer in progress
	Assigned     uint64 // highest sequence number this replica assigned as primary
}

// Node is one PBFT replica. Not safe for concurrent use: one goroutine drives it.
type Node struct {
	cfg  Config
	id   int
	n    int
	f    int
	app  App
	auth *Authenticator
	bh   *batchHasher

	view       uint64
	viewActive bool

	h            uint64 // low watermark: last stable checkpoint
	stableDigest Digest
	stableProof  []Message // 2f+1 signed CHECKPOINTs for h (owned)
	stableTable  []byte    // client table at h, chunk 0 of the state (nil: state not held)
	// stableOwnPending: h became stable while an AsyncCheckpointer App digested it; the
	// state is reported once CheckpointDigest hands the digest in.
	stableOwnPending bool
	lastExec         uint64
	nextSeq          uint64 // primary: last sequence number assigned
	maxPrepared      uint64
	log              []slot

	ckpts   []ckptRecord // checkpoints in (h, h+L], indexed (seq/K) % (L/K)
	farCkpt []Message    // per sender: latest CHECKPOINT above the window (owned)

	clients []clientState
	// claimClock is the allocation table's clock: the highest Now of an executed claim
	// (claim.go). Replicated state, like the exactly-once records.
	claimClock uint64

	// primary batching queue (ring)
	queue      []queued
	qHead      int
	qLen       int
	qBytes     int
	batchWait  int
	batchReqs  []Request
	batchDigs  []Digest
	reqDigests []Digest
	// cutMax: the largest batch cut as primary in this tick [0] and the one before [1]
	cutMax [2]int

	// request timer (OSDI '99 §4.4)
	waiting  int
	reqTimer int
	// unverifiedBatches counts PRE-PREPAREs accepted although a request in them did not
	// authenticate here (UnverifiedBatches).
	unverifiedBatches uint64
	doublings         int
	retransmit        int

	vc viewChangeState
	st stateTransfer
	// seenView is, per replica, the highest view of an authentic normal-case message from it:
	// a replica left behind (lost NEW-VIEW, restart) asks to join once f+1 are ahead.
	seenView []uint64
	// helpedLagging: replicas sent our stable checkpoint in this retransmission period.
	helpedLagging uint64

	// output, reset by Advance
	// Output being accumulated. Ready hands it out and switches to the spare set, so Step
	// and Tick may run between Ready and Advance without touching what was handed out.
	msgs     []Message
	executed []Executed
	batches  []ExecutedBatch
	stable   *StableCheckpoint
	arena    []byte
	reqArena []Request
	inReady  bool
	handed   outbox
	spare    outbox
	// readFloor: after a restart from a checkpoint, read-only requests are refused until
	// lastExec reaches it (see start).
	readFloor uint64
	persist   []Record
	restoring bool // New is replaying Config.Log: nothing is logged again
	// lostNewView: restored as the active primary of a view whose NEW-VIEW it no longer has.
	lostNewView bool
}

// New creates a replica in view 0 with an empty log, or, with cfg.Start, at a durable
// stable checkpoint (restart.go).
func New(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	nd := &Node{
		cfg:        cfg,
		id:         cfg.ID,
		n:          cfg.N,
		f:          (cfg.N - 1) / 3,
		app:        cfg.App,
		auth:       NewAuthenticator(cfg.Keys, cfg.SignAll),
		bh:         newBatchHasher(),
		viewActive: true,
		log:        make([]slot, cfg.WindowSize),
		ckpts:      make([]ckptRecord, cfg.WindowSize/cfg.CheckpointInterval),
		farCkpt:    make([]Message, cfg.N),
		clients:    make([]clientState, len(cfg.Keys.ClientSecrets)),
		queue:      make([]queued, cfg.MaxPendingRequests),
		seenView:   make([]uint64, cfg.N),
	}
	for i := range nd.log {
		s := &nd.log[i]
		s.prepDig = make([]Digest, cfg.N)
		s.commitDig = make([]Digest, cfg.N)
		s.resetFor(uint64(i) + cfg.WindowSize) // no real seq maps here until assigned
		s.seq = 0
	}
	for i := range nd.ckpts {
		nd.ckpts[i].msgs = make([]Message, cfg.N)
	}
	nd.vc.init(cfg.N)
	if cfg.Start != nil {
		if err := nd.start(cfg.Start); err != nil {
			return nil, err
		}
	}
	if cfg.Log != nil {
		if err := nd.restore(cfg.Log); err != nil {
			return nil, err
		}
	}
	if !nd.viewActive {
		nd.sendViewChange() // the VIEW-CHANGE it had sent, rebuilt from the same P and Q
		nd.armRestoredViewChange()
	}
	return nd, nil
}

func (nd *Node) primaryOf(v uint64) int { return int(v % uint64(nd.n)) }
func (nd *Node) isPrimary() bool        { return nd.primaryOf(nd.view) == nd.id }
func (nd *Node) quorum() int            { return 2*nd.f + 1 }

// Status reports the replica's state.
func (nd *Node) Status() Status {
	return Status{ID: nd.id, View: nd.view, ViewActive: nd.viewActive, Primary: nd.primaryOf(nd.view),
		LowWatermark: nd.h, LastExecuted: nd.lastExec, Fetching: nd.st.active, Assigned: nd.nextSeq}
}

// UnverifiedBatches counts the PRE-PREPAREs this replica accepted although a request in the
// batch did not authenticate here (a client's MAC for this replica was wrong); it prepared
// each only after f other backups had. A growing count names a faulty client, or keys that
// disagree.
func (nd *Node) UnverifiedBatches() uint64 { return nd.unverifiedBatches }

// TimerTicksLeft returns how many ticks this replica's running timer has left before it
// starts a view change: the request timer in an active view, the view-change timer while
// changing views, or, before 2f+1 replicas are seen changing, the timeout that timer will
// run once they are; 0 when nothing is pending. After faults stop, the protocol may wait
// this long before it acts (for checkers and the simulator's liveness bound).
func (nd *Node) TimerTicksLeft() int {
	switch {
	case nd.viewActive:
		return nd.reqTimer
	case nd.vc.timerStarted:
		return nd.vc.timer
	default:
		return nd.timeout()
	}
}

// HasVoteFrom reports whether this replica holds a PREPARE or COMMIT of view for sequence
// number seq from replica: proof that replica accepted that view's pre-prepare for it, since
// a replica votes only for a pre-prepare it accepted (for checkers and the simulator).
func (nd *Node) HasVoteFrom(view, seq uint64, replica int) bool {
	s := nd.existingSlot(seq)
	return s != nil && s.view == view && replica >= 0 && replica < nd.cfg.N && s.hasVoteFrom(replica)
}

// HoldsBatch reports whether this replica holds the batch with digest d for sequence number
// seq, so that it could answer a FETCH-BATCH for it (for checkers and the simulator).
func (nd *Node) HoldsBatch(seq uint64, d Digest) bool {
	s := nd.existingSlot(seq)
	return s != nil && s.findBuf(d) >= 0
}

// slotFor returns the log slot of seq, initializing it if it held an older sequence number.
// seq must be inside (h, h+L].
func (nd *Node) slotFor(seq uint64) *slot {
	assert.True(seq > nd.h && seq <= nd.h+nd.cfg.WindowSize, "pbftcore: slot inside the watermarks")
	s := &nd.log[seq%nd.cfg.WindowSize]
	if s.seq != seq {
		s.resetFor(seq)
	}
	return s
}

// existingSlot returns the slot of seq if it is initialized, else nil.
func (nd *Node) existingSlot(seq uint64) *slot {
	if seq <= nd.h || seq > nd.h+nd.cfg.WindowSize {
		return nil
	}
	s := &nd.log[seq%nd.cfg.WindowSize]
	if s.seq != seq {
		return nil
	}
	return s
}

func (nd *Node) inWindow(seq uint64) bool { return seq > nd.h && seq <= nd.h+nd.cfg.WindowSize }

// ---- output ----

// send queues m after sealing its authenticator. m's byte fields must be owned by the core
// until Advance (arena, slot or checkpoint memory).
func (nd *Node) send(m Message) {
	m.From = nd.id
	start := len(nd.arena)
	nd.arena = nd.auth.Seal(&m, nd.arena)
	m.Auth = nd.arena[start:len(nd.arena):len(nd.arena)]
	nd.msgs = append(nd.msgs, m)
}

// sendSigned re-sends an already signed CHECKPOINT (its signature does not cover To); the
// signature is copied, as the record it comes from is rewritten when its ring slot is reused.
func (nd *Node) sendSigned(c *Message, to int) {
	m := *c
	m.To = to
	m.Auth = nd.arenaBytes(c.Auth)
	nd.msgs = append(nd.msgs, m)
}

// arenaBytes copies b into the output arena.
func (nd *Node) arenaBytes(b []byte) []byte {
	start := len(nd.arena)
	nd.arena = append(nd.arena, b...)
	return nd.arena[start:len(nd.arena):len(nd.arena)]
}

// arenaRequests copies reqs (and their bytes) into the output arenas.
func (nd *Node) arenaRequests(reqs []Request) []Request {
	start := len(nd.reqArena)
	for _, r := range reqs {
		r.Op = nd.arenaBytes(r.Op)
		r.Auth = nd.arenaBytes(r.Auth)
		nd.reqArena = append(nd.reqArena, r)
	}
	return nd.reqArena[start:len(nd.reqArena):len(nd.reqArena)]
}

// outbox is one set of output buffers.
type outbox struct {
	persist  []Record
	msgs     []Message
	executed []Executed
	batches  []ExecutedBatch
	arena    []byte
	reqArena []Request
}

// HasReady reports whether Ready has anything.
func (nd *Node) HasReady() bool {
	return len(nd.msgs) > 0 || len(nd.persist) > 0 || len(nd.executed) > 0 || len(nd.batches) > 0 || nd.stable != nil
}

// Ready returns the pending output; call Advance when done with it. Step, Tick and Propose
// may be called before Advance: their output goes to the next Ready, and what this Ready
// returned stays valid and unchanged until Advance.
func (nd *Node) Ready() Ready {
	assert.True(!nd.inReady, "pbftcore: Ready called twice without Advance")
	nd.inReady = true
	rd := Ready{Persist: nd.persist, Messages: nd.msgs, Executed: nd.executed, Batches: nd.batches, Stable: nd.stable}
	nd.stable = nil
	nd.handed = outbox{persist: nd.persist, msgs: nd.msgs, executed: nd.executed, batches: nd.batches, arena: nd.arena, reqArena: nd.reqArena}
	nd.persist, nd.msgs, nd.executed, nd.batches = nd.spare.persist, nd.spare.msgs, nd.spare.executed, nd.spare.batches
	nd.arena, nd.reqArena = nd.spare.arena, nd.spare.reqArena
	return rd
}

// Advance releases the memory of the last Ready.
func (nd *Node) Advance() {
	assert.True(nd.inReady, "pbftcore: Advance without Ready")
	nd.inReady = false
	h := &nd.handed
	clear(h.msgs) // drop references so old arenas can be collected after growth
	clear(h.reqArena)
	clear(h.persist)
	nd.spare = outbox{persist: h.persist[:0], msgs: h.msgs[:0], executed: h.executed[:0], batches: h.batches[:0], arena: h.arena[:0],
		reqArena: h.reqArena[:0]}
	// A rare Ready can be huge (the pre-prepares of a window re-sent to a backup that
	// missed them, a burst of queued requests cut at once: tens of megabytes): its buffers
	// are not kept as the spare, or every replica would hold twice its largest Ready for
	// the rest of its life.
	if cap(nd.spare.arena) > MaxRetainedOutputBytes {
		nd.spare.arena = nil
	}
	if cap(nd.spare.reqArena) > MaxRetainedOutputRequests {
		nd.spare.reqArena = nil
	}
	if cap(nd.spare.msgs) > MaxRetainedOutputRequests {
		nd.spare.msgs = nil
	}
	nd.handed = outbox{}
}

// ---- input ----

// Step processes a message from a replica or a client. It returns a sentinel error when the
// message is rejected; rejection changes no protocol state (a refused read-only request
// still gets its refused reply).
func (nd *Node) Step(m *Message) error {
	switch m.Type {
	case MsgRequest:
		return nd.stepRequest(m)
	case MsgPrePrepare, MsgPrepare, MsgCommit, MsgCheckpoint, MsgViewChange, MsgNewView,
		MsgFetchState, MsgStateChunk, MsgFetchBatch, MsgBatch:
	default:
		return ErrMalformed
	}
	if nd.obviouslyStale(m) {
		return ErrStale // before paying for a signature check
	}
	if !nd.auth.Verify(m) {
		return ErrBadAuthenticator
	}
	if (m.Type == MsgPrePrepare || m.Type == MsgPrepare || m.Type == MsgCommit) && m.View > nd.view {
		nd.noteAhead(m.From, m.View)
	}
	switch m.Type {
	case MsgPrePrepare:
		return nd.stepPrePrepare(m)
	case MsgPrepare:
		return nd.stepPrepare(m)
	case MsgCommit:
		return nd.stepCommit(m)
	case MsgCheckpoint:
		return nd.stepCheckpoint(m)
	case MsgViewChange:
		return nd.stepViewChange(m)
	case MsgNewView:
		return nd.stepNewView(m)
	case MsgFetchState:
		return nd.stepFetchState(m)
	case MsgFetchBatch:
		return nd.stepFetchBatch(m)
	case MsgBatch:
		return nd.stepBatch(m)
	default:
		return nd.stepStateChunk(m)
	}
}

// Propose submits a client request that arrived at this replica through a local path (the
// server's client connection); it is the same as a MsgRequest from the client.
func (nd *Node) Propose(r *Request) error {
	m := Message{Type: MsgRequest, From: FromClient, To: nd.id}
	m.Requests = append(nd.batchReqs[:0:0], *r)
	return nd.stepRequest(&m)
}

// checkRequest validates a request and its client authenticator, returning its digest.
func (nd *Node) checkRequest(r *Request) (Digest, error) {
	if err := nd.checkRequestShape(r); err != nil {
		return Digest{}, err
	}
	d := nd.bh.request(r)
	if !nd.auth.verifyRequest(r, &d) {
		return Digest{}, ErrBadAuthenticator
	}
	return d, nil
}

// stepRequest: OSDI '99 §4.2 (the primary orders it), §4.4 (a backup that receives a request
// relays it to the primary and starts its timer), §5.1.3 (read-only requests).
func (nd *Node) stepRequest(m *Message) error {
	if len(m.Requests) != 1 {
		return ErrMalformed
	}
	r := &m.Requests[0]
	d, err := nd.checkRequest(r)
	if err != nil {
		return err
	}
	cs := &nd.clients[r.Client]
	if r.Timestamp == 0 {
		return nd.stepClaim(m, r, d)
	}
	if !nd.acceptsTimestamp(cs, r.Timestamp) {
		return ErrNotHolder
	}
	if r.ReadOnly {
		if m.From != FromClient {
			return ErrMalformed
		}
		return nd.serveRead(r)
	}
	if r.Timestamp < cs.lastTs {
		return ErrStale
	}
	if r.Timestamp == cs.lastTs {
		if cs.hasReply {
			nd.sendReply(r.Client, cs.lastTs, nd.view, cs.result, false)
		}
		return nil
	}
	if nd.isPrimary() && nd.viewActive {
		if r.Timestamp <= cs.queuedTs {
			// Already queued or ordered in this view, and the client is retransmitting: the
			// primary too waits for it with a timer. The papers only time backups, but a
			// primary whose batches cannot commit (its backups scattered over other views)
			// must be able to move on as well, or nobody starts the view change.
			nd.waitFor(cs, r.Timestamp)
			return nil
		}
		if nd.qLen == len(nd.queue) {
			return ErrBusy
		}
		nd.enqueue(r, d)
		cs.queuedTs = r.Timestamp
		nd.maybeCutBatches(false)
		return nil
	}
	if m.From != FromClient {
		return ErrNotPrimary // relays go to the primary only
	}
	// A backup: the client retransmitted to all replicas, so the primary may be faulty.
	nd.waitFor(cs, r.Timestamp)
	if r.Timestamp > cs.held.req.Timestamp {
		// Kept for the view change this retransmission may lead to: without it the next
		// primary had nothing to order when it entered its view, the client's request
		// waited for its next retransmission (a whole client timeout), and the request
		// timer, running on, cost a second view change meanwhile.
		cs.held.set(r, d)
	}
	if nd.viewActive {
		nd.relayToPrimary(m.Requests)
	}
	return nil
}

// relayToPrimary sends reqs to the current view's primary, as a backup relays what clients
// sent it (OSDI '99 §4.4); the client's authenticator travels inside.
func (nd *Node) relayToPrimary(reqs []Request) {
	relay := Message{Type: MsgRequest, From: nd.id, To: nd.primaryOf(nd.view)}
	relay.Requests = nd.arenaRequests(reqs)
	nd.msgs = append(nd.msgs, relay)
}

// waitFor starts waiting for the client's request ts to execute, and the request timer if
// it is not running (OSDI '99 §4.4).
func (nd *Node) waitFor(cs *clientState, ts uint64) {
	if ts <= cs.waitTs {
		return
	}
	if cs.waitTs <= cs.lastTs {
		nd.waiting++
	}
	cs.waitTs = ts
	nd.startRequestTimer()
}

// startRequestTimer starts the request timer if it is not running (in an active view).
func (nd *Node) startRequestTimer() {
	if nd.reqTimer == 0 && nd.viewActive {
		nd.reqTimer = nd.timeout()
	}
}

// stopWaiting ends the wait for cs's request once the client's request ts is settled
// (executed, or refused at execution), if the wait was for ts or an earlier one.
func (nd *Node) stopWaiting(cs *clientState, ts uint64) {
	if cs.waitTs > 0 && cs.waitTs <= ts {
		cs.waitTs = 0
		nd.waiting--
	}
}

// timeout is the current view-change timer: the base doubled per consecutive view change.
func (nd *Node) timeout() int {
	return nd.cfg.RequestTimeoutTicks << min(nd.doublings, MaxTimeoutDoublings)
}

// serveRead answers a read-only request from the current state (OSDI '99 §5.1.3) when no
// request this replica has prepared is still unexecuted: every write a client has seen
// complete prepared at f+1 correct replicas, and any 2f+1 matching readers include one of
// them, so a read the client accepts reflects every completed write. A replica that cannot
// answer safely says so with an authenticated refused reply (and still returns the reason),
// so that the client orders the read as soon as f+1 replicas refused instead of waiting for
// its timeout.
func (nd *Node) serveRead(r *Request) error {
	if nd.lastExec < nd.readFloor {
		nd.refuseRead(r)
		return ErrReadAfterRestart
	}
	if !nd.viewActive || nd.st.active || nd.maxPrepared > nd.lastExec {
		nd.refuseRead(r)
		return ErrReadNotSafe
	}
	start := len(nd.arena)
	nd.arena = nd.app.Read(r.Op, nd.arena)
	res := nd.arena[start:len(nd.arena):len(nd.arena)]
	nd.send(Message{Type: MsgReply, To: ToClient, View: nd.view, Client: r.Client,
		Timestamp: r.Timestamp, ReadOnly: true, Result: res})
	return nil
}

// refuseRead sends the client a read-only reply marked refused, with no result.
func (nd *Node) refuseRead(r *Request) {
	nd.send(Message{Type: MsgReply, To: ToClient, View: nd.view, Client: r.Client,
		Timestamp: r.Timestamp, ReadOnly: true, Refused: true})
}

func (nd *Node) sendReply(client, ts, view uint64, result []byte, readOnly bool) {
	nd.send(Message{Type: MsgReply, To: ToClient, View: view, Client: client, Timestamp: ts,
		ReadOnly: readOnly, Result: nd.arenaBytes(result)})
}

func (nd *Node) enqueue(r *Request, d Digest) {
	q := &nd.queue[(nd.qHead+nd.qLen)%len(nd.queue)]
	nd.qLen++
	q.set(r, d)
	nd.qBytes += len(r.Op)
}

// set copies r (its bytes into q's own buffer, reused) with its digest d.
func (q *queued) set(r *Request, d Digest) {
	q.data = append(q.data[:0], r.Op...)
	q.data = append(q.data, r.Auth...)
	q.req = *r
	q.req.Op = q.data[:len(r.Op):len(r.Op)]
	q.req.Auth = q.data[len(r.Op):]
	q.digest = d
}

// maybeCutBatches sends pre-prepares for queued requests while the window allows (OSDI '99
// §4.2, batching §5.1.4): full batches at once, a partial one when flush is set.
func (nd *Node) maybeCutBatches(flush bool) {
	if !nd.isPrimary() || !nd.viewActive {
		return
	}
	for nd.qLen > 0 {
		full := nd.qLen >= nd.cfg.MaxBatchRequests || nd.qBytes >= nd.cfg.MaxBatchBytes
		if !full && !flush {
			return
		}
		seq := nd.nextSeq + 1
		if !nd.inWindow(seq) || seq-nd.lastExec > uint64(nd.cfg.MaxInflightBatches) {
			return
		}
		nd.batchReqs = nd.batchReqs[:0]
		nd.batchDigs = nd.batchDigs[:0]
		bytes := 0
		for nd.qLen > 0 && len(nd.batchReqs) < nd.cfg.MaxBatchRequests {
			q := &nd.queue[nd.qHead]
			if len(nd.batchReqs) > 0 && bytes+len(q.req.Op) > nd.cfg.MaxBatchBytes {
				break
			}
			bytes += len(q.req.Op)
			nd.batchReqs = append(nd.batchReqs, q.req)
			nd.batchDigs = append(nd.batchDigs, q.digest)
			nd.qHead = (nd.qHead + 1) % len(nd.queue)
			nd.qLen--
			nd.qBytes -= len(q.req.Op)
		}
		nd.nextSeq = seq
		nd.cutMax[0] = max(nd.cutMax[0], len(nd.batchReqs))
		s := nd.slotFor(seq)
		d := nd.bh.batch(nd.batchDigs)
		nd.acceptPrePrepare(s, nd.view, d, nd.batchReqs, nd.batchDigs)
		nd.sendPrePrepare(s, ToAll)
	}
	nd.batchWait = 0
}

func (nd *Node) sendPrePrepare(s *slot, to int) {
	nd.send(Message{Type: MsgPrePrepare, To: to, View: s.view, Seq: s.seq, Digest: s.digest,
		Requests: nd.arenaRequests(s.batch().reqs)})
}

// acceptPrePrepare records a pre-prepare for s in view: a batch already held (the P entry's,
// re-proposed by a new view, or another Q entry's) is reused, else reqs go into the buffer of
// d's Q entry (takeEntry), so no other entry's batch is overwritten.
func (nd *Node) acceptPrePrepare(s *slot, view uint64, d Digest, reqs []Request, ds []Digest) {
	i := s.takeEntry(view, d)
	if b := &s.bufs[i]; !b.valid {
		assert.True(len(reqs) > 0 || d == nullDigest, "pbftcore: a pre-prepared batch that is not held comes with its requests")
		b.set(reqs, ds)
		b.batch, b.valid = d, true
	}
	s.cur, s.missing = i, false
	nd.notePrePrepared(s, view, d)
}

// acceptDigest records a pre-prepare of a NEW-VIEW's O set, which names the batch by digest
// only (TOCS 2002 §5.2): a batch held from an earlier view is reused; otherwise the slot
// agrees on the digest (prepares and commits need nothing else) and fetches the batch before
// it can execute. Its Q entry is not listed in a VIEW-CHANGE until the batch is here
// (takeEntry).
func (nd *Node) acceptDigest(s *slot, view uint64, d Digest) {
	if d == nullDigest || s.findBuf(d) >= 0 {
		nd.acceptPrePrepare(s, view, d, nil, nil)
		return
	}
	s.cur = s.takeEntry(view, d)
	s.missing = true
	nd.notePrePrepared(s, view, d)
	nd.send(Message{Type: MsgFetchBatch, To: ToAll, Seq: s.seq, Digest: d})
}

func (nd *Node) notePrePrepared(s *slot, view uint64, d Digest) {
	s.view = view
	s.hasPP = true
	s.digest = d
	rec := Record{Kind: RecPrePrepared, View: view, Seq: s.seq, Digest: d}
	if !s.missing {
		rec.Requests = s.batch().reqs[:len(s.batch().reqs):len(s.batch().reqs)]
		if rec.Requests == nil {
			rec.Requests = []Request{} // the null request: held, and empty
		}
	}
	nd.logRecord(rec)
	if s.executed {
		assert.True(s.execDigest == d, "pbftcore: a later view re-proposed another batch for an executed sequence number")
	}
}

// stepPrePrepare: OSDI '99 §4.2. A backup accepts ⟨PRE-PREPARE, v, n, d⟩ iff it is
// authentic, from the primary of its current view v, no other digest was accepted for
// (v, n), h < n <= H, and d is the digest of the batch.
func (nd *Node) stepPrePrepare(m *Message) error {
	if m.View != nd.view || !nd.viewActive {
		return ErrWrongView
	}
	if m.From != nd.primaryOf(m.View) {
		return ErrNotPrimary
	}
	if m.Seq <= nd.h {
		return ErrStale
	}
	if !nd.inWindow(m.Seq) {
		return ErrOutsideWindow
	}
	if s := nd.existingSlot(m.Seq); s != nil && s.hasPP && s.view == m.View {
		if s.digest != m.Digest {
			return ErrConflictingDigest
		}
		if s.missing {
			// The new primary holds the batch a NEW-VIEW named by digest: take it from here.
			return nd.fillBatch(s, m.Requests)
		}
		return nil // retransmission
	}
	err := nd.checkBatch(m.Requests, m.Digest)
	if err != nil && !errors.Is(err, errUnverifiedRequest) {
		return err
	}
	s := nd.slotFor(m.Seq)
	nd.acceptPrePrepare(s, m.View, m.Digest, m.Requests, nd.reqDigests)
	if err != nil {
		// A client's authenticator vector can be right for the primary and wrong for this
		// backup alone (a faulty client spoils one MAC). Refusing the whole PRE-PREPARE
		// would leave this backup behind, alone on its way to a view change, and the cluster
		// running without it. Instead it accepts the batch but does not vouch for it yet:
		// its PREPARE waits until f other backups prepared the batch (checkPrepared). The
		// primary and those f backups are f+1 replicas, so at least one correct replica
		// authenticated every request. A request the primary forged cannot get there: its
		// MACs fail at every correct backup, and at most f-1 faulty backups prepare it.
		s.unvouched = true
		nd.unverifiedBatches++
		nd.checkPrepared(s)
		return nil
	}
	nd.sendOwnPrepare(s)
	nd.checkPrepared(s)
	return nil
}

// checkBatch validates a batch and its digest, leaving the request digests in nd.reqDigests.
func (nd *Node) checkBatch(reqs []Request, want Digest) error {
	if err := nd.checkBatchShape(reqs); err != nil {
		return err
	}
	if nd.bh.batch(nd.reqDigests) != want {
		return ErrBadDigest
	}
	for i := range reqs {
		if !nd.auth.verifyRequest(&reqs[i], &nd.reqDigests[i]) {
			return errUnverifiedRequest
		}
	}
	return nil
}

// errUnverifiedRequest: a PRE-PREPARE whose batch matches its digest, but one of whose
// requests does not authenticate at this replica (its MAC for this replica is wrong).
var errUnverifiedRequest = fmt.Errorf("%w: a request in the batch does not authenticate here", ErrBadAuthenticator)

// checkBatchShape checks a batch's size limits, client numbers and timestamps and leaves its
// request digests in nd.reqDigests. It checks no authenticator: checkBatch adds the
// clients' for a PRE-PREPARE; a fetched or logged batch is proven by its digest alone.
func (nd *Node) checkBatchShape(reqs []Request) error {
	if len(reqs) > nd.cfg.MaxBatchRequests {
		return ErrMalformed
	}
	nd.reqDigests = nd.reqDigests[:0]
	bytes := 0
	for i := range reqs {
		r := &reqs[i]
		if err := nd.checkRequestShape(r); err != nil {
			return err
		}
		bytes += len(r.Op)
		nd.reqDigests = append(nd.reqDigests, nd.bh.request(r))
	}
	if bytes > nd.cfg.MaxBatchBytes {
		return ErrMalformed
	}
	return nil
}

// checkRequestShape checks a request's client number, operation size and timestamp.
func (nd *Node) checkRequestShape(r *Request) error {
	if r.Client >= uint64(len(nd.clients)) {
		return ErrUnknownClient
	}
	if len(r.Op) > nd.cfg.MaxOpBytes || (r.Timestamp == 0 && r.ReadOnly) {
		return ErrMalformed // Timestamp 0 is a claim (claim.go), which is ordered
	}
	return nil
}

// checkHeldBatch checks a batch that needs no client authenticators (fetched, or replayed
// from the log) against the digest agreed for it, leaving its request digests in
// nd.reqDigests.
func (nd *Node) checkHeldBatch(reqs []Request, want Digest) error {
	if err := nd.checkBatchShape(reqs); err != nil {
		return err
	}
	if nd.bh.batch(nd.reqDigests) != want {
		return ErrBadDigest
	}
	return nil
}

// stepPrepare: OSDI '99 §4.2, prepares from distinct backups; the primary never prepares.
func (nd *Node) stepPrepare(m *Message) error {
	s, err := nd.stepVote(m)
	if s != nil {
		nd.checkPrepared(s)
	}
	return err
}

// stepCommit: OSDI '99 §4.2.
func (nd *Node) stepCommit(m *Message) error {
	s, err := nd.stepVote(m)
	if s != nil {
		nd.checkCommitted(s)
	}
	return err
}

// stepVote records a PREPARE or COMMIT of the current view (OSDI '99 §4.2): one vote per
// sender and sequence number inside the watermarks. It returns the slot when the vote is new.
// A sender below the low watermark is sent the stable checkpoint; a repeated vote is a
// retransmission, so a sender still working on a number this replica executed is helped.
func (nd *Node) stepVote(m *Message) (*slot, error) {
	if m.View != nd.view || !nd.viewActive {
		return nil, ErrWrongView
	}
	if m.Type == MsgPrepare && m.From == nd.primaryOf(m.View) {
		return nil, ErrNotPrimary
	}
	if m.Seq <= nd.h {
		nd.helpLagging(m.From)
		return nil, ErrStale
	}
	if !nd.inWindow(m.Seq) {
		return nil, ErrOutsideWindow
	}
	s := nd.slotFor(m.Seq)
	if !s.vote(m.Type == MsgCommit, m.From, m.Digest) {
		if m.Seq <= nd.lastExec {
			nd.helpSlot(m.From, m.Seq)
		}
		return nil, nil
	}
	return s, nil
}

// sendOwnPrepare multicasts this backup's PREPARE for s, which counts toward its own
// certificate.
func (nd *Node) sendOwnPrepare(s *slot) {
	s.vote(false, nd.id, s.digest)
	nd.send(Message{Type: MsgPrepare, To: ToAll, View: s.view, Seq: s.seq, Digest: s.digest})
}

func countMatching(mask uint64, digs []Digest, d *Digest) int {
	c := 0
	for mask != 0 {
		i := bits.TrailingZeros64(mask)
		mask &= mask - 1
		if digs[i] == *d {
			c++
		}
	}
	return c
}

// checkPrepared: prepared(m, v, n, i) = pre-prepare + 2f matching prepares from distinct
// backups (OSDI '99 §4.2); the replica then multicasts COMMIT. A slot whose batch is still
// being fetched does not prepare: a replica holds every batch it prepared, so a committed
// digest is always held by f+1 correct replicas and can be fetched.
func (nd *Node) checkPrepared(s *slot) {
	if !s.hasPP || s.prepared || s.missing {
		return
	}
	primary := uint64(1) << nd.primaryOf(s.view)
	if s.unvouched && countMatching(s.prepMask&^primary, s.prepDig, &s.digest) >= nd.f {
		s.unvouched = false
		nd.sendOwnPrepare(s)
	}
	mask := s.prepMask &^ primary
	if countMatching(mask, s.prepDig, &s.digest) < 2*nd.f {
		return
	}
	s.prepared = true
	s.hasP, s.pView, s.pDigest, s.pBuf = true, s.view, s.digest, s.cur
	nd.logRecord(Record{Kind: RecPrepared, View: s.view, Seq: s.seq, Digest: s.digest})
	nd.maxPrepared = max(nd.maxPrepared, s.seq)
	s.sentCommit = true
	s.vote(true, nd.id, s.digest)
	nd.send(Message{Type: MsgCommit, To: ToAll, View: s.view, Seq: s.seq, Digest: s.digest})
	nd.checkCommitted(s)
}

// checkCommitted: committed-local = prepared + 2f+1 matching commits from distinct replicas
// (OSDI '99 §4.2).
func (nd *Node) checkCommitted(s *slot) {
	if !s.prepared || s.committed {
		return
	}
	if countMatching(s.commitMask, s.commitDig, &s.digest) < nd.quorum() {
		return
	}
	s.committed = true
	nd.logRecord(Record{Kind: RecCommitted, View: s.view, Seq: s.seq, Digest: s.digest})
	nd.executeCommitted()
}

// executeCommitted executes committed batches strictly in sequence order (OSDI '99 §4.2).
func (nd *Node) executeCommitted() {
	for !nd.st.active {
		s := nd.existingSlot(nd.lastExec + 1)
		if s == nil || !s.committed || s.missing {
			return
		}
		nd.execute(s)
	}
}

func (nd *Node) execute(s *slot) {
	b := s.batch()
	for i := range b.reqs {
		r := &b.reqs[i]
		cs := &nd.clients[r.Client]
		if r.Timestamp == 0 {
			nd.replyClaim(s, r)
			continue
		}
		if r.Timestamp <= cs.lastTs {
			continue // exactly-once: already executed (the reply is cached)
		}
		if !nd.acceptsTimestamp(cs, r.Timestamp) {
			// Outside the principal's live grant (a holder whose lease expired): never
			// executed, and nobody waits for it.
			nd.stopWaiting(cs, r.Timestamp)
			continue
		}
		start := len(nd.arena)
		nd.arena = nd.app.Execute(s.seq, r, nd.arena)
		res := nd.arena[start:len(nd.arena):len(nd.arena)]
		assert.True(len(res) <= nd.cfg.MaxResultBytes, "pbftcore: App result within MaxResultBytes")
		cs.lastTs, cs.hasReply = r.Timestamp, true
		cs.result = append(cs.result[:0], res...)
		nd.stopWaiting(cs, r.Timestamp)
		// The op is copied: the slot may be reused for seq+L before Advance.
		nd.executed = append(nd.executed, Executed{Seq: s.seq, Client: r.Client, Timestamp: r.Timestamp, Op: nd.arenaBytes(r.Op)})
		nd.send(Message{Type: MsgReply, To: ToClient, View: s.view, Client: r.Client,
			Timestamp: r.Timestamp, Result: res})
	}
	s.executed = true
	s.execDigest = s.digest
	nd.batches = append(nd.batches, ExecutedBatch{Seq: s.seq, View: s.view, Digest: s.digest})
	nd.lastExec = s.seq
	// Progress: the timer restarts for other waiting requests, and the doubling resets.
	nd.doublings = 0
	if nd.waiting > 0 {
		nd.reqTimer = nd.timeout()
	} else {
		nd.reqTimer = 0
	}
	if s.seq%nd.cfg.CheckpointInterval == 0 {
		nd.takeCheckpoint(s.seq)
	}
	nd.maybeCutBatches(false)
}

// FlushIdle cuts a partial batch when this replica is the primary, none of its batches is
// in flight (every batch it pre-prepared has executed) and the queue holds as many
// requests as the largest batch it cut in this tick or the one before. A driver calls it
// once it has stepped everything its input brought.
//
// Closed-loop clients come back in waves as large as the batch that served them, so a
// wave is cut as soon as it is whole rather than at the next flush tick: with fewer
// clients than MaxBatchRequests every batch used to wait for a tick with the replicas
// idle (16 clients ran at one batch per 10 ms). A smaller queue still waits, for the rest
// of its wave or the tick, so a wave that split (the tick cut part of it, or part was
// late) merges again instead of going on as two batches that each pay the per-batch work.
// The size expected is forgotten after two ticks, which is how it follows clients that
// leave.
func (nd *Node) FlushIdle() {
	if nd.qLen > 0 && nd.qLen >= max(nd.cutMax[0], nd.cutMax[1]) && nd.nextSeq <= nd.lastExec {
		nd.maybeCutBatches(true)
	}
}

// Tick advances logical time by one tick: batch flush, request and view-change timers,
// retransmission.
func (nd *Node) Tick() {
	nd.cutMax[1], nd.cutMax[0] = nd.cutMax[0], 0
	if nd.qLen > 0 {
		nd.batchWait++
		if nd.batchWait > nd.cfg.BatchFlushTicks {
			nd.maybeCutBatches(true)
		}
	}
	if nd.viewActive && nd.reqTimer > 0 {
		nd.reqTimer--
		if nd.reqTimer == 0 && nd.waiting > 0 {
			nd.startViewChange(nd.view + 1)
		}
	}
	if !nd.viewActive && nd.vc.timer > 0 {
		nd.vc.timer--
		if nd.vc.timer == 0 {
			nd.doublings++
			nd.startViewChange(nd.view + 1)
		}
	}
	nd.retransmit++
	if nd.retransmit >= nd.cfg.RetransmitTicks {
		nd.retransmit = 0
		for i := range nd.log {
			nd.log[i].helped, nd.log[i].served = 0, 0
		}
		nd.helpedLagging = 0
		nd.vc.sharedOwn = 0
		nd.retransmitOwn()
	}
}

// retransmitOwn re-sends this replica's own latest messages for unfinished work, so lost
// messages cannot stall the protocol (Castro's thesis §5.2 retransmits and status messages).
func (nd *Node) retransmitOwn() {
	if nd.st.active {
		// No chunk arrived for a whole period: the source may be faulty or behind; ask another.
		if !nd.st.progressed {
			nd.pickSource()
		}
		nd.st.progressed = false
		nd.requestChunk()
	}
	// Batches a NEW-VIEW named by digest are fetched whatever the view state: a committed
	// sequence number executes as soon as its batch is here, even if this replica has since
	// timed out and started another view change.
	for seq := nd.lastExec + 1; seq <= nd.h+nd.cfg.WindowSize; seq++ {
		if s := nd.existingSlot(seq); s != nil && s.missing {
			nd.send(Message{Type: MsgFetchBatch, To: ToAll, Seq: s.seq, Digest: s.digest})
		}
	}
	if !nd.viewActive {
		nd.vc.resendOwn(nd)
		return
	}
	// While clients are retrying (waiting > 0) something is stuck somewhere: re-send this
	// replica's messages for every sequence number in the window, so a replica that missed
	// pre-prepares or commits for numbers already executed here can finish them.
	//
	// The primary re-sends a pre-prepare, batch and all, only to the backups it has no vote
	// from: a backup prepares (and commits) only after accepting the pre-prepare. Re-sending
	// every in-flight batch to every backup each period cost a loaded primary megabytes per
	// period, and, with clients retrying, the whole window's batches at once. Votes carry
	// no batch and go to everyone.
	from := nd.lastExec + 1
	if nd.waiting > 0 {
		from = nd.h + 1
	}
	unfinished := false
	for seq := from; seq <= nd.h+nd.cfg.WindowSize; seq++ {
		s := nd.existingSlot(seq)
		if s == nil || !s.hasPP || s.view != nd.view {
			continue
		}
		unfinished = unfinished || seq > nd.lastExec
		if nd.isPrimary() {
			if !s.missing {
				for to := range nd.cfg.N {
					if to != nd.id && !s.hasVoteFrom(to) {
						nd.sendPrePrepare(s, to)
					}
				}
			}
		} else if s.prepMask&(1<<nd.id) != 0 {
			nd.send(Message{Type: MsgPrepare, To: ToAll, View: s.view, Seq: s.seq, Digest: s.digest})
		}
		if s.sentCommit {
			nd.send(Message{Type: MsgCommit, To: ToAll, View: s.view, Seq: s.seq, Digest: s.digest})
		}
	}
	if unfinished || nd.waiting > 0 {
		if c := nd.ownCheckpoint(); c != nil {
			nd.sendSigned(c, ToAll)
		}
	}
}

// helpSlot answers a replica still working on an executed sequence number with this
// replica's own messages for it, point to point.
func (nd *Node) helpSlot(to int, seq uint64) {
	s := nd.existingSlot(seq)
	if s == nil || !s.hasPP || s.view != nd.view || s.helped&(1<<to) != 0 {
		return
	}
	s.helped |= 1 << to
	if !nd.isPrimary() && s.prepMask&(1<<nd.id) != 0 {
		nd.send(Message{Type: MsgPrepare, To: to, View: s.view, Seq: s.seq, Digest: s.digest})
	}
	if s.sentCommit {
		nd.send(Message{Type: MsgCommit, To: to, View: s.view, Seq: s.seq, Digest: s.digest})
	}
}

// helpLagging sends this replica's stable checkpoint to a replica working below it, which
// then collects 2f+1 of them and fetches the state (OSDI '99 §4.3).
func (nd *Node) helpLagging(to int) {
	if nd.helpedLagging&(1<<to) != 0 {
		return // once per retransmission period: stale messages may come in floods
	}
	nd.helpedLagging |= 1 << to
	if c := nd.ownStableCheckpoint(); c != nil {
		nd.sendSigned(c, to)
	}
}

// noteAhead records that replica from works in a view above ours; once f+1 replicas do, this
// replica sends a VIEW-CHANGE for the lowest of their views, and that view's primary answers
// with its NEW-VIEW (the join rule of OSDI '99 §4.5.2, applied to normal-case messages so a
// replica that missed a whole view change is not left behind).
func (nd *Node) noteAhead(from int, view uint64) {
	if view <= nd.seenView[from] {
		return
	}
	nd.seenView[from] = view
	count, lowest := 0, uint64(0)
	for i, v := range nd.seenView {
		if i != nd.id && v > nd.view {
			count++
			if lowest == 0 || v < lowest {
				lowest = v
			}
		}
	}
	if count >= nd.f+1 {
		nd.startViewChange(lowest)
	}
}

// obviouslyStale reports messages that would change nothing whatever their authenticity:
// checkpoints at or below h or already counted, and VIEW-CHANGEs not newer than the one held
// from that replica (retransmissions). Dropping them early saves signature checks.
func (nd *Node) obviouslyStale(m *Message) bool {
	if m.From < 0 || m.From >= nd.n {
		return false
	}
	switch m.Type {
	case MsgCheckpoint:
		if m.Seq <= nd.h {
			return true
		}
		if nd.inWindow(m.Seq) && m.Seq%nd.cfg.CheckpointInterval == 0 {
			c := &nd.ckpts[(m.Seq/nd.cfg.CheckpointInterval)%uint64(len(nd.ckpts))]
			return c.seq == m.Seq && c.mask&(1<<m.From) != 0
		}
	case MsgViewChange:
		l := &nd.vc.latest[m.From]
		// A lagging replica's retransmission for our view is still answered: by the primary
		// with its NEW-VIEW, by the others with their own VIEW-CHANGE (shareOwn).
		answer := m.View == nd.view && (nd.vc.hasNewView || nd.vc.canShareOwn(nd, m.From))
		return l.Type == MsgViewChange && l.View >= m.View && !answer
	}
	return false
}
