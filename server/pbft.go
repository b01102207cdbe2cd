package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/consensusbench/consensusbench/kv"
	"github.com/consensusbench/consensusbench/pbftcore"
	"github.com/consensusbench/consensusbench/storage"
	"github.com/consensusbench/consensusbench/transport"
	"github.com/consensusbench/consensusbench/wire"
)

// PBFTDefaultKeySeed derives the key material when the spec's pbft.key_seed is empty. It
// must equal client.PBFTDefaultKeySeed. Deriving every key from one public seed is a
// benchmarking convenience (no key distribution); it gives no protection against a real
// adversary, who can derive the same keys.
const PBFTDefaultKeySeed = "consensusbench-pbft"

// PBFT client registration. Ordered requests go to the primary only, yet every replica
// replies to the client; a backup learns on which connection to answer client c from a
// wire.ClientRequest with no ops on that connection, which registers the PBFT client IDs
// [ClientID, ClientID+FirstSeq). Any PBFTRequest also (re)registers its client there,
// except a claim of identities (timestamp 0, pbftcore/claim.go): a claimant may send it as a
// principal another client holds, so its grant is answered on the connection the claim came
// on (claimConn) and the holder's replies stay where they are.
// (Registration is not authenticated: a hostile client could divert, but not forge, another
// client's replies. Acceptable for a benchmark; a deployment would authenticate it.)

// PBFTMaxFrameBytes is the frame limit of PBFT replicas' transports (peer and client
// ports). VIEW-CHANGE and NEW-VIEW carry digests, not batches (TOCS 2002 §5.2; replicas
// fetch missing batches), so the largest NEW-VIEW depends on n and the window only: about
// 34 MB at n = pbftcore.MaxReplicas and L = pbftcore.MaxWindowSize, 0.2 MB at n = 4 and
// L = 256 (TestPBFTLargestNewViewFitsAFrame builds the largest one).
const PBFTMaxFrameBytes = 64 << 20

// PBFTMaxClientFrameBytes bounds a frame on a PBFT replica's client port: one request of
// PBFTMaxOpBytes with a signature or an authenticator of pbftcore.MaxReplicas MACs, and room
// for its fixed fields.
const PBFTMaxClientFrameBytes = PBFTMaxOpBytes + 16<<10

// pbftWALFS, when set by a test, is the filesystem of every PBFT replica's WAL (nil: the
// OS). Tests substitute one whose fsync they can hold to prove that replies wait for it.
var pbftWALFS storage.FS

// pbftSnapFS, when set by a test, is the filesystem the snapshot files are written with (nil:
// the OS). Tests hold its fsync to prove that a slow snapshot does not stall the replica.
var pbftSnapFS storage.FS

