package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/consensusbench/consensusbench/pbftcore"
	"github.com/consensusbench/consensusbench/wire"
)

// PBFT client defaults and limits. PBFTDefaultKeySeed, PBFTMaxOpBytes and
// PBFTDefaultMaxClients mirror server's constants of the same names (client cannot import
// server); a cluster spec's pbft.key_seed and pbft.max_clients override them on both sides.
const (
	PBFTDefaultKeySeed    = "consensusbench-pbft"
	PBFTMaxOpBytes        = 64 << 10
	PBFTDefaultMaxClients = 1024
	// DefaultPBFTAttemptTimeout is how long a request waits for f+1 matching replies before
	// it is retransmitted to every replica (a read-only one is retried as ordered).
	DefaultPBFTAttemptTimeout = time.Second
	// DefaultPBFTMaxInflight is the number of PBFT client identities (sessions) one
	// PBFTClient uses, hence the number of Do calls it pipelines.
	DefaultPBFTMaxInflight = 64
	// DefaultPBFTReadTimeout is the read-only attempt's wait before ordering the read.
	DefaultPBFTReadTimeout = 50 * time.Millisecond
	// pbftViewNoticeWait bounds how long NewPBFT waits for f+1 replicas to report their view.
	pbftViewNoticeWait = 100 * time.Millisecond
	// pbftRedialMin bounds how often a broken replica connection is redialled.
	pbftRedialMin = 100 * time.Millisecond
	// DefaultPBFTLease is how long the replicas keep a client's identities without hearing
	// from it (pbftcore/claim.go); the client renews every third of it.
	DefaultPBFTLease = 10 * time.Second
	// DefaultPBFTClaimTimeout bounds NewPBFT's claim of identities when its context has no
	// deadline.
	DefaultPBFTClaimTimeout = 10 * time.Second
)

// ErrIdentitiesLost: the client's lease on its PBFT client identities expired (it could not
// renew it for a whole lease: stalled, or cut off from the replicas), and the replicas may
// have granted them to another client. Its requests are no longer executed; make a new
// client.
var ErrIdentitiesLost = errors.New("client: pbft client identities lost (lease expired); make a new client")

// PBFTConfig configures a PBFTClient.
type PBFTConfig struct {
	// Nodes are the replicas, node ID i+1 being PBFT replica i.
	Nodes []Node
	// KeySeed is the cluster spec's pbft.key_seed ("" = PBFTDefaultKeySeed); the client's
	// MAC and signing keys are derived from it, like the replicas'.
	KeySeed string
	// MaxClients is the cluster's pbft.max_clients (0 = PBFTDefaultMaxClients).
	MaxClients int
	// FixedClientIDs makes the client claim exactly [FirstClientID,
	// FirstClientID+MaxInflight), which must lie below MaxClients; NewPBFT fails if another
	// live client holds any of them. Without it (the default) the client claims any free
	// range of MaxInflight identities, and FirstClientID must be 0.
	FixedClientIDs bool
	FirstClientID  uint64
	// Lease is how long the replicas keep the identities without a renewal (0:
	// DefaultPBFTLease; bounded by pbftcore's MinClaimLeaseNanos and MaxClaimLeaseNanos).
	Lease time.Duration
	// SignAll must match the spec's pbft.auth == "sign".
	SignAll        bool
	AttemptTimeout time.Duration // 0: DefaultPBFTAttemptTimeout
	// ReadTimeout bounds the read-only attempt of a batch of gets before it is retried as
	// an ordered request (0: DefaultPBFTReadTimeout). A replica with a prepared but not yet
	// executed request refuses reads (pbftcore), and f+1 refusals order the read at once;
	// this timeout covers replicas that stay silent (down, slow), where a long wait would
	// only add latency.
	ReadTimeout time.Duration
	// OrderedReads sends gets as ordered requests too (no read-only optimization).
	OrderedReads  bool
	DialTimeout   time.Duration // 0: DefaultDialTimeout
	MaxInflight   int           // 0: DefaultPBFTMaxInflight
	MaxFrameBytes int
}

