package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/consensusbench/consensusbench/internal/pace"
	"github.com/consensusbench/consensusbench/kv"
	"github.com/consensusbench/consensusbench/raftcore"
	"github.com/consensusbench/consensusbench/storage"
	"github.com/consensusbench/consensusbench/transport"
	"github.com/consensusbench/consensusbench/wire"
)

// Limits of one Raft replica's driver.
const (
	// MaxPendingRequests bounds client batches proposed or waiting for a read confirmation on
	// this replica; beyond it new batches are answered StatusBusy.
	MaxPendingRequests = 1 << 16
	// maxCatchUpTicks bounds the ticks delivered at once after the driver stalled: enough to
	// expire any lease and election timer (it is raised to twice the election timeout when
	// that is longer), few enough not to stall the driver in turn.
	maxCatchUpTicks = 1000
	// MaxInboundBatchesPerRound bounds how many inbound batches the driver steps before it
	// takes a Ready, so that a flood of input cannot starve sending and persisting.
	MaxInboundBatchesPerRound = 256
	// DefaultElectionTick is raft.election_tick when the spec names none: a follower
	// campaigns after 30 to 60 ticks without a leader (300-600 ms at the default 10 ms tick).
	// Chosen by measurement on a 2-core host loaded to twice its cores (results/bench/
	// 20261207-loaded-host): at 10 ticks a starved leader lost its followers once in a
	// 10-minute run; failover after kill-leader still takes well under etcd's default
	// (1 s election timeout).
	DefaultElectionTick = 30
	// DefaultSnapshotRetainEntries: log entries kept below a snapshot (in the core and the
	// WAL) so that a slightly lagging follower catches up from the log, not a snapshot.
	DefaultSnapshotRetainEntries = 5000
	// SnapshotDuty is the share of wall-clock time a background snapshot may spend
	// serializing and writing (internal/pace): a 100,000-key store's 50-80 ms of CPU
	// becomes about 250 ms, and the driver and event loops keep the rest of the core. The
	// thresholds that trigger snapshots are seconds apart under any load that fills them.
	SnapshotDuty = 0.25
	// snapshotPaceSlice is how long the snapshot works between rests; snapshotPacePiece is
	// the most it hands the file in one write.
	snapshotPaceSlice = time.Millisecond
	snapshotPacePiece = 256 << 10
)

// ReplicaConfig configures one replica (Raft or PBFT) of the cluster described by Spec.
type ReplicaConfig struct {
	Spec *ClusterSpec
	ID   uint64
	// DataDir holds the WAL (wal/) and snapshots (snap/). Required.
	DataDir string
	// Init allows an empty DataDir: the node is new, and the directory is stamped with its
	// identity. Without it, an empty directory is refused (see checkDataDirIdentity).
	Init bool
	// Sync is the WAL policy: storage.SyncAlways acknowledges writes only after fdatasync.
	Sync storage.SyncPolicy
	// PeerListen and ClientListen override the spec's addresses (tests listen on port 0).
	PeerListen, ClientListen string
	// EventLoops is the transport's number of gnet event loops (0: transport.DefaultEventLoops).
	EventLoops int
	// PeerSecret is the cluster secret peers prove at the hello (transport.Config.PeerSecret);
	// nil leaves peers unauthenticated.
	PeerSecret []byte
	// Seed seeds the core's RNG (election timeouts). 0 derives one from the ID and the clock.
	Seed uint64
	// Logger receives replica events; nil discards them.
	Logger *slog.Logger
	// Metrics receives the replica's metrics; nil creates a registry (see Replica.Metrics).
	Metrics *Metrics
	// TuneTransport, when set, adjusts the transport config before it is used (tests
	// shorten timeouts with it).
	TuneTransport func(*transport.Config)
	// UnsafeAckBeforeCommit makes the leader answer writes as soon as they are proposed,
	// before they commit. It exists only so that tests can show the linearizability and
	// durability checks catch a broken cluster; never set it otherwise.
	UnsafeAckBeforeCommit bool
}

func (c *ReplicaConfig) validate() error {
	var bad []string
	if c.Spec == nil {
		bad = append(bad, "Spec is required")
	} else if _, ok := c.Spec.Node(c.ID); !ok {
		bad = append(bad, fmt.Sprintf("ID %d is not a node of the cluster spec", c.ID))
	}
	if c.DataDir == "" {
		bad = append(bad, "DataDir is required")
	}
	if len(bad) > 0 {
		return fmt.Errorf("server: bad replica config: %v", bad)
	}
	return nil
}

// raftClientFrameSlack is room above the batch bytes for a client frame's header and per-op
// encoding.
const raftClientFrameSlack = 64 << 10

// pendingMark pairs a WAL call's sequence with the core's persistence mark it completes.
type pendingMark struct {
	walSeq uint64
	mark   raftcore.PersistMark
}

// pendingReq is a client batch this replica proposed (or is confirming a read for).
type pendingReq struct {
	conn  transport.ClientID
	start time.Time
}

type reqKey struct{ client, seq uint64 }

// pendingRead is a read-only client batch waiting for its ReadIndex confirmation.
type pendingRead struct {
	ctx   uint64 // ReadIndex context it waits for (0: not yet requested)
	index uint64 // confirmed read index (0: not yet confirmed)
	conn  transport.ClientID
	start time.Time
	body  []byte // a private copy of the request body
}

// RaftReplica is one Raft replica: transport + raftcore + WAL + KV, driven by a single
// goroutine (run). Nothing but that goroutine touches the core, the KV store, the codec or
// the pending tables; other goroutines talk to it through the transport's inbound queue,
// the WAL's durable notifications and the stop channel.
type RaftReplica struct {
	cfg  ReplicaConfig
	node *raftcore.Node
	kv   *kv.Store
	m    raftMetrics

	snapDir string
	// snapshotting: a background snapshot is in flight; snapDone delivers it to the driver.
	snapshotting bool
	snapSpare    *kv.Store        // the store copy the next snapshot reuses (nil while in use)
	snapBufs     [2]*bytes.Buffer // serialized snapshots, alternating (see takeSnapshot)
	snapNext     int
	snapDone     chan snapResult
	snapMu       sync.Mutex // serializes writes and removals in snapDir
	hs           storage.HardState

	codec    raftCodec
	msg      raftcore.Message
	out      []byte
	walEnts  []storage.Entry
	marks    []pendingMark
	proposal [][]byte
	held     []*transport.Batch // inbound batches whose bodies proposal aliases
	propKeys []reqKey
	propConn []transport.ClientID
	pending  map[reqKey]pendingReq
	reads    []pendingRead
	readCtx  uint64
	req      wire.ClientRequest
	reply    wire.ClientReply
	valBuf   []byte
	valOff   []int
	applied  uint64
	group    applyGroup
	// now is the driver's latest clock reading (catchUpTicks, applyCommitted): requests
	// that arrive or complete together share one, so a one-op request pays no clock read.
	now time.Time
	// maxBatchEntries and maxBatchBytes are the core's per-Propose limits.
	maxBatchEntries int
	maxBatchBytes   int
	lead            atomic.Uint64
	role            atomic.Uint32

	appendTime map[uint64]time.Time
	clock      tickClock // the core's time; see catchUpTicks

	admin    chan func() // closures the driver runs for operator calls (TransferLeader)
	term     atomic.Uint64
	appliedA atomic.Uint64

	lifecycle
}

