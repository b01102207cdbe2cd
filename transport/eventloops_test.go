package transport

import (
	"runtime"
	"testing"
)

// An unset EventLoops leaves Ps for the driver: one loop per four Ps, at least one (a loop
// blocks in epoll_wait holding its P; one per CPU starved the driver on 2 cores).
func TestDefaultEventLoops(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, c := range []struct{ procs, loops int }{{1, 1}, {2, 1}, {4, 1}, {8, 2}, {16, 4}} {
		runtime.GOMAXPROCS(c.procs)
		if got := DefaultEventLoops(); got != c.loops {
			t.Errorf("GOMAXPROCS %d: %d event loops, want %d", c.procs, got, c.loops)
		}
		cfg := testConfig(1)
		cfg.EventLoops = 0
		if got := cfg.withDefaults().EventLoops; got != c.loops {
			t.Errorf("GOMAXPROCS %d: withDefaults gives %d event loops, want %d", c.procs, got, c.loops)
		}
	}
}