// PBFTClient talks to a PBFT cluster (Castro and Liskov, OSDI '99 §4.1): each Do is one
// PBFT request, sent to the primary of the newest view the client has seen in replies; the
// result is accepted once f+1 replicas sent matching replies (2f+1 for a batch of gets,
// which goes to every replica on the read-only path, §5.1.3, and is retried as an ordered
// request when they do not match); on timeout the request is retransmitted to every
// replica, which lets backups detect a faulty primary. Retransmissions keep the request's
// (client identity, timestamp), so a write executes at most once.
//
// Do is safe for concurrent use. Concurrent calls are pipelined: each holds one of
// MaxInflight client identities (PBFT allows one outstanding request per client), and
// frames to one replica share writes. The reply rule is pbftcore.Client's.
//
// Client identities (principals) are allocated through the ordered log
// (pbftcore/claim.go). NewPBFT claims a range of MaxInflight identities for a random nonce:
// any free range, or the FixedClientIDs range. The replicas execute the claim at one
// sequence number and grant the range to one nonce; so two clients, on any hosts, never hold
// overlapping ranges at once ("cannot collide" rests on the agreement of the log, not on
// anything the clients coordinate). Each grant carries a span of request timestamps above
// every earlier holder's, and the replicas execute a request only inside the span of the
// principal's live grant: the requests of a client that lost its identities are never
// executed again, even if it resumes, and a retry of an earlier holder's request can never
// be taken for the new holder's. The grant is held by a lease (Lease) that a background
// goroutine renews every Lease/3 and that Close releases; a client that crashes is freed
// once its lease expires. Expiry follows the table's clock, the highest wall-clock time any
// claim carried, so every replica decides it at the same point of the log: a client that
// stalls (or is cut off) for more than a lease, or whose clock runs more than a lease behind
// another claimant's, loses its identities, and Do then returns ErrIdentitiesLost. The
// allocation table is part of pbftcore's client table, hence of every checkpoint digest, of
// state transfer and of the replicas' snapshot files: restarts and transferred states keep
// it. Claims are authenticated like requests, with keys every holder of the key seed can
// derive: the allocation protects clients from each other's mistakes, not from a malicious
// client.
type PBFTClient struct {
	cfg     PBFTConfig
	n       int
	keyring *pbftcore.Keyring
	conns   []*pbftConn
	free    chan *pbftSession
	byID    []atomic.Pointer[pbftSession]
	view    atomic.Uint64
	// viewNotices counts the replicas' answers to registrations (their views).
	viewNotices atomic.Int64
	closed      atomic.Bool
	closedC     chan struct{}
	// replicaView[i] is the newest view replica i's connection reported in an ordered
	// reply; view is the (f+1)-th highest of them, a view at least one correct replica is in.
	replicaView []atomic.Uint64

	// The granted identities: [first, first+MaxInflight), request timestamps in
	// (floor, floor+pbftcore.ClaimSpan], held by nonce. granted is set once they are.
	first, floor, nonce uint64
	granted             atomic.Bool
	// lost is closed when a renewal finds the lease expired.
	lost     chan struct{}
	lostOnce sync.Once
	// primaryDown is closed (and replaced) when the connection to the primary of the
	// client's view breaks: a crashed primary's socket reports it at once, and the ordered
	// requests waiting on it go to every replica then, not an attempt timeout later.
	primaryDown atomic.Pointer[chan struct{}]
	// deferring counts the reader goroutines that completed a Start request from the
	// replies one read brought and are still handling those replies: while any is, sends
	// only queue their frames (the requests Start's callbacks make go out together), and
	// each such reader writes every connection's queue when it is done.
	deferring atomic.Int32
	// ctlMu serializes claims, renewals and releases; ctl is the one in flight.
	ctlMu     sync.Mutex
	ctl       atomic.Pointer[pbftControl]
	bg        context.Context // cancelled by Close: ends the renewals
	bgCancel  context.CancelFunc
	renewDone chan struct{}
}

// pbftControl is a claim, renewal or release in flight: a pbftcore.Client used for that one
// Timestamp-0 request. mu guards core, result and ready.
type pbftControl struct {
	mu     sync.Mutex
	core   *pbftcore.Client
	id     uint64
	done   chan struct{}
	result []byte
	ready  bool
	frame  []byte
	wreq   wire.Request
}

