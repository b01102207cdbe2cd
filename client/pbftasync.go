package client

import (
	"context"
	"fmt"
	"time"

	"github.com/consensusbench/consensusbench/wire"
)

// Start submits ops as one PBFT request, as Do does, without waiting for it: done is called
// exactly once with what Do would have returned (res filled before), and the request is
// given up after timeout (Do's ctx deadline). The contract is RaftClient.Start's: done runs
// on a reader goroutine (the one whose reply made f+1 matching), on the attempt timer's, or
// on a goroutine of its own, never inside Start; it must not block and may call Start
// again; ops and res belong to the request until done.
//
// An ordered request on a client identity that is free at once is sent from Start, and
// its retransmissions come from the identity's attempt timer (or at once, when the
// connection to the primary breaks, as for Do). A read-only batch, and a request that finds
// every identity busy or none made yet, runs through Do on a goroutine of its own.
func (c *PBFTClient) Start(ops []wire.Op, res *Results, timeout time.Duration, done func(error)) {
	if c.startFast(ops, res, timeout, done) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := c.Do(ctx, ops, res)
		cancel()
		done(err)
	}()
}

// pbftAsync is the Start request in flight on a session; guarded by the session's mu.
type pbftAsync struct {
	done     func(error) // nil: none in flight
	res      *Results
	nops     int
	writes   bool
	deadline time.Time
	fireAt   time.Time // when timer is due: a firing before it is a stale one
	tries    int
	timer    *time.Timer // AfterFunc(asyncExpire), made with the session
}

// startFast sends ops as an ordered request on a session taken without waiting; false when
// it sent nothing (Do then handles the request, and any error it meets again).
func (c *PBFTClient) startFast(ops []wire.Op, res *Results, timeout time.Duration, done func(error)) bool {
	if len(ops) == 0 || c.closed.Load() || !c.granted.Load() || (!c.cfg.OrderedReads && readOnly(ops)) {
		return false
	}
	select {
	case <-c.lost:
		return false
	default:
	}
	var s *pbftSession
	select {
	case s = <-c.free:
	default:
		return false
	}
	if s == nil { // not made yet: Do makes it
		c.free <- s
		return false
	}
	s.mu.Lock()
	if err := c.invokeLocked(s, ops, false); err != nil {
		s.mu.Unlock()
		c.free <- s
		return false // Do meets the error again and reports it
	}
	now := time.Now()
	a := &s.async
	a.done, a.res, a.nops, a.writes, a.tries = done, res, len(ops), !readOnly(ops), 1
	a.deadline = now.Add(timeout)
	c.armAsync(s, now)
	// Set before the send: a primary connection that breaks after it finds this request
	// (kickAsync) and retransmits it to every replica, as Do's wait on primaryDown does.
	c.flush(s)
	s.mu.Unlock()
	return true
}

// armAsync (re)starts the session's attempt timer: an attempt timeout from now, or less if
// the request's deadline comes first. Caller holds s.mu.
func (c *PBFTClient) armAsync(s *pbftSession, now time.Time) {
	a := &s.async
	wait := max(min(c.cfg.AttemptTimeout, a.deadline.Sub(now)), 0)
	a.fireAt = now.Add(wait)
	a.timer.Reset(wait)
}

// asyncResultLocked takes the result of the session's Start request once the replies made
// it ready: it returns the caller's done (nil when there is nothing to report) and the
// error to report. Caller holds s.mu, and after releasing it hands the session back and
// calls done.
func (c *PBFTClient) asyncResultLocked(s *pbftSession) (func(error), error) {
	a := &s.async
	if a.done == nil || !s.ready {
		return nil, nil
	}
	a.timer.Stop() // a firing already under way finds done nil and leaves
	err := a.res.fillPBFT(&s.rep, s.result, a.nops)
	a.res.Node = c.Primary()
	a.res.Tries = a.tries
	done := a.done
	a.done, a.res = nil, nil
	return done, err
}

// asyncExpire is the session's attempt timer: it retransmits the Start request to every
// replica (pbftcore's client tick), or gives it up when its deadline passed, the client
// closed or lost its identities.
func (c *PBFTClient) asyncExpire(s *pbftSession) {
	s.mu.Lock()
	a := &s.async
	now := time.Now()
	if a.done == nil || now.Before(a.fireAt) {
		s.mu.Unlock() // answered meanwhile, or a firing left over from an earlier request
		return
	}
	var reason error
	select {
	case <-c.closedC:
		reason = ErrClosed
	case <-c.lost:
		reason = ErrIdentitiesLost
	default:
		if !now.Before(a.deadline) {
			reason = context.DeadlineExceeded
		}
	}
	if reason == nil {
		a.tries++
		s.core.Tick() // TimeoutTicks is 1: one tick = one attempt timeout
		c.flush(s)
		c.armAsync(s, now)
		s.mu.Unlock()
		return
	}
	s.core.Abandon()
	if a.writes {
		reason = fmt.Errorf("%w: %w", ErrMaybeApplied, reason)
	}
	done := a.done
	a.done, a.res = nil, nil
	s.mu.Unlock()
	c.free <- s
	done(reason)
}

// kickAsync fires every Start request's attempt timer now: when the primary's connection
// broke (each is retransmitted to every replica at once), and when the client closes or
// loses its identities (each ends). It takes the sessions' locks, so it must not run under
// a connection's.
func (c *PBFTClient) kickAsync() {
	for i := range c.byID {
		s := c.byID[i].Load()
		if s == nil || s == placeholder {
			continue
		}
		s.mu.Lock()
		if s.async.done != nil {
			s.async.fireAt = time.Time{}
			s.async.timer.Reset(0)
		}
		s.mu.Unlock()
	}
}

// endDeferred ends a reader's batch (see pbftConn.readLoop): once no reader handles replies
// any more, every connection writes what its senders queued meanwhile.
func (c *PBFTClient) endDeferred() {
	c.deferring.Add(-1)
	for _, pc := range c.conns {
		pc.flushQueued()
	}
}

// flushQueued writes pc's queued frames unless a writer is already at it.
func (pc *pbftConn) flushQueued() {
	pc.mu.Lock()
	if pc.writing || len(pc.wbuf) == 0 || pc.nc == nil {
		pc.mu.Unlock()
		return
	}
	pc.writing = true
	pc.writeQueuedLocked()
}
