package sim

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// raftSeedsDefault is what plain `make test` runs; `make sim SEEDS=N` runs more.
const raftSeedsDefault = 1000

// TestRaftSeeds runs raftcore under the full fault mix: election safety (Raft §5.2), log
// matching (§5.3), leader completeness (§5.4), state machine safety (§5.4.3) after every
// event, linearizability of the client history, and liveness after heal.
func TestRaftSeeds(t *testing.T) {
	runSeeds(t, "TestRaftSeeds", NewRaft, raftSeedsDefault)
}

// brokenRaftCaught runs seeds of a deliberately broken adapter until one fails and returns
// that failure.
func brokenRaftCaught(t *testing.T, broken raftBreakage, tries int) error {
	t.Helper()
	for seed := uint64(1); seed <= uint64(tries); seed++ {
		c := NewCluster(seed, func(c *Cluster) Protocol { return newRaftWith(c, broken) }, Options{})
		if err := c.Run(); err != nil {
			t.Logf("seed %d caught: %.300s", seed, err)
			return err
		}
	}
	t.Fatalf("no seed in 1..%d caught the broken adapter (breakage %d)", tries, broken)
	return nil
}

// A node that acknowledges persistence before its write is durable can lose entries it
// counted toward a commit (Raft §5.4, thesis §10.2.1): some seed must fail a checker.
func TestRaftCheckerCatchesAckBeforePersist(t *testing.T) {
	brokenRaftCaught(t, raftAckEarly, 300)
}

// A node that applies a different op at an index must trip state machine safety (§5.4.3).
func TestRaftCheckerCatchesDivergentApply(t *testing.T) {
	err := brokenRaftCaught(t, raftApplyWrongOps, 50)
	if !strings.Contains(err.Error(), "state machine safety") {
		t.Fatalf("caught, but not by the state machine safety checker: %v", err)
	}
}

// A Raft run replays exactly: same seed, same trace, counters and history.
func TestRaftDeterministicReplay(t *testing.T) {
	for _, seed := range []uint64{3, 77, 834} {
		var a, b strings.Builder
		ca := NewCluster(seed, NewRaft, Options{Trace: &a})
		cb := NewCluster(seed, NewRaft, Options{Trace: &b})
		errA, errB := ca.Run(), cb.Run()
		if fmt.Sprint(errA) != fmt.Sprint(errB) || a.String() != b.String() || ca.Stats() != cb.Stats() ||
			!slices.Equal(ca.Counters(), cb.Counters()) || !slices.Equal(ca.History(), cb.History()) {
			t.Fatalf("seed %d: two runs differ (errors %v / %v, stats %+v / %+v)", seed, errA, errB, ca.Stats(), cb.Stats())
		}
	}
}

// A voter that grants its vote to every candidate of a term (it votes twice) lets two
// leaders win one term: election safety (Raft §5.2) must catch it.
func TestRaftCheckerCatchesDoubleVote(t *testing.T) {
	err := brokenRaftCaught(t, raftForgeVotes, 300)
	if !strings.Contains(err.Error(), "election safety") {
		t.Fatalf("caught, but not by the election safety checker: %v", err)
	}
}

// A follower that receives entries with a corrupted payload holds an entry with the same
// index and term as the leader but different contents: log matching (Raft §5.3) must fire.
func TestRaftCheckerCatchesLogMismatch(t *testing.T) {
	err := brokenRaftCaught(t, raftCorruptAppend, 50)
	if !strings.Contains(err.Error(), "log matching") {
		t.Fatalf("caught, but not by the log matching checker: %v", err)
	}
}

// A driver that ticks its core only when its ticker fires, and so answers reads queued
// during a process stall with the clock from before it, serves stale lease reads (thesis
// §6.4.1): the leader stalls, a new leader acknowledges a write, and the old one answers a
// read with the old value. Linearizability must catch it.
func TestRaftCheckerCatchesLeaseReadAfterStall(t *testing.T) {
	err := brokenRaftCaught(t, raftStaleClock, 2000)
	if !strings.Contains(err.Error(), "linearizab") {
		t.Fatalf("caught, but not as a non-linearizable history: %v", err)
	}
}
