package adapter

import (
	"context"
	"errors"
	"testing"
	"time"
)

// waitDone reports whether c's channel closes within d.
func waitDone(c context.Context, d time.Duration) bool {
	select {
	case <-c.Done():
		return true
	case <-time.After(d):
		return false
	}
}

// A call's deadline closes its channel with DeadlineExceeded; the next call starts open
// with a new deadline, and a finished call's timer does not fire into the next one.
func TestCallContextDeadlinePerCall(t *testing.T) {
	var c callContext
	c.begin(context.Background(), 20*time.Millisecond)
	if !waitDone(&c, 2*time.Second) || !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("first call: err %v, want the deadline exceeded", c.Err())
	}
	c.end()

	c.begin(context.Background(), time.Hour)
	if c.Err() != nil || waitDone(&c, 30*time.Millisecond) {
		t.Fatalf("second call starts done: %v", c.Err())
	}
	if d, ok := c.Deadline(); !ok || time.Until(d) < 59*time.Minute {
		t.Fatalf("second call's deadline %v", d)
	}
	c.end()

	// A short call that finishes in time leaves nothing armed for the next one.
	c.begin(context.Background(), 10*time.Millisecond)
	c.end()
	c.begin(context.Background(), time.Hour)
	if waitDone(&c, 50*time.Millisecond) {
		t.Fatalf("an earlier call's timer ended a later call: %v", c.Err())
	}
	c.end()
}

// Cancelling the parent ends the call in progress with the parent's error, and a call begun
// under an already cancelled parent is done at once; a new parent is watched instead.
func TestCallContextFollowsParent(t *testing.T) {
	var c callContext
	parent, cancel := context.WithCancel(context.Background())
	c.begin(parent, time.Hour)
	cancel()
	if !waitDone(&c, 2*time.Second) || !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("parent cancelled during a call: err %v", c.Err())
	}
	c.end()
	c.begin(parent, time.Hour)
	if !waitDone(&c, 2*time.Second) || !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("call under a cancelled parent: err %v", c.Err())
	}
	c.end()

	type key struct{}
	fresh := context.WithValue(context.Background(), key{}, "v")
	c.begin(fresh, time.Hour)
	if c.Err() != nil || waitDone(&c, 30*time.Millisecond) {
		t.Fatalf("call under a new live parent starts done: %v", c.Err())
	}
	if c.Value(key{}) != "v" {
		t.Fatal("values do not come from the parent")
	}
	c.end()
}

// Reusing the context allocates nothing per call.
func TestCallContextReuseAllocs(t *testing.T) {
	var c callContext
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.begin(parent, time.Hour)
	c.end()
	if a := testing.AllocsPerRun(100, func() {
		c.begin(parent, time.Hour)
		select {
		case <-c.Done():
			t.Error("done before its deadline")
		default:
		}
		c.end()
	}); a != 0 {
		t.Fatalf("%.1f allocations per call, want 0", a)
	}
}