type raftMetrics struct {
	commitLatency  *Histogram
	persistTime    *Histogram
	readyEntries   *Histogram
	applyEntries   *Histogram
	proposals      *Counter
	notLeader      *Counter
	busy           *Counter
	paused         *Counter
	readsServed    *Counter
	snapshots      *Counter
	leaderChanges  *Counter   // the leader this replica knows changed (to another or to none)
	elections      *Counter   // terms this replica campaigned in (voted for itself)
	snapCopy       *Histogram // the driver's part of a snapshot: copying the store
	snapWrite      *Histogram // the background part: serializing and saving the copy
	installed      *Counter
	repliesDropped *Counter
	malformed      *Counter
	pending        atomic.Int64
}

// NewRaftReplica opens the replica's storage, restores its state and prepares its
// transport. Start begins serving.
func NewRaftReplica(cfg ReplicaConfig) (_ *RaftReplica, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Spec.Protocol != "raft" {
		return nil, fmt.Errorf("server: cluster spec protocol is %q, not raft", cfg.Spec.Protocol)
	}
	r := &RaftReplica{
		cfg:        cfg,
		snapDir:    filepath.Join(cfg.DataDir, "snap"),
		pending:    make(map[reqKey]pendingReq),
		appendTime: make(map[uint64]time.Time),
		admin:      make(chan func()),
		snapDone:   make(chan snapResult, 1),
		lifecycle:  newLifecycle(cfg.Logger, cfg.Metrics),
	}
	if err := r.lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			r.releaseDataDir()
		}
	}()
	if err := checkDataDirIdentity(cfg.DataDir, cfg.Spec, cfg.ID, cfg.Init, r.log); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(r.snapDir, 0o755); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	// Raft never compares replica states, so the KV store skips the state digest.
	if r.kv, err = kv.New(kv.Config{NoDigest: true}); err != nil {
		return nil, err
	}
	w, st, err := storage.Open(filepath.Join(cfg.DataDir, "wal"), storage.Options{Sync: cfg.Sync, OnDurable: r.onDurable})
	if err != nil {
		return nil, err
	}
	r.wal = w
	if st.TornTailBytes > 0 {
		r.log.Warn("wal: discarded a damaged tail and everything after it", "bytes", st.TornTailBytes, "file", st.TornTailFile,
			"offset", st.TornTailOffset, "later_segments_dropped", st.DroppedSegments, "later_bytes_dropped", st.DroppedBytes,
			"why", walDamageWhy(r.cfg.Sync, st))
	}
	ccfg, err := r.restore(st)
	if err != nil {
		w.Close()
		return nil, err
	}
	if r.node, err = raftcore.New(ccfg); err != nil {
		w.Close()
		return nil, err
	}
	r.applied = ccfg.Applied
	r.appliedA.Store(r.applied)
	r.term.Store(ccfg.HardState.Term)
	r.maxBatchEntries, r.maxBatchBytes = ccfg.MaxBatchEntries, int(ccfg.MaxBatchBytes)
	r.clock = newTickClock(cfg.Spec.TickInterval(), max(maxCatchUpTicks, 2*ccfg.ElectionTick), time.Now())
	if err := r.newTransport(); err != nil {
		w.Close()
		return nil, err
	}
	r.registerMetrics()
	return r, nil
}

// snapMeta is the application metadata stored with each snapshot file.
type snapMeta struct {
	Voters   []uint64 `json:"voters"`
	Learners []uint64 `json:"learners,omitempty"`
}

