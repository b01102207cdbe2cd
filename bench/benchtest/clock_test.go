package benchtest

import (
	"context"
	"testing"
	"time"
)

func TestClockSleepJumpsWaitWaits(t *testing.T) {
	c := NewClock()
	woke := make(chan time.Duration)
	go func() {
		if err := c.WaitUntil(context.Background(), 5*time.Second); err != nil {
			t.Error(err)
		}
		woke <- c.Now()
	}()
	_ = c.SleepUntil(context.Background(), 2*time.Second)
	if c.Now() != 2*time.Second {
		t.Fatalf("after SleepUntil(2s) the time is %v", c.Now())
	}
	_ = c.SleepUntil(context.Background(), time.Second) // never backwards
	c.Advance(3 * time.Second)
	if got := <-woke; got < 5*time.Second {
		t.Errorf("WaitUntil(5s) returned at %v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.WaitUntil(ctx, time.Hour); err == nil {
		t.Error("WaitUntil ignored a cancelled context")
	}
}
