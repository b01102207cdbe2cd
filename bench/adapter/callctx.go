package adapter

import (
	"context"
	"sync"
	"time"
)

// callContext is the deadline of one call at a time, reused from call to call: what
// context.WithTimeout gives each call, without its three allocations, its registration in
// the parent's child map and a new runtime timer per call. At one op per request those were
// a tenth of the load generator's CPU (perf: context.WithTimeout, the runtime timer heap,
// mapassign under propagateCancel).
//
// Its owner calls begin before handing it to a client call and end after the call returns;
// the client must not keep it past the call (the Raft and PBFT clients use their context
// only inside Do). The parent is watched through one context.AfterFunc per parent, not per
// call. Safe for concurrent use by the owner's call and the timer and parent callbacks.
type callContext struct {
	mu       sync.Mutex
	parent   context.Context
	stop     func() bool // the AfterFunc watching parent
	timer    *time.Timer
	done     chan struct{}
	err      error
	deadline time.Time
}

// begin arms the context for a call under parent that must finish within timeout.
func (c *callContext) begin(parent context.Context, timeout time.Duration) {
	c.mu.Lock()
	if parent != c.parent {
		if c.stop != nil {
			c.stop()
		}
		c.parent = parent
		c.stop = context.AfterFunc(parent, c.parentDone)
	}
	if c.done == nil || c.err != nil {
		c.done, c.err = make(chan struct{}), nil // the last call's channel stays closed
	}
	c.deadline = time.Now().Add(timeout)
	if c.timer == nil {
		c.timer = time.AfterFunc(timeout, c.expire)
	} else {
		c.timer.Reset(timeout)
	}
	c.mu.Unlock()
	if parent.Err() != nil {
		c.parentDone() // parent's AfterFunc ran before this call's channel existed
	}
}

// end disarms the deadline after the call returned.
func (c *callContext) end() { c.timer.Stop() }

// expire closes the call's channel once its deadline has passed; a firing left over from
// an earlier call finds a later deadline and does nothing.
func (c *callContext) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && !time.Now().Before(c.deadline) {
		c.err = context.DeadlineExceeded
		close(c.done)
	}
}

func (c *callContext) parentDone() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && c.parent.Err() != nil {
		c.err = c.parent.Err()
		close(c.done)
	}
}

func (c *callContext) Deadline() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadline, true
}

func (c *callContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done
}

func (c *callContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *callContext) Value(key any) any {
	c.mu.Lock()
	p := c.parent
	c.mu.Unlock()
	return p.Value(key)
}