// PBFTReplica is one PBFT replica: transport + pbftcore + KV store (+ a log of executed
// batches and snapshots of stable checkpoints), driven by a single goroutine (run), like
// RaftReplica. Nothing but that goroutine touches the core, the store, the codec or the
// reply tables.
//
// Client protocol: clients send wire.Request frames (TypePBFTRequest) whose Op is a
// wire.ClientRequest body (see pbftapp.go); replicas answer with wire.PBFTReply frames
// whose Result is a wire.ClientReply body.
//
// Durability (what --sync always buys): pbftcore's protocol records (Ready.Persist: what
// this replica pre-prepared, with the batch, prepared, committed, and its view) go to the
// WAL (pbftlog.go), and under storage.SyncAlways a Ready's messages, peer messages and
// client replies alike, leave only once its records are fsynced (group commit: one fsync
// covers every Ready logged meanwhile). So a COMMIT is sent only by a replica that durably
// holds the prepared certificate, and a reply only by one that durably holds the committed
// batch. At every stable checkpoint h whose state this replica holds (pbftcore's
// Ready.Stable) one snapshot file is written to snap/ with storage.WriteSnapshot (fsynced,
// renamed into place: all or nothing): its metadata holds the checkpoint digest, the view
// and the 2f+1 signed CHECKPOINTs proving h; its body the core's client table at h followed
// by the KV store's snapshot at h. The WAL is then compacted behind the records still needed.
//
// Restart: a replica restores the store from the newest valid snapshot, reads its logged
// records and starts pbftcore from both (pbftcore.Config.Start and Config.Log: the proof and
// the state digest are verified, then the log rebuilds the slots, P and Q sets and view, and
// the committed prefix is re-executed). It takes part as a correct replica at once, and when
// every replica restarts at once (a power cut) no acknowledged request is lost: each
// committed request is in the log of the f+1 replicas that answered it, and its prepared
// certificate in the log of 2f+1, so the next view change (or the retransmitted COMMITs of
// the same view) carries it. Under SyncNone the same records are written without fsync and
// nothing is held back; a process kill keeps them (the page cache survives), a machine
// crash may not.
type PBFTReplica struct {
	cfg   ReplicaConfig
	node  *pbftcore.Node
	app   *kvApp
	kv    *kv.Store
	m     pbftMetrics
	n     int
	self  int // replica index: node ID - 1
	peers []uint64

	snapDir string
	codec   pbftCodec
	msg     pbftcore.Message
	out     []byte

	maxClients int
	replyConn  []transport.ClientID // per PBFT client: the connection to answer on
	// replyAuthentic: replyConn was set by an authentic request (else by a registration).
	replyAuthentic []bool
	// claimConn: per PBFT client, the connection its newest authentic claim (a request with
	// timestamp 0, pbftcore/claim.go) came on. Claims are answered there, not on replyConn:
	// a claimant sends its claim as any principal, often one another client holds, and
	// must not take that client's replies.
	claimConn []transport.ClientID
	started   []pendingStart // per PBFT client: its newest request's arrival

	// The protocol-record log (pbftlog.go) and the messages waiting for it.
	walEnts    []storage.Entry
	walData    []byte
	walSpans   [][2]int
	marks      []recordMark // logged records not yet compacted, in WAL order
	appendAt   []walAppend  // WAL calls not yet durable, for cb_wal_persist_seconds
	lastWalSeq uint64
	held       []heldFrame
	heldBuf    []byte
	lastStable uint64
	// The snapshot of a stable checkpoint is written on another goroutine (a whole-store
	// file and its fsync would stall the driver for tens of milliseconds): one write at a
	// time, the newest checkpoint waiting behind it replaces an older one, and snapDone
	// hands a finished write back to the driver, which then compacts the WAL.
	snapWriting bool
	snapPending *pbftSnapJob
	snapDone    chan pbftSnapJob
	// Snapshot files are written by WAL volume, not at every stable checkpoint: each file
	// serializes, writes and later deletes the whole store, and at K = 128 with full
	// batches that was a quarter of a replica's CPU. walSinceSnap counts the record bytes
	// logged since the last file was started; snapBytes is the threshold.
	walSinceSnap uint64
	snapBytes    uint64
	// ckptDone delivers checkpoints serialized and digested off the driver (asyncKVApp).
	ckptDone chan checkpointResult

	// Test-only broken mode (ReplicaConfig.UnsafeAckBeforeCommit).
	unsafeAuth *pbftcore.Authenticator
	// Byzantine behaviour (pbft_byzantine.go): the mode, and the keys its lies are sealed with.
	byz        atomic.Int32
	byzKeys    *pbftcore.Keys
	byzSignAll bool
	byzA       *pbftcore.Authenticator
	byzBuf     []byte
	unsafeReq  wire.ClientRequest
	unsafeRep  wire.ClientReply

	view     atomic.Uint64
	lastExec atomic.Uint64
	stableH  atomic.Uint64
	// unverified mirrors the core's UnverifiedBatches for the metrics reader.
	unverified atomic.Uint64

	lifecycle
}

type walAppend struct {
	seq uint64
	at  time.Time
}

type pendingStart struct {
	ts    uint64
	start time.Time
}

// heldFrame is an outgoing frame waiting for the WAL records logged before it to become
// durable: to every peer (toAll), to one peer, or to a client connection.
type heldFrame struct {
	walSeq uint64
	toAll  bool
	peer   uint64
	conn   transport.ClientID
	off, n int
}

type pbftMetrics struct {
	viewChanges   *Counter
	commitLatency *Histogram
	persistTime   *Histogram
	batchRequests *Histogram
	executed      *Counter
	rejected      *Counter
	paused        *Counter
	noConn        *Counter
	snapshots     *Counter
}

