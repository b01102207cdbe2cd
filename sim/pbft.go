package sim

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/consensusbench/consensusbench/pbftcore"
	"github.com/consensusbench/consensusbench/pbftcore/byz"
)

// PBFT adapter: pbftcore replicas on simulated hosts, up to f of them Byzantine (pbftcore/byz
// rewrites what they send). A replica's durable state is its last stable checkpoint
// (Ready.Stable with the App state at it, kept per host as a driver keeps it on disk): a
// crashed host restarts from it (pbftcore.Config.Start), or empty if it has none, and
// catches up by view join, re-execution and state transfer. Everything above the checkpoint
// is forgotten; amnesia is a fault, so crashes and Byzantine replicas share the budget f.

// Limits of the drawn PBFT parameters.
const (
	pbftFMax              = 2
	pbftClientTimeoutTick = 12
	pbftResultBytes       = 9 // Output: value (8 bytes) + ok (1 byte)
	pbftRetransmitTicks   = 4
	pbftPendingRequests   = 64 // per replica queue; above the clients a run has (<= ClientsMaxRun)
	// pbftSlowDelayFactor: a slow primary holds pre-prepares this many request timeouts.
	pbftSlowDelayFactor = 3
)

var errPBFTAgreement = errors.New("pbft: agreement violated")

// errPBFTRedundantBatch: a correct replica re-sent a batch to a replica known to hold it.
var errPBFTRedundantBatch = errors.New("pbft: batch re-sent to a replica that holds it")

type pbftProtocol struct {
	c        *Cluster
	n, f     int
	k        uint64
	batch    int
	timeout  int
	signAll  bool
	keyring  *pbftcore.Keyring
	byzB     []byz.Behaviour // per replica; Honest for correct ones
	replicas []*pbftReplica
	// logged: replicas persist pbftcore's protocol records (Ready.Persist) and restart from
	// their checkpoint plus that log (Config.Log), as correct replicas; power cuts (every
	// replica restarts at once) are then part of the nemesis.
	logged bool
	// asyncCkpt: replicas digest checkpoints as the server does, off the core's call
	// (pbftcore.AsyncCheckpointer), handing each digest in some ticks later.
	asyncCkpt bool
	// digestDelay: each tick a waiting digest is handed in with probability 1/digestDelay.
	digestDelay int
	// amnesiac counts hosts that crashed and restarted without a log (empty or from their
	// checkpoint, either way forgetting what followed it): each is a fault for the run.
	amnesiac  int
	crashedAt []bool
	// durable is, per host, the last stable checkpoint it reported and its App state.
	durable []pbftDurable
	// Per host, the snapshot writer: a write is queued on the disk (snapQueued) and lands
	// the newest stable checkpoint reported meanwhile (snapNext).
	snapQueued []bool
	snapNext   []*pbftDurable
	// Checkers' incremental state.
	batchAt map[uint64]pbftcore.Digest // seq -> executed batch digest (first correct replica)
	sent    map[[2]uint64][]byte       // (client, ts) -> encoded op the client sent
	err     error
	// sentByType counts the messages replicas sent, per type: which protocol paths ran.
	sentByType [pbftcore.MsgBatch + 1]int
	// Restarts from a log (crash-restarts and power cuts), and power cuts.
	logRestarts, powerCuts int
	// snapshotBehind: log restarts whose log holds a stable checkpoint above the snapshot
	// that survived (the crash lost the snapshot written after the record).
	snapshotBehind int
	// asyncDigests: checkpoint digests handed in later (asyncCkpt runs).
	asyncDigests int
	// pinned: faulty replicas whose behaviour the nemesis leaves alone (a campaign that forces
	// one behaviour).
	pinned []bool
	// claimsGone counts the VIEW-CHANGEs in which a partial-pre-prepare replica claimed a batch
	// it had shown to one correct replica only, for rewriters gone (crash, switch); the live
	// ones count in their byz.Replica (hiddenClaims adds them up).
	claimsGone int
	// nvSeen: views whose NEW-VIEW was counted below (a NEW-VIEW is re-sent).
	nvSeen map[uint64]bool
	// hiddenChosen: NEW-VIEW choices (O entries) of a batch a partial-pre-prepare primary hid;
	// unheldChosen: NEW-VIEW choices of a batch no running correct replica held (nor had a
	// stable checkpoint at or above) when the NEW-VIEW was sent.
	hiddenChosen, unheldChosen int
	// spoilClient, when not -1, is a faulty client whose requests carry a wrong MAC for
	// replica spoilReplica only: the request authenticates at the others. unverifiedGone
	// counts the PRE-PREPAREs crashed replicas accepted without preparing them.
	spoilClient, spoilReplica int
	unverifiedGone            uint64
	// clientTimeout is the clients' retransmission timeout in ticks (pbftClientTimeoutTick
	// unless a test sets it before the run).
	clientTimeout int
	// retransmitted[k] counts the ordered requests that completed after k retransmissions to
	// every replica (the last entry: that many or more): how many client timeouts a request
	// paid, whatever the workload's op latency.
	retransmitted [pbftRetransmittedMax + 1]int
}

