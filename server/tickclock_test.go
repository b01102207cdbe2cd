package server

import (
	"testing"
	"time"
)

// The clock hands out every tick that came due, however late it is asked, and resyncs after
// more than maxBurst ticks were missed.
func TestTickClockCatchesUp(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := newTickClock(10*time.Millisecond, 50, t0)
	steps := []struct {
		at   time.Duration
		want int
	}{
		{5 * time.Millisecond, 0},
		{10 * time.Millisecond, 1},
		{19 * time.Millisecond, 0},
		{20 * time.Millisecond, 1},
		{75 * time.Millisecond, 5}, // a stall: 30, 40, 50, 60, 70
		{79 * time.Millisecond, 0},
		{80 * time.Millisecond, 1},
		{10 * time.Second, 50}, // far more than maxBurst missed: capped, then resynced
		{10*time.Second + 9*time.Millisecond, 0},
		{10*time.Second + 10*time.Millisecond, 1},
	}
	for _, s := range steps {
		if got := c.due(t0.Add(s.at)); got != s.want {
			t.Fatalf("due at %v = %d, want %d", s.at, got, s.want)
		}
	}
}