// NewPBFTReplica opens the replica's storage and prepares its core and transport. Start
// begins serving.
func NewPBFTReplica(cfg ReplicaConfig) (_ *PBFTReplica, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	spec := cfg.Spec
	if spec.Protocol != "pbft" {
		return nil, fmt.Errorf("server: cluster spec protocol is %q, not pbft", spec.Protocol)
	}
	r := &PBFTReplica{
		cfg:       cfg,
		n:         len(spec.Nodes),
		self:      int(cfg.ID - 1),
		snapDir:   filepath.Join(cfg.DataDir, "snap"),
		snapDone:  make(chan pbftSnapJob, 1),
		ckptDone:  make(chan checkpointResult, 1),
		lifecycle: newLifecycle(cfg.Logger, cfg.Metrics),
	}
	for _, nd := range spec.Nodes {
		if nd.ID != cfg.ID {
			r.peers = append(r.peers, nd.ID)
		}
	}
	ccfg, err := r.coreConfig()
	if err != nil {
		return nil, err
	}
	r.maxClients = len(ccfg.Keys.ClientSecrets)
	r.replyConn = make([]transport.ClientID, r.maxClients)
	r.replyAuthentic = make([]bool, r.maxClients)
	r.claimConn = make([]transport.ClientID, r.maxClients)
	r.started = make([]pendingStart, r.maxClients)
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
	if ccfg.Start, err = r.loadStable(); err != nil {
		return nil, err
	}
	w, st, err := storage.Open(filepath.Join(cfg.DataDir, "wal"), storage.Options{Sync: cfg.Sync, OnDurable: r.onDurable, FS: pbftWALFS})
	if err != nil {
		return nil, err
	}
	r.wal = w
	if st.TornTailBytes > 0 {
		r.log.Warn("wal: discarded a damaged tail and everything after it", "bytes", st.TornTailBytes, "file", st.TornTailFile,
			"offset", st.TornTailOffset, "later_segments_dropped", st.DroppedSegments, "later_bytes_dropped", st.DroppedBytes,
			"why", walDamageWhy(r.cfg.Sync, st))
	}
	if ccfg.Log, r.marks, err = readLog(w); err != nil {
		w.Close()
		return nil, err
	}
	// Under SyncNone the tail of the log may be lost with the machine (a process kill keeps
	// it): the core then keeps reads refused until it has passed its old high watermark.
	ccfg.LogSynced = cfg.Sync == storage.SyncAlways
	if r.node, err = pbftcore.New(ccfg); err != nil {
		w.Close()
		return nil, fmt.Errorf("server: pbft start from %s and %d logged records: %w", r.snapDir, len(ccfg.Log), err)
	}
	ns := r.node.Status()
	if s := ccfg.Start; s != nil {
		r.lastStable = s.Seq
	}
	r.view.Store(ns.View)
	r.lastExec.Store(ns.LastExecuted)
	r.stableH.Store(ns.LowWatermark)
	if ccfg.Start != nil || len(ccfg.Log) > 0 {
		r.log.Info("pbft: restarted", "checkpoint", ns.LowWatermark, "log_records", len(ccfg.Log), "view", ns.View,
			"view_active", ns.ViewActive, "executed", ns.LastExecuted)
	}
	if cfg.UnsafeAckBeforeCommit {
		r.unsafeAuth = pbftcore.NewAuthenticator(ccfg.Keys, ccfg.SignAll)
	}
	r.byzKeys, r.byzSignAll = ccfg.Keys, ccfg.SignAll
	if err := r.newTransport(); err != nil {
		w.Close()
		return nil, err
	}
	r.registerMetrics()
	return r, nil
}

// coreConfig builds pbftcore's config from the spec; keys come from the key seed.
func (r *PBFTReplica) coreConfig() (pbftcore.Config, error) {
	ps := r.cfg.Spec.PBFT
	maxClients := PBFTDefaultMaxClients
	if ps.MaxClients != 0 {
		maxClients = ps.MaxClients
	}
	if maxClients < 1 || maxClients > PBFTMaxClients {
		return pbftcore.Config{}, fmt.Errorf("server: pbft.max_clients %d not in [1, %d]", maxClients, PBFTMaxClients)
	}
	seed := ps.KeySeed
	if seed == "" {
		seed = PBFTDefaultKeySeed
	}
	keys := pbftcore.NewKeyring([]byte(seed), r.n, maxClients).Replica(r.self)
	rngSeed := r.cfg.Seed
	if rngSeed == 0 {
		rngSeed = uint64(time.Now().UnixNano()) ^ r.cfg.ID<<48
	}
	var err error
	// The checkpoint digest is SHA-256 over the serialized state (stateDigest), so the
	// store's own incremental digest would only cost a SHA-256 per write.
	if r.kv, err = kv.New(kv.Config{NoDigest: true}); err != nil {
		return pbftcore.Config{}, err
	}
	r.app = newKVApp(r.kv)
	app := asyncKVApp{kvApp: r.app, done: r.ckptDone, stop: r.stop, wg: &r.background}
	c := pbftcore.DefaultConfig(r.self, r.n, keys, app, rand.New(rand.NewPCG(rngSeed, r.cfg.ID)))
	if ps.CheckpointInterval != 0 {
		c.CheckpointInterval = ps.CheckpointInterval
		c.WindowSize = 2 * ps.CheckpointInterval
	}
	if ps.WindowSize != 0 {
		c.WindowSize = ps.WindowSize
	}
	c.MaxInflightBatches = int(min(c.WindowSize, uint64(c.MaxInflightBatches)))
	if ps.MaxBatchRequests != 0 {
		c.MaxBatchRequests = ps.MaxBatchRequests
		c.MaxPendingRequests = max(c.MaxPendingRequests, ps.MaxBatchRequests)
	}
	c.BatchFlushTicks = ps.BatchFlushTicks
	if ps.RequestTimeout != 0 {
		c.RequestTimeoutTicks = ps.RequestTimeout
	}
	c.RetransmitTicks = max(1, min(c.RetransmitTicks, c.RequestTimeoutTicks/4))
	c.SignAll = ps.Auth == "sign"
	c.MaxOpBytes = PBFTMaxOpBytes
	c.MaxResultBytes = PBFTMaxResultBytes
	c.MaxBatchBytes = max(c.MaxBatchBytes, c.MaxOpBytes)
	c.MaxStateChunkBytes = pbftStateChunkBytes
	r.codec.signAll = c.SignAll
	r.snapBytes = PBFTDefaultSnapshotBytes
	if ps.SnapshotThresholdBytes != 0 {
		r.snapBytes = ps.SnapshotThresholdBytes
	}
	r.walSinceSnap = r.snapBytes // the first stable checkpoint gets a file
	return c, nil
}