// restore rebuilds the core's config from the newest snapshot and the WAL.
func (r *RaftReplica) restore(st storage.State) (raftcore.Config, error) {
	cfg := r.cfg
	var voters []uint64
	for _, n := range cfg.Spec.Nodes {
		voters = append(voters, n.ID)
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano()) ^ cfg.ID<<48
	}
	c := raftcore.DefaultConfig(cfg.ID, raftcore.Membership{Voters: voters}, rand.New(rand.NewPCG(seed, cfg.ID)))
	rs := cfg.Spec.Raft
	setInt := func(dst *int, v int) {
		if v != 0 {
			*dst = v
		}
	}
	c.ElectionTick = DefaultElectionTick
	setInt(&c.ElectionTick, rs.ElectionTick)
	setInt(&c.HeartbeatTick, rs.HeartbeatTick)
	setInt(&c.MaxInflightMsgs, rs.MaxInflightMsgs)
	if rs.MaxInflightBytes != 0 {
		c.MaxInflightBytes = rs.MaxInflightBytes
	}
	if rs.MaxSizePerMsg != 0 {
		c.MaxSizePerMsg = rs.MaxSizePerMsg
	}
	if rs.SnapshotThreshold != 0 {
		c.SnapshotThreshold = rs.SnapshotThreshold
	}
	if rs.SnapshotThresholdBytes != 0 {
		c.SnapshotThresholdBytes = rs.SnapshotThresholdBytes
	}
	if rs.SnapshotRetainBytes != 0 {
		c.SnapshotRetainBytes = rs.SnapshotRetainBytes
	}
	// Stagger the replicas' snapshots: serializing and writing the whole store is a burst of
	// CPU, and replicas that applied the same entries would all take it at once, stalling
	// the cluster together. Node k of n waits (1 + k/n) times the thresholds, so their
	// snapshots fall at different moments.
	if n := uint64(len(cfg.Spec.Nodes)); n > 1 {
		k := (cfg.ID - 1) % n
		c.SnapshotThreshold += c.SnapshotThreshold * k / n
		c.SnapshotThresholdBytes += c.SnapshotThresholdBytes * k / n
	}
	c.PreVote = !rs.DisablePreVote
	c.CheckQuorum = !rs.DisableCheckQuorum
	if rs.Reads == "lease" {
		c.ReadOnly = raftcore.ReadLease
	}
	c.SnapshotRetainEntries = DefaultSnapshotRetainEntries
	if rs.SnapshotRetainEntries != 0 {
		c.SnapshotRetainEntries = rs.SnapshotRetainEntries
	}

	// Snapshot first: the state machine starts from it and the log continues after it.
	snap, skipped, err := storage.OpenLatestSnapshot(nil, r.snapDir)
	for _, e := range skipped {
		r.log.Warn("snapshot: skipped unreadable file", "err", e)
	}
	switch {
	case errors.Is(err, storage.ErrNoSnapshot):
	case err != nil:
		return c, err
	default:
		defer snap.Close()
		data, err := io.ReadAll(snap.Body())
		if err != nil {
			return c, fmt.Errorf("server: read snapshot: %w", err)
		}
		var meta snapMeta
		if err := json.Unmarshal(snap.Meta, &meta); err != nil {
			return c, fmt.Errorf("server: snapshot %d metadata: %w", snap.Index, err)
		}
		if err := r.kv.Restore(bytes.NewReader(data)); err != nil {
			return c, fmt.Errorf("server: restore snapshot %d: %w", snap.Index, err)
		}
		c.Snapshot = raftcore.Snapshot{Meta: raftcore.SnapshotMeta{Index: snap.Index, Term: snap.Term,
			Membership: raftcore.Membership{Voters: meta.Voters, Learners: meta.Learners}}, Data: data}
		c.Applied = snap.Index
	}
	snapIndex, snapTerm := c.Snapshot.Meta.Index, c.Snapshot.Meta.Term
	if st.SnapshotIndex > snapIndex {
		return c, fmt.Errorf("server: wal compacted to %d beyond the newest snapshot %d", st.SnapshotIndex, snapIndex)
	}
	// The WAL continues the snapshot only if it holds the snapshot's last entry with the
	// snapshot's term (or was reset exactly there). Otherwise its suffix is a branch that an
	// InstallSnapshot superseded (Raft §7: the follower discards its entire log), and the
	// node crashed after the snapshot was durable but before the WAL reset was: drop it, as
	// the reset would have.
	continues := snapIndex == 0 || (st.SnapshotIndex == snapIndex && st.SnapshotTerm == snapTerm)
	if !continues && st.FirstIndex <= snapIndex && snapIndex <= st.LastIndex {
		t, err := r.wal.Term(snapIndex)
		continues = err == nil && t == snapTerm
	}
	last := snapIndex
	switch {
	case !continues:
		if _, err := r.wal.ResetTo(snapIndex, snapTerm); err != nil {
			return c, err
		}
	case st.LastIndex > snapIndex:
		ents, _, err := r.wal.Entries(max(st.FirstIndex, snapIndex+1), st.LastIndex+1, 1<<62, nil, nil)
		if err != nil {
			return c, fmt.Errorf("server: read wal: %w", err)
		}
		c.Entries = make([]raftcore.Entry, len(ents))
		for i, e := range ents {
			c.Entries[i] = raftcore.Entry{Index: e.Index, Term: e.Term, Type: raftcore.EntryType(e.Type), Data: e.Data}
		}
		last = st.LastIndex
	}
	hs := st.HardState
	hs.Commit = min(max(hs.Commit, snapIndex), last)
	lastTerm := snapTerm
	if len(c.Entries) > 0 {
		lastTerm = c.Entries[len(c.Entries)-1].Term
	}
	if lastTerm > hs.Term {
		// The log holds a newer term than the stored hard state (written before it): the
		// stored vote belongs to an older term.
		hs.Term, hs.Vote = lastTerm, 0
	}
	c.HardState = raftcore.HardState{Term: hs.Term, Vote: hs.Vote, Commit: hs.Commit}
	r.hs = hs
	return c, nil
}

func (r *RaftReplica) newTransport() error {
	tr, err := newTransport(&r.cfg, wire.ProtocolRaft, r.log, func(tc *transport.Config) {
		// A client batch larger than the core's proposal limit is answered with an error
		// (errBatchTooLarge); one beyond twice that closes the connection instead, so a
		// client cannot make the event loops buffer peer-sized frames.
		tc.MaxClientFrameBytes = min(2*r.maxBatchBytes+raftClientFrameSlack, wire.DefaultMaxFrameBytes)
	})
	r.tr = tr
	return err
}

func (r *RaftReplica) registerMetrics() {
	m := r.met
	lat := ExpBuckets(50e-6, 2, 18)
	r.m.commitLatency = m.Histogram("cb_commit_latency_seconds", "Client batch latency at the leader, from receipt to reply.", lat)
	r.m.persistTime = m.Histogram("cb_wal_persist_seconds", "Time from handing a Ready to the WAL to its durable acknowledgement (group commit incl. fdatasync).", lat)
	r.m.readyEntries = m.Histogram("cb_ready_persist_entries", "Entries persisted per Ready (batch size).", ExpBuckets(1, 2, 14))
	r.m.applyEntries = m.Histogram("cb_ready_apply_entries", "Entries applied per Ready.", ExpBuckets(1, 2, 14))
	r.m.proposals = m.Counter("cb_proposed_batches_total", "Client batches proposed by this replica.")
	r.m.notLeader = m.Counter("cb_not_leader_total", "Client batches answered not-leader.")
	r.m.busy = m.Counter("cb_busy_total", "Client batches refused because MaxPendingRequests were pending.")
	r.m.paused = m.Counter("cb_peer_paused_drops_total", "Messages dropped because the peer's outbound queue was full.")
	r.m.readsServed = m.Counter("cb_reads_served_total", "Read-only client batches served through ReadIndex.")
	r.m.snapshots = m.Counter("cb_snapshots_total", "Snapshots this replica took of its state.")
	r.m.leaderChanges = m.Counter("cb_raft_leader_changes_total", "Times the leader this replica knows changed (to another node or to none).")
	r.m.elections = m.Counter("cb_raft_elections_total", "Elections this replica started: terms it entered voting for itself (pre-votes that went no further are not counted).")
	r.m.snapCopy = m.Histogram("cb_snapshot_copy_seconds", "Time the driver spent copying the store for a snapshot (nothing else runs meanwhile).", lat)
	r.m.snapWrite = m.Histogram("cb_snapshot_write_seconds", "Time a snapshot took to serialize and save, on a background goroutine.", lat)
	r.m.repliesDropped = m.Counter("cb_client_replies_dropped_total", "Client replies dropped because the connection's reply queue stayed full.")
	r.m.installed = m.Counter("cb_snapshots_installed_total", "Snapshots received from the leader and installed (InstallSnapshot).")
	r.m.malformed = m.Counter("cb_peer_malformed_total", "Peer messages the core refused as malformed (no correct peer sends them).")
	m.GaugeFunc("cb_pending_requests", "Client batches waiting for commit or read confirmation.", r.m.pending.Load)
	m.GaugeFunc("cb_raft_leader", "The leader this replica knows (0: none).", func() int64 { return int64(r.lead.Load()) })
	m.GaugeFunc("cb_raft_is_leader", "1 when this replica is the leader.", func() int64 {
		if raftcore.Role(r.role.Load()) == raftcore.Leader {
			return 1
		}
		return 0
	})
	registerTransportMetrics(m, r.tr)
	registerWALMetrics(m, r.wal)
}

