package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/bench/nemesis"
)

// Kill is SIGKILL, Restart brings the node back at its ports, and a node killed on purpose
// is neither an unexpected exit nor a failed stop. The leader is found through the nodes'
// /admin/status (Raft §5.2: one leader per term, which every follower names).
func TestKillRestartAndAdmin(t *testing.T) {
	bin := node(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Start(ctx, Config{Protocol: "raft", Nodes: 3, NodeBin: bin, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(false)
	nem := c.Nemesis()
	var leader uint64
	for leader == 0 && ctx.Err() == nil {
		leader, _ = nemesis.FindLeader(ctx, nem)
		time.Sleep(20 * time.Millisecond)
	}
	if leader == 0 {
		t.Fatal("no leader found through /admin/status")
	}
	n, _ := c.node(leader)
	oldPID := n.PID()
	if err := nem.Kill(ctx, leader); err != nil {
		t.Fatal(err)
	}
	if done, err := n.Exited(); !done || !isSignalExit(err, 9) {
		t.Fatalf("after Kill: exited=%v err=%v, want SIGKILL", done, err)
	}
	if nem.Running(leader) {
		t.Fatal("a killed node counts as running")
	}
	if err := c.Unexpected(); err != nil {
		t.Fatalf("a node killed on purpose is reported: %v", err)
	}
	if err := nem.Restart(ctx, leader); err != nil {
		t.Fatal(err)
	}
	if n.PID() == oldPID || !nem.Running(leader) {
		t.Fatal("Restart did not start a new process")
	}
	// The restarted node answers its admin endpoint again.
	for ctx.Err() == nil {
		if _, err := nem.Status(ctx, leader); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := c.Stop(false); err != nil {
		t.Fatalf("Stop after a kill and restart: %v", err)
	}
}
