package server

import "time"

// tickClock turns the monotonic clock into core ticks. The driver asks it for the ticks that
// are due before it steps any input into the core, not only when its ticker fires: after a
// stall (a GC pause, SIGSTOP, a slow system call on the driver) the ticker and queued input
// are ready together and a select picks either, and a leader that served a queued read with
// the clock from before the stall would trust a lease that expired long ago (thesis §6.4.1).
// Catching up before every input keeps the core's clock at most one tick behind real time,
// which the lease's LeaseDriftTicks margin covers.
type tickClock struct {
	interval time.Duration
	next     time.Time // when the next tick is due
	maxBurst int       // ticks delivered at once at most; later ones are dropped (resync)
}

func newTickClock(interval time.Duration, maxBurst int, now time.Time) tickClock {
	return tickClock{interval: interval, next: now.Add(interval), maxBurst: maxBurst}
}

// restart makes the first tick due one interval from now.
func (c *tickClock) restart(now time.Time) { c.next = now.Add(c.interval) }

// due returns the number of ticks that have come due by now and consumes them. More than
// maxBurst overdue ticks are cut to maxBurst and the clock restarts from now: maxBurst is at
// least twice the election timeout, so every lease and election timer has expired anyway.
func (c *tickClock) due(now time.Time) int {
	if now.Before(c.next) {
		return 0
	}
	n := int(now.Sub(c.next)/c.interval) + 1
	if n > c.maxBurst {
		c.next = now.Add(c.interval)
		return c.maxBurst
	}
	c.next = c.next.Add(time.Duration(n) * c.interval)
	return n
}