// Start starts the transport and the driver goroutine.
func (r *RaftReplica) Start() error {
	return r.start(r.run)
}

// Leader returns the leader this replica knows, or 0. Safe from any goroutine.
func (r *RaftReplica) Leader() uint64 { return r.lead.Load() }

// IsLeader reports whether this replica is the leader. Safe from any goroutine.
func (r *RaftReplica) IsLeader() bool { return raftcore.Role(r.role.Load()) == raftcore.Leader }

// Status reports the replica's role, leader, term and applied index. Safe from any goroutine.
func (r *RaftReplica) Status() ReplicaStatus {
	role := map[raftcore.Role]string{raftcore.Follower: "follower", raftcore.PreCandidate: "pre-candidate",
		raftcore.Candidate: "candidate", raftcore.Leader: "leader"}[raftcore.Role(r.role.Load())]
	reads := r.cfg.Spec.Raft.Reads
	if reads == "" {
		reads = "safe"
	}
	return ReplicaStatus{ID: r.cfg.ID, Protocol: "raft", Role: role, Leader: r.lead.Load(), Term: r.term.Load(),
		Applied: r.appliedA.Load(), Partitioned: r.tr.Partitioned(), Sync: r.cfg.Sync.String(), Reads: reads,
		PeerAuth: peerAuthName(r.cfg.PeerSecret)}
}

// TransferLeader asks this replica, which must be the leader, to hand leadership to `to`
// (Raft thesis §3.10). It runs on the driver goroutine.
func (r *RaftReplica) TransferLeader(to uint64) error {
	errc := make(chan error, 1)
	select {
	case r.admin <- func() { errc <- r.node.TransferLeader(to) }:
	case <-r.done:
		return errors.New("server: replica stopped")
	}
	return <-errc
}

func (r *RaftReplica) run() {
	defer close(r.done)
	r.clock.restart(time.Now())
	tick := time.NewTicker(r.clock.interval)
	defer tick.Stop()
	inbound := r.tr.Inbound()
	for r.fatal.Load() == nil {
		select {
		case <-r.stop:
			return
		case b := <-inbound:
			r.handleBatch(b)
			for i := 1; i < MaxInboundBatchesPerRound; i++ {
				select {
				case b = <-inbound:
					r.handleBatch(b)
					continue
				default:
				}
				break
			}
		case <-tick.C:
			r.catchUpTicks()
		case <-r.durableC:
			r.ackDurable()
		case f := <-r.admin:
			r.catchUpTicks()
			f()
		case res := <-r.snapDone:
			if err := r.finishSnapshot(res); err != nil {
				r.setFatal(err)
			}
		}
		r.flushProposals()
		r.requestReads()
		r.processReady()
		r.tr.FlushClients()
	}
}

// catchUpTicks delivers every tick that has come due. It runs before any input reaches the
// core (see tickClock): a read must never be checked against a lease with a stale clock.
func (r *RaftReplica) catchUpTicks() {
	r.now = time.Now()
	for n := r.clock.due(r.now); n > 0; n-- {
		r.node.Tick()
	}
}

func (r *RaftReplica) ackDurable() {
	r.catchUpTicks()
	if e := r.durableErr.Load(); e != nil {
		r.setFatal(fmt.Errorf("wal failed: %w", *e))
		return
	}
	seq := r.durableSeq.Load()
	n := 0
	var last raftcore.PersistMark
	for n < len(r.marks) && r.marks[n].walSeq <= seq {
		last = r.marks[n].mark
		n++
	}
	if n == 0 {
		return
	}
	if t, ok := r.appendTime[r.marks[n-1].walSeq]; ok {
		r.m.persistTime.Observe(time.Since(t).Seconds())
	}
	for i := 0; i < n; i++ {
		delete(r.appendTime, r.marks[i].walSeq)
	}
	r.marks = append(r.marks[:0], r.marks[n:]...)
	r.node.AckPersisted(last)
}

func (r *RaftReplica) handleBatch(b *transport.Batch) {
	r.catchUpTicks()
	for i := range b.Frames {
		f := &b.Frames[i]
		if f.Client != 0 {
			r.handleClient(f)
			continue
		}
		if !isRaftType(f.Type) {
			r.log.Warn("dropping non-raft peer frame", "from", f.From, "type", f.Type)
			continue
		}
		if err := r.codec.decode(f.Type, f.Body, &r.msg); err != nil {
			r.log.Warn("dropping malformed peer message", "from", f.From, "type", f.Type, "err", err)
			continue
		}
		if r.msg.From != f.From || r.msg.To != r.cfg.ID {
			r.log.Warn("dropping misaddressed peer message", "conn_peer", f.From, "from", r.msg.From, "to", r.msg.To)
			continue
		}
		if err := r.node.Step(&r.msg); err != nil {
			if errors.Is(err, raftcore.ErrMalformed) {
				// A peer sent what no correct peer sends: refused by the core, counted here.
				r.m.malformed.Inc()
				r.log.Warn("refused a malformed peer message", "from", f.From, "err", err)
			} else {
				r.log.Debug("step", "err", err)
			}
		}
	}
	// Proposals alias the batch until flushProposals hands them to the core (which copies).
	r.held = append(r.held, b)
}

