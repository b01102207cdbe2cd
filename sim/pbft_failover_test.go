package sim

import (
	"fmt"
	"testing"

	"github.com/consensusbench/consensusbench/pbftcore/byz"
)

// Failover after a primary crash, in client timeouts. Every replica is correct, the network
// is clean (no drops, duplicates, reordering or partitions), and at pbftFailoverCrashTick the
// primary crashes; it restarts when the safety phase ends. The clients' timeout is longer
// than a view change (pbftFailoverClientTimeout), so a request sent to the dead primary must
// complete after its first retransmission to every replica: the backups start their timers
// on it, change view, and the new primary orders it. A request that needs a second
// retransmission waited for the client rather than for the protocol (before the fix, the
// new primary had dropped the requests it received as a backup, and only the client's next
// retransmission brought them back, after a second view change).
const (
	pbftFailoverSeeds     = 40
	pbftFailoverCrashTick = 100
	pbftFailoverTicks     = 400 // the safety phase: the crashed primary stays down until then
	// pbftFailoverMarginTicks is what a view change and the ordering of the retransmitted
	// requests may take beyond the backups' timer: VIEW-CHANGEs, NEW-VIEW, three phases and
	// the reply, each behind a disk write of up to DiskUnitsMax in logged runs.
	pbftFailoverMarginTicks = 20
)

// pbftFailoverClientTimeout is the clients' timeout for a run whose view-change timer is
// timeout ticks: the timer, the margin, and the timer again, so that a request that waits
// for a second view change (a timer that expired in the new view) also needs a second
// retransmission.
func pbftFailoverClientTimeout(timeout int) int { return 2*timeout + pbftFailoverMarginTicks }

// pbftFailoverRun runs one seed and returns the protocol (its retransmitted histogram) and
// the host it crashed.
func pbftFailoverRun(seed uint64) (*pbftProtocol, NodeID, error) {
	var p *pbftProtocol
	opts := Options{TuneParams: func(pr *Params) {
		pr.SafetyTicks = pbftFailoverTicks
		pr.DropRate, pr.DupRate, pr.LongDelayRate = 0, 0, 0
		pr.FaultWeights = [faultKinds]int{}
	}}
	c := NewCluster(seed, func(c *Cluster) Protocol {
		p = newPBFTWith(c, byz.Honest)
		for i := range p.byzB {
			p.byzB[i] = byz.Honest
		}
		p.spoilClient = -1
		p.clientTimeout = pbftFailoverClientTimeout(p.timeout)
		return p
	}, opts)
	var crashed NodeID
	c.onTick = func(tick int) {
		if tick != pbftFailoverCrashTick {
			return
		}
		for _, r := range p.replicas {
			if r != nil {
				crashed = NodeID(r.nd.Status().Primary + 1)
				c.crash(c.Host(crashed))
				return
			}
		}
	}
	err := c.Run()
	if err == nil && crashed == 0 {
		err = fmt.Errorf("no primary crashed at tick %d", pbftFailoverCrashTick)
	}
	return p, crashed, err
}

// TestPBFTFailoverOneRetransmission: after a primary crash, every ordered request completes
// within one retransmission to every replica, and the campaign does reach the failover
// (requests that needed that one retransmission).
func TestPBFTFailoverOneRetransmission(t *testing.T) {
	var hist [pbftRetransmittedMax + 1]int
	for seed := uint64(1); seed <= pbftFailoverSeeds; seed++ {
		p, crashed, err := pbftFailoverRun(seed)
		if err != nil {
			t.Errorf("seed %d: %v", seed, err)
			continue
		}
		for k, n := range p.retransmitted {
			hist[k] += n
		}
		if late := p.retransmitted[2:]; late[0]+late[1]+late[2] > 0 {
			t.Errorf("seed %d (%s; primary n%d crashed at tick %d, client timeout %d ticks): requests completed after "+
				"0, 1, 2, 3, 4+ retransmissions: %v; more than one means the new primary waited for the client",
				seed, p.Describe(), crashed, pbftFailoverCrashTick, p.clientTimeout, p.retransmitted)
		}
	}
	t.Logf("ordered requests completed after 0, 1, 2, 3, 4+ retransmissions: %v", hist)
	if hist[1] == 0 {
		t.Errorf("no request needed a retransmission: the campaign never reached the failover")
	}
}
