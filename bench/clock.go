package bench

import (
	"context"
	"time"
)

// Clock is the time source of the drivers. Times are offsets from the clock's own epoch, so a
// simulated clock in tests replays a run exactly.
//
// Two kinds of waiting are distinguished because a simulated clock treats them differently:
// a load worker that has nothing to do until t calls SleepUntil (a simulated clock may jump
// ahead to t), while an observer such as the per-second reporter calls WaitUntil (it only
// waits for time to pass). On the real clock they are the same. Both are safe for concurrent
// use and return ctx.Err() when ctx ends first.
type Clock interface {
	Now() time.Duration
	SleepUntil(ctx context.Context, t time.Duration) error
	WaitUntil(ctx context.Context, t time.Duration) error
}

// spinSleepMax is the longest wait done with time.Sleep alone: shorter sleeps skip the timer
// and select that make a wait cancellable, which keeps open-loop workers at high rates from
// allocating a timer per request. ctx is checked after such a sleep.
const spinSleepMax = 10 * time.Millisecond

type realClock struct{ epoch time.Time }

// NewRealClock returns the wall clock (monotonic readings), with its epoch at the call.
func NewRealClock() Clock { return &realClock{epoch: time.Now()} }

func (c *realClock) Now() time.Duration { return time.Since(c.epoch) }

func (c *realClock) SleepUntil(ctx context.Context, t time.Duration) error {
	d := t - c.Now()
	if d <= 0 {
		return ctx.Err()
	}
	if d <= spinSleepMax {
		time.Sleep(d)
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *realClock) WaitUntil(ctx context.Context, t time.Duration) error {
	return c.SleepUntil(ctx, t)
}
