package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/client"
	"github.com/consensusbench/consensusbench/storage"
	"github.com/consensusbench/consensusbench/transport"
	"github.com/consensusbench/consensusbench/wire"
)

// Thesis §6.4.1: a lease is never trusted past its real-time bound, whatever order the driver
// sees its inputs in. The leader's driver stalls (as under SIGSTOP or a long GC pause) while
// it holds a lease; the other replicas elect a new leader and acknowledge a newer write; a
// read reaches the stalled leader. On resume the queued read is handled before any tick (the
// adversarial order a select over ready channels may pick), so only a driver that brings the
// core's clock up to date before it steps an input refuses to serve the old value.
func TestRaftLeaseReadAfterDriverStallIsNotStale(t *testing.T) {
	spec := LocalClusterSpec("raft", 3, 0)
	spec.Raft.Reads = "lease"
	c, err := StartLocalCluster(LocalClusterConfig{Protocol: "raft", Nodes: 3, Dir: t.TempDir(), Sync: storage.SyncNone,
		Spec: spec, TuneTransport: func(tc *transport.Config) { tc.EventLoops = 2 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	cl := raftClient(t, c)
	do(t, cl, put("k", "old"))
	old := waitLeader(t, c, 0)
	lead := c.Replicas[old-1].(*RaftReplica)
	// A read through the old leader renews its lease just before the stall.
	if got := do(t, cl, get("k")); string(got.Ops[0].Value) != "old" {
		t.Fatalf("read before the stall = %q", got.Ops[0].Value)
	}

	// Stall the old leader's driver. When released, it steps every queued inbound batch
	// before returning to its loop (client input before ticks).
	stalled, release, resumed := make(chan struct{}), make(chan struct{}), make(chan struct{})
	lead.admin <- func() {
		close(stalled)
		<-release
		for {
			select {
			case b := <-lead.tr.Inbound():
				lead.handleBatch(b)
				continue
			default:
			}
			break
		}
		close(resumed)
	}
	<-stalled
	var others []uint64
	for _, n := range c.Spec.Nodes {
		if n.ID != old {
			others = append(others, n.ID)
		}
	}
	// Cut the old leader off from its peers, so that no message from the new leader reaches
	// it before the read and deposes it: only its own clock can tell it the lease is over.
	lead.SetPartition(others)
	for _, o := range others {
		c.Replicas[o-1].(Admin).SetPartition([]uint64{old})
	}
	newLead := waitLeader(t, c, old)
	// The newer write goes through a client that knows only the other replicas, so that the
	// one request in the stalled leader's queue is the read below.
	do(t, nodesClient(t, c, others...), put("k", "new")) // acknowledged by the new leader's quorum

	// A read sent to the stalled leader only, after the new write was acknowledged.
	oldOnly := nodesClient(t, c, old)
	type result struct {
		val string
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var res client.Results
		err := oldOnly.Do(ctx, []wire.Op{get("k")}, &res)
		if err == nil && res.Ops[0].Status != wire.StatusOK {
			err = errors.New(res.Ops[0].Status.String())
		}
		if err != nil {
			done <- result{err: err}
			return
		}
		done <- result{val: string(res.Ops[0].Value)}
	}()
	// Let the read reach the stalled leader's inbound queue, then resume it.
	deadline := time.Now().Add(5 * time.Second)
	for len(lead.tr.Inbound()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if len(lead.tr.Inbound()) == 0 {
		t.Fatal("the read never reached the stalled leader's inbound queue")
	}
	close(release)
	<-resumed
	r := <-done
	if r.err == nil && r.val == "old" {
		t.Fatalf("stale lease read: old leader %d answered %q after leader %d acknowledged %q", old, r.val, newLead, "new")
	}
	t.Logf("old leader %d after the stall: value %q, err %v (new leader %d)", old, r.val, r.err, newLead)
	for _, rep := range c.Replicas {
		rep.(Admin).SetPartition(nil)
	}
}

// nodesClient is a Raft client that knows only the given replicas.
func nodesClient(t *testing.T, c *LocalCluster, ids ...uint64) *client.RaftClient {
	t.Helper()
	var nodes []client.Node
	for _, id := range ids {
		nodes = append(nodes, client.Node{ID: id, Addr: c.Spec.Nodes[id-1].ClientAddr})
	}
	cl, err := client.NewRaft(client.Config{Nodes: nodes, AttemptTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}
