package server

import (
	"context"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/client"
	"github.com/consensusbench/consensusbench/storage"
	"github.com/consensusbench/consensusbench/wire"
)

// pbftFailoverAttemptTimeout is the client's attempt timeout in
// TestPBFTClusterFailoverTakesOneRetransmission: far above the test spec's view-change timer
// (40 ticks of 5 ms), so that the view change fits inside one attempt even on a loaded host.
const pbftFailoverAttemptTimeout = 1500 * time.Millisecond

// OSDI '99 §4.1 and §4.4 over real replicas: a write sent to a primary that has stopped
// completes on the client's first retransmission to every replica (Tries = 2): the backups
// change view on it and the new primary orders the request it received as a backup. Before,
// the new primary dropped it, its request timer moved the cluster to a second view, and the
// write completed only on the client's next retransmission (Tries = 3), two attempt timeouts
// after it was sent: the 2.0 s of the loaded-host failover figures.
func TestPBFTClusterFailoverTakesOneRetransmission(t *testing.T) {
	c := startPBFTCluster(t, storage.SyncNone)
	var nodes []client.Node
	for _, n := range c.Spec.Nodes {
		nodes = append(nodes, client.Node{ID: n.ID, Addr: n.ClientAddr})
	}
	cl, err := client.NewPBFT(context.Background(), client.PBFTConfig{Nodes: nodes, KeySeed: c.Spec.PBFT.KeySeed,
		MaxClients: c.Spec.PBFT.MaxClients, MaxInflight: 1, AttemptTimeout: pbftFailoverAttemptTimeout,
		DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	pdo(t, cl, put("before", "1"))
	if p := cl.Primary(); p != 1 {
		t.Fatalf("client targets node %d, want the primary of view 0 (node 1)", p)
	}
	if err := c.StopNode(0); err != nil {
		t.Fatal(err)
	}
	res := pdo(t, cl, put("after", "2"))
	if res.Ops[0].Status != wire.StatusOK {
		t.Fatalf("put after the failover: %v", res.Ops[0].Status)
	}
	for i := 1; i < 4; i++ {
		if v := pbftReplica(c, i).View(); v != 1 {
			t.Errorf("replica %d in view %d, want 1 (one view change)", i, v)
		}
	}
	if res.Tries != 2 {
		t.Fatalf("Tries = %d, want 2: the send to the stopped primary, then one retransmission to every replica", res.Tries)
	}
	if got := pdo(t, cl, get("after")).Ops[0]; string(got.Value) != "2" {
		t.Fatalf("after reads back %q", got.Value)
	}
}
