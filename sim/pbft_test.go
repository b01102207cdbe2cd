package sim

import (
	"errors"
	"testing"

	"github.com/consensusbench/consensusbench/pbftcore/byz"
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

// TestPBFTPartialPrePrepareSeeds is a PBFT campaign in which replica 0, the first primary, is
// partial-pre-prepare for the whole run (the nemesis does not switch it): as primary it shows
// each batch to one correct replica only, serves no batch, and later claims those batches
// prepared in its VIEW-CHANGEs. Rule A2 (TOCS 2002 §4.5) must not choose a batch no correct
// replica can supply: every seed must pass, and the campaign must reach the path (claims made,
// and NEW-VIEWs that chose a hidden batch).
func TestPBFTPartialPrePrepareSeeds(t *testing.T) {
	var last *pbftProtocol
	var claims, chosen, unheld int
	add := func() {
		if last != nil {
			claims += last.hiddenClaims()
			chosen += last.hiddenChosen
			unheld += last.unheldChosen
		}
	}
	runSeeds(t, "TestPBFTPartialPrePrepareSeeds", func(c *Cluster) Protocol {
		add()
		last = newPBFTWith(c, byz.PartialPrePrepare)
		return last
	}, pbftPartialSeeds)
	add()
	t.Logf("hidden-claims=%d hidden-chosen=%d unheld-chosen=%d", claims, chosen, unheld)
	if *seedFlag == 0 && !t.Failed() && (claims == 0 || chosen == 0) {
		t.Errorf("the campaign never reached the path: hidden-claims=%d hidden-chosen=%d", claims, chosen)
	}
}

// pbftPartialSeeds is TestPBFTPartialPrePrepareSeeds' default campaign.
const pbftPartialSeeds = 100

// TestPBFTForgeRequestSeeds is a PBFT campaign in which replica 0 (and 1 when f=2) is
// forge-request for the whole run: as primary it alters a client's operation under a batch
// digest recomputed to match. Backups accept such a PRE-PREPARE (the batch matches its
// digest) but must not prepare it, since no correct backup can authenticate the request:
// the validity checker fails any seed that executes an operation no client sent, and the
// campaign must reach the path (unverified-batches > 0).
func TestPBFTForgeRequestSeeds(t *testing.T) {
	var last *pbftProtocol
	unverified := 0
	runSeeds(t, "TestPBFTForgeRequestSeeds", func(c *Cluster) Protocol {
		if last != nil {
			unverified += last.unverifiedBatches()
		}
		last = newPBFTWith(c, byz.ForgeRequest)
		return last
	}, pbftForgeSeeds)
	if last != nil {
		unverified += last.unverifiedBatches()
	}
	t.Logf("unverified-batches=%d", unverified)
	if *seedFlag == 0 && !t.Failed() && unverified == 0 {
		t.Errorf("the campaign never reached the path: unverified-batches=0")
	}
}

// pbftForgeSeeds is TestPBFTForgeRequestSeeds' default campaign.
const pbftForgeSeeds = 100
