package client

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/consensusbench/consensusbench/kv"
	"github.com/consensusbench/consensusbench/wire"
)

// Defaults and limits.
const (
	// DefaultAttemptTimeout is how long one attempt waits for a reply before the batch is
	// retried on another replica (same sequence numbers).
	DefaultAttemptTimeout = 2 * time.Second
	// DefaultDialTimeout bounds one connection attempt.
	DefaultDialTimeout = time.Second
	// DefaultMaxInflight bounds batches in flight per Client; Do blocks beyond it.
	DefaultMaxInflight = 1024
	// MaxOutstandingOps bounds the operations in flight per client, whatever the batching:
	// the replicated store remembers only kv.SessionWindow sequence numbers per client, and
	// retries reordered by a redirect must stay inside that window to stay exactly-once.
	MaxOutstandingOps = kv.SessionWindow
	// retryBackoffMin and retryBackoffMax bound the pause between attempts after a
	// not-leader without hint, a busy answer or a failed connection.
	retryBackoffMin = 2 * time.Millisecond
	retryBackoffMax = 200 * time.Millisecond
)

// Errors.
var (
	// ErrNoNodes: the config names no replica.
	ErrNoNodes = errors.New("client: no nodes configured")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("client: closed")
	// ErrMaybeApplied: Do gave up (its context ended, or the client closed) on a batch with
	// writes after an attempt reached a replica and got no answer (Raft), or after sending
	// the request (PBFT): the writes may or may not
	// have been applied. A retry with the same client continues the batch's sequence numbers
	// only within the session window; read the keys back to learn the outcome. Do's error
	// wraps it together with the cause (errors.Is works for both).
	ErrMaybeApplied = errors.New("client: outcome unknown, the writes may have been applied")
)

// Node is one replica's ID and client address.
type Node struct {
	ID   uint64
	Addr string
}

// Config configures a Client.
type Config struct {
	// Nodes are the replicas; for PBFT, node i+1 is replica i.
	Nodes []Node
	// ClientID names this client's session in the replicated store. Zero picks a random one.
	// Two clients must never share an ID: the store would take one's writes for the other's
	// retries.
	ClientID uint64
	// AttemptTimeout bounds one attempt (0: DefaultAttemptTimeout). The caller's context
	// bounds the whole call.
	AttemptTimeout time.Duration
	DialTimeout    time.Duration
	MaxInflight    int
	MaxFrameBytes  int
	// Shared, when set, carries this client's calls on connections it shares with other
	// clients (Raft only). The client does not close them; their owner closes the set.
	Shared *SharedConns
}