// handleClient validates a client batch and queues it: writes are proposed (together with
// every other batch of this round, in one Propose), read-only batches wait for a ReadIndex
// confirmation.
func (r *RaftReplica) handleClient(f *transport.Frame) {
	if f.Type != wire.TypeClientRequest {
		r.log.Warn("dropping non-client frame on a client connection", "type", f.Type)
		return
	}
	if err := wire.DecodeClientRequest(f.Body, &r.req); err != nil {
		r.log.Warn("closing client that sent a malformed request", "err", err)
		r.tr.CloseClient(f.Client)
		return
	}
	if r.req.ClientID == 0 || len(r.req.Ops) == 0 {
		r.replyStatus(f.Client, wire.StatusError, []byte("request needs a nonzero client ID and at least one op"))
		return
	}
	if !r.IsLeader() {
		r.m.notLeader.Inc()
		r.replyStatus(f.Client, wire.StatusNotLeader, nil)
		return
	}
	if len(f.Body) > r.maxBatchBytes {
		// The core refuses any proposal larger than its batch limit: retrying cannot help.
		r.replyStatus(f.Client, wire.StatusError, errBatchTooLarge)
		return
	}
	if len(r.pending)+len(r.reads) >= MaxPendingRequests {
		r.m.busy.Inc()
		r.replyStatus(f.Client, wire.StatusBusy, nil)
		return
	}
	readOnly := true
	for i := range r.req.Ops {
		if r.req.Ops[i].Kind != wire.OpGet {
			readOnly = false
			break
		}
	}
	now := r.now // read by catchUpTicks for this batch: one clock read per batch, not per request
	if readOnly {
		r.reads = append(r.reads, pendingRead{conn: f.Client, start: now, body: append([]byte(nil), f.Body...)})
		r.m.pending.Store(int64(len(r.pending) + len(r.reads)))
		return
	}
	key := reqKey{r.req.ClientID, r.req.FirstSeq}
	r.pending[key] = pendingReq{conn: f.Client, start: now}
	r.m.pending.Store(int64(len(r.pending) + len(r.reads)))
	r.proposal = append(r.proposal, f.Body)
	r.propKeys = append(r.propKeys, key)
	r.propConn = append(r.propConn, f.Client)
}

// flushProposals proposes every write batch of this round as consecutive entries, in as few
// Propose calls as the core's batch limits allow. The core copies the payloads, so the
// transport batches they alias can be released afterwards.
func (r *RaftReplica) flushProposals() {
	for start := 0; start < len(r.proposal); {
		end, bytes := start, 0
		for end < len(r.proposal) && end-start < r.maxBatchEntries &&
			(end == start || bytes+len(r.proposal[end]) <= r.maxBatchBytes) {
			bytes += len(r.proposal[end])
			end++
		}
		if _, err := r.node.Propose(r.proposal[start:end]); err != nil {
			status := wire.StatusBusy
			if errors.Is(err, raftcore.ErrNotLeader) {
				status = wire.StatusNotLeader
			}
			for i := start; i < end; i++ {
				delete(r.pending, r.propKeys[i])
				r.replyStatusKey(r.propConn[i], r.propKeys[i], status)
			}
		} else {
			r.m.proposals.Add(uint64(end - start))
			if r.cfg.UnsafeAckBeforeCommit {
				r.unsafeAck(start, end)
			}
		}
		start = end
	}
	for _, b := range r.held {
		b.Release()
	}
	clear(r.held)
	r.held = r.held[:0]
	clear(r.proposal)
	r.proposal = r.proposal[:0]
	r.propKeys = r.propKeys[:0]
	r.propConn = r.propConn[:0]
	r.m.pending.Store(int64(len(r.pending) + len(r.reads)))
}

// unsafeAck answers proposed writes as if they had been applied, without waiting for the
// commit. Test-only (ReplicaConfig.UnsafeAckBeforeCommit).
func (r *RaftReplica) unsafeAck(start, end int) {
	for i := start; i < end; i++ {
		body := r.proposal[i]
		if err := wire.DecodeClientRequest(body, &r.req); err != nil {
			continue
		}
		r.reply = wire.ClientReply{ClientID: r.req.ClientID, FirstSeq: r.req.FirstSeq, LeaderHint: r.cfg.ID, Results: r.reply.Results[:0]}
		for range r.req.Ops {
			r.reply.Results = append(r.reply.Results, wire.OpResult{Status: wire.StatusOK})
		}
		r.sendReply(r.propConn[i])
		delete(r.pending, r.propKeys[i])
	}
}

// requestReads asks the core to confirm leadership for every read batch that arrived this
// round, with one ReadIndex call (one heartbeat round confirms them all).
func (r *RaftReplica) requestReads() {
	if len(r.reads) == 0 || r.reads[len(r.reads)-1].ctx != 0 {
		return
	}
	r.catchUpTicks()
	r.readCtx++
	if err := r.node.ReadIndex(r.readCtx); err != nil {
		r.failReads(wire.StatusBusy)
		return
	}
	for i := len(r.reads) - 1; i >= 0 && r.reads[i].ctx == 0; i-- {
		r.reads[i].ctx = r.readCtx
	}
}

// confirmReads records a confirmed read index: every batch that asked at or before ctx may
// be served at index (a later confirmation also covers earlier requests, thesis §6.4).
func (r *RaftReplica) confirmReads(rs raftcore.ReadState) {
	for i := range r.reads {
		if p := &r.reads[i]; p.ctx != 0 && p.ctx <= rs.Context && p.index == 0 {
			p.index = rs.Index
		}
	}
}

// serveReads answers confirmed reads whose index has been applied, in arrival order.
func (r *RaftReplica) serveReads() {
	n := 0
	for n < len(r.reads) && r.reads[n].index != 0 && r.reads[n].index <= r.applied {
		p := &r.reads[n]
		if err := wire.DecodeClientRequest(p.body, &r.req); err == nil {
			r.reply = wire.ClientReply{ClientID: r.req.ClientID, FirstSeq: r.req.FirstSeq, LeaderHint: r.cfg.ID, Results: r.reply.Results[:0]}
			r.valBuf, r.valOff = r.valBuf[:0], r.valOff[:0]
			for i := range r.req.Ops {
				res := r.kv.Get(r.req.Ops[i].Key)
				r.addResult(res)
			}
			r.finishResults()
			r.sendReply(p.conn)
			r.m.readsServed.Inc()
			r.m.commitLatency.Observe(time.Since(p.start).Seconds())
		}
		n++
	}
	if n > 0 {
		clear(r.reads[:n])
		r.reads = append(r.reads[:0], r.reads[n:]...)
		r.m.pending.Store(int64(len(r.pending) + len(r.reads)))
	}
}