// pbftRetransmittedMax is the last bucket of pbftProtocol.retransmitted.
const pbftRetransmittedMax = 4

// Counters implements CounterReporter: how many NEW-VIEWs, batch fetches and answers, and
// state-transfer chunks the run sent.
func (p *pbftProtocol) Counters() []Counter {
	k := &p.sentByType
	return []Counter{{"new-views", k[pbftcore.MsgNewView]}, {"batch-fetches", k[pbftcore.MsgFetchBatch]},
		{"batches-served", k[pbftcore.MsgBatch]}, {"state-chunks", k[pbftcore.MsgStateChunk]},
		{"log-restarts", p.logRestarts}, {"power-cuts", p.powerCuts}, {"snapshot-behind-log", p.snapshotBehind},
		{"async-digests", p.asyncDigests}, {"hidden-claims", p.hiddenClaims()}, {"hidden-chosen", p.hiddenChosen},
		{"unheld-chosen", p.unheldChosen}, {"unverified-batches", p.unverifiedBatches()}}
}

// unverifiedBatches counts the PRE-PREPAREs replicas accepted without their own PREPARE
// because a request's MAC for them was wrong.
func (p *pbftProtocol) unverifiedBatches() int {
	n := p.unverifiedGone
	for _, r := range p.replicas {
		if r != nil {
			n += r.nd.UnverifiedBatches()
		}
	}
	return int(n)
}

// hiddenClaims counts the VIEW-CHANGEs that claimed a hidden batch prepared.
func (p *pbftProtocol) hiddenClaims() int {
	n := p.claimsGone
	for _, r := range p.replicas {
		if r != nil && r.byz != nil {
			n += r.byz.Claims
		}
	}
	return n
}

func newPBFT(c *Cluster) Protocol { return newPBFTWith(c, byz.Honest) }

// newPBFTWith draws a PBFT run as newPBFT does and, unless force is Honest, makes replicas 0
// and, with f = 2, 1 (the first primaries, one after the other) faulty with behaviour force
// for the whole run (the nemesis does not switch them); the other faulty replicas drawn are
// made correct.
func newPBFTWith(c *Cluster, force byz.Behaviour) *pbftProtocol {
	r := c.ProtoRand()
	p := &pbftProtocol{c: c, f: 1 + r.IntN(pbftFMax), batchAt: map[uint64]pbftcore.Digest{},
		sent: map[[2]uint64][]byte{}, nvSeen: map[uint64]bool{}, clientTimeout: pbftClientTimeoutTick}
	p.n = 3*p.f + 1
	p.k = []uint64{2, 4, 8, 16}[r.IntN(4)]
	p.batch = []int{1, 2, 4, 8}[r.IntN(4)]
	p.timeout = 10 + r.IntN(20)
	// SignAll costs ~50 µs per message verified: a few small runs keep it covered.
	p.signAll = p.f == 1 && r.IntN(16) == 0
	p.logged = r.IntN(2) == 0
	p.asyncCkpt = r.IntN(2) == 0
	p.digestDelay = []int{2, 16}[r.IntN(2)]
	p.keyring = pbftcore.NewKeyring(binary.LittleEndian.AppendUint64(nil, c.Seed()), p.n, c.Params().Clients)
	p.byzB = make([]byz.Behaviour, p.n)
	nByz := r.IntN(p.f + 1)
	all := byz.All()
	for _, i := range r.Perm(p.n)[:nByz] {
		p.byzB[i] = all[r.IntN(len(all))]
	}
	// A faulty client (one run in four) spoils one replica's MAC in its authenticators.
	p.spoilClient = -1
	if !p.signAll && r.IntN(4) == 0 {
		p.spoilClient, p.spoilReplica = r.IntN(c.Params().Clients), r.IntN(p.n)
	}
	p.pinned = make([]bool, p.n)
	if force != byz.Honest {
		for i := range p.byzB {
			p.byzB[i] = byz.Honest
		}
		for i := range p.f {
			p.byzB[i], p.pinned[i] = force, true
		}
	}
	p.replicas = make([]*pbftReplica, p.n)
	p.crashedAt = make([]bool, p.n)
	p.durable = make([]pbftDurable, p.n)
	p.snapQueued, p.snapNext = make([]bool, p.n), make([]*pbftDurable, p.n)
	return p
}

