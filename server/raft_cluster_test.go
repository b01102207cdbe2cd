package server

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/client"
	"github.com/consensusbench/consensusbench/kv"
	"github.com/consensusbench/consensusbench/storage"
	"github.com/consensusbench/consensusbench/transport"
	"github.com/consensusbench/consensusbench/wire"
)

func startCluster(t *testing.T, protocol string, n int, sync storage.SyncPolicy) *LocalCluster {
	t.Helper()
	c, err := StartLocalCluster(LocalClusterConfig{Protocol: protocol, Nodes: n, Dir: t.TempDir(), Sync: sync,
		TuneTransport: func(tc *transport.Config) {
			tc.PartialFrameTimeout = 300 * time.Millisecond
			tc.HandshakeTimeout = 300 * time.Millisecond
			tc.EventLoops = 2
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	return c
}

func raftClient(t *testing.T, c *LocalCluster) *client.RaftClient {
	t.Helper()
	nodes := clientNodes(c)
	cl, err := client.NewRaft(client.Config{Nodes: nodes, AttemptTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func put(k, v string) wire.Op { return wire.Op{Kind: wire.OpPut, Key: []byte(k), Value: []byte(v)} }
func get(k string) wire.Op    { return wire.Op{Kind: wire.OpGet, Key: []byte(k)} }

func do(t *testing.T, cl *client.RaftClient, ops ...wire.Op) *client.Results {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var res client.Results
	if err := cl.Do(ctx, ops, &res); err != nil {
		t.Fatalf("Do(%d ops): %v", len(ops), err)
	}
	return &res
}

func TestRaftClusterWritesAndReads(t *testing.T) {
	c := startCluster(t, "raft", 3, storage.SyncNone)
	cl := raftClient(t, c)
	for i := 0; i < 50; i++ {
		res := do(t, cl, put(fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)), put(fmt.Sprintf("x%d", i), "x"))
		for _, r := range res.Ops {
			if r.Status != wire.StatusOK {
				t.Fatalf("put %d: %v", i, r.Status)
			}
		}
	}
	res := do(t, cl, get("k7"), get("k49"), get("missing"))
	if string(res.Ops[0].Value) != "v7" || string(res.Ops[1].Value) != "v49" || res.Ops[2].Status != wire.StatusNotFound {
		t.Fatalf("reads: %+v", res.Ops)
	}
	// Compare-and-set: one matching, one not (Raft §8: every op goes through the log).
	res = do(t, cl, wire.Op{Kind: wire.OpCAS, Key: []byte("k1"), Expected: []byte("v1"), Value: []byte("w1")},
		wire.Op{Kind: wire.OpCAS, Key: []byte("k2"), Expected: []byte("nope"), Value: []byte("w2")})
	if res.Ops[0].Status != wire.StatusOK || res.Ops[1].Status != wire.StatusCASMismatch || string(res.Ops[1].Value) != "v2" {
		t.Fatalf("cas: %+v", res.Ops)
	}
	if got := do(t, cl, get("k1")).Ops[0].Value; string(got) != "w1" {
		t.Fatalf("k1 = %q after cas", got)
	}
}

// Raft §5.4 (leader completeness): a write acknowledged before the leader stops is on every
// future leader, so the new leader serves it.
func TestRaftLeaderStopLosesNoAcknowledgedWrite(t *testing.T) {
	c := startCluster(t, "raft", 3, storage.SyncAlways)
	cl := raftClient(t, c)
	var mu sync.Mutex
	acked := map[string]string{}
	writer := func(w int, stop <-chan struct{}, wg *sync.WaitGroup) {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k, v := fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("v%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			var res client.Results
			err := cl.Do(ctx, []wire.Op{put(k, v)}, &res)
			cancel()
			if err == nil && res.Ops[0].Status == wire.StatusOK {
				mu.Lock()
				acked[k] = v
				mu.Unlock()
			}
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go writer(w, stop, &wg)
	}
	time.Sleep(500 * time.Millisecond)
	leader := cl.Leader()
	if err := c.StopNode(int(leader - 1)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if cl.Leader() == leader {
		t.Fatalf("client still targets the stopped leader %d", leader)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acked) < 50 {
		t.Fatalf("only %d writes acknowledged", len(acked))
	}
	for k, v := range acked {
		if got := do(t, cl, get(k)).Ops[0]; got.Status != wire.StatusOK || string(got.Value) != v {
			t.Fatalf("acknowledged %s=%s reads back %v %q", k, v, got.Status, got.Value)
		}
	}
	// The stopped node restarts from its WAL and catches up.
	if err := c.RestartNode(int(leader - 1)); err != nil {
		t.Fatal(err)
	}
	do(t, cl, put("after-restart", "1"))
}

// Hostile input on the client port closes that connection only (the transport's
// documented behaviour); the cluster keeps serving a well-behaved client.
func TestRaftClusterSurvivesHostileConnections(t *testing.T) {
	c := startCluster(t, "raft", 3, storage.SyncNone)
	cl := raftClient(t, c)
	do(t, cl, put("a", "1"))
	attackConnections(t, c, wire.TypeClientRequest, wire.ProtocolRaft)
	// The cluster still serves.
	if got := do(t, cl, get("a")).Ops[0]; string(got.Value) != "1" {
		t.Fatalf("after hostile connections a = %q", got.Value)
	}
}

// attackConnections opens hostile connections to node 1 of c and checks each is closed:
// garbage bytes, a header announcing a body beyond MaxFrameBytes, a peer hello with the wrong
// cluster ID, a slowloris half header, and a well-formed frame of type reqType whose body is
// not a request. The caller then checks the cluster still serves.
func attackConnections(t *testing.T, c *LocalCluster, reqType wire.Type, proto wire.Protocol) {
	t.Helper()
	addr, peerAddr := c.Spec.Nodes[0].ClientAddr, c.Spec.Nodes[0].PeerAddr
	expectClosed := func(name string, nc net.Conn) {
		t.Helper()
		_ = nc.SetReadDeadline(time.Now().Add(3 * time.Second))
		var b [1]byte
		if _, err := nc.Read(b[:]); err == nil {
			t.Fatalf("%s: connection still open", name)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("%s: connection not closed within 3s", name)
		}
		nc.Close()
	}
	dial := func(a string) net.Conn {
		nc, err := net.Dial("tcp", a)
		if err != nil {
			t.Fatal(err)
		}
		return nc
	}
	g := dial(addr)
	_, _ = g.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	expectClosed("garbage", g)
	// A valid header (magic u32, version, type, flags u16) whose body length (bytes 8-11) is
	// beyond MaxFrameBytes.
	o := dial(addr)
	hdr := wire.AppendFrame(nil, reqType, 0, nil)
	hdr[12], hdr[13], hdr[14], hdr[15] = 0, 0, 0, 0
	hdr[8], hdr[9], hdr[10], hdr[11] = 0xff, 0xff, 0xff, 0x7f
	_, _ = o.Write(hdr)
	expectClosed("oversized", o)
	p := dial(peerAddr)
	_, _ = p.Write(wire.AppendMessageFrame(nil, 0, &wire.PeerHello{ClusterID: 999, NodeID: 2, Protocol: proto, ProtocolVersion: transport.ProtocolVersion}))
	expectClosed("wrong cluster", p)
	s := dial(addr)
	_, _ = s.Write(hdr[:7])
	expectClosed("slowloris", s)
	m := dial(addr)
	_, _ = m.Write(wire.AppendFrame(nil, reqType, 0, []byte("not a request")))
	expectClosed("malformed request", m)
}

func waitLeader(t *testing.T, c *LocalCluster, not uint64) uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range c.Replicas {
			if r == nil {
				continue
			}
			if st := r.(Admin).Status(); st.Role == "leader" && st.ID != not {
				return st.ID
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no leader other than %d within 10s", not)
	return 0
}

// Leadership transfer (thesis §3.10) and an injected partition of the leader (§5.2: the
// majority elects a new leader; the old one steps down by CheckQuorum, §6.2) both move
// leadership, and writes keep succeeding.
func TestRaftTransferAndPartition(t *testing.T) {
	c := startCluster(t, "raft", 3, storage.SyncNone)
	cl := raftClient(t, c)
	do(t, cl, put("a", "1"))
	lead := waitLeader(t, c, 0)
	to := lead%3 + 1
	if err := c.Replicas[lead-1].(LeaderTransferer).TransferLeader(to); err != nil {
		t.Fatal(err)
	}
	if got := waitLeader(t, c, lead); got != to {
		t.Fatalf("leadership went to %d, want %d", got, to)
	}
	// The transfer is an election the new leader started and a leader change it saw (a
	// run's result reports these counters; spurious elections must not go unnoticed).
	if v := metricValue(t, c.Replicas[to-1].Metrics(), "cb_raft_elections_total"); v == "0" {
		t.Errorf("node %d won a transfer election, cb_raft_elections_total = %s", to, v)
	}
	if v := metricValue(t, c.Replicas[to-1].Metrics(), "cb_raft_leader_changes_total"); v == "0" {
		t.Errorf("node %d saw the leader change, cb_raft_leader_changes_total = %s", to, v)
	}
	if err := c.Replicas[lead-1].(LeaderTransferer).TransferLeader(lead); err == nil {
		t.Fatal("a follower accepted TransferLeader")
	}
	do(t, cl, put("b", "2"))

	// Partition the new leader away from both peers.
	var others []uint64
	for _, n := range c.Spec.Nodes {
		if n.ID != to {
			others = append(others, n.ID)
		}
	}
	c.Replicas[to-1].(Admin).SetPartition(others)
	for _, o := range others {
		c.Replicas[o-1].(Admin).SetPartition([]uint64{to})
	}
	newLead := waitLeader(t, c, to)
	do(t, cl, put("c", "3"))
	for _, r := range c.Replicas {
		r.(Admin).SetPartition(nil)
	}
	res := do(t, cl, get("a"), get("b"), get("c"))
	for i, want := range []string{"1", "2", "3"} {
		if string(res.Ops[i].Value) != want {
			t.Fatalf("after heal (leader %d) read %d = %q, want %q", newLead, i, res.Ops[i].Value, want)
		}
	}
}

// Raft §7: with a small snapshot threshold the replicas snapshot and compact while serving;
// a follower that was down while the leader compacted past its log catches up through
// InstallSnapshot, and a replica restarted from its own snapshot + WAL serves the same data.
func TestRaftSnapshotsCompactionAndInstall(t *testing.T) {
	spec := &ClusterSpec{Protocol: "raft", Raft: RaftSpec{SnapshotThreshold: 40, SnapshotRetainEntries: 10}}
	c, err := StartLocalCluster(LocalClusterConfig{Protocol: "raft", Nodes: 3, Dir: t.TempDir(), Sync: storage.SyncNone, Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	cl := raftClient(t, c)
	do(t, cl, put("first", "1"))
	lead := waitLeader(t, c, 0)
	follower := lead%3 + 1
	// Cut the follower off first: appends the leader would otherwise queue for it while it
	// is down (its transport keeps a bounded queue per peer) could replay the whole gap when
	// it comes back, and it would never need the snapshot.
	for _, r := range c.Replicas {
		if id := r.(Admin).Status().ID; id != follower {
			r.(Admin).SetPartition([]uint64{follower})
		}
	}
	if err := c.StopNode(int(follower - 1)); err != nil {
		t.Fatal(err)
	}
	// Far past the threshold and the 10 retained entries: the leader no longer has the
	// entries the stopped follower needs, so it must send a snapshot.
	for i := 0; i < 300; i++ {
		do(t, cl, put(fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)))
	}
	for i, r := range c.Replicas {
		if r == nil {
			continue
		}
		select {
		case <-r.Done():
			t.Fatalf("replica %d stopped: %v", i+1, r.Err())
		default:
		}
		if n := r.(*RaftReplica).m.snapshots.Value(); n == 0 {
			t.Fatalf("replica %d took no snapshot in 300 entries with threshold 40", i+1)
		}
	}
	for _, r := range c.Replicas {
		if r != nil {
			r.(Admin).SetPartition(nil)
		}
	}
	if err := c.RestartNode(int(follower - 1)); err != nil {
		t.Fatal(err)
	}
	// Move leadership to the restarted follower: it can only lead with the full log.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := c.Replicas[follower-1].(Admin).Status()
		if st.Applied >= c.Replicas[lead-1].(Admin).Status().Applied {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted follower stuck at applied %d", st.Applied)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := c.Replicas[follower-1].(*RaftReplica).m.installed.Value(); n == 0 {
		t.Fatal("the restarted follower caught up without installing a snapshot")
	}
	if err := c.Replicas[lead-1].(LeaderTransferer).TransferLeader(follower); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, c, lead)
	cl = raftClient(t, c) // the restarted follower listens on a new port
	res := do(t, cl, get("first"), get("k0"), get("k299"))
	if string(res.Ops[0].Value) != "1" || string(res.Ops[1].Value) != "v0" || string(res.Ops[2].Value) != "v299" {
		t.Fatalf("reads after catch-up: %+v", res.Ops)
	}
	// Every replica restarts from its snapshot and WAL.
	stopAll(t, c)
	for i := range c.Replicas {
		if err := c.RestartNode(i); err != nil {
			t.Fatal(err)
		}
	}
	cl = raftClient(t, c) // the restarted replicas listen on new ports
	res = do(t, cl, get("first"), get("k150"))
	if string(res.Ops[0].Value) != "1" || string(res.Ops[1].Value) != "v150" {
		t.Fatalf("reads after full restart: %+v", res.Ops)
	}
}

// A write batch larger than the leader's proposal limit can never be proposed: it gets a
// definite error at once instead of a busy answer the client would retry forever.
func TestRaftOversizedBatchIsRefused(t *testing.T) {
	c := startCluster(t, "raft", 3, storage.SyncNone)
	cl := raftClient(t, c)
	do(t, cl, put("a", "1"))
	big := make([]byte, 1<<20)
	var ops []wire.Op
	for i := 0; i < 5; i++ {
		ops = append(ops, wire.Op{Kind: wire.OpPut, Key: []byte(fmt.Sprint("big", i)), Value: big})
	}
	res := do(t, cl, ops...)
	if res.Ops[0].Status != wire.StatusError || !strings.Contains(string(res.Ops[0].Value), "MaxBatchBytes") {
		t.Fatalf("oversized batch: %v %q", res.Ops[0].Status, res.Ops[0].Value)
	}
	if got := do(t, cl, get("a")).Ops[0]; string(got.Value) != "1" {
		t.Fatalf("after the refusal a = %q", got.Value)
	}
}

// stopAll stops every replica of c (a crash of all of them, for the restart tests).
func stopAll(t *testing.T, c *LocalCluster) {
	t.Helper()
	for i := range c.Replicas {
		if err := c.StopNode(i); err != nil {
			t.Fatal(err)
		}
	}
}

// A write retried after its session's window moved on gets its own status, not a generic
// error: the store cannot tell whether the first attempt was applied (kv
// StatusSessionExpired), and the client turns it into ErrMaybeApplied.
func TestRaftExpiredSessionHasItsOwnStatus(t *testing.T) {
	c := startCluster(t, "raft", 3, storage.SyncNone)
	leader := waitLeader(t, c, 0)
	ns, _ := c.Spec.Node(leader)
	nc, err := net.Dial("tcp", ns.ClientAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	rd := wire.NewReader(nc, 1<<20)
	do := func(seq uint64) wire.Status {
		t.Helper()
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		req := wire.AppendMessageFrame(nil, 0, &wire.ClientRequest{ClientID: 77, FirstSeq: seq, Ops: []wire.Op{put("k", fmt.Sprint(seq))}})
		if _, err := nc.Write(req); err != nil {
			t.Fatal(err)
		}
		f, err := rd.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		var rep wire.ClientReply
		if f.Type != wire.TypeClientReply || wire.DecodeClientReply(f.Body, &rep) != nil || len(rep.Results) != 1 {
			t.Fatalf("reply %v %x", f.Type, f.Body)
		}
		return rep.Results[0].Status
	}
	if st := do(1); st != wire.StatusOK {
		t.Fatalf("first write: %v", st)
	}
	if st := do(1 + 2*kv.SessionWindow); st != wire.StatusOK { // the window moves past seq 1
		t.Fatalf("write far ahead: %v", st)
	}
	if st := do(1); st != wire.StatusSessionExpired {
		t.Fatalf("seq 1 retried after the window moved: %v, want %v", st, wire.StatusSessionExpired)
	}
}
