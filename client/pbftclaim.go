package client

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/consensusbench/consensusbench/pbftcore"
	"github.com/consensusbench/consensusbench/wire"
)

// claim claims the client's identities (see PBFTClient): the FixedClientIDs range, or any
// free range of MaxInflight. The claim travels as one principal (the fixed range's first,
// else a random one: claims bypass the principal's exactly-once record, so which one does
// not matter, and random ones keep concurrent claimants from sharing the connection the
// replicas answer claims of that principal on). It waits until ctx ends, at most
// DefaultPBFTClaimTimeout when ctx has no deadline.
func (c *PBFTClient) claim(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultPBFTClaimTimeout)
		defer cancel()
	}
	c.nonce = newNonce()
	cl := pbftcore.Claim{Kind: pbftcore.ClaimAny, Nonce: c.nonce, Count: uint32(c.cfg.MaxInflight)}
	vehicle := rand.Uint64N(uint64(c.cfg.MaxClients))
	if c.cfg.FixedClientIDs {
		cl.Kind, cl.Start, vehicle = pbftcore.ClaimAt, c.cfg.FirstClientID, c.cfg.FirstClientID
	}
	g, err := c.control(ctx, vehicle, &cl)
	want := fmt.Sprintf("%d pbft client identities", c.cfg.MaxInflight)
	if c.cfg.FixedClientIDs {
		want = fmt.Sprintf("pbft client identities [%d, %d)", c.cfg.FirstClientID, c.cfg.FirstClientID+uint64(c.cfg.MaxInflight))
	}
	if err != nil {
		return fmt.Errorf("client: claiming %s: no f+1 matching replies: %w", want, err)
	}
	switch g.Status {
	case pbftcore.Granted:
	case pbftcore.HeldByOther:
		return fmt.Errorf("client: claiming %s: another live client holds some of them", want)
	case pbftcore.NoRoom:
		return fmt.Errorf("client: claiming %s: no free range among max_clients %d (live clients hold the others; a crashed client's are freed when its lease expires)",
			want, c.cfg.MaxClients)
	default:
		return fmt.Errorf("client: claiming %s: replicas answered status %d", want, g.Status)
	}
	if g.Count != uint32(c.cfg.MaxInflight) || g.Start+uint64(g.Count) > uint64(c.cfg.MaxClients) {
		return fmt.Errorf("client: claiming %s: replicas granted [%d, %d)", want, g.Start, g.Start+uint64(g.Count))
	}
	c.first, c.floor = g.Start, g.Floor
	c.granted.Store(true)
	c.registerGranted()
	return nil
}

// newNonce returns a random nonzero claim nonce.
func newNonce() uint64 {
	var b [8]byte
	for {
		_, _ = crand.Read(b[:])
		if n := binary.LittleEndian.Uint64(b[:]); n != 0 {
			return n
		}
	}
}

// registerGranted registers the granted range on every connection that is up (one dialled
// later registers it itself).
func (c *PBFTClient) registerGranted() {
	frame := wire.AppendMessageFrame(nil, 0, &wire.ClientRequest{ClientID: c.first, FirstSeq: uint64(c.cfg.MaxInflight)})
	for _, pc := range c.conns {
		pc.send(frame)
	}
}

// renewLoop renews the lease every Lease/3 until Close; a renewal that finds the lease
// expired marks the identities lost.
func (c *PBFTClient) renewLoop() {
	defer close(c.renewDone)
	period := c.cfg.Lease / 3
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-c.bg.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.bg, period)
		g, err := c.control(ctx, c.first, &pbftcore.Claim{Kind: pbftcore.ClaimRenew, Nonce: c.nonce})
		cancel()
		if err == nil && g.Status == pbftcore.Lost {
			c.lostOnce.Do(func() { close(c.lost) })
			c.kickAsync() // Start requests in flight end with ErrIdentitiesLost
			return
		}
	}
}

// control sends one claim, renewal or release as principal vehicle and waits for its grant
// (f+1 matching replies). Now and Lease are filled in here.
func (c *PBFTClient) control(ctx context.Context, vehicle uint64, cl *pbftcore.Claim) (pbftcore.Grant, error) {
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	var g pbftcore.Grant
	core, err := pbftcore.NewClient(pbftcore.ClientConfig{ID: vehicle, N: c.n, Keys: c.keyring.Client(vehicle), TimeoutTicks: 1,
		SignAll: c.cfg.SignAll, MaxOpBytes: PBFTMaxOpBytes})
	if err != nil {
		return g, err
	}
	ctl := &pbftControl{core: core, id: vehicle, done: make(chan struct{}, 1)}
	c.ctl.Store(ctl)
	defer c.ctl.Store(nil)
	cl.Now, cl.Lease = uint64(time.Now().UnixNano()), uint64(c.cfg.Lease)
	op := pbftcore.AppendClaim(nil, cl)
	ctl.mu.Lock()
	err = core.InvokeClaim(op)
	if err == nil {
		c.flushControl(ctl)
	}
	ctl.mu.Unlock()
	if err != nil {
		return g, err
	}
	t := time.NewTimer(c.cfg.AttemptTimeout)
	defer t.Stop()
	for {
		select {
		case <-ctl.done:
			ctl.mu.Lock()
			if !ctl.ready {
				ctl.mu.Unlock()
				continue
			}
			ctl.ready = false
			err := pbftcore.DecodeGrant(ctl.result, &g)
			if err == nil && g.Nonce == cl.Nonce {
				ctl.mu.Unlock()
				return g, nil
			}
			// Another claimant's grant, sent as the same principal, reached this connection
			// (replicas answer a principal's claims on the connection of its newest one):
			// ask again; the claim is idempotent.
			if err = core.InvokeClaim(op); err == nil {
				c.flushControl(ctl)
			}
			ctl.mu.Unlock()
			if err != nil {
				return g, err
			}
		case <-t.C:
			ctl.mu.Lock()
			core.Tick() // TimeoutTicks is 1: retransmit to every replica
			c.flushControl(ctl)
			ctl.mu.Unlock()
			t.Reset(c.cfg.AttemptTimeout)
		case <-ctx.Done():
			return g, ctx.Err()
		}
	}
}

// flushControl sends the control core's pending requests and records its result. Caller
// holds ctl.mu.
func (c *PBFTClient) flushControl(ctl *pbftControl) {
	rd := ctl.core.Ready()
	for i := range rd.Messages {
		m := &rd.Messages[i]
		if m.Type != pbftcore.MsgRequest || len(m.Requests) != 1 {
			continue
		}
		r := &m.Requests[0]
		ctl.frame = c.appendRequestFrame(ctl.frame[:0], &ctl.wreq, r)
		for _, pc := range c.conns { // claims go to every replica (pbftcore.Client.InvokeClaim)
			pc.send(ctl.frame)
		}
	}
	if rd.Done {
		ctl.result = append(ctl.result[:0], rd.Result...)
		ctl.ready = true
		select {
		case ctl.done <- struct{}{}:
		default:
		}
	}
	ctl.core.Advance()
}

// onControlReply steps a reply to a Timestamp-0 request (a grant) into the control in
// flight, if it is for its principal.
func (c *PBFTClient) onControlReply(replica int, r *wire.PBFTReply) {
	ctl := c.ctl.Load()
	if ctl == nil || r.ClientID != ctl.id || r.ReadOnly || r.Refused {
		return
	}
	m := replyMessage(replica, r)
	ctl.mu.Lock()
	ctl.core.Step(&m)
	c.flushControl(ctl)
	ctl.mu.Unlock()
}