func (p *pbftProtocol) byzCount() int {
	c := 0
	for _, b := range p.byzB {
		if b != byz.Honest {
			c++
		}
	}
	return c
}

func (p *pbftProtocol) Describe() string {
	var bs []string
	for i, b := range p.byzB {
		if b != byz.Honest {
			bs = append(bs, fmt.Sprintf("n%d=%s", i+1, b))
		}
	}
	spoiled := ""
	if p.spoilClient >= 0 {
		spoiled = fmt.Sprintf(" spoiledMAC=c%d@n%d", p.spoilClient, p.spoilReplica+1)
	}
	return fmt.Sprintf("pbft n=%d f=%d K=%d L=%d batch=%d timeout=%d signAll=%v logged=%v asyncCkpt=%v/%d byzantine=[%s]%s",
		p.n, p.f, p.k, 2*p.k, p.batch, p.timeout, p.signAll, p.logged, p.asyncCkpt, p.digestDelay, strings.Join(bs, " "), spoiled)
}

func (p *pbftProtocol) Hosts() int { return p.n }

// MaxDown keeps crashes plus amnesiac restarts plus Byzantine replicas within f.
func (p *pbftProtocol) MaxDown() int { return max(0, p.f-p.byzCount()-p.amnesiac) }

func (p *pbftProtocol) StartReplica(h *Host, restart bool) Replica {
	i := int(h.ID() - 1)
	amnesiac := false
	if restart && p.crashedAt[i] {
		p.crashedAt[i] = false
		if !p.logged {
			p.amnesiac++
			amnesiac = true
		}
	}
	p.snapQueued[i], p.snapNext[i] = false, nil // a crash dropped any snapshot write in flight
	app := &pbftApp{snaps: map[uint64]KV{}}
	var coreApp pbftcore.App = app
	if p.asyncCkpt {
		coreApp = pbftAsyncApp{app}
	}
	cfg := pbftcore.DefaultConfig(i, p.n, p.keyring.Replica(i), coreApp, h.Rand())
	cfg.CheckpointInterval = p.k
	cfg.WindowSize = 2 * p.k
	cfg.MaxInflightBatches = int(cfg.WindowSize)
	cfg.MaxBatchRequests = p.batch
	cfg.MaxPendingRequests = max(cfg.MaxBatchRequests, pbftPendingRequests)
	cfg.MaxOpBytes = OpEncodedSize
	cfg.MaxBatchBytes = p.batch * OpEncodedSize
	cfg.MaxResultBytes = pbftResultBytes
	cfg.RequestTimeoutTicks = p.timeout
	cfg.RetransmitTicks = pbftRetransmitTicks
	cfg.SignAll = p.signAll
	var lastSeq uint64
	if d := &p.durable[i]; restart && d.ok {
		app.kv = d.kv
		cp := d.cp
		cfg.Start = &pbftcore.StartState{Seq: cp.Seq, View: cp.View, ViewActive: cp.ViewActive, Digest: cp.Digest, Proof: cp.Proof, ClientTable: cp.ClientTable}
		lastSeq = cp.Seq
	}
	if restart && p.logged {
		cfg.Log, cfg.LogSynced = append([]pbftcore.Record{}, p.durable[i].log...), true
		p.logRestarts++
		for _, rec := range cfg.Log {
			if rec.Kind == pbftcore.RecStable && (!p.durable[i].ok || rec.Seq > p.durable[i].cp.Seq) {
				p.snapshotBehind++ // its snapshot was lost in the crash: the log is ahead of it
				break
			}
		}
	}
	nd, err := pbftcore.New(cfg)
	if err != nil {
		panic(err)
	}
	rep := &pbftReplica{p: p, h: h, i: i, nd: nd, app: app, lastSeq: lastSeq, amnesiac: amnesiac}
	if p.byzB[i] != byz.Honest {
		rep.byz = p.newByz(i)
	}
	p.replicas[i] = rep
	return rep
}

