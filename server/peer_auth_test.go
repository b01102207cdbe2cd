package server

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/storage"
	"github.com/consensusbench/consensusbench/transport"
	"github.com/consensusbench/consensusbench/wire"
)

// forgePeer connects to node 1's peer port claiming to be node 2 and sends an
// AppendEntries whose term is at the top of the range (it wrapped the term and took nodes
// down before the core refused it). It reports whether node 1 closed the connection.
func forgePeer(t *testing.T, c *LocalCluster) (closed bool) {
	t.Helper()
	conn, err := net.Dial("tcp", c.Spec.Nodes[0].PeerAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := wire.AppendMessageFrame(nil, 0, &wire.PeerHello{ClusterID: c.Spec.ClusterID, NodeID: 2,
		Protocol: wire.ProtocolRaft, ProtocolVersion: transport.ProtocolVersion})
	msg = wire.AppendMessageFrame(msg, 0, &wire.AppendEntries{Term: 1<<64 - 1, From: 2, To: 1, PrevIndex: 1, PrevTerm: 1, Commit: 1})
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 4096)
	for {
		if _, err := conn.Read(buf); err != nil {
			ne, ok := err.(net.Error)
			return !ok || !ne.Timeout()
		}
	}
}

func metricValue(t *testing.T, m *Metrics, name string) string {
	t.Helper()
	var b bytes.Buffer
	if err := m.Write(&b); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	t.Fatalf("metric %s not found", name)
	return ""
}

// With the cluster secret (the local cluster's default), a forged hello claiming a member's
// ID is refused at the handshake: the forged AppendEntries never reaches the core. Without
// it, the frame reaches the core, which refuses it as malformed and counts it (the second
// line of defence). Either way node 1's term and the cluster's service are unharmed.
func TestForgedPeerCannotReachTheCore(t *testing.T) {
	for _, unauth := range []bool{false, true} {
		c, err := StartLocalCluster(LocalClusterConfig{Protocol: "raft", Nodes: 3, Dir: t.TempDir(), Sync: storage.SyncNone,
			UnauthenticatedPeers: unauth, TuneTransport: func(tc *transport.Config) { tc.EventLoops = 2 }})
		if err != nil {
			t.Fatal(err)
		}
		cl := raftClient(t, c)
		do(t, cl, put("a", "1"))
		term := c.Replicas[0].(Admin).Status().Term
		closed := forgePeer(t, c)
		m := c.Replicas[0].Metrics()
		malformed := metricValue(t, m, "cb_peer_malformed_total")
		switch {
		case !unauth && (!closed || malformed != "0"):
			t.Errorf("authenticated: connection closed %v, malformed %s; want closed before the core", closed, malformed)
		case unauth && malformed != "1":
			t.Errorf("unauthenticated: malformed %s, want the core to refuse 1", malformed)
		}
		if got := c.Replicas[0].(Admin).Status().Term; got != term {
			t.Errorf("unauth=%v: node 1's term moved %d -> %d", unauth, term, got)
		}
		do(t, cl, put("b", "2"))
		_ = c.Stop()
	}
}

// The connection and memory attacks on a running cluster: a flood of idle client
// connections at node 1's cap must not keep a restarted peer from rejoining (it took 45 s
// before the caps were separate), and many client connections each holding an unfinished
// frame of the largest allowed size must stay inside the partial-frame budget (100 x 16 MiB
// took a leader to 1.1 GB before).
func TestConnectionAndMemoryFloodsAreBounded(t *testing.T) {
	const clientCap = 256
	c, err := StartLocalCluster(LocalClusterConfig{Protocol: "raft", Nodes: 3, Dir: t.TempDir(), Sync: storage.SyncNone,
		TuneTransport: func(tc *transport.Config) {
			tc.EventLoops = 2
			tc.MaxClientConns = clientCap
			tc.MaxClientConnsPerHost = clientCap
			tc.PartialFrameTimeout = time.Minute
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	cl := raftClient(t, c)
	do(t, cl, put("a", "1"))
	// The flood fills every client slot of node 1 (one slot stays with the test client,
	// which may be connected there).
	var flood []net.Conn
	defer func() {
		for _, f := range flood {
			f.Close()
		}
	}()
	for range clientCap + 16 {
		f, err := net.Dial("tcp", c.Spec.Nodes[0].ClientAddr)
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, f)
	}
	tm := c.Replicas[0].(*RaftReplica).tr.Metrics()
	deadline := time.Now().Add(5 * time.Second)
	for tm.ClosedOverLimit.Load() < 16 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if tm.ClosedOverLimit.Load() < 16 {
		t.Fatalf("ClosedOverLimit = %d with %d connections over a cap of %d", tm.ClosedOverLimit.Load(), clientCap+16, clientCap)
	}
	// A peer restarts and must reach node 1 and the others at once.
	if err := c.StopNode(1); err != nil {
		t.Fatal(err)
	}
	do(t, cl, put("b", "2"))
	start := time.Now()
	if err := c.RestartNode(1); err != nil {
		t.Fatal(err)
	}
	for c.Replicas[1].(*RaftReplica).tr.PeerConnected(1) == false || !c.Replicas[0].(*RaftReplica).tr.PeerConnected(2) {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the restarted node did not reconnect to node 1 within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("restarted peer reconnected to the flooded node in %v", time.Since(start).Round(time.Millisecond))
	for _, f := range flood {
		f.Close()
	}
	flood = nil

	// Memory: each connection announces a frame of the largest client size and sends half.
	maxFrame := min(2*c.Replicas[0].(*RaftReplica).maxBatchBytes+raftClientFrameSlack, wire.DefaultMaxFrameBytes)
	body := maxFrame - wire.HeaderSize
	frame := wire.AppendFrame(nil, wire.TypeClientRequest, 0, make([]byte, body))
	half := frame[:wire.HeaderSize+body/2]
	budget := int64(transport.DefaultPartialFrameBudget)
	conns := int(budget/int64(maxFrame)) + 8
	for range conns {
		f, err := net.Dial("tcp", c.Spec.Nodes[0].ClientAddr)
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, f)
		_, _ = f.Write(half)
	}
	deadline = time.Now().Add(10 * time.Second)
	for tm.ClosedOverBudget.Load() < 8 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := tm.ClosedOverBudget.Load(); n < 8 {
		t.Fatalf("ClosedOverBudget = %d with %d connections x %d bytes over a budget of %d", n, conns, maxFrame, budget)
	}
	if held := tm.PartialBytes.Load(); held > budget {
		t.Fatalf("partial frames hold %d bytes, over the budget %d", held, budget)
	}
	// The restarted node listens on new ports: a new client finds them.
	do(t, raftClient(t, c), put("c", "3"))
}
