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
