package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/consensusbench/consensusbench/wire"
)

// Start submits ops as one batch, as Do does, without waiting for it: done is called exactly
// once with what Do would have returned, and res is filled before. The batch is given up
// with an error once timeout has passed (Do's ctx deadline).
//
// The common case costs no goroutine: the batch goes out on the connection to the leader
// the client already has, and the connection's reader goroutine calls done when the reply
// arrives. A batch that Start cannot send that way (no live connection yet, the window or
// MaxInflight full) and one whose first attempt is not answered with a result (a
// redirect, a timeout, a broken connection) continue in a goroutine of their own, through
// Do's retries.
//
// done runs on a reader goroutine or on that goroutine, never inside Start. It must not
// block: the reader answers nothing else while it runs. It may call Start again (a closed
// loop's next request); that frame leaves with the others the same read answered, in one
// write. ops and res belong to the batch until done is called: the caller must not change
// or reuse them before.
func (c *RaftClient) Start(ops []wire.Op, res *Results, timeout time.Duration, done func(error)) {
	ac := asyncPool.Get().(*asyncCall)
	ac.c, ac.res, ac.done = c, res, done
	ac.deadline = time.Now().Add(timeout)
	ac.req = wire.ClientRequest{ClientID: c.cfg.ClientID, Ops: ops}
	if len(ops) == 0 || len(ops) > MaxOutstandingOps || !c.startFast(ac) {
		go ac.slow()
	}
}

// asyncCall is one Start batch: its request, the call its first attempt is registered as
// on the connection, and the timer bounding that attempt.
type asyncCall struct {
	c        *RaftClient
	req      wire.ClientRequest
	res      *Results
	done     func(error)
	deadline time.Time
	// Set by startFast once the first attempt holds a MaxInflight slot and, for writes,
	// sequence numbers.
	cn    *conn
	first uint64
	reads bool // read-only: numbered outside the write window, which it does not hold
	cl    call
	timer *time.Timer // the first attempt's timeout, firing expire
}

// asyncPool holds asyncCalls for reuse (set up in init: its New refers to methods that
// put back into it).
var asyncPool sync.Pool

func init() { asyncPool.New = newAsyncCall }

func newAsyncCall() any {
	ac := &asyncCall{}
	ac.cl.onDone = ac.answered
	ac.timer = time.AfterFunc(time.Hour, ac.expire)
	ac.timer.Stop()
	return ac
}

// startFast sends ac's first attempt on the live connection to the believed leader, taking
// a MaxInflight slot and write sequence numbers without waiting. false: nothing was taken
// or sent.
func (c *RaftClient) startFast(ac *asyncCall) bool {
	if c.closed.Load() {
		return false
	}
	_, cn := c.leaderConn()
	if cn == nil {
		return false // Do dials it
	}
	select {
	case c.slots <- struct{}{}:
	default:
		return false
	}
	n := uint64(len(ac.req.Ops))
	ac.reads = readOnly(ac.req.Ops)
	var first uint64
	if ac.reads {
		first = readSeqBit | c.reads.Add(n) // as Do numbers reads
	} else {
		var ok bool
		if first, ok = c.window.tryAcquire(n); !ok {
			<-c.slots
			return false
		}
	}
	ac.cn, ac.first, ac.req.FirstSeq = cn, first, first
	ac.cl.key, ac.cl.err, ac.cl.vals = callKey{}, nil, ac.cl.vals[:0]
	ac.cl.reply.Results = ac.cl.reply.Results[:0]
	// Armed before the send: the reply may arrive, and answered run, before send returns.
	ac.timer.Reset(c.cfg.AttemptTimeout)
	if err := cn.send(&ac.cl, &ac.req); err != nil {
		// Never registered: the connection had failed before the frame was queued.
		if ac.timer.Stop() {
			ac.release()
			ac.cn = nil
			return false
		}
		// The timer fired meanwhile; expire finds nothing to forget and leaves ac alone.
		go ac.continueAfter(false, err, false)
	}
	return true
}

// answered settles the first attempt: it runs on the connection's reader goroutine with the
// reply, or wherever the connection failed with cl.err set. The call is out of the
// connection's table, so nothing else settles it.
func (ac *asyncCall) answered(cl *call) {
	stopped := ac.timer.Stop()
	c := ac.c
	if cl.err != nil {
		c.nextNode(ac.cn.node) // as Do moves on from a broken connection
		go ac.continueAfter(true, cl.err, stopped)
		return
	}
	st, err := takeReply(cl, ac.cn.node, len(ac.req.Ops), ac.res)
	if err != nil {
		c.nextNode(ac.cn.node) // as Do moves on from a replica that answered wrongly
		go ac.continueAfter(false, err, stopped)
		return
	}
	ac.res.Tries = 1
	if err := c.settle(ac.cn, st, ac.res); err != nil {
		if errors.Is(err, ErrMaybeApplied) { // retrying cannot tell
			ac.finish(err, stopped)
			return
		}
		go ac.continueAfter(false, err, stopped)
		return
	}
	ac.finish(nil, stopped)
}

// expire gives the first attempt up after AttemptTimeout, unless its reply came first.
func (ac *asyncCall) expire() {
	if ac.cn.forget(&ac.cl) {
		ac.c.nextNode(ac.cn.node)
		ac.continueAfter(true, fmt.Errorf("node %d: no reply within %v", ac.cn.node, ac.c.cfg.AttemptTimeout), true)
	}
}

// continueAfter runs the retries of a batch whose first attempt, which holds a slot and
// sequence numbers, got no result (err says why), then settles it. reached says the
// attempt may have been received; reusable, that the timer will not fire into ac again.
func (ac *asyncCall) continueAfter(reached bool, err error, reusable bool) {
	ctx, cancel := context.WithDeadline(context.Background(), ac.deadline)
	if err != errFollowHint {
		// Back off as Do does after an unanswered or refused attempt; a redirect naming
		// the leader is followed at once.
		t := time.NewTimer(retryBackoffMin)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	rerr := ac.c.attempts(ctx, &ac.req, ac.res, 2, reached)
	cancel()
	if rerr != nil && err != errFollowHint {
		rerr = fmt.Errorf("%w (first attempt: %v)", rerr, err)
	}
	ac.finish(rerr, reusable)
}

// release gives back the MaxInflight slot and sequence numbers startFast took.
func (ac *asyncCall) release() {
	if !ac.reads {
		ac.c.window.release(ac.first, uint64(len(ac.req.Ops)))
	}
	<-ac.c.slots
}

// finish releases what the first attempt held and reports err to the caller.
func (ac *asyncCall) finish(err error, reusable bool) {
	done := ac.done
	ac.release()
	ac.recycle(reusable)
	done(err)
}

// slow runs a batch Start could not send at once through Do.
func (ac *asyncCall) slow() {
	ctx, cancel := context.WithDeadline(context.Background(), ac.deadline)
	err := ac.c.Do(ctx, ac.req.Ops, ac.res)
	cancel()
	done := ac.done
	ac.recycle(true)
	done(err)
}

// recycle returns ac to the pool, unless its timer may still fire into it: then ac is left
// untouched for that firing (which reads it, and finds nothing to forget) and the garbage
// collector takes it after.
func (ac *asyncCall) recycle(reusable bool) {
	if !reusable {
		return
	}
	ac.c, ac.res, ac.done, ac.cn = nil, nil, nil, nil
	ac.req = wire.ClientRequest{}
	asyncPool.Put(ac)
}
