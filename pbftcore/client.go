package pbftcore

import (
	"bytes"
	"errors"
	"fmt"
)

// DefaultClientTimeoutTicks is how long a client waits for a result before retransmitting to
// every replica (OSDI '99 §4.1).
const DefaultClientTimeoutTicks = 30

// ClientConfig configures a Client.
type ClientConfig struct {
	ID           uint64
	N            int
	Keys         *ClientKeys
	TimeoutTicks int
	// FirstTimestamp is the timestamp of the first request; a restarted client must pass one
	// above every timestamp it used before (exactly-once is per timestamp).
	FirstTimestamp uint64
	SignAll        bool
	MaxOpBytes     int
}

// ClientReady is a client's pending output: requests to send, and a finished operation.
// Slices alias client memory until Advance.
type ClientReady struct {
	Messages []Message
	Done     bool   // the operation started by the last Invoke has a result
	Result   []byte // its result
	// Ordered reports that a read-only operation fell back to ordering.
	Ordered bool
}

// Client is the client side of PBFT: it sends a request, retransmits to all replicas on
// timeout, and accepts a result once f+1 distinct replicas sent matching replies (2f+1 for
// the read-only path, OSDI '99 §5.1.3; a read that does not get them is retried as an
// ordered request: on timeout, once every replica answered without 2f+1 matching, or as
// soon as f+1 distinct replicas refused it, since then at most 2f can still answer). An
// ordered request goes first to the primary of the highest view f+1 replicas replied from.
// Shared by client/ and the simulator. Not safe for concurrent use.
type Client struct {
	cfg  ClientConfig
	f    int
	auth *clientAuth
	view uint64
	// replicaView is, per replica, the highest view of an authentic ordered reply from it; view
	// is the highest view that f+1 of them reached (supportedView).
	replicaView []uint64

	ts       uint64
	busy     bool
	wasRead  bool
	readOnly bool
	claim    bool // the current operation is a claim (InvokeClaim)
	op       []byte
	req      Request
	digest   Digest
	timer    int
	replies  [][]byte // per replica: result for the current request
	got      uint64
	refused  uint64 // replicas that refused the current read-only attempt
	result   []byte
	done     bool

	msgs []Message
}

// ErrClientBusy is returned by Invoke while an operation is outstanding.
var ErrClientBusy = errors.New("pbftcore: client has an outstanding operation")

// NewClient creates a client.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.N < 4 || cfg.N > MaxReplicas || cfg.Keys == nil || len(cfg.Keys.ReplicaSecrets) != cfg.N || cfg.Keys.ID != cfg.ID {
		return nil, fmt.Errorf("%w: client config (N=%d)", ErrInvalidConfig, cfg.N)
	}
	if cfg.TimeoutTicks <= 0 {
		cfg.TimeoutTicks = DefaultClientTimeoutTicks
	}
	if cfg.MaxOpBytes <= 0 {
		cfg.MaxOpBytes = DefaultMaxOpBytes
	}
	ts := max(cfg.FirstTimestamp, 1) - 1
	return &Client{cfg: cfg, f: (cfg.N - 1) / 3, auth: newClientAuth(cfg.Keys, cfg.SignAll), ts: ts,
		replies: make([][]byte, cfg.N), replicaView: make([]uint64, cfg.N)}, nil
}

// Timestamp is the timestamp of the current (or last) operation.
func (c *Client) Timestamp() uint64 { return c.ts }

// Busy reports whether an operation is outstanding.
func (c *Client) Busy() bool { return c.busy }

// Invoke starts an operation with the next timestamp. A read-only one goes to every
// replica; an ordered one to the primary the client believes in.
func (c *Client) Invoke(op []byte, readOnly bool) error {
	return c.InvokeAt(c.ts+1, op, readOnly)
}

// InvokeAt starts an operation with timestamp ts, which must exceed every earlier one (a
// caller with its own per-client sequence numbers uses them as timestamps).
func (c *Client) InvokeAt(ts uint64, op []byte, readOnly bool) error {
	if c.busy {
		return ErrClientBusy
	}
	if ts <= c.ts {
		return ErrStale
	}
	if len(op) > c.cfg.MaxOpBytes {
		return ErrMalformed
	}
	c.busy, c.done = true, false
	c.ts = ts
	c.wasRead, c.claim = readOnly, false
	c.op = append(c.op[:0], op...)
	c.start(readOnly)
	return nil
}

