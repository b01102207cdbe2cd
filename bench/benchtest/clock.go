package benchtest

import (
	"context"
	"sync"
	"time"
)

// Clock is a simulated bench.Clock. SleepUntil jumps time forward (the sleeper has nothing to
// do until then, and in a one-worker run nobody else does either); WaitUntil waits for someone
// else to move time. With several sleeping workers time still only moves forward, but which
// worker moves it first depends on scheduling, so only one-worker runs are deterministic.
type Clock struct {
	mu      sync.Mutex
	now     time.Duration
	changed chan struct{} // closed and replaced whenever now moves
}

// NewClock returns a simulated clock at time 0.
func NewClock() *Clock { return &Clock{changed: make(chan struct{})} }

// Now returns the simulated time.
func (c *Clock) Now() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AdvanceTo moves time to t if t is later than now.
func (c *Clock) AdvanceTo(t time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t > c.now {
		c.now = t
		close(c.changed)
		c.changed = make(chan struct{})
	}
}

// Advance moves time forward by d.
func (c *Clock) Advance(d time.Duration) { c.AdvanceTo(c.Now() + d) }

// SleepUntil moves time to t (when later) and returns at once; a cancelled sleeper moves
// nothing.
func (c *Clock) SleepUntil(ctx context.Context, t time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.AdvanceTo(t)
	return nil
}

// WaitUntil blocks until another goroutine moves time to t or later.
func (c *Clock) WaitUntil(ctx context.Context, t time.Duration) error {
	for {
		c.mu.Lock()
		now, ch := c.now, c.changed
		c.mu.Unlock()
		if now >= t {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
