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

// OSDI '99 §4.1 and §4.4 over real replicas: a write sent to a primary that went silent
// (partitioned from its peers; the client's connection to it stays up, so the client learns
// nothing until its attempt timeout) completes on the client's first retransmission to every
// replica (Tries = 2): the backups
// change view on it and the new primary orders the request it received as a backup. Before,
// the new primary dropped it, its request timer moved the cluster to a second view, and the
// write completed only on the client's next retransmission (Tries = 3), two attempt timeouts
// after it was sent: the 2.0 s of the loaded-host failover figures.
func TestPBFTClusterFailoverTakesOneRetransmission(t *testing.T) {
	c := startPBFTCluster(t, storage.SyncNone)
	nodes := clientNodes(c)
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
	pbftReplica(c, 0).SetPartition([]uint64{2, 3, 4})
	for i := 1; i < 4; i++ {
		pbftReplica(c, i).SetPartition([]uint64{1})
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
		t.Fatalf("Tries = %d, want 2: the send to the silent primary, then one retransmission to every replica", res.Tries)
	}
	if got := pdo(t, cl, get("after")).Ops[0]; string(got.Value) != "2" {
		t.Fatalf("after reads back %q", got.Value)
	}
}

// A primary that crashes closes its client connections: the client sends the ordered requests
// waiting on it to every replica at once, and later ones too while it has no connection to
// the primary, so a write completes after one view change, inside its first attempt
// timeout, not after it.
func TestPBFTClientRetransmitsWhenThePrimaryConnectionBreaks(t *testing.T) {
	c := startPBFTCluster(t, storage.SyncNone)
	nodes := clientNodes(c)
	cl, err := client.NewPBFT(context.Background(), client.PBFTConfig{Nodes: nodes, KeySeed: c.Spec.PBFT.KeySeed,
		MaxClients: c.Spec.PBFT.MaxClients, MaxInflight: 2, AttemptTimeout: 5 * time.Second,
		DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	pdo(t, cl, put("before", "1"))
	if err := c.StopNode(0); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res := pdo(t, cl, put("after", "2"))
	if took := time.Since(start); took >= 5*time.Second || res.Tries > 2 {
		t.Fatalf("the write after the primary's crash took %v and %d tries, want one view change inside the 5 s attempt timeout", took, res.Tries)
	}
	if got := pdo(t, cl, get("after")).Ops[0]; string(got.Value) != "2" {
		t.Fatalf("after reads back %q", got.Value)
	}
}