// newByz builds faulty replica i's rewriter. A partial-pre-prepare primary shows its batches to
// one correct replica, the first after it (the next primary, unless that one is faulty), and
// to the other faulty replicas, whose VIEW-CHANGEs then list them too.
func (p *pbftProtocol) newByz(i int) *byz.Replica {
	b := byz.New(p.byzB[i], p.keyring.Replica(i), p.n, p.signAll, pbftSlowDelayFactor*p.timeout)
	b.Targets = nil
	for k := 1; k < p.n; k++ {
		if j := (i + k) % p.n; p.byzB[j] == byz.Honest {
			b.Targets = append(b.Targets, j)
			break
		}
	}
	for j, bj := range p.byzB {
		if j != i && bj != byz.Honest {
			b.Targets = append(b.Targets, j)
		}
	}
	return b
}

func (p *pbftProtocol) Crashed(id NodeID) {
	if r := p.replicas[id-1]; r != nil {
		p.unverifiedGone += r.nd.UnverifiedBatches()
		if r.byz != nil {
			p.claimsGone += r.byz.Claims
		}
	}
	p.replicas[id-1] = nil
	p.crashedAt[id-1] = true
}

func (p *pbftProtocol) NewClient(h *ClientHost) Client {
	cl, err := pbftcore.NewClient(pbftcore.ClientConfig{ID: uint64(h.Index()), N: p.n,
		Keys: p.keyring.Client(uint64(h.Index())), TimeoutTicks: p.clientTimeout, SignAll: p.signAll,
		MaxOpBytes: OpEncodedSize})
	if err != nil {
		panic(err)
	}
	return &pbftClient{p: p, h: h, cl: cl}
}

func (p *pbftProtocol) Check() error { return p.err }

// Nemesis switches a Byzantine replica to another behaviour or, in logged runs, cuts the
// power: every running replica restarts at once from its checkpoint and log.
func (p *pbftProtocol) Nemesis(rng *rand.Rand) string {
	if p.logged && rng.IntN(3) == 0 {
		p.powerCuts++
		return fmt.Sprintf("pbft: power cut: %d running replicas restart from their checkpoints and logs", p.c.PowerCut())
	}
	var faulty []int
	for i, b := range p.byzB {
		if b != byz.Honest && !p.pinned[i] {
			faulty = append(faulty, i)
		}
	}
	if len(faulty) == 0 {
		return ""
	}
	i := faulty[rng.IntN(len(faulty))]
	all := byz.All()
	p.byzB[i] = all[rng.IntN(len(all))]
	if r := p.replicas[i]; r != nil {
		p.claimsGone += r.byz.Claims
		r.byz = p.newByz(i)
	}
	return fmt.Sprintf("pbft: n%d turns %s", i+1, p.byzB[i])
}

// Heal leaves the Byzantine replicas Byzantine: liveness must hold with up to f of them.
func (p *pbftProtocol) Heal() {}

// LivenessGrace implements LivenessGracer: the longest a correct running replica's timer
// has left at the heal. A run whose faults made view changes fail one after another leaves
// timers doubled many times (19 ticks grew to 1216 in seed 20572 of
// TestPBFTPartialPrePrepareSeeds, which then recovered 621 ticks after the heal, past the
// fixed 400), and no replica may act before its timer fires (OSDI '99 §4.5.2).
func (p *pbftProtocol) LivenessGrace() int {
	grace := 0
	for _, r := range p.replicas {
		if r != nil && r.byz == nil {
			grace = max(grace, r.nd.TimerTicksLeft())
		}
	}
	return grace
}