// pbftSession is one PBFT client identity with its pbftcore.Client. mu guards core,
// result and ready; the reader goroutines step replies into core.
type pbftSession struct {
	mu     sync.Mutex
	id     uint64
	core   *pbftcore.Client
	done   chan struct{}
	result []byte
	ready  bool
	op     []byte
	frame  []byte
	wreq   wire.Request
	rep    wire.ClientReply
	timer  *time.Timer // attempt timer, reused across calls
	// reading: the read-only attempt of the current Do is outstanding. fellBack: when the
	// replies (f+1 refusals, or answers that can no longer match) made the core order the
	// read before the read timer fired; that ordered attempt gets a whole AttemptTimeout.
	reading  bool
	fellBack time.Time
	// async is the Start request in flight on this identity, if any (pbftasync.go).
	async pbftAsync
}

// NewPBFT returns a client and dials every replica (a replica that cannot be reached is
// redialled later; f of them may be down).
func NewPBFT(ctx context.Context, cfg PBFTConfig) (*PBFTClient, error) {
	if len(cfg.Nodes) < 4 {
		return nil, fmt.Errorf("client: pbft needs at least 4 nodes, got %d", len(cfg.Nodes))
	}
	for i, n := range cfg.Nodes {
		if n.ID != uint64(i+1) || n.Addr == "" {
			return nil, fmt.Errorf("client: pbft node %d must have ID %d and an address, got %+v", i, i+1, n)
		}
	}
	if cfg.KeySeed == "" {
		cfg.KeySeed = PBFTDefaultKeySeed
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = PBFTDefaultMaxClients
	}
	if cfg.AttemptTimeout == 0 {
		cfg.AttemptTimeout = DefaultPBFTAttemptTimeout
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = min(DefaultPBFTReadTimeout, cfg.AttemptTimeout)
	}
	if cfg.MaxInflight == 0 {
		cfg.MaxInflight = DefaultPBFTMaxInflight
	}
	if cfg.Lease == 0 {
		cfg.Lease = DefaultPBFTLease
	}
	minLease, maxLease := time.Duration(pbftcore.MinClaimLeaseNanos), time.Duration(pbftcore.MaxClaimLeaseNanos)
	if cfg.Lease < minLease || cfg.Lease > maxLease {
		return nil, fmt.Errorf("client: pbft lease %v outside [%v, %v]", cfg.Lease, minLease, maxLease)
	}
	if !cfg.FixedClientIDs && cfg.FirstClientID != 0 {
		return nil, fmt.Errorf("client: pbft FirstClientID %d without FixedClientIDs (leave it 0 for automatic identities)", cfg.FirstClientID)
	}
	if cfg.MaxInflight < 1 || cfg.FirstClientID+uint64(cfg.MaxInflight) > uint64(cfg.MaxClients) {
		return nil, fmt.Errorf("client: pbft client identities [%d, %d) exceed max_clients %d",
			cfg.FirstClientID, cfg.FirstClientID+uint64(cfg.MaxInflight), cfg.MaxClients)
	}
	c := &PBFTClient{cfg: cfg, n: len(cfg.Nodes), free: make(chan *pbftSession, cfg.MaxInflight),
		byID: make([]atomic.Pointer[pbftSession], cfg.MaxInflight), closedC: make(chan struct{}),
		lost: make(chan struct{}), renewDone: make(chan struct{})}
	c.bg, c.bgCancel = context.WithCancel(context.Background())
	down := make(chan struct{})
	c.primaryDown.Store(&down)
	c.keyring = pbftcore.NewKeyring([]byte(cfg.KeySeed), c.n, cfg.MaxClients)
	c.replicaView = make([]atomic.Uint64, c.n)
	for i := 0; i < cfg.MaxInflight; i++ {
		c.free <- nil // sessions are created on first use
	}
	c.conns = make([]*pbftConn, c.n)
	for i := range c.conns { // all of them before any reader starts: readers walk the slice
		c.conns[i] = &pbftConn{cl: c, replica: i, addr: cfg.Nodes[i].Addr}
	}
	var wg sync.WaitGroup
	for i := range c.conns {
		wg.Add(1)
		go func(pc *pbftConn) {
			defer wg.Done()
			pc.dial(ctx)
		}(c.conns[i])
	}
	wg.Wait()
	// Replicas answer the registrations with their views: wait briefly for f+1 of them, so
	// that the first request goes to the current primary (a replica that does not answer
	// costs this wait once, never a request's attempt timeout).
	deadline := time.Now().Add(min(cfg.DialTimeout, pbftViewNoticeWait))
	for c.viewNotices.Load() < int64((c.n-1)/3+1) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	if err := c.claim(ctx); err != nil {
		c.bgCancel()
		close(c.renewDone)
		c.closed.Store(true)
		close(c.closedC)
		for _, pc := range c.conns {
			pc.close()
		}
		return nil, err
	}
	go c.renewLoop()
	return c, nil
}