func (r *RaftReplica) failReads(status wire.Status) {
	for i := range r.reads {
		r.replyStatusBody(r.reads[i].conn, r.reads[i].body, status)
	}
	clear(r.reads)
	r.reads = r.reads[:0]
}

// processReady drains the core's Readies: send, persist, apply, serve, advance.
func (r *RaftReplica) processReady() {
	for r.fatal.Load() == nil && r.node.HasReady() {
		rd := r.node.Ready()
		if rd.HasHardState {
			if old := r.term.Swap(rd.HardState.Term); rd.HardState.Term > old && rd.HardState.Vote == r.cfg.ID {
				r.m.elections.Inc()
				r.log.Info("campaigning", "term", rd.HardState.Term)
			}
		}
		if rd.HasSoftState {
			wasLeader := r.IsLeader()
			oldLead, oldRole := r.lead.Load(), raftcore.Role(r.role.Load())
			r.lead.Store(rd.Lead)
			r.role.Store(uint32(rd.Role))
			r.noteSoftState(oldLead, oldRole, rd.Lead, rd.Role)
			if wasLeader && rd.Role != raftcore.Leader {
				r.lostLeadership()
			}
		}
		// 1. Messages leave first: the leader replicates in parallel with its own disk write
		// (thesis §10.2.1); the core holds back whatever needs durable state.
		for i := range rd.Messages {
			m := &rd.Messages[i]
			r.out = r.codec.appendFrame(r.out[:0], m)
			if err := r.tr.Send(m.To, r.out); err != nil {
				r.m.paused.Inc()
			}
		}
		// 2. Persist.
		if rd.MustPersist() {
			if err := r.persist(&rd); err != nil {
				r.setFatal(err)
				return
			}
		}
		// 3. Apply.
		if !rd.Snapshot.IsEmpty() {
			if err := r.kv.Restore(bytes.NewReader(rd.Snapshot.Data)); err != nil {
				r.setFatal(fmt.Errorf("restore snapshot %d: %w", rd.Snapshot.Meta.Index, err))
				return
			}
			r.applied = rd.Snapshot.Meta.Index
			r.m.installed.Inc()
		}
		if len(rd.CommittedEntries) > 0 {
			r.m.applyEntries.Observe(float64(len(rd.CommittedEntries)))
		}
		r.applyCommitted(rd.CommittedEntries)
		// 4. Reads.
		for _, rs := range rd.ReadStates {
			r.confirmReads(rs)
		}
		r.serveReads()
		r.appliedA.Store(r.applied)
		// 5. Snapshot.
		if rd.SnapshotRequest > 0 {
			if err := r.takeSnapshot(rd.SnapshotRequest); err != nil {
				r.setFatal(err)
				return
			}
		}
		r.node.Advance()
	}
}

// noteSoftState logs and counts leader changes: a run with spurious elections must say so
// (each costs up to an election timeout of unavailability).
func (r *RaftReplica) noteSoftState(oldLead uint64, oldRole raftcore.Role, lead uint64, role raftcore.Role) {
	if lead != oldLead {
		term := r.term.Load()
		r.m.leaderChanges.Inc()
		r.log.Info("leader changed", "from", oldLead, "to", lead, "term", term, "role", role.String(), "was", oldRole.String())
	}
}

// persist hands the Ready's state to the WAL's group commit. A Ready that only moved the
// commit index need not be synced (the core says so with MustSync=false); it is recorded
// with the next write and acknowledged as soon as everything before it is durable.
func (r *RaftReplica) persist(rd *raftcore.Ready) error {
	if rd.HasHardState {
		r.hs = storage.HardState{Term: rd.HardState.Term, Vote: rd.HardState.Vote, Commit: rd.HardState.Commit}
	}
	if !rd.Snapshot.IsEmpty() {
		if err := r.saveSnapshot(rd.Snapshot.Meta, rd.Snapshot.Data, nil); err != nil {
			return err
		}
		if _, err := r.wal.ResetTo(rd.Snapshot.Meta.Index, rd.Snapshot.Meta.Term); err != nil {
			return err
		}
	}
	if !rd.MustSync && len(rd.Entries) == 0 && rd.Snapshot.IsEmpty() {
		if len(r.marks) == 0 {
			r.node.AckPersisted(rd.Mark)
			return nil
		}
		r.marks = append(r.marks, pendingMark{walSeq: r.marks[len(r.marks)-1].walSeq, mark: rd.Mark})
		return nil
	}
	r.walEnts = r.walEnts[:0]
	for i := range rd.Entries {
		e := &rd.Entries[i]
		r.walEnts = append(r.walEnts, storage.Entry{Index: e.Index, Term: e.Term, Type: uint8(e.Type), Data: e.Data})
	}
	if len(rd.Entries) > 0 {
		r.m.readyEntries.Observe(float64(len(rd.Entries)))
	}
	seq, err := r.wal.Append(r.walEnts, r.hs)
	if err != nil {
		return fmt.Errorf("wal append: %w", err)
	}
	clear(r.walEnts)
	r.appendTime[seq] = time.Now()
	r.marks = append(r.marks, pendingMark{walSeq: seq, mark: rd.Mark})
	if seq <= r.durableSeq.Load() {
		r.ackDurable()
	}
	return nil
}

// applyGroup gathers the ops of consecutive committed entries (one client request each)
// so the store applies at least kv.BatchPrefetch of them in one call and overlaps their
// cache misses: with one op per request, applying entry by entry paid each miss alone. Its
// slices grow to the largest group seen and are reused.
type applyGroup struct {
	reqs []wire.ClientRequest // decoded requests, reqs[:n]; ops alias the entries
	n    int
	ops  []kv.Op
	idx  []uint64 // each op's log index
	res  []kv.Result
}