// Final checks that the correct replicas that are furthest ahead agree on the state digest
// at their common executed sequence number (per-sequence agreement ran all along).
func (p *pbftProtocol) Final() error {
	if p.err != nil {
		return p.err
	}
	var top uint64
	for i, r := range p.replicas {
		if r != nil && p.byzB[i] == byz.Honest {
			top = max(top, r.nd.Status().LastExecuted)
		}
	}
	var digest uint64
	found := false
	for i, r := range p.replicas {
		if r == nil || p.byzB[i] != byz.Honest || r.nd.Status().LastExecuted != top {
			continue
		}
		if d := r.app.kv.Digest(); found && d != digest {
			return fmt.Errorf("%w: replicas at seq %d have different states", errPBFTAgreement, top)
		} else {
			digest, found = d, true
		}
	}
	return nil
}

func (p *pbftProtocol) fail(err error) {
	if p.err == nil {
		p.err = err
	}
}

// ---- replica ----

type pbftReplica struct {
	p       *pbftProtocol
	h       *Host
	i       int
	nd      *pbftcore.Node
	app     *pbftApp
	byz     *byz.Replica
	lastSeq uint64
	traced  pbftcore.Status
	// amnesiac: restarted without its log, so it may re-propose a sequence number it
	// forgot it had assigned; the run counts it as one of the f faults.
	amnesiac bool
}

func (r *pbftReplica) Tick() {
	// Checkpoint digests computed "in the background" arrive in order, each after a
	// geometric number of ticks.
	for len(r.app.began) > 0 && r.h.Rand().IntN(r.p.digestDelay) == 0 {
		b := r.app.began[0]
		r.app.began = r.app.began[1:]
		r.nd.CheckpointDigest(b.seq, b.digest)
		r.p.asyncDigests++
	}
	r.nd.Tick()
	if r.byz != nil {
		for _, m := range r.byz.Tick() {
			r.send(&m)
		}
	}
	r.drive()
}

func (r *pbftReplica) Deliver(from NodeID, msg any) {
	m, ok := msg.(pbftcore.Message)
	if !ok {
		return
	}
	// The network tells the truth about the sender's endpoint; a message claiming another
	// replica (or a client) than the one that sent it is dropped before the core sees it.
	if from.IsClient() {
		if m.From != pbftcore.FromClient || len(m.Requests) != 1 || uint64(from-ClientIDBase) != m.Requests[0].Client {
			return
		}
	} else if m.From != int(from-1) {
		return
	}
	// Rejections are the point of the Byzantine tests, not failures; traced for replays.
	if err := r.nd.Step(&m); err != nil && r.p.c.Tracing() {
		r.h.Logf("pbft rejects %s v=%d n=%d from n%d: %v", m.Type, m.View, m.Seq, from, err)
	}
	// As the server's driver does after each round of input (here, each message).
	r.nd.FlushIdle()
	r.drive()
}

func (r *pbftReplica) drive() {
	for r.nd.HasReady() {
		rd := r.nd.Ready()
		if r.byz == nil {
			r.check(&rd)
		}
		// The snapshot of a stable checkpoint: in logged runs it is written behind this
		// Ready's records (the server writes the file on a background goroutine after
		// logging them), so a crash can land the stable-checkpoint record and lose the
		// snapshot; otherwise it is durable at once.
		// Like the server's writer, one snapshot write at a time: a newer stable checkpoint
		// replaces one still waiting, so some checkpoints never reach the disk.
		if st := rd.Stable; st != nil {
			cp := r.snapshotOf(st)
			if p, i := r.p, r.i; p.logged {
				p.snapNext[i] = &cp
				if !p.snapQueued[i] {
					p.snapQueued[i] = true
					r.h.Disk().Write(func() {
						p.snapQueued[i] = false
						if s := p.snapNext[i]; s != nil {
							p.snapNext[i] = nil
							p.durable[i].install(*s)
						}
					}, nil)
				}
			} else {
				p.durable[i].install(cp)
			}
		}
		var out []pbftcore.Message
		for k := range rd.Messages {
			m := &rd.Messages[k]
			if r.byz != nil {
				out = append(out, r.byz.Transform(m)...)
				continue
			}
			out = append(out, pbftcore.CloneMessage(m))
		}
		if r.p.logged && (len(rd.Persist) > 0 || r.h.Disk().Pending() > 0) {
			// Persist before send: the records go to the host's disk and the Ready's messages
			// leave when they are durable (in order behind earlier writes). A crash drops what
			// has not landed, messages included; a torn crash may land records whose messages
			// never left, which is allowed.
			recs := pbftcore.CloneRecords(rd.Persist)
			i, p := r.i, r.p
			r.h.Disk().Write(func() { p.durable[i].log = append(p.durable[i].log, recs...) }, func() {
				for k := range out {
					r.send(&out[k])
				}
			})
		} else {
			for k := range out {
				r.send(&out[k])
			}
		}
		r.nd.Advance()
	}
	if r.p.c.Tracing() {
		if st := r.nd.Status(); st != r.traced {
			r.traced = st
			r.h.Logf("pbft view=%d active=%v h=%d executed=%d assigned=%d fetching=%v", st.View, st.ViewActive,
				st.LowWatermark, st.LastExecuted, st.Assigned, st.Fetching)
		}
	}
}