// RandomClientID returns a random nonzero client ID.
func RandomClientID() uint64 {
	var b [8]byte
	for {
		_, _ = crand.Read(b[:])
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

func (c *Config) fill() error {
	if len(c.Nodes) == 0 {
		return ErrNoNodes
	}
	for _, n := range c.Nodes {
		if n.ID == 0 || n.Addr == "" {
			return fmt.Errorf("client: node %+v needs an ID and an address", n)
		}
	}
	if c.ClientID == 0 {
		c.ClientID = RandomClientID()
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = DefaultAttemptTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	return nil
}

// Result is one operation's outcome. Value aliases memory owned by the Results it came in.
type Result = wire.OpResult

// Results holds the outcome of one Do. Reuse it across calls to avoid allocation.
type Results struct {
	Ops   []Result
	vals  []byte
	Node  uint64 // the replica that answered (Raft) or the last of the matching ones (PBFT)
	Tries int    // attempts it took
}

func (r *Results) fillFrom(cl *call) {
	r.vals = append(r.vals[:0], cl.vals...)
	r.Ops = r.Ops[:0]
	off := 0
	for _, x := range cl.reply.Results {
		n := len(x.Value)
		var v []byte
		if n > 0 {
			v = r.vals[off : off+n : off+n]
		}
		r.Ops = append(r.Ops, Result{Status: x.Status, Value: v})
		off += n
	}
	r.Node = cl.replica
}

// RaftClient talks to a Raft cluster: it sends every batch to the replica it believes is
// the leader and follows not-leader hints. Do is safe for concurrent use; concurrent calls
// are pipelined on one connection.
type RaftClient struct {
	cfg    Config
	window *seqWindow    // write sequence numbers: outstanding span < MaxOutstandingOps
	reads  atomic.Uint64 // read-only batch IDs (readSeqBit set), outside the write window
	slots  chan struct{}
	closed atomic.Bool

	mu     sync.Mutex
	conns  map[uint64]*conn
	leader uint64 // node we send to
}

// NewRaft returns a client; connections are made on first use.
func NewRaft(cfg Config) (*RaftClient, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	c := &RaftClient{cfg: cfg, slots: make(chan struct{}, cfg.MaxInflight), window: newSeqWindow(),
		conns: map[uint64]*conn{}, leader: cfg.Nodes[0].ID}
	return c, nil
}

// ID returns the client's session ID.
func (c *RaftClient) ID() uint64 { return c.cfg.ClientID }

// Leader returns the replica the client currently sends to.
func (c *RaftClient) Leader() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

func (c *RaftClient) addr(id uint64) string {
	for _, n := range c.cfg.Nodes {
		if n.ID == id {
			return n.Addr
		}
	}
	return ""
}

// nextNode moves to the replica after id (round robin) unless someone else moved already.
func (c *RaftClient) nextNode(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader != id {
		return
	}
	for i, n := range c.cfg.Nodes {
		if n.ID == id {
			c.leader = c.cfg.Nodes[(i+1)%len(c.cfg.Nodes)].ID
			return
		}
	}
	c.leader = c.cfg.Nodes[0].ID
}

func (c *RaftClient) setLeader(hint uint64) {
	if c.addr(hint) == "" {
		return
	}
	c.mu.Lock()
	c.leader = hint
	c.mu.Unlock()
}

// leaderConn returns the replica the client sends to and its open connection (its own or
// the shared set's), nil when there is none yet.
func (c *RaftClient) leaderConn() (uint64, *conn) {
	c.mu.Lock()
	id := c.leader
	cn := c.conns[id]
	c.mu.Unlock()
	if c.cfg.Shared != nil {
		cn = c.cfg.Shared.lookup(id)
	}
	if cn == nil || cn.isClosed() {
		return id, nil
	}
	return id, cn
}

// connTo returns a live connection to the current target, dialling if needed.
func (c *RaftClient) connTo(ctx context.Context) (*conn, error) {
	id, cn := c.leaderConn()
	if cn != nil {
		return cn, nil
	}
	if c.cfg.Shared != nil {
		cn, err := c.cfg.Shared.get(ctx, id, c.addr(id), c.cfg.MaxFrameBytes, c.cfg.DialTimeout, c.cfg.AttemptTimeout)
		if err != nil {
			c.nextNode(id)
		}
		return cn, err
	}
	cn, err := dialConn(ctx, id, c.addr(id), c.cfg.MaxFrameBytes, c.cfg.DialTimeout, c.cfg.AttemptTimeout)
	if err != nil {
		c.nextNode(id)
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.conns[id]; old != nil && !old.isClosed() {
		cn.close() // lost a race with another caller
		return old, nil
	}
	if c.closed.Load() {
		cn.close()
		return nil, ErrClosed
	}
	c.conns[id] = cn
	return cn, nil
}

// Do executes ops as one batch and fills res. It retries on other replicas, with the same
// sequence numbers, until a replica answers or ctx ends; an error after a write was sent
// means its outcome is unknown (it may have been applied). Per-op statuses (not found, CAS
// mismatch) are results, not errors.
func (c *RaftClient) Do(ctx context.Context, ops []wire.Op, res *Results) error {
	if len(ops) == 0 || len(ops) > MaxOutstandingOps {
		return fmt.Errorf("client: a batch needs 1 to %d ops, got %d", MaxOutstandingOps, len(ops))
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.slots }()
	req := wire.ClientRequest{ClientID: c.cfg.ClientID, Ops: ops}
	if readOnly(ops) {
		// Reads never reach the store's session table, so they must not use up write
		// sequence numbers (a new session refuses a first write numbered beyond the window).
		// Their IDs only match replies to calls.
		req.FirstSeq = readSeqBit | c.reads.Add(uint64(len(ops)))
	} else {
		first, err := c.window.acquire(ctx, uint64(len(ops)))
		if err != nil {
			return err
		}
		defer c.window.release(first, uint64(len(ops)))
		req.FirstSeq = first
	}
	return c.attempts(ctx, &req, res, 1, false)
}

// attempts sends req, from attempt try on, until a replica answers it or ctx ends: the retry
// loop of Do, which Start's calls continue in when their first attempt was not answered.
// unanswered says whether an earlier attempt reached a replica without an answer.
func (c *RaftClient) attempts(ctx context.Context, req *wire.ClientRequest, res *Results, try int, unanswered bool) error {
	backoff := retryBackoffMin
	var lastErr error
	writes := !readOnly(req.Ops)
	for ; ; try++ {
		err := ctx.Err()
		if c.closed.Load() {
			err = ErrClosed
		}
		if err != nil {
			if unanswered && writes {
				err = fmt.Errorf("%w: %w", ErrMaybeApplied, err)
			}
			if lastErr != nil {
				return fmt.Errorf("%w (last attempt: %v)", err, lastErr)
			}
			return err
		}
		cn, err := c.connTo(ctx)
		if err == nil {
			var st wire.Status
			st, err = c.attempt(ctx, cn, req, res, &unanswered)
			if err == nil {
				res.Tries = try
				if err = c.settle(cn, st, res); err == nil {
					return nil
				}
				if err == errFollowHint {
					continue // follow the hint at once
				}
				if errors.Is(err, ErrMaybeApplied) {
					return err
				}
			} else {
				c.nextNode(cn.node)
			}
		}
		lastErr = err
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		backoff = min(2*backoff, retryBackoffMax)
	}
}

// errFollowHint is settle's answer to a redirect that names another replica: retry there at
// once.
var errFollowHint = errors.New("client: redirected")

// settle judges an answered attempt (status st from attempt, results in res): nil when the
// batch is done; errFollowHint when the answer names the leader to retry at;
// ErrMaybeApplied when retrying cannot tell the outcome; another error to retry after a
// backoff.
func (c *RaftClient) settle(cn *conn, st wire.Status, res *Results) error {
	switch st {
	case wire.StatusNotLeader:
		if hint := hintOf(res); hint != 0 && hint != cn.node {
			c.setLeader(hint)
			return errFollowHint
		}
		c.nextNode(cn.node)
		return fmt.Errorf("node %d is not the leader", cn.node)
	case wire.StatusBusy:
		return fmt.Errorf("node %d is busy", cn.node)
	}
	for _, r := range res.Ops {
		if r.Status == wire.StatusSessionExpired {
			// Retrying cannot tell: the replicas forgot the session.
			return fmt.Errorf("%w: the cluster no longer remembers session %d for this batch (idle past its TTL, or retried too late)", ErrMaybeApplied, c.cfg.ClientID)
		}
	}
	return nil
}

// readSeqBit marks the IDs of read-only batches, which live outside the write sequence space.
const readSeqBit = 1 << 63

func readOnly(ops []wire.Op) bool {
	for i := range ops {
		if ops[i].Kind != wire.OpGet {
			return false
		}
	}
	return true
}

// hintOf is stored in Results.Node by attempt for not-leader answers.
func hintOf(res *Results) uint64 { return res.Node }

// attempt sends req once to cn and waits for its reply or the attempt timeout. It returns
// the batch's status when every op shares a redirect status (not-leader, busy), and
// StatusOK otherwise.
func (c *RaftClient) attempt(ctx context.Context, cn *conn, req *wire.ClientRequest, res *Results, unanswered *bool) (wire.Status, error) {
	cl := getCall(req.FirstSeq)
	defer putCall(cl)
	if err := cn.send(cl, req); err != nil {
		// Part of the frame may have left: the replica may still see a complete request.
		*unanswered = true
		return 0, err
	}
	cl.timer.Reset(c.cfg.AttemptTimeout)
	defer cl.timer.Stop()
	select {
	case <-cl.done:
	case <-cl.timer.C:
		if cn.forget(cl) {
			*unanswered = true
			return 0, fmt.Errorf("node %d: no reply within %v", cn.node, c.cfg.AttemptTimeout)
		}
		<-cl.done
	case <-ctx.Done():
		if cn.forget(cl) {
			*unanswered = true
			return 0, ctx.Err()
		}
		<-cl.done
	}
	if cl.err != nil {
		*unanswered = true // sent, then the connection broke
		return 0, cl.err
	}
	return takeReply(cl, cn.node, len(req.Ops), res)
}

// takeReply reads the reply cl holds for a batch of nops ops into res: the batch's status
// when every op shares a redirect status (not-leader, busy; res.Node is then the hint), and
// StatusOK otherwise; an error when the reply does not answer every op.
func takeReply(cl *call, node uint64, nops int, res *Results) (wire.Status, error) {
	// A redirect (not the leader, busy) answers the whole batch, with one result or one per op.
	if len(cl.reply.Results) > 0 {
		if st := cl.reply.Results[0].Status; st == wire.StatusNotLeader || st == wire.StatusBusy {
			res.Node = cl.reply.LeaderHint
			return st, nil
		}
	}
	if len(cl.reply.Results) != nops {
		return 0, fmt.Errorf("node %d answered %d results for %d ops", node, len(cl.reply.Results), nops)
	}
	res.fillFrom(cl)
	return wire.StatusOK, nil
}

// Close closes every connection it owns (not the shared ones); calls in flight fail.
func (c *RaftClient) Close() error {
	c.closed.Store(true)
	c.mu.Lock()
	conns := c.conns
	c.conns = map[uint64]*conn{}
	c.mu.Unlock()
	for _, cn := range conns {
		cn.close()
	}
	return nil
}
