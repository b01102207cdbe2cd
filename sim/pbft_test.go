package sim

import (
	"errors"
	"testing"
)

// TestPBFTSeeds is the PBFT campaign: n = 3f+1 (f = 1 or 2), up to f Byzantine replicas
// (pbftcore/byz behaviours, switched by the nemesis), partitions, drops, duplicates,
// reordering and amnesiac crash-restarts within the fault budget. Checkers: agreement on
// the batch executed at every sequence number among correct replicas and in-order execution
// (OSDI '99 §4.2, safety), validity (every executed request was sent by a client), porcupine
// linearizability of the client history (including reads served by the read-only
// optimization, §5.1.3), and liveness after the network heals.
func TestPBFTSeeds(t *testing.T) { runSeeds(t, "TestPBFTSeeds", newPBFT, 300) }

// The agreement checker must be able to fail: two correct replicas reporting different
// batches for one sequence number is caught.
func TestPBFTCheckerCatchesDisagreement(t *testing.T) {
	c := NewCluster(1, newPBFT, Options{})
	p := c.proto.(*pbftProtocol)
	r := &pbftReplica{p: p, i: 0}
	r2 := &pbftReplica{p: p, i: 1}
	rd := readyWithBatch(1, 0xaa)
	r.check(&rd)
	if p.Check() != nil {
		t.Fatal("one report is not a violation")
	}
	rd = readyWithBatch(1, 0xbb)
	r2.check(&rd)
	if err := p.Check(); !errors.Is(err, errPBFTAgreement) {
		t.Fatalf("disagreement not caught: %v", err)
	}
}