// applyCommitted applies committed entries in order. The ops of consecutive normal entries
// go to the store in kv.ApplyIndexed calls of kv.BatchPrefetch ops or more, each op at its
// own entry's index, so the store ends exactly as entry-by-entry application leaves it
// whatever the grouping (which differs between replicas). A configuration entry ends a
// group.
func (r *RaftReplica) applyCommitted(ents []raftcore.Entry) {
	g := &r.group
	if len(r.pending) > 0 {
		r.now = time.Now() // for the commit latencies of the requests answered below
	}
	for i := range ents {
		e := &ents[i]
		r.applied = e.Index
		if e.Type != raftcore.EntryNormal {
			r.flushGroup()
			continue
		}
		if g.n == len(g.reqs) {
			g.reqs = append(g.reqs, wire.ClientRequest{})
		}
		req := &g.reqs[g.n]
		if err := wire.DecodeClientRequest(e.Data, req); err != nil {
			// Every replica decodes the same bytes, so every replica skips the same entry.
			r.log.Error("skipping undecodable committed entry", "index", e.Index, "err", err)
			continue
		}
		g.n++
		for j := range req.Ops {
			op := &req.Ops[j]
			g.ops = append(g.ops, kv.Op{Kind: kvKind(op.Kind), ClientID: req.ClientID, Seq: req.FirstSeq + uint64(j),
				Key: op.Key, Value: op.Value, Expected: op.Expected})
			g.idx = append(g.idx, e.Index)
		}
		if len(g.ops) >= kv.BatchPrefetch {
			r.flushGroup()
		}
	}
	r.flushGroup()
}

// flushGroup applies the gathered ops and answers the requests this replica proposed. A
// CAS mismatch result carries the current value, as the wire contract replies; results
// alias the store until its next change, so each reply copies them at once.
func (r *RaftReplica) flushGroup() {
	g := &r.group
	if g.n == 0 {
		return
	}
	g.res = slices.Grow(g.res[:0], len(g.ops))[:len(g.ops)]
	r.kv.ApplyIndexed(g.idx, g.ops, g.res)
	off := 0
	for k := range g.n {
		req := &g.reqs[k]
		res := g.res[off : off+len(req.Ops)]
		off += len(req.Ops)
		key := reqKey{req.ClientID, req.FirstSeq}
		p, mine := r.pending[key]
		if !mine {
			continue
		}
		r.reply = wire.ClientReply{ClientID: req.ClientID, FirstSeq: req.FirstSeq, LeaderHint: r.cfg.ID, Results: r.reply.Results[:0]}
		r.valBuf, r.valOff = r.valBuf[:0], r.valOff[:0]
		for i := range res {
			r.addResult(res[i])
		}
		r.finishResults()
		r.sendReply(p.conn)
		delete(r.pending, key)
		r.m.pending.Store(int64(len(r.pending) + len(r.reads)))
		r.m.commitLatency.Observe(r.now.Sub(p.start).Seconds())
	}
	clear(g.ops) // drop references to the entries' bytes
	clear(g.res)
	g.n, g.ops, g.idx = 0, g.ops[:0], g.idx[:0]
}

// addResult records one op's result; values are copied into valBuf at once because they
// alias the store only until its next change.
func (r *RaftReplica) addResult(res kv.Result) {
	st := wireStatus(res.Status)
	r.reply.Results = append(r.reply.Results, wire.OpResult{Status: st})
	r.valOff = append(r.valOff, len(r.valBuf))
	switch res.Status {
	case kv.StatusSessionExpired:
		r.valBuf = append(r.valBuf, errSessionExpired...)
	case kv.StatusInvalid:
		r.valBuf = append(r.valBuf, errInvalidOp...)
	default:
		r.valBuf = append(r.valBuf, res.Value...)
	}
}

// Messages carried in StatusError results.
var (
	errSessionExpired = []byte("session expired: this sequence number is outside the client's window; an earlier attempt may or may not have been applied")
	errInvalidOp      = []byte("invalid operation: unknown kind, or key or value over the store's limits")
	errBatchTooLarge  = []byte("request larger than the leader's proposal batch limit (MaxBatchBytes); split it")
)

// finishResults points each result's Value into valBuf (now that it no longer moves).
func (r *RaftReplica) finishResults() {
	for i := range r.reply.Results {
		end := len(r.valBuf)
		if i+1 < len(r.valOff) {
			end = r.valOff[i+1]
		}
		if v := r.valBuf[r.valOff[i]:end]; len(v) > 0 {
			r.reply.Results[i].Value = v
		}
	}
}

func (r *RaftReplica) sendReply(conn transport.ClientID) {
	r.out = wire.AppendMessageFrame(r.out[:0], 0, &r.reply)
	switch err := r.tr.SendClient(conn, r.out); {
	case err == nil, errors.Is(err, transport.ErrClientGone):
		// A vanished client retries elsewhere with the same sequence numbers.
	case errors.Is(err, transport.ErrFrameTooLarge):
		// The results can never fit: say so instead of leaving the client to retry forever.
		msg := []byte("reply exceeds the connection's reply queue; use smaller batches")
		for i := range r.reply.Results {
			r.reply.Results[i] = wire.OpResult{Status: wire.StatusError, Value: msg}
		}
		r.out = wire.AppendMessageFrame(r.out[:0], 0, &r.reply)
		_ = r.tr.SendClient(conn, r.out)
	default:
		// ErrClientBusy: this round's replies for the connection filled its queue. Start
		// writing what is queued and try once more; if it still does not fit, the reply is
		// dropped and the client retries after its attempt timeout (exactly-once).
		r.tr.FlushClients()
		if r.tr.SendClient(conn, r.out) != nil {
			r.m.repliesDropped.Inc()
		}
	}
}

// replyStatus answers the request in r.req with one status for every op.
func (r *RaftReplica) replyStatus(conn transport.ClientID, st wire.Status, msg []byte) {
	r.reply = wire.ClientReply{ClientID: r.req.ClientID, FirstSeq: r.req.FirstSeq, LeaderHint: r.lead.Load(), Results: r.reply.Results[:0]}
	n := max(len(r.req.Ops), 1)
	for i := 0; i < n; i++ {
		r.reply.Results = append(r.reply.Results, wire.OpResult{Status: st, Value: msg})
	}
	r.sendReply(conn)
}

func (r *RaftReplica) replyStatusKey(conn transport.ClientID, k reqKey, st wire.Status) {
	r.req.ClientID, r.req.FirstSeq, r.req.Ops = k.client, k.seq, r.req.Ops[:0]
	r.replyStatus(conn, st, nil)
}