func (r *PBFTReplica) newTransport() error {
	tr, err := newTransport(&r.cfg, wire.ProtocolPBFT, r.log, func(tc *transport.Config) {
		// A NEW-VIEW of many replicas over a large window outgrows wire's 16 MiB default
		// frame (see PBFTMaxFrameBytes).
		tc.MaxFrameBytes = PBFTMaxFrameBytes
		tc.PeerQueueBytes = 2 * PBFTMaxFrameBytes
		// Clients send one request (an operation of at most PBFTMaxOpBytes and its
		// authenticator) or a registration per frame.
		tc.MaxClientFrameBytes = PBFTMaxClientFrameBytes
		// Every replica answers every request: the event loops write the replies beside the
		// driver, which is the bottleneck (transport.Config.ClientWritesOnLoop).
		tc.ClientWritesOnLoop = true
	})
	r.tr = tr
	return err
}

func (r *PBFTReplica) registerMetrics() {
	m := r.met
	lat := ExpBuckets(50e-6, 2, 18)
	r.m.commitLatency = m.Histogram("cb_commit_latency_seconds", "Client request latency at the replica it reached first, from receipt to this replica's reply.", lat)
	r.m.persistTime = m.Histogram("cb_wal_persist_seconds", "Time from logging a Ready's protocol records to their durable acknowledgement (group commit incl. fdatasync).", lat)
	r.m.batchRequests = m.Histogram("cb_pbft_executed_batch_requests", "Requests per executed batch (0: null request).", ExpBuckets(1, 2, 14))
	r.m.executed = m.Counter("cb_pbft_executed_requests_total", "Requests executed.")
	r.m.rejected = m.Counter("cb_pbft_rejected_total", "Messages the core rejected (stale, bad authenticator, busy, ...).")
	r.m.paused = m.Counter("cb_peer_paused_drops_total", "Messages dropped because the peer's outbound queue was full.")
	r.m.noConn = m.Counter("cb_pbft_reply_no_conn_total", "Replies dropped because the client has no live connection here.")
	r.m.snapshots = m.Counter("cb_snapshots_total", "Stable checkpoints written to disk.")
	r.m.viewChanges = m.Counter("cb_pbft_view_changes_total", "Views this replica moved to (each is a view change it took part in or caught up with).")
	m.CounterFunc("cb_pbft_unverified_batches_total", "PRE-PREPAREs accepted although a client's MAC for this replica was wrong (prepared once f others had): a faulty client, or keys that disagree.",
		func() uint64 { return r.unverified.Load() })
	m.GaugeFunc("cb_pbft_view", "The replica's current view.", func() int64 { return int64(r.view.Load()) })
	m.GaugeFunc("cb_pbft_last_executed", "Highest sequence number executed.", func() int64 { return int64(r.lastExec.Load()) })
	m.GaugeFunc("cb_pbft_stable_checkpoint", "Sequence number of the stable checkpoint (low watermark).", func() int64 { return int64(r.stableH.Load()) })
	registerTransportMetrics(m, r.tr)
	registerWALMetrics(m, r.wal)
}

// Start starts the transport and the driver goroutine.
func (r *PBFTReplica) Start() error {
	return r.start(r.run)
}

// View returns the replica's current view. Safe from any goroutine.
func (r *PBFTReplica) View() uint64 { return r.view.Load() }

// LastExecuted returns the highest executed sequence number. Safe from any goroutine.
func (r *PBFTReplica) LastExecuted() uint64 { return r.lastExec.Load() }

// StableCheckpoint returns the low watermark h. Safe from any goroutine.
func (r *PBFTReplica) StableCheckpoint() uint64 { return r.stableH.Load() }

// Status reports the replica's role ("primary" or "backup"), the primary's node ID, the
// view (as Term) and the last executed sequence number. Safe from any goroutine.
func (r *PBFTReplica) Status() ReplicaStatus {
	v := r.view.Load()
	primary := v%uint64(r.n) + 1
	role := "backup"
	if primary == r.cfg.ID {
		role = "primary"
	}
	return ReplicaStatus{ID: r.cfg.ID, Protocol: "pbft", Role: role, Leader: primary, Term: v,
		Applied: r.lastExec.Load(), Partitioned: r.tr.Partitioned(), Sync: r.cfg.Sync.String(),
		Byzantine: ByzantineMode(r.byz.Load()).String(), PeerAuth: peerAuthName(r.cfg.PeerSecret)}
}

func (r *PBFTReplica) run() {
	defer close(r.done)
	tick := time.NewTicker(r.cfg.Spec.TickInterval())
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
			r.node.Tick()
		case <-r.durableC:
			r.releaseHeld()
		case job := <-r.snapDone:
			if err := r.finishSnapWrite(job); err != nil {
				r.setFatal(err)
			}
		case res := <-r.ckptDone:
			r.app.spareStore = res.store
			if r.app.install(res.seq, res.snap) {
				r.node.CheckpointDigest(res.seq, res.snap.digest)
			}
		}
		r.node.FlushIdle()
		r.processReady()
		r.tr.FlushClients()
	}
}