// Primary returns the node ID of the primary of the newest view seen in replies.
func (c *PBFTClient) Primary() uint64 { return c.view.Load()%uint64(c.n) + 1 }

// FirstClientID returns the first of the client's identities, [FirstClientID(),
// FirstClientID()+MaxInflight).
func (c *PBFTClient) FirstClientID() uint64 { return c.first }

func (c *PBFTClient) newSession(slot int) (*pbftSession, error) {
	id := c.first + uint64(slot)
	// Timestamps start above the grant's floor: above everything the identity executed and
	// every span granted before (pbftcore/claim.go).
	core, err := pbftcore.NewClient(pbftcore.ClientConfig{ID: id, N: c.n, Keys: c.keyring.Client(id), TimeoutTicks: 1,
		FirstTimestamp: c.floor + 1, SignAll: c.cfg.SignAll, MaxOpBytes: PBFTMaxOpBytes})
	if err != nil {
		return nil, err
	}
	s := &pbftSession{id: id, core: core, done: make(chan struct{}, 1), timer: time.NewTimer(time.Hour)}
	s.timer.Stop()
	s.async.timer = time.AfterFunc(time.Hour, func() { c.asyncExpire(s) })
	s.async.timer.Stop()
	c.byID[slot].Store(s)
	return s, nil
}

// Do executes ops as one PBFT request and fills res. A batch of gets only takes the
// read-only path. It retransmits until f+1 replicas agree or ctx ends; an error after a
// write was sent means its outcome is unknown. Per-op statuses are results, not errors.
func (c *PBFTClient) Do(ctx context.Context, ops []wire.Op, res *Results) error {
	if len(ops) == 0 {
		return errors.New("client: empty batch")
	}
	var s *pbftSession
	select {
	case <-c.lost:
		return ErrIdentitiesLost
	default:
	}
	select {
	case s = <-c.free:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.closedC:
		return ErrClosed
	case <-c.lost:
		return ErrIdentitiesLost
	}
	if s == nil {
		slot := -1
		for i := range c.byID {
			if c.byID[i].Load() == nil && c.byID[i].CompareAndSwap(nil, placeholder) {
				slot = i
				break
			}
		}
		var err error
		if slot < 0 {
			err = errors.New("client: no free pbft client identity")
		} else if s, err = c.newSession(slot); err != nil {
			c.byID[slot].Store(nil)
		}
		if err != nil {
			c.free <- nil
			return err
		}
	}
	defer func() { c.free <- s }()
	return c.do(ctx, s, ops, res)
}

// invokeLocked makes ops the session's next request (the next timestamp of its grant) and
// hands it to the session's core, ready for flush. Caller holds s.mu.
func (c *PBFTClient) invokeLocked(s *pbftSession, ops []wire.Op, readOnly bool) error {
	ts := s.core.Timestamp() + 1
	if ts > c.floor+pbftcore.ClaimSpan {
		return fmt.Errorf("client: pbft identity %d used the %d timestamps of its grant; make a new client", s.id, pbftcore.ClaimSpan)
	}
	s.op = wire.AppendClientRequest(s.op[:0], &wire.ClientRequest{ClientID: s.id, FirstSeq: ts, Ops: ops})
	if len(s.op) > PBFTMaxOpBytes {
		return fmt.Errorf("client: request of %d bytes exceeds PBFTMaxOpBytes %d", len(s.op), PBFTMaxOpBytes)
	}
	select {
	case <-s.done:
	default:
	}
	s.ready = false
	s.reading, s.fellBack = readOnly, time.Time{}
	return s.core.InvokeAt(ts, s.op, readOnly)
}