func (r *RaftReplica) replyStatusBody(conn transport.ClientID, body []byte, st wire.Status) {
	if err := wire.DecodeClientRequest(body, &r.req); err != nil {
		return
	}
	r.replyStatus(conn, st, nil)
}

// lostLeadership answers every pending batch not-leader. Writes may still commit under the
// next leader; the client retries them with the same sequence numbers and the KV sessions
// make the retry exactly-once.
func (r *RaftReplica) lostLeadership() {
	for k, p := range r.pending {
		r.replyStatusKey(p.conn, k, wire.StatusNotLeader)
	}
	clear(r.pending)
	r.failReads(wire.StatusNotLeader)
	r.m.pending.Store(0)
}

// snapResult is a snapshot taken in the background, ready to hand to the core.
type snapResult struct {
	meta  raftcore.SnapshotMeta
	data  []byte
	err   error
	store *kv.Store // the copy that was serialized, for the next snapshot to reuse
}

// takeSnapshot snapshots the KV store at the applied index. Only a copy of the store is made
// here; sorting, serializing and the durable write run on another goroutine, because for a
// large store they take longer than an election timeout (a leader that stalled that long
// would be deposed). finishSnapshot completes it on the driver.
func (r *RaftReplica) takeSnapshot(index uint64) error {
	if index != r.applied {
		return fmt.Errorf("snapshot requested at %d but applied is %d", index, r.applied)
	}
	if r.snapshotting {
		return nil // one at a time; the core asks again at the next threshold
	}
	// The membership as of index, not the current one: a change appended after index may
	// never commit, and a restart from this file must not believe in it.
	meta, err := r.node.SnapshotMetaAt(index)
	if err != nil {
		return fmt.Errorf("snapshot metadata at %d: %w", index, err)
	}
	// The copy and the serialized bytes reuse memory from two snapshots ago: a whole store
	// and its bytes allocated per snapshot would drive the collector (and its pauses) at
	// the snapshot rate. The core keeps the previous snapshot's bytes to send to followers,
	// so the buffers alternate.
	t0 := time.Now()
	clone := r.kv.CloneInto(r.snapSpare)
	t1 := time.Now()
	r.m.snapCopy.Observe(t1.Sub(t0).Seconds())
	r.snapSpare = nil
	buf := r.snapBufs[r.snapNext]
	if buf == nil {
		buf = new(bytes.Buffer)
		r.snapBufs[r.snapNext] = buf
	}
	buf.Reset()
	r.snapNext = 1 - r.snapNext
	r.snapshotting = true
	r.background.Add(1) // Stop waits: the file must not be written after the directory is released
	go func() {
		defer r.background.Done()
		res := snapResult{meta: meta, store: clone}
		// Paced (SnapshotDuty): serializing and writing a large store is tens of
		// milliseconds of CPU, and at full speed it takes a whole core from the driver and
		// the event loops on a small host, queueing every request behind it.
		pw := &pace.Writer{W: buf, Duty: SnapshotDuty, Slice: snapshotPaceSlice}
		if _, err := clone.Snapshot(pw); err != nil {
			res.err = fmt.Errorf("snapshot: %w", err)
		} else {
			res.data = buf.Bytes()
			pw.W = nil
			res.err = r.saveSnapshot(meta, res.data, pw)
		}
		r.m.snapWrite.Observe(time.Since(t1).Seconds())
		r.snapDone <- res // buffered: never blocks, even after Stop
	}()
	return nil
}

// finishSnapshot hands a durable snapshot to the core and compacts the WAL below what the
// core keeps. A snapshot overtaken meanwhile (one installed from the leader) is dropped.
func (r *RaftReplica) finishSnapshot(res snapResult) error {
	r.snapshotting = false
	r.snapSpare = res.store
	if res.err != nil {
		return res.err
	}
	index := res.meta.Index
	if _, err := r.node.ReportSnapshot(index, res.data); err != nil {
		if errors.Is(err, raftcore.ErrSnapshotTooOld) {
			return nil
		}
		return fmt.Errorf("report snapshot: %w", err)
	}
	r.m.snapshots.Inc()
	// The WAL keeps what the core keeps (SnapshotRetainEntries and SnapshotRetainBytes).
	if c := r.node.FirstIndex() - 1; c >= r.wal.FirstIndex() && c <= index {
		if _, err := r.wal.Compact(c); err != nil {
			return fmt.Errorf("wal compact: %w", err)
		}
	}
	return nil
}

// saveSnapshot writes a snapshot file durably and removes older ones. The background
// snapshot and an installed one may save at once: snapMu keeps them from removing each
// other's files.
//
// pw, when not nil, paces the write (its W is set to the file's writer); nil writes at full
// speed (an installed snapshot, which the driver waits for).
func (r *RaftReplica) saveSnapshot(meta raftcore.SnapshotMeta, data []byte, pw *pace.Writer) error {
	r.snapMu.Lock()
	defer r.snapMu.Unlock()
	mb, err := json.Marshal(snapMeta{Voters: meta.Membership.Voters, Learners: meta.Membership.Learners})
	if err != nil {
		return err
	}
	_, err = storage.WriteSnapshotSynced(nil, r.snapDir, storage.SnapshotMeta{Index: meta.Index, Term: meta.Term, Meta: mb},
		r.cfg.Sync == storage.SyncAlways, func(w io.Writer) error {
			if pw != nil {
				pw.W, pw.Piece = w, snapshotPacePiece
				w = pw
			}
			_, err := w.Write(data)
			return err
		})
	if err != nil {
		return fmt.Errorf("write snapshot %d: %w", meta.Index, err)
	}
	return storage.RemoveSnapshotsBefore(nil, r.snapDir, meta.Index)
}

func kvKind(k wire.OpKind) kv.OpKind {
	switch k {
	case wire.OpPut:
		return kv.OpPut
	case wire.OpGet:
		return kv.OpGet
	case wire.OpDelete:
		return kv.OpDelete
	case wire.OpCAS:
		return kv.OpCAS
	}
	return 0
}

func wireStatus(s kv.Status) wire.Status {
	switch s {
	case kv.StatusOK:
		return wire.StatusOK
	case kv.StatusNotFound:
		return wire.StatusNotFound
	case kv.StatusMismatch:
		return wire.StatusCASMismatch
	case kv.StatusSessionExpired:
		return wire.StatusSessionExpired
	}
	return wire.StatusError
}