// handleBatch steps every frame of one inbound batch into the core. The core copies what it
// keeps, so the batch is released at once.
func (r *PBFTReplica) handleBatch(b *transport.Batch) {
	for i := range b.Frames {
		f := &b.Frames[i]
		if f.Client != 0 {
			r.handleClient(f)
			continue
		}
		if !isPBFTPeerType(f.Type) || f.From == 0 || f.From > uint64(r.n) {
			r.log.Warn("dropping non-pbft peer frame", "from", f.From, "type", f.Type)
			continue
		}
		if err := r.codec.decode(f.Type, f.Body, int(f.From-1), r.self, &r.msg); err != nil {
			r.log.Warn("dropping malformed peer message", "from", f.From, "type", f.Type, "err", err)
			continue
		}
		if r.unsafeAuth != nil && r.msg.Type == pbftcore.MsgPrePrepare {
			for j := range r.msg.Requests {
				r.unsafeReply(&r.msg.Requests[j])
			}
		}
		if err := r.node.Step(&r.msg); err != nil {
			r.m.rejected.Inc()
			r.log.Debug("step", "from", f.From, "type", r.msg.Type, "err", err)
		}
	}
	b.Release()
}

// handleClient steps a client's request into the core (from pbftcore.FromClient) and
// remembers the connection it came on for the replies.
func (r *PBFTReplica) handleClient(f *transport.Frame) {
	switch f.Type {
	case wire.TypePBFTRequest:
		if err := r.codec.decode(f.Type, f.Body, pbftcore.FromClient, r.self, &r.msg); err != nil {
			r.log.Warn("closing client that sent a malformed request", "err", err)
			r.tr.CloseClient(f.Client)
			return
		}
		req := &r.msg.Requests[0]
		client, ts, now := req.Client, req.Timestamp, time.Now()
		if r.unsafeAuth != nil && !req.ReadOnly && r.node.Status().Primary == r.self {
			r.unsafeReply(req)
		}
		err := r.node.Step(&r.msg)
		if err != nil {
			r.m.rejected.Inc()
			r.log.Debug("step client request", "client", client, "err", err)
		}
		// Any connection can claim any client ID: only a request that authenticated as the
		// client, inside its live grant, moves its replies to this connection, or a forger
		// (or a client whose lease expired) could take them.
		authentic := client < uint64(r.maxClients) && !errors.Is(err, pbftcore.ErrBadAuthenticator) &&
			!errors.Is(err, pbftcore.ErrMalformed) && !errors.Is(err, pbftcore.ErrUnknownClient)
		if authentic && ts == 0 {
			r.claimConn[client] = f.Client
		} else if authentic && !errors.Is(err, pbftcore.ErrNotHolder) {
			r.replyConn[client], r.replyAuthentic[client] = f.Client, true
			if s := &r.started[client]; ts > s.ts {
				*s = pendingStart{ts: ts, start: now}
			}
		}
	case wire.TypeClientRequest:
		var reg wire.ClientRequest
		if err := wire.DecodeClientRequest(f.Body, &reg); err != nil || len(reg.Ops) != 0 ||
			reg.FirstSeq > uint64(r.maxClients) || reg.ClientID >= uint64(r.maxClients) ||
			reg.ClientID+reg.FirstSeq > uint64(r.maxClients) {
			r.log.Warn("closing client: a PBFT replica takes PBFTRequest frames and registrations only", "err", err)
			r.tr.CloseClient(f.Client)
			return
		}
		// A registration is not authenticated: it names the connection for a client whose
		// replies have no authentic claim on a live connection yet, and never takes them
		// from one. A forger's registration can therefore divert a backup's replies only
		// until the client's next authentic request reaches that backup (its retransmission
		// to all replicas, or any read).
		for c := reg.ClientID; c < reg.ClientID+reg.FirstSeq; c++ {
			if !r.replyAuthentic[c] || !r.tr.ClientOpen(r.replyConn[c]) {
				r.replyConn[c], r.replyAuthentic[c] = f.Client, false
			}
		}
		// Answer with this replica's view: a reply with timestamp 0, which no request has
		// (clients start theirs at the wall clock). A new client takes the (f+1)-th highest view its
		// registrations report and starts at that view's primary instead of view 0's, which
		// after a view change cost its first request a whole attempt timeout.
		r.out = wire.AppendMessageFrame(r.out[:0], 0, &wire.PBFTReply{View: r.node.Status().View, ClientID: reg.ClientID,
			Replica: uint64(r.self)})
		r.sendFrame(&heldFrame{conn: f.Client}, r.out)
	default:
		r.log.Warn("closing client that sent a non-client frame", "type", f.Type)
		r.tr.CloseClient(f.Client)
	}
}

