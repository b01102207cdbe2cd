package server

import (
	"sync"
	"testing"

	"github.com/consensusbench/consensusbench/transport"
)

// Raft replicas write client replies from the driver; PBFT replicas, where every replica
// answers every request and the driver is the bottleneck, leave them to the event loops
// (transport.Config.ClientWritesOnLoop; results/bench/README.md, "Direct client replies").
func TestReplyPathPerProtocol(t *testing.T) {
	for _, c := range []struct {
		protocol string
		nodes    int
		onLoop   bool
	}{{"raft", 3, false}, {"pbft", 4, true}} {
		var mu sync.Mutex
		var seen []bool
		lc, err := StartLocalCluster(LocalClusterConfig{Protocol: c.protocol, Nodes: c.nodes, Dir: t.TempDir(),
			TuneTransport: func(tc *transport.Config) {
				mu.Lock()
				seen = append(seen, tc.ClientWritesOnLoop)
				mu.Unlock()
			}})
		if err != nil {
			t.Fatal(err)
		}
		lc.Stop()
		if len(seen) != c.nodes {
			t.Fatalf("%s: %d transports configured, want %d", c.protocol, len(seen), c.nodes)
		}
		for i, on := range seen {
			if on != c.onLoop {
				t.Fatalf("%s replica %d: ClientWritesOnLoop %v, want %v", c.protocol, i+1, on, c.onLoop)
			}
		}
	}
}