// pbftDurable is what a host keeps across crashes: a stable checkpoint and its App state,
// and in logged runs the protocol records logged since (owned copies).
type pbftDurable struct {
	ok  bool
	cp  pbftcore.StableCheckpoint
	kv  KV
	log []pbftcore.Record
}

// snapshotOf copies a reported stable checkpoint (owned copies) with the App state at it.
func (r *pbftReplica) snapshotOf(st *pbftcore.StableCheckpoint) pbftDurable {
	kv, ok := r.app.snaps[st.Seq]
	if !ok {
		panic("pbft: App lost the state of a reported stable checkpoint")
	}
	cp := *st
	cp.Proof = make([]pbftcore.Message, len(st.Proof))
	for k := range st.Proof {
		cp.Proof[k] = pbftcore.CloneMessage(&st.Proof[k])
	}
	cp.ClientTable = append([]byte(nil), st.ClientTable...)
	return pbftDurable{ok: true, cp: cp, kv: kv}
}

// install makes snapshot s durable and compacts the log: records for numbers at or below
// its checkpoint are dead; the latest view record is kept (the core logs one with every
// stable checkpoint).
func (d *pbftDurable) install(s pbftDurable) {
	if d.ok && d.cp.Seq >= s.cp.Seq {
		return
	}
	var log []pbftcore.Record
	lastView := -1
	for k := range d.log {
		if d.log[k].Kind == pbftcore.RecView {
			lastView = k
		}
	}
	for k := range d.log {
		if k == lastView || (d.log[k].Kind != pbftcore.RecView && d.log[k].Seq > s.cp.Seq) {
			log = append(log, d.log[k])
		}
	}
	s.log = log
	*d = s
}

// send puts an owned message on the network.
func (r *pbftReplica) send(m *pbftcore.Message) {
	if int(m.Type) < len(r.p.sentByType) {
		r.p.sentByType[m.Type]++
	}
	if m.Type == pbftcore.MsgNewView {
		r.p.noteNewView(m)
	}
	switch m.To {
	case pbftcore.ToAll:
		for j := range r.p.n {
			if j != r.i {
				r.h.Send(NodeID(j+1), *m)
			}
		}
	case pbftcore.ToClient:
		r.h.Send(ClientIDBase+NodeID(m.Client), *m)
	default:
		if m.To >= 0 && m.To < r.p.n && m.To != r.i {
			r.h.Send(NodeID(m.To+1), *m)
		}
	}
}

// noteNewView counts, once per view, the NEW-VIEW's choices of a batch a partial-pre-prepare
// replica hid and of a batch that no running correct replica can supply.
func (p *pbftProtocol) noteNewView(m *pbftcore.Message) {
	if p.nvSeen[m.View] {
		return
	}
	p.nvSeen[m.View] = true
	null := pbftcore.BatchDigest(nil)
	for k := range m.PrePrepares {
		pp := &m.PrePrepares[k]
		if pp.Digest == null {
			continue
		}
		hidden, held := false, false
		for i, r := range p.replicas {
			if r == nil {
				continue
			}
			if r.byz != nil {
				hidden = hidden || r.byz.Hid(pp.Seq, pp.Digest)
			} else if p.byzB[i] == byz.Honest {
				held = held || r.nd.HoldsBatch(pp.Seq, pp.Digest) || r.nd.Status().LowWatermark >= pp.Seq
			}
		}
		if hidden {
			p.hiddenChosen++
		}
		if !held {
			p.unheldChosen++
		}
	}
}

