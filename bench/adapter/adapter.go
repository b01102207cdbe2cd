package adapter

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/client"
	"github.com/consensusbench/consensusbench/wire"
)

// Defaults.
const (
	// DefaultRequestTimeout bounds one Do, retries included. The client retries a batch on
	// other replicas until its context ends; without this bound a batch caught in a leader
	// change could hold its pipeline slot for the rest of the run.
	DefaultRequestTimeout = 10 * time.Second
)

// Config describes the cluster the Target talks to.
type Config struct {
	Protocol string        // "raft" or "pbft"
	Nodes    []client.Node // every replica's ID and client address; PBFT replica i is node i+1
	// RequestTimeout bounds one Do (0: DefaultRequestTimeout).
	RequestTimeout time.Duration
	// AttemptTimeout bounds one attempt at one replica (0: the client's default).
	AttemptTimeout time.Duration
	// PBFT holds the cluster spec's PBFT settings the client must share.
	PBFT PBFTConfig
	// Info is added to Describe's answer (sync mode, batch limits, ...).
	Info map[string]string
}

// PBFTConfig mirrors the cluster spec's pbft section as far as a client needs it.
type PBFTConfig struct {
	KeySeed    string // pbft.key_seed ("": the default seed)
	MaxClients int    // pbft.max_clients (0: the default)
	SignAll    bool   // pbft.auth == "sign"
}

// DefaultPBFTPipeline is how many PBFT client identities (hence concurrent requests) each
// Session gets unless SetPipeline says otherwise. PBFT allows one outstanding request per
// client identity (Castro and Liskov §4.1), so a Session's pipeline depth is its identities.
const DefaultPBFTPipeline = 1

// Target is a bench.Target over the protocol's client. Open and Close follow bench.Target's
// contract (never concurrent with each other); Describe is safe at any time.
type Target struct {
	cfg      Config
	pipeline int
	shared   []*client.SharedConns // Raft: connection sets the sessions share (SetConns)
	// PBFT with SetConns: sessions share PBFTClients (each with one connection per replica
	// and a pool of client identities); pbftShared[g] is created by the first session of
	// group g and holds pbftPerGroup identities.
	pbftShared   []*client.PBFTClient
	pbftPerGroup int
	failures     failures
}

// failures remembers the first failed batch's error, so a run with errors can say why.
type failures struct {
	n     atomic.Int64
	first atomic.Pointer[error]
}

func (f *failures) note(err error) {
	if f == nil {
		return
	}
	f.n.Add(1)
	f.first.CompareAndSwap(nil, &err)
}

// FirstError returns how many batches failed and the first one's error.
func (t *Target) FirstError() (int64, error) {
	if p := t.failures.first.Load(); p != nil {
		return t.failures.n.Load(), *p
	}
	return 0, nil
}

// Check reports whether protocol is one this package drives.
func Check(protocol string) error {
	switch protocol {
	case "raft", "pbft":
		return nil
	}
	return fmt.Errorf("adapter: protocol %q: want raft or pbft", protocol)
}