// unsafeReply answers req at once with OK for every op, before it is ordered or executed.
// Test-only (ReplicaConfig.UnsafeAckBeforeCommit): it breaks linearizability on purpose.
func (r *PBFTReplica) unsafeReply(req *pbftcore.Request) {
	if req.Client >= uint64(r.maxClients) || wire.DecodeClientRequest(req.Op, &r.unsafeReq) != nil {
		return
	}
	r.unsafeRep = wire.ClientReply{ClientID: req.Client, FirstSeq: req.Timestamp, Results: r.unsafeRep.Results[:0]}
	for range r.unsafeReq.Ops {
		r.unsafeRep.Results = append(r.unsafeRep.Results, wire.OpResult{Status: wire.StatusOK})
	}
	m := pbftcore.Message{Type: pbftcore.MsgReply, From: r.self, To: pbftcore.ToClient, View: r.view.Load(),
		Client: req.Client, Timestamp: req.Timestamp, Result: wire.AppendClientReply(nil, &r.unsafeRep)}
	m.Auth = r.unsafeAuth.Seal(&m, nil)
	r.out = r.codec.appendFrame(r.out[:0], &m)
	r.sendClient(req.Client, r.out)
}

// processReady drains the core's Readies: send, log executed batches, hold or send replies,
// advance; then records a new stable checkpoint.
func (r *PBFTReplica) processReady() {
	for r.fatal.Load() == nil && r.node.HasReady() {
		rd := r.node.Ready()
		// The records go to the WAL first: under SyncAlways this Ready's messages below wait
		// until they are durable (pbftcore's persist-before-send contract).
		if len(rd.Persist) > 0 {
			if err := r.logRecords(rd.Persist); err != nil {
				r.setFatal(err)
				r.node.Advance()
				return
			}
		}
		r.countExecuted(&rd)
		// Frames still held from an earlier Ready keep later ones behind them (per-peer order).
		hold := r.cfg.Sync == storage.SyncAlways && (r.lastWalSeq > r.durableSeq.Load() || len(r.held) > 0)
		for i := range rd.Messages {
			m := &rd.Messages[i]
			if r.byz.Load() != 0 && r.byzantineSend(m) {
				continue
			}
			switch m.To {
			case pbftcore.ToAll:
				r.out = r.codec.appendFrame(r.out[:0], m)
				r.dispatch(hold, heldFrame{toAll: true}, r.out)
			case pbftcore.ToClient:
				if m.Client >= uint64(r.maxClients) {
					continue
				}
				r.out = r.codec.appendFrame(r.out[:0], m)
				if !m.Refused { // a refused read is answered later, by its ordered retry
					r.observeReply(m)
				}
				conn := r.replyConn[m.Client]
				if m.Timestamp == 0 { // a claim's grant (pbftcore/claim.go)
					conn = r.claimConn[m.Client]
				}
				r.dispatch(hold, heldFrame{conn: conn}, r.out)
			default:
				if m.To < 0 || m.To >= r.n || m.To == r.self {
					continue
				}
				r.out = r.codec.appendFrame(r.out[:0], m)
				r.dispatch(hold, heldFrame{peer: uint64(m.To + 1)}, r.out)
			}
		}
		// Before Advance: Stable's client table aliases core memory until then. The view
		// record the core logs with every stable checkpoint is in the WAL already, so the
		// compaction behind it keeps a view record.
		if st := rd.Stable; st != nil && st.Seq > r.lastStable {
			if err := r.saveStable(st); err != nil {
				r.setFatal(err)
			}
		}
		r.node.Advance()
	}
	st := r.node.Status()
	if old := r.view.Swap(st.View); st.View != old {
		// A run with view changes must say so: each costs a view-change timeout or more.
		r.m.viewChanges.Inc()
		r.log.Info("view changed", "from", old, "to", st.View, "primary", st.View%uint64(r.n)+1)
	}
	r.lastExec.Store(st.LastExecuted)
	r.stableH.Store(st.LowWatermark)
	r.unverified.Store(r.node.UnverifiedBatches())
}

func (r *PBFTReplica) observeReply(m *pbftcore.Message) {
	if m.Client >= uint64(r.maxClients) {
		return
	}
	if s := &r.started[m.Client]; s.ts == m.Timestamp && !s.start.IsZero() {
		r.m.commitLatency.Observe(time.Since(s.start).Seconds())
		s.start = time.Time{}
	}
}

// countExecuted updates the execution metrics from a Ready.
func (r *PBFTReplica) countExecuted(rd *pbftcore.Ready) {
	ex := rd.Executed
	for _, b := range rd.Batches {
		count := 0
		for len(ex) > 0 && ex[0].Seq == b.Seq {
			ex = ex[1:]
			count++
		}
		r.m.batchRequests.Observe(float64(count))
		r.m.executed.Add(uint64(count))
	}
}

func (r *PBFTReplica) appendWAL() error {
	if len(r.walEnts) == 0 {
		return nil
	}
	seq, err := r.wal.Append(r.walEnts, storage.HardState{})
	if err != nil {
		return fmt.Errorf("wal append: %w", err)
	}
	clear(r.walEnts)
	r.walEnts = r.walEnts[:0]
	r.lastWalSeq = seq
	if len(r.appendAt) < MaxPendingRequests { // beyond it, persist times go unmeasured
		r.appendAt = append(r.appendAt, walAppend{seq, time.Now()})
	}
	return nil
}