// check runs the agreement and validity checkers on a correct replica's executions, and
// the redundant-batch checker on its messages.
func (r *pbftReplica) check(rd *pbftcore.Ready) {
	p := r.p
	if !r.amnesiac {
		r.checkNoRedundantBatch(rd)
	}
	for _, b := range rd.Batches {
		if b.Seq <= r.lastSeq {
			p.fail(fmt.Errorf("%w: n%d executed seq %d after %d", errPBFTAgreement, r.i+1, b.Seq, r.lastSeq))
		}
		r.lastSeq = b.Seq
		if d, ok := p.batchAt[b.Seq]; ok && d != b.Digest {
			p.fail(fmt.Errorf("%w: n%d executed batch %x at seq %d, another correct replica %x", errPBFTAgreement,
				r.i+1, b.Digest[:4], b.Seq, d[:4]))
		} else if !ok {
			p.batchAt[b.Seq] = b.Digest
		}
	}
	for _, e := range rd.Executed {
		op, ok := p.sent[[2]uint64{e.Client, e.Timestamp}]
		if !ok || string(op) != string(e.Op) {
			p.fail(fmt.Errorf("pbft: validity violated: n%d executed c%d/%d that no client sent", r.i+1, e.Client, e.Timestamp))
		}
	}
}

// checkNoRedundantBatch fails the run when this correct replica sends a PRE-PREPARE's batch
// to a replica whose vote for that view and sequence number it holds: the vote proves the
// batch is there (a replica votes only for a pre-prepare it accepted). Such re-sends
// multiply a primary's traffic and memory by the window (they made a server primary's RSS
// swing by 300 MB) without any safety or liveness checker noticing. The Ready comes right
// after the Step or Tick that made its messages, so the votes seen here are those the
// sender knew. A replica restarted without its log is not checked: having forgotten its
// pre-prepare, it may assign the number again, votes for the old one in hand (the run
// counts it as a fault).
func (r *pbftReplica) checkNoRedundantBatch(rd *pbftcore.Ready) {
	for k := range rd.Messages {
		m := &rd.Messages[k]
		if m.Type != pbftcore.MsgPrePrepare || len(m.Requests) == 0 {
			continue
		}
		for j := range r.p.n {
			if (m.To == j || m.To == pbftcore.ToAll && j != r.i) && r.nd.HasVoteFrom(m.View, m.Seq, j) {
				r.p.fail(fmt.Errorf("%w: n%d sent its batch for v=%d n=%d to n%d, whose vote for it it holds",
					errPBFTRedundantBatch, r.i+1, m.View, m.Seq, j+1))
			}
		}
	}
}

// ---- application ----

// pbftApp runs the simulator's KV model under pbftcore.
type pbftApp struct {
	kv    KV
	snaps map[uint64]KV
	began []beganCheckpoint // pbftAsyncApp: digests not yet handed to the core
}

type beganCheckpoint struct {
	seq    uint64
	digest pbftcore.Digest
}

// pbftAsyncApp is pbftApp as a pbftcore.AsyncCheckpointer: the state is recorded at once,
// and its digest reaches the core later (pbftReplica.Tick).
type pbftAsyncApp struct{ *pbftApp }

func (a pbftAsyncApp) BeginCheckpoint(seq uint64) {
	a.began = append(a.began, beganCheckpoint{seq, a.Checkpoint(seq)})
}

func encodeOutput(dst []byte, out Output) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(out.Value))
	if out.OK {
		return append(dst, 1)
	}
	return append(dst, 0)
}

func (a *pbftApp) Execute(_ uint64, req *pbftcore.Request, dst []byte) []byte {
	op, err := DecodeOp(req.Op)
	if err != nil || uint64(op.Client) != req.Client || op.Seq != req.Timestamp {
		return encodeOutput(dst, Output{})
	}
	out, _ := a.kv.Apply(op)
	return encodeOutput(dst, out)
}

func (a *pbftApp) Read(b []byte, dst []byte) []byte {
	op, err := DecodeOp(b)
	if err != nil || op.Kind != OpGet {
		return encodeOutput(dst, Output{})
	}
	return encodeOutput(dst, Output{Value: a.kv.Get(op.Key), OK: true})
}

func appendKV(dst []byte, kv *KV) []byte {
	for _, v := range kv.values {
		dst = binary.LittleEndian.AppendUint64(dst, uint64(v))
	}
	for i := range kv.lastSeq {
		dst = binary.LittleEndian.AppendUint64(dst, kv.lastSeq[i])
		dst = encodeOutput(dst, kv.lastOut[i])
	}
	return binary.LittleEndian.AppendUint64(dst, kv.applied)
}