// placeholder reserves a session slot while its session is being built.
var placeholder = &pbftSession{}

func (c *PBFTClient) do(ctx context.Context, s *pbftSession, ops []wire.Op, res *Results) error {
	readOnly := !c.cfg.OrderedReads
	for i := range ops {
		if ops[i].Kind != wire.OpGet {
			readOnly = false
			break
		}
	}
	s.mu.Lock()
	// Before the request goes out: a primary connection that breaks after the send (and
	// before the wait below) must wake this request, so the channel to watch is the one
	// current when it was sent, not one that replaced it meanwhile.
	down := *c.primaryDown.Load()
	err := c.invokeLocked(s, ops, readOnly)
	if err == nil {
		c.flush(s)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	tries := 1
	t := s.timer
	// down fires when the primary's connection breaks while this ordered request waits:
	// it is retransmitted to every replica at once, as on an attempt timeout (reads go to
	// every replica anyway).
	if readOnly {
		t.Reset(c.cfg.ReadTimeout) // then the core retries it as an ordered request
		down = nil
	} else {
		t.Reset(c.cfg.AttemptTimeout)
	}
	defer t.Stop()
	for {
		select {
		case <-down:
			s.mu.Lock()
			if s.ready || !s.fellBack.IsZero() {
				s.mu.Unlock()
				down = nil
				continue
			}
			tries++
			s.core.Tick() // the core retransmits to every replica
			c.flush(s)
			s.mu.Unlock()
			t.Reset(c.cfg.AttemptTimeout)
			down = *c.primaryDown.Load()
		case <-s.done:
			s.mu.Lock()
			if !s.ready {
				s.mu.Unlock()
				continue
			}
			if !s.fellBack.IsZero() {
				tries++ // the read was ordered on its replies: that was a second try
			}
			err := res.fillPBFT(&s.rep, s.result, len(ops))
			s.mu.Unlock()
			res.Node = c.Primary()
			res.Tries = tries
			return err
		case <-t.C:
			s.mu.Lock()
			if fb := s.fellBack; !fb.IsZero() {
				// The replies ordered the read before the read timer fired (f+1 refusals, or
				// every replica answered without 2f+1 matching): that ordered request was
				// the next try, and it is retransmitted only a whole attempt timeout after
				// it was sent.
				s.fellBack = time.Time{}
				tries++
				if wait := c.cfg.AttemptTimeout - time.Since(fb); wait > 0 {
					s.mu.Unlock()
					t.Reset(wait)
					continue
				}
			}
			tries++
			s.core.Tick() // TimeoutTicks is 1: one tick = one attempt timeout
			c.flush(s)
			s.fellBack = time.Time{} // ordered by this tick: the reset below times it
			s.mu.Unlock()
			t.Reset(c.cfg.AttemptTimeout)
		case <-ctx.Done():
			s.mu.Lock()
			s.core.Abandon()
			s.mu.Unlock()
			return maybeApplied(ops, ctx.Err())
		case <-c.closedC:
			s.mu.Lock()
			s.core.Abandon()
			s.mu.Unlock()
			return maybeApplied(ops, ErrClosed)
		case <-c.lost:
			s.mu.Lock()
			s.core.Abandon()
			s.mu.Unlock()
			return maybeApplied(ops, ErrIdentitiesLost)
		}
	}
}

// flush sends the session core's pending requests and records a finished result. Caller
// holds s.mu.
func (c *PBFTClient) flush(s *pbftSession) {
	rd := s.core.Ready()
	for i := range rd.Messages {
		m := &rd.Messages[i]
		if m.Type != pbftcore.MsgRequest || len(m.Requests) != 1 {
			continue
		}
		r := &m.Requests[0]
		if s.reading && !r.ReadOnly {
			s.reading, s.fellBack = false, time.Now()
		}
		s.frame = c.appendRequestFrame(s.frame[:0], &s.wreq, r)
		if m.To == pbftcore.ToAll {
			for _, pc := range c.conns {
				pc.send(s.frame)
			}
			continue
		}
		// The core addresses the primary of the view it has seen; the client as a whole may
		// know a newer one (any session's replies), and every replica can check the request.
		// With no connection to that primary (it crashed, or is unreachable), the request
		// goes to every replica now: the backups relay it and start their view-change timers,
		// where a send to the primary alone would wait out an attempt timeout first.
		p := c.conns[int(c.view.Load()%uint64(c.n))]
		if p.send(s.frame) {
			continue
		}
		for _, pc := range c.conns {
			if pc != p {
				pc.send(s.frame)
			}
		}
	}
	if rd.Done {
		s.result = append(s.result[:0], rd.Result...)
		s.ready = true
		select {
		case s.done <- struct{}{}:
		default:
		}
	}
	s.core.Advance()
}

// appendRequestFrame appends the wire frame of the core's request r (wreq is scratch), its
// authenticator in the cluster's mode.
func (c *PBFTClient) appendRequestFrame(dst []byte, wreq *wire.Request, r *pbftcore.Request) []byte {
	*wreq = wire.Request{ClientID: r.Client, Timestamp: r.Timestamp, ReadOnly: r.ReadOnly, Op: r.Op,
		Auth: wire.Authenticator{Kind: wire.AuthShortMACs, MACs: r.Auth}}
	if c.cfg.SignAll {
		wreq.Auth = wire.Authenticator{Kind: wire.AuthSignature, Signature: r.Auth}
	}
	return wire.AppendMessageFrame(dst, 0, wreq)
}

// replyMessage is replica's reply r as the core's message.
func replyMessage(replica int, r *wire.PBFTReply) pbftcore.Message {
	auth := r.Auth.MACs
	if r.Auth.Kind == wire.AuthSignature {
		auth = r.Auth.Signature
	}
	return pbftcore.Message{Type: pbftcore.MsgReply, From: replica, To: pbftcore.ToClient, View: r.View, Client: r.ClientID,
		Timestamp: r.Timestamp, ReadOnly: r.ReadOnly, Refused: r.Refused, Result: r.Result, Auth: auth}
}

// onReply steps a reply from replica into its session; deferred is the calling reader's
// state (see deferring): a reply that completes a Start request starts the reader's
// deferral before its callback runs, so that the callback's next request only queues. A
// reply with timestamp 0 answers a
// registration with the replica's view (no request has timestamp 0): it only moves the
// view, by the same (f+1)-th-highest rule as ordered replies.
func (c *PBFTClient) onReply(replica int, r *wire.PBFTReply, deferred *bool) {
	if r.Timestamp == 0 && len(r.Result) > 0 {
		c.onControlReply(replica, r)
		return
	}
	if r.Timestamp == 0 {
		if !r.ReadOnly && r.View > c.replicaView[replica].Load() {
			c.replicaView[replica].Store(r.View)
			c.updateView()
		}
		c.viewNotices.Add(1)
		return
	}
	if !c.granted.Load() || r.ClientID < c.first || r.ClientID-c.first >= uint64(len(c.byID)) {
		return
	}
	s := c.byID[r.ClientID-c.first].Load()
	if s == nil || s == placeholder {
		return
	}
	// The view first: the reply may complete a Do, and the caller's next request (or its
	// Primary call) must already see the view the replies reported.
	if !r.ReadOnly && r.View > c.replicaView[replica].Load() {
		c.replicaView[replica].Store(r.View)
		c.updateView()
	}
	m := replyMessage(replica, r)
	s.mu.Lock()
	s.core.Step(&m)
	c.flush(s) // records a result; a diverging or f+1 times refused read goes out again as an ordered request
	done, err := c.asyncResultLocked(s)
	s.mu.Unlock()
	if done != nil {
		if !*deferred {
			*deferred = true
			c.deferring.Add(1)
		}
		c.free <- s
		done(err)
	}
}

// updateView sets view to the (f+1)-th highest view the replicas reported: f faulty
// replicas cannot push the client to a view no correct replica is in.
func (c *PBFTClient) updateView() {
	f := (c.n - 1) / 3
	for {
		cur := c.view.Load()
		best := cur
		for i := range c.replicaView {
			v := c.replicaView[i].Load()
			if v <= best {
				continue
			}
			ahead := 0
			for j := range c.replicaView {
				if c.replicaView[j].Load() >= v {
					ahead++
				}
			}
			if ahead >= f+1 {
				best = v
			}
		}
		if best == cur || c.view.CompareAndSwap(cur, best) {
			return
		}
	}
}

// fillPBFT decodes a result (a wire.ClientReply body) into res, copying the values.
func (r *Results) fillPBFT(rep *wire.ClientReply, body []byte, nops int) error {
	if err := wire.DecodeClientReply(body, rep); err != nil {
		return fmt.Errorf("client: undecodable pbft result: %w", err)
	}
	if len(rep.Results) != nops {
		if len(rep.Results) > 0 && rep.Results[0].Status == wire.StatusError {
			return fmt.Errorf("client: replicas refused the request: %s", rep.Results[0].Value)
		}
		return fmt.Errorf("client: %d results for %d ops", len(rep.Results), nops)
	}
	r.vals = r.vals[:0]
	for _, x := range rep.Results {
		r.vals = append(r.vals, x.Value...)
	}
	r.Ops = r.Ops[:0]
	off := 0
	for _, x := range rep.Results {
		n := len(x.Value)
		var v []byte
		if n > 0 {
			v = r.vals[off : off+n : off+n]
		}
		r.Ops = append(r.Ops, Result{Status: x.Status, Value: v})
		off += n
	}
	return nil
}

// Close releases the client's identities (waiting at most AttemptTimeout for the replicas;
// unreleased, they are freed when the lease expires) and closes every connection; calls in
// flight return ErrClosed.
func (c *PBFTClient) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	close(c.closedC)
	c.kickAsync() // Start requests in flight end with ErrClosed
	c.bgCancel()
	<-c.renewDone
	if c.connected() {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.AttemptTimeout)
		_, _ = c.control(ctx, c.first, &pbftcore.Claim{Kind: pbftcore.ClaimRelease, Nonce: c.nonce})
		cancel()
	}
	for _, pc := range c.conns {
		pc.close()
	}
	return nil
}