// dispatch sends a frame now, or, when hold is set (SyncAlways with logged records not yet
// durable), queues it behind them: releaseHeld sends it, in order, once they are.
func (r *PBFTReplica) dispatch(hold bool, dest heldFrame, frame []byte) {
	if hold {
		dest.walSeq, dest.off, dest.n = r.lastWalSeq, len(r.heldBuf), len(frame)
		r.heldBuf = append(r.heldBuf, frame...)
		r.held = append(r.held, dest)
		return
	}
	r.sendFrame(&dest, frame)
}

func (r *PBFTReplica) sendFrame(dest *heldFrame, frame []byte) {
	switch {
	case dest.toAll:
		for _, p := range r.peers {
			if err := r.tr.Send(p, frame); err != nil {
				r.m.paused.Inc()
			}
		}
	case dest.peer != 0:
		if err := r.tr.Send(dest.peer, frame); err != nil {
			r.m.paused.Inc()
		}
	case dest.conn == 0:
		r.m.noConn.Inc()
	default:
		if err := r.tr.SendClient(dest.conn, frame); errors.Is(err, transport.ErrClientGone) {
			r.m.noConn.Inc()
		}
	}
}

// sendClient sends a frame to PBFT client's reply connection now, bypassing the hold (the
// test-only unsafe replies and Byzantine lies).
func (r *PBFTReplica) sendClient(client uint64, frame []byte) {
	var dest heldFrame
	if client < uint64(r.maxClients) {
		dest.conn = r.replyConn[client]
	}
	r.sendFrame(&dest, frame)
}

// releaseHeld sends the held frames whose records are durable.
func (r *PBFTReplica) releaseHeld() {
	if e := r.durableErr.Load(); e != nil {
		r.setFatal(fmt.Errorf("wal failed: %w", *e))
		return
	}
	d := r.durableSeq.Load()
	k := 0
	for k < len(r.appendAt) && r.appendAt[k].seq <= d {
		k++
	}
	if k > 0 {
		r.m.persistTime.Observe(time.Since(r.appendAt[k-1].at).Seconds())
		r.appendAt = append(r.appendAt[:0], r.appendAt[k:]...)
	}
	n := 0
	for n < len(r.held) && r.held[n].walSeq <= d {
		h := &r.held[n]
		r.sendFrame(h, r.heldBuf[h.off:h.off+h.n])
		n++
	}
	if n == 0 {
		return
	}
	if n == len(r.held) {
		r.held = r.held[:0]
		r.heldBuf = r.heldBuf[:0]
		return
	}
	// Compact: the rest move to the front of heldBuf.
	base := r.held[n].off
	copy(r.heldBuf, r.heldBuf[base:])
	r.heldBuf = r.heldBuf[:len(r.heldBuf)-base]
	r.held = append(r.held[:0], r.held[n:]...)
	for i := range r.held {
		r.held[i].off -= base
	}
}

// pbftSnapMeta is the metadata stored with a stable checkpoint's snapshot. The body is the
// core's client table (TableBytes) followed by the KV store's snapshot stream.
type pbftSnapMeta struct {
	Digest           []byte `json:"digest"`            // the store's digest (the app part of the checkpoint digest)
	CheckpointDigest []byte `json:"checkpoint_digest"` // certified: store digest + client table
	TableBytes       int    `json:"table_bytes"`
	// ViewActive: the snapshot's view (its Term) was active when the checkpoint became
	// stable. Absent (false) restarts the replica changing to that view, the safe reading.
	ViewActive bool             `json:"view_active"`
	Proof      []pbftProofEntry `json:"proof"` // 2f+1 signed CHECKPOINTs for (index, checkpoint_digest)
}

// pbftProofEntry is one signed CHECKPOINT of the proof; its sequence number and digest are
// the snapshot's.
type pbftProofEntry struct {
	From int    `json:"from"`
	Auth []byte `json:"auth"`
}

// pbftSnapJob is one stable checkpoint's snapshot file: the proof and client table (copied
// from the core), and the app's serialized store at h (kvApp.writing keeps it unrecycled).
type pbftSnapJob struct {
	h, view uint64
	meta    []byte
	table   []byte
	data    []byte
	err     error
}