const kvStateBytes = KeysMax*8 + ClientsMax*(8+pbftResultBytes) + 8

func (a *pbftApp) Checkpoint(seq uint64) pbftcore.Digest {
	a.snaps[seq] = a.kv
	return sha256.Sum256(appendKV(nil, &a.kv))
}

func (a *pbftApp) StateChunk(seq uint64, i int, dst []byte) ([]byte, int, bool) {
	kv, ok := a.snaps[seq]
	if !ok || i != 0 {
		return dst, 1, false
	}
	return appendKV(dst, &kv), 1, true
}

func (a *pbftApp) StateDigest(chunks [][]byte) pbftcore.Digest {
	h := sha256.New()
	for _, c := range chunks {
		h.Write(c)
	}
	var d pbftcore.Digest
	h.Sum(d[:0])
	return d
}

func (a *pbftApp) Restore(seq uint64, chunks [][]byte) {
	if len(chunks) != 1 || len(chunks[0]) != kvStateBytes {
		panic("pbft: restoring a state that matched its certified digest but does not parse")
	}
	b := chunks[0]
	var kv KV
	for i := range kv.values {
		kv.values[i] = int64(binary.LittleEndian.Uint64(b))
		b = b[8:]
	}
	for i := range kv.lastSeq {
		kv.lastSeq[i] = binary.LittleEndian.Uint64(b)
		kv.lastOut[i] = Output{Value: int64(binary.LittleEndian.Uint64(b[8:])), OK: b[16] == 1}
		b = b[pbftResultBytes+8:]
	}
	kv.applied = binary.LittleEndian.Uint64(b)
	a.kv = kv
	a.snaps[seq] = kv
}

func (a *pbftApp) DiscardBelow(seq uint64) {
	for s := range a.snaps {
		if s < seq {
			delete(a.snaps, s)
		}
	}
}

// ---- client ----

type pbftClient struct {
	p  *pbftProtocol
	h  *ClientHost
	cl *pbftcore.Client
	// retransmissions of the current op's ordered request to every replica (its timeouts).
	retransmissions int
}

func (c *pbftClient) Start(op Op) {
	if c.cl.Busy() {
		c.cl.Abandon()
	}
	c.retransmissions = 0
	b := AppendOp(nil, op)
	c.p.sent[[2]uint64{uint64(op.Client), op.Seq}] = b
	if err := c.cl.InvokeAt(op.Seq, b, op.Kind == OpGet); err != nil {
		panic(fmt.Sprintf("pbft client: %v", err))
	}
	c.flush()
}

func (c *pbftClient) Deliver(from NodeID, msg any) {
	m, ok := msg.(pbftcore.Message)
	if !ok || from.IsClient() || m.From != int(from-1) {
		return
	}
	c.cl.Step(&m)
	c.flush()
}

func (c *pbftClient) Tick() {
	c.cl.Tick()
	c.flush()
}

func (c *pbftClient) flush() {
	rd := c.cl.Ready()
	for k := range rd.Messages {
		m := pbftcore.CloneMessage(&rd.Messages[k])
		c.h.Logf("pbft request ts=%d ro=%v to=%d", m.Requests[0].Timestamp, m.Requests[0].ReadOnly, m.To)
		if a := m.Requests[0].Auth; m.Requests[0].Client == uint64(c.p.spoilClient) && len(a) == c.p.n*pbftcore.MACSize {
			a[c.p.spoilReplica*pbftcore.MACSize] ^= 0xff
		}
		if m.To == pbftcore.ToAll {
			if !m.Requests[0].ReadOnly {
				c.retransmissions++
			}
			for j := range c.p.n {
				c.h.Send(NodeID(j+1), m)
			}
		} else {
			c.h.Send(NodeID(m.To+1), m)
		}
	}
	if rd.Done {
		if len(rd.Result) != pbftResultBytes {
			c.p.fail(fmt.Errorf("pbft: client %d accepted a malformed result", c.h.Index()))
		} else {
			c.p.retransmitted[min(c.retransmissions, pbftRetransmittedMax)]++
			c.h.Complete(c.cl.Timestamp(), Output{Value: int64(binary.LittleEndian.Uint64(rd.Result)), OK: rd.Result[8] == 1})
		}
	}
	c.cl.Advance()
}