// InvokeClaim starts a claim of client identities (claim.go): an ordered request with
// Timestamp 0 whose op is an encoded Claim, sent to every replica at once (each replica then
// answers on the connection the claim came from) and accepted, like any ordered result, on
// f+1 matching replies. A claim is outside the exactly-once timestamps, so only a client
// that never invoked anything else may claim (one created with FirstTimestamp 0 or 1); it
// may claim any number of times.
func (c *Client) InvokeClaim(op []byte) error {
	if c.busy {
		return ErrClientBusy
	}
	if c.ts != 0 {
		return ErrStale
	}
	if len(op) > c.cfg.MaxOpBytes {
		return ErrMalformed
	}
	c.busy, c.done = true, false
	c.wasRead, c.claim = false, true
	c.op = append(c.op[:0], op...)
	c.start(false)
	return nil
}

func (c *Client) start(readOnly bool) {
	c.readOnly = readOnly
	c.req = Request{Client: c.cfg.ID, Timestamp: c.ts, ReadOnly: readOnly, Op: c.op}
	c.digest = requestDigest(&c.req)
	c.req.Auth = c.auth.sealRequest(&c.digest, nil) // fresh: earlier unsent messages keep theirs
	c.got, c.refused = 0, 0
	for i := range c.replies {
		c.replies[i] = c.replies[i][:0]
	}
	c.timer = c.cfg.TimeoutTicks
	to := int(c.view % uint64(c.cfg.N))
	if readOnly || c.claim {
		to = ToAll
	}
	c.send(to)
}

func (c *Client) send(to int) {
	m := Message{Type: MsgRequest, From: FromClient, To: to}
	m.Requests = append(m.Requests, c.req)
	c.msgs = append(c.msgs, m)
}

// Tick advances the client's timer: on expiry an ordered request is retransmitted to all
// replicas, a read-only one is retried as an ordered request.
func (c *Client) Tick() {
	if !c.busy {
		return
	}
	c.timer--
	if c.timer > 0 {
		return
	}
	if c.readOnly {
		c.start(false)
		return
	}
	c.timer = c.cfg.TimeoutTicks
	c.send(ToAll)
}

// Abandon forgets the outstanding operation (its caller gave up on it).
func (c *Client) Abandon() { c.busy = false }

// Step processes a reply; replies that are not authentic, not for the current request or
// not in its mode are ignored. A refusal (read-only only) is never a result: it counts once
// per replica per attempt, and f+1 of them order the read at once; f refusals (all that f
// Byzantine replicas can send) do not.
func (c *Client) Step(m *Message) {
	if m.Type != MsgReply || !c.busy || m.Client != c.cfg.ID || m.Timestamp != c.ts ||
		m.ReadOnly != c.readOnly || m.From < 0 || m.From >= c.cfg.N || !c.auth.verifyReply(m) {
		return
	}
	if m.Refused {
		if !c.readOnly {
			return // only the read-only path refuses
		}
		c.refused |= 1 << m.From
		if countBits(c.refused) > c.f || countBits(c.got|c.refused) == c.cfg.N {
			c.start(false) // 2f+1 matching answers can no longer come: order the read
		}
		return
	}
	if !m.ReadOnly && m.View > c.replicaView[m.From] {
		c.replicaView[m.From] = m.View
		c.view = c.supportedView()
	}
	c.replies[m.From] = append(c.replies[m.From][:0], m.Result...)
	c.got |= 1 << m.From
	need := c.f + 1
	if c.readOnly {
		need = 2*c.f + 1
	}
	matching := 0
	for i := range c.replies {
		if c.got&(1<<i) != 0 && bytes.Equal(c.replies[i], m.Result) {
			matching++
		}
	}
	if matching >= need {
		c.result = append(c.result[:0], m.Result...)
		c.busy, c.done = false, true
		return
	}
	if c.readOnly && countBits(c.got|c.refused) == c.cfg.N {
		c.start(false) // every replica answered or refused, without 2f+1 matching: order the read
	}
}

// supportedView returns the highest view that f+1 replicas replied from (or from a later
// one), at least the current one: at least one correct replica reached it, so f faulty
// replicas replying from views of their choosing cannot steer the client's requests to a
// primary they pick (OSDI '99 §4.1: the client sends to the primary of the current view, which
// it learns from replies).
func (c *Client) supportedView() uint64 {
	best := c.view
	for _, v := range c.replicaView {
		if v <= best {
			continue
		}
		ahead := 0
		for _, w := range c.replicaView {
			if w >= v {
				ahead++
			}
		}
		if ahead > c.f {
			best = v
		}
	}
	return best
}

func countBits(x uint64) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}

// Ready returns the pending output.
func (c *Client) Ready() ClientReady {
	return ClientReady{Messages: c.msgs, Done: c.done, Result: c.result, Ordered: c.done && c.wasRead && !c.readOnly}
}

// Advance releases the last Ready.
func (c *Client) Advance() {
	clear(c.msgs)
	c.msgs = c.msgs[:0]
	c.done = false
}