// saveStable snapshots the new stable checkpoint st (proof, client table and the store's
// snapshot at st.Seq, in one file) in the background; the WAL is compacted below it once
// the file is durable (finishSnapWrite). Until then a restart reads the previous snapshot
// and the records since, which the WAL still holds.
//
// A file is written only once snapBytes of records were logged since the last one began;
// the first stable checkpoint, and one whose state came by state transfer (its batches are
// in no log here), always get one. The checkpoints in between live in the WAL
// as RecStable records with their proofs, and a restart re-executes the committed batches
// up to each (pbftcore's replay), which is what the WAL is kept for.
func (r *PBFTReplica) saveStable(st *pbftcore.StableCheckpoint) error {
	h := st.Seq
	r.lastStable = h
	if transferred := r.app.takeRestored(); r.walSinceSnap < r.snapBytes && !transferred {
		return nil
	}
	snap, ok := r.app.snapshot(h)
	if !ok {
		return nil // discarded already (a later checkpoint became stable first)
	}
	meta := pbftSnapMeta{Digest: snap.digest[:], CheckpointDigest: st.Digest[:], TableBytes: len(st.ClientTable), ViewActive: st.ViewActive}
	for i := range st.Proof {
		meta.Proof = append(meta.Proof, pbftProofEntry{From: st.Proof[i].From, Auth: st.Proof[i].Auth})
	}
	mb, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	job := &pbftSnapJob{h: h, view: st.View, meta: mb, table: bytes.Clone(st.ClientTable), data: snap.data}
	r.walSinceSnap = 0
	r.app.writing[h] = true
	if !r.snapWriting {
		r.startSnapWrite(job)
		return nil
	}
	if p := r.snapPending; p != nil {
		delete(r.app.writing, p.h) // overtaken before its write began
	}
	r.snapPending = job
	return nil
}

// startSnapWrite writes job's file on a background goroutine (the lifecycle's Stop waits for
// it) and hands the job back on snapDone.
func (r *PBFTReplica) startSnapWrite(job *pbftSnapJob) {
	r.snapWriting = true
	r.background.Add(1)
	go func() {
		defer r.background.Done()
		_, err := storage.WriteSnapshot(pbftSnapFS, r.snapDir, storage.SnapshotMeta{Index: job.h, Term: job.view, Meta: job.meta},
			func(w io.Writer) error {
				if _, err := w.Write(job.table); err != nil {
					return err
				}
				_, err := w.Write(job.data)
				return err
			})
		if err != nil {
			job.err = fmt.Errorf("write snapshot %d: %w", job.h, err)
		} else {
			job.err = storage.RemoveSnapshotsBefore(pbftSnapFS, r.snapDir, job.h)
		}
		r.snapDone <- *job // buffered, one write at a time: never blocks
	}()
}

// finishSnapWrite runs on the driver when a snapshot file is durable: the WAL is compacted
// below its checkpoint, and the newest checkpoint that waited meanwhile is written next.
func (r *PBFTReplica) finishSnapWrite(job pbftSnapJob) error {
	r.snapWriting = false
	delete(r.app.writing, job.h)
	if job.err != nil {
		return job.err
	}
	r.m.snapshots.Inc()
	if err := r.compactLog(job.h); err != nil {
		return err
	}
	if p := r.snapPending; p != nil {
		r.snapPending = nil
		r.startSnapWrite(p)
	}
	return nil
}

// loadStable restores the store from the newest valid stable-checkpoint snapshot and
// returns the core's start state (nil when there is none: the replica starts empty).
// pbftcore.New verifies the proof and that the restored state matches the digest.
func (r *PBFTReplica) loadStable() (*pbftcore.StartState, error) {
	snap, skipped, err := storage.OpenLatestSnapshot(nil, r.snapDir)
	for _, e := range skipped {
		r.log.Warn("pbft: skipped damaged snapshot", "err", e)
	}
	if errors.Is(err, storage.ErrNoSnapshot) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	defer snap.Close()
	var meta pbftSnapMeta
	if err := json.Unmarshal(snap.Meta, &meta); err != nil {
		return nil, fmt.Errorf("server: snapshot %s metadata: %w", snap.Path, err)
	}
	if len(meta.Proof) == 0 {
		// Written by a version that kept no proof: the state cannot be certified, so the
		// replica starts empty and recovers by state transfer.
		r.log.Warn("pbft: snapshot holds no checkpoint proof; ignoring it", "path", snap.Path)
		return nil, nil
	}
	if len(meta.CheckpointDigest) != len(pbftcore.Digest{}) || meta.TableBytes < 0 || int64(meta.TableBytes) > snap.Size {
		return nil, fmt.Errorf("server: snapshot %s: bad checkpoint digest or client table size", snap.Path)
	}
	s := &pbftcore.StartState{Seq: snap.Index, View: snap.Term, ViewActive: meta.ViewActive, ClientTable: make([]byte, meta.TableBytes)}
	copy(s.Digest[:], meta.CheckpointDigest)
	for _, p := range meta.Proof {
		s.Proof = append(s.Proof, pbftcore.Message{Type: pbftcore.MsgCheckpoint, From: p.From, To: pbftcore.ToAll,
			Seq: s.Seq, Digest: s.Digest, Auth: p.Auth})
	}
	body := snap.Body()
	if _, err := io.ReadFull(body, s.ClientTable); err != nil {
		return nil, fmt.Errorf("server: snapshot %s client table: %w", snap.Path, err)
	}
	if err := r.kv.Restore(body); err != nil {
		return nil, fmt.Errorf("server: snapshot %s store: %w", snap.Path, err)
	}
	return s, nil
}