// connected reports whether any replica connection is up.
func (c *PBFTClient) connected() bool {
	for _, pc := range c.conns {
		pc.mu.Lock()
		up := pc.nc != nil
		pc.mu.Unlock()
		if up {
			return true
		}
	}
	return false
}

// pbftMaxPendingWriteBytes bounds the frames queued for one replica's connection; beyond it
// frames are dropped (the protocol retransmits), so a replica that stops reading cannot make
// the client buffer without bound.
const pbftMaxPendingWriteBytes = 4 << 20

// pbftConn is the connection to one replica's client port. Writers combine like conn's:
// a sender appends its frame and, if nobody is writing, writes everything pending. A broken
// connection drops what it was sending (the protocol retransmits) and is redialled in the
// background.
type pbftConn struct {
	cl      *PBFTClient
	replica int
	addr    string

	mu       sync.Mutex
	nc       net.Conn
	dialing  bool
	lastDial time.Time
	wbuf     []byte
	spare    []byte
	writing  bool
}

// dial connects and registers the client's identities, so that the replica can answer
// requests that reached it through the primary.
func (pc *pbftConn) dial(ctx context.Context) {
	c := pc.cl
	d := net.Dialer{Timeout: c.cfg.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", pc.addr)
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.dialing = false
	pc.lastDial = time.Now()
	if err != nil || c.closed.Load() {
		if nc != nil {
			nc.Close()
		}
		return
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	// Before the claim is granted the registration names no identity: the replica only
	// answers with its view. The grant registers the range on every connection
	// (registerGranted).
	reg := wire.ClientRequest{}
	if c.granted.Load() {
		reg = wire.ClientRequest{ClientID: c.first, FirstSeq: uint64(c.cfg.MaxInflight)}
	}
	_ = nc.SetWriteDeadline(time.Now().Add(c.cfg.AttemptTimeout))
	if _, err := nc.Write(wire.AppendMessageFrame(nil, 0, &reg)); err != nil {
		nc.Close()
		return
	}
	pc.nc = nc
	pc.wbuf = pc.wbuf[:0]
	go pc.readLoop(nc)
}

// send queues frame (copied) for the replica; it drops it when the connection is down
// (starting a redial) and reports false then.
func (pc *pbftConn) send(frame []byte) (connected bool) {
	pc.mu.Lock()
	if pc.nc == nil {
		if !pc.dialing && time.Since(pc.lastDial) >= pbftRedialMin && !pc.cl.closed.Load() {
			pc.dialing = true
			go pc.dial(context.Background())
		}
		pc.mu.Unlock()
		return false
	}
	if len(pc.wbuf)+len(frame) > pbftMaxPendingWriteBytes {
		// The replica is not reading (paused or overloaded): drop, as a lossy network would;
		// the request is retransmitted to every replica on its timeout.
		pc.mu.Unlock()
		return true
	}
	pc.wbuf = append(pc.wbuf, frame...)
	if pc.writing || pc.cl.deferring.Load() > 0 {
		pc.mu.Unlock()
		return true
	}
	pc.writing = true
	// As conn.send: callers already runnable append before this one writes.
	pc.mu.Unlock()
	runtime.Gosched()
	pc.mu.Lock()
	pc.writeQueuedLocked()
	return true
}

// writeQueuedLocked writes the queue until it stays empty or the connection breaks. Caller
// holds pc.mu and has set writing; it returns with pc.mu released and writing cleared.
func (pc *pbftConn) writeQueuedLocked() {
	for len(pc.wbuf) > 0 && pc.nc != nil {
		buf, nc := pc.wbuf, pc.nc
		pc.wbuf, pc.spare = pc.spare[:0], nil
		pc.mu.Unlock()
		// A replica that stops reading must not hold this caller (nor the replies of the
		// others) beyond one attempt.
		_ = nc.SetWriteDeadline(time.Now().Add(pc.cl.cfg.AttemptTimeout))
		_, err := nc.Write(buf)
		pc.mu.Lock()
		pc.spare = buf[:0]
		if err != nil {
			pc.broken(nc)
		}
	}
	pc.writing = false
	pc.mu.Unlock()
}

// broken forgets nc if it is still the current connection. Caller holds pc.mu.
func (pc *pbftConn) broken(nc net.Conn) {
	nc.Close()
	if pc.nc == nc {
		pc.nc = nil
		pc.wbuf = pc.wbuf[:0]
		if c := pc.cl; c.conns[int(c.view.Load()%uint64(c.n))] == pc && !c.closed.Load() {
			c.notePrimaryDown()
		}
	}
}

// notePrimaryDown wakes the ordered requests waiting on the primary (see primaryDown).
func (c *PBFTClient) notePrimaryDown() {
	next := make(chan struct{})
	close(*c.primaryDown.Swap(&next))
	go c.kickAsync() // the Start requests too (not under the connection's lock: it takes theirs)
}

func (pc *pbftConn) readLoop(nc net.Conn) {
	r := wire.NewReader(nc, pc.cl.cfg.MaxFrameBytes)
	var rep wire.PBFTReply
	deferred := false // this reader holds the client's sends back (see deferring, onReply)
	defer func() {
		if deferred {
			pc.cl.endDeferred()
		}
	}()
	for {
		if deferred && !r.HasFrame() {
			deferred = false
			pc.cl.endDeferred()
		}
		f, err := r.ReadFrame()
		if err == nil && f.Type != wire.TypePBFTReply {
			err = fmt.Errorf("unexpected %v frame", f.Type)
		}
		if err == nil {
			err = wire.DecodePBFTReply(f.Body, &rep)
		}
		if err == nil && rep.Replica != uint64(pc.replica) {
			err = fmt.Errorf("reply claims replica %d on replica %d's connection", rep.Replica, pc.replica)
		}
		if err != nil {
			pc.mu.Lock()
			pc.broken(nc)
			pc.mu.Unlock()
			return
		}
		pc.cl.onReply(pc.replica, &rep, &deferred)
	}
}

func (pc *pbftConn) close() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.nc != nil {
		pc.broken(pc.nc)
	}
}

// maybeApplied wraps err, the reason Do gave up on a request already sent, with
// ErrMaybeApplied when the request writes: a replica may have executed it.
func maybeApplied(ops []wire.Op, err error) error {
	if readOnly(ops) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrMaybeApplied, err)
}