// Open returns a Target for cfg. It connects nothing yet: every Session has its own client.
func Open(cfg Config) (*Target, error) {
	if len(cfg.Nodes) == 0 {
		return nil, client.ErrNoNodes
	}
	if err := Check(cfg.Protocol); err != nil {
		return nil, err
	}
	if cfg.Protocol == "pbft" {
		if cfg.PBFT.MaxClients == 0 {
			cfg.PBFT.MaxClients = client.PBFTDefaultMaxClients
		}
		if len(cfg.Nodes) < 4 {
			return nil, fmt.Errorf("adapter: pbft needs at least 4 replicas (n = 3f+1), got %d", len(cfg.Nodes))
		}
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	return &Target{cfg: cfg, pipeline: DefaultPBFTPipeline}, nil
}

// SetPipeline tells the Target how many Do calls each Session will have in flight, so that
// a PBFT Session takes that many client identities. Call it before the first Open.
func (t *Target) SetPipeline(n int) {
	if n > 0 {
		t.pipeline = n
	}
}

// SetConns makes the sessions share n sets of connections (one connection per replica
// each): session i uses set i mod n, of the clients sessions the run opens. 0 (the
// default) gives every session its own. Raft sessions keep their own client (ID, sequence
// numbers) on shared connections; PBFT sessions of a set share one PBFTClient, whose pool
// holds every one of their client identities (pipeline per session), so each request
// still has an identity of its own. Call it after SetPipeline, before the first Open.
func (t *Target) SetConns(n, clients int) error {
	if n <= 0 {
		return nil
	}
	if n > clients {
		return fmt.Errorf("adapter: %d connection sets for %d clients", n, clients)
	}
	if t.cfg.Protocol == "pbft" {
		t.pbftShared = make([]*client.PBFTClient, n)
		t.pbftPerGroup = (clients + n - 1) / n * t.pipeline
		return nil
	}
	t.shared = make([]*client.SharedConns, n)
	for i := range t.shared {
		t.shared[i] = client.NewSharedConns()
	}
	return nil
}

// Open implements bench.Target: a new client per worker (Raft: its own random client ID;
// PBFT: its own range of client identities). Before returning it writes one key alone
// through the new client, so that the client has found the leader and the replicated
// store has opened the client's session before the worker pipelines batches: pipelined
// batches that a follower redirected are retried in whatever order their goroutines run,
// and a new session refuses sequence numbers more than kv.SessionWindow ahead of its start.
func (t *Target) Open(ctx context.Context, worker int) (bench.Session, error) {
	var cl doer
	switch t.cfg.Protocol {
	case "raft":
		cfg := client.Config{Nodes: t.cfg.Nodes, AttemptTimeout: t.cfg.AttemptTimeout}
		if len(t.shared) > 0 {
			cfg.Shared = t.shared[worker%len(t.shared)]
		}
		rc, err := client.NewRaft(cfg)
		if err != nil {
			return nil, err
		}
		cl = rc
	case "pbft":
		if len(t.pbftShared) > 0 {
			g := worker % len(t.pbftShared)
			if t.pbftShared[g] == nil {
				pc, err := t.newPBFTIdentities(ctx, fmt.Sprintf("connection set %d", g), t.pbftPerGroup)
				if err != nil {
					return nil, err
				}
				t.pbftShared[g] = pc
			}
			cl = sharedDoer{t.pbftShared[g]}
			break
		}
		pc, err := t.newPBFTIdentities(ctx, fmt.Sprintf("session %d", worker), t.pipeline)
		if err != nil {
			return nil, err
		}
		cl = pc
	}
	s := &session{cl: cl, timeout: t.cfg.RequestTimeout}
	if err := s.do(ctx, []bench.Op{{Kind: bench.OpWrite, Key: []byte(probeKey), Value: []byte("1")}}); err != nil {
		cl.Close()
		return nil, fmt.Errorf("adapter: opening session %d: %w", worker, err)
	}
	s.failures = &t.failures
	if st := starterOf(cl); st != nil {
		return &asyncSession{session: s, st: st}, nil
	}
	return s, nil
}

// starter is what both protocols' clients offer besides Do: a batch started without
// waiting (client.RaftClient.Start, client.PBFTClient.Start).
type starter interface {
	Start(ops []wire.Op, res *client.Results, timeout time.Duration, done func(error))
}

// starterOf returns cl's Start, through a shared client's session handle too.
func starterOf(cl doer) starter {
	if sd, ok := cl.(sharedDoer); ok {
		cl = sd.doer
	}
	st, _ := cl.(starter)
	return st
}

// newPBFTIdentities returns a PBFT client holding n client identities, claimed through the
// replicas' ordered log (client.PBFTClient): other loadgens and applications on the same
// cluster never get overlapping ones.
func (t *Target) newPBFTIdentities(ctx context.Context, who string, n int) (*client.PBFTClient, error) {
	if n > t.cfg.PBFT.MaxClients {
		return nil, fmt.Errorf("adapter: pbft %s needs %d client identities, beyond the cluster's max_clients %d: lower clients x pipeline or raise pbft.max_clients",
			who, n, t.cfg.PBFT.MaxClients)
	}
	pc, err := newPBFT(ctx, t.cfg, n)
	if err != nil {
		return nil, fmt.Errorf("adapter: pbft %s: %w (lower clients x pipeline or raise pbft.max_clients if the cluster's identities are all held)", who, err)
	}
	return pc, nil
}

func newPBFT(ctx context.Context, cfg Config, inflight int) (*client.PBFTClient, error) {
	return client.NewPBFT(ctx, client.PBFTConfig{Nodes: cfg.Nodes, KeySeed: cfg.PBFT.KeySeed,
		MaxClients: cfg.PBFT.MaxClients, SignAll: cfg.PBFT.SignAll, MaxInflight: inflight,
		AttemptTimeout: cfg.AttemptTimeout})
}

// Close implements bench.Target: sessions own their connections, except the shared sets,
// closed here (after the sessions).
func (t *Target) Close() error {
	for _, s := range t.shared {
		_ = s.Close()
	}
	for _, pc := range t.pbftShared {
		if pc != nil {
			_ = pc.Close()
		}
	}
	return nil
}

// sharedDoer is a session's handle on a client other sessions use too: closing the
// session leaves it to them (Target.Close closes it).
type sharedDoer struct{ doer }

func (sharedDoer) Close() error { return nil }

// Describe implements bench.Describer: protocol, nodes, f and the caller's Info.
func (t *Target) Describe() map[string]string {
	n := len(t.cfg.Nodes)
	f := (n - 1) / 2 // Raft tolerates f crashes with n = 2f+1
	if t.cfg.Protocol == "pbft" {
		f = (n - 1) / 3 // PBFT: n = 3f+1
	}
	m := map[string]string{"protocol": t.cfg.Protocol, "nodes": strconv.Itoa(n), "f": strconv.Itoa(f)}
	for k, v := range t.cfg.Info {
		m[k] = v
	}
	return m
}

// doer is what both protocols' clients offer: one batch per call, safe for concurrent use.
type doer interface {
	Do(ctx context.Context, ops []wire.Op, res *client.Results) error
	Close() error
}

// batch is the per-call scratch a Session reuses: the wire ops, the client's results and
// the call's deadline.
type batch struct {
	ops []wire.Op
	res client.Results
	ctx callContext
}

// session is one worker's client. Do is safe for concurrent use (the client pipelines
// concurrent calls); each call takes its own scratch batch.
type session struct {
	cl       doer
	timeout  time.Duration
	failures *failures // nil while opening
	pool     sync.Pool // *batch
}

func (s *session) Do(ctx context.Context, ops []bench.Op) error {
	err := s.do(ctx, ops)
	if err != nil {
		s.failures.note(err)
	}
	return err
}

func (s *session) do(ctx context.Context, ops []bench.Op) error {
	b, _ := s.pool.Get().(*batch)
	if b == nil {
		b = &batch{}
	}
	defer s.pool.Put(b)
	b.ops = toWire(b.ops[:0], ops)
	b.ctx.begin(ctx, s.timeout)
	err := s.cl.Do(&b.ctx, b.ops, &b.res)
	b.ctx.end()
	if err != nil {
		return err
	}
	return fromResults(ops, b.res.Ops)
}

func (s *session) Close() error { return s.cl.Close() }

// asyncSession is a worker's session that also starts batches without waiting
// (bench.AsyncSession, through the client's Start).
type asyncSession struct {
	*session
	st    starter
	async sync.Pool // *asyncBatch
}

// asyncBatch is the scratch of one started batch, held until its completion.
type asyncBatch struct {
	s        *asyncSession
	ops      []wire.Op
	res      client.Results
	userOps  []bench.Op
	userDone func(error)
	onDone   func(error) // complete, bound once per scratch rather than per batch
}

// Start implements bench.AsyncSession.
func (s *asyncSession) Start(ops []bench.Op, done func(error)) {
	b, _ := s.async.Get().(*asyncBatch)
	if b == nil {
		b = &asyncBatch{s: s}
		b.onDone = b.complete
	}
	b.ops = toWire(b.ops[:0], ops)
	b.userOps, b.userDone = ops, done
	s.st.Start(b.ops, &b.res, s.timeout, b.onDone)
}

func (b *asyncBatch) complete(err error) {
	s, ops, done := b.s, b.userOps, b.userDone
	if err == nil {
		err = fromResults(ops, b.res.Ops)
	}
	if err != nil {
		s.failures.note(err)
	}
	b.userOps, b.userDone = nil, nil
	s.async.Put(b)
	done(err)
}

// toWire appends ops as wire ops to dst. The wire ops alias the worker's key and value
// bytes, which stay valid for the whole Do.
func toWire(dst []wire.Op, ops []bench.Op) []wire.Op {
	for i := range ops {
		o := &ops[i]
		w := wire.Op{Key: o.Key}
		if o.Kind == bench.OpWrite {
			w.Kind, w.Value = wire.OpPut, o.Value
		} else {
			w.Kind = wire.OpGet
		}
		dst = append(dst, w)
	}
	return dst
}

// fromResults copies read results into ops and fails the batch unless every op succeeded:
// OK, or NotFound for a read (a key never written is a valid answer).
func fromResults(ops []bench.Op, res []client.Result) error {
	if len(res) != len(ops) {
		return fmt.Errorf("adapter: %d results for %d ops", len(res), len(ops))
	}
	var bad int
	var first wire.Status
	var msg string
	for i := range ops {
		o, r := &ops[i], &res[i]
		ok := r.Status == wire.StatusOK || (o.Kind == bench.OpRead && r.Status == wire.StatusNotFound)
		if !ok {
			if bad == 0 {
				first = r.Status
				if r.Status == wire.StatusError {
					msg = fmt.Sprintf(" %q", r.Value) // the replica's reason
				}
			}
			bad++
			continue
		}
		if o.Kind == bench.OpRead {
			o.Found = r.Status == wire.StatusOK
			o.Out = append(o.Out[:0], r.Value...)
		}
	}
	if bad > 0 {
		return fmt.Errorf("adapter: %d of %d ops failed (first: %v%s)", bad, len(ops), first, msg)
	}
	return nil
}

// Probe writes one key through a fresh client and returns nil once it is acknowledged: for
// Raft that proves a leader is elected and commits (Raft §5.2, §5.3); for PBFT that f+1
// replicas executed it in the current view. It retries until ctx ends. For PBFT it claims
// one client identity like any client, and releases it on return.
func Probe(ctx context.Context, cfg Config) error {
	if err := Check(cfg.Protocol); err != nil {
		return err
	}
	cfg.AttemptTimeout = probeAttemptTimeout
	t, err := Open(cfg)
	if err != nil {
		return err
	}
	var cl doer
	if cfg.Protocol == "pbft" {
		cl, err = newPBFT(ctx, t.cfg, 1)
	} else {
		cl, err = client.NewRaft(client.Config{Nodes: cfg.Nodes, AttemptTimeout: probeAttemptTimeout})
	}
	if err != nil {
		return err
	}
	defer cl.Close()
	timeout := DefaultRequestTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	s := &session{cl: cl, timeout: timeout}
	return s.do(ctx, []bench.Op{{Kind: bench.OpWrite, Key: []byte(probeKey), Value: []byte("1")}})
}

const (
	// probeKey is the key Probe and session openings write; workloads use other names.
	probeKey = "consensusbench/probe"
	// probeAttemptTimeout keeps one probe attempt short so that a replica that is not the
	// leader yet does not hold the probe for the client's default attempt timeout.
	probeAttemptTimeout = 500 * time.Millisecond
)
