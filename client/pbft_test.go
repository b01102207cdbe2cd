package client

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/wire"
)

// PBFT §4.1: replies carry the view so the client learns the primary; only a view that f+1
// replicas report is adopted, so f faulty replicas cannot steer the client away from the
// primary.
func TestPBFTClientViewNeedsFPlusOneReplicas(t *testing.T) {
	c := &PBFTClient{n: 4, replicaView: make([]atomic.Uint64, 4)}
	c.replicaView[3].Store(9) // one (possibly faulty) replica claims view 9
	c.updateView()
	if c.view.Load() != 0 {
		t.Fatalf("view %d adopted from one replica", c.view.Load())
	}
	c.replicaView[1].Store(2)
	c.updateView()
	if c.view.Load() != 2 {
		t.Fatalf("view %d, want 2 (replicas 1 and 3 are at >= 2)", c.view.Load())
	}
	if got := c.Primary(); got != 3 {
		t.Fatalf("primary node %d, want 3 (view 2 mod 4, +1)", got)
	}
}

func TestPBFTClientConfigRejectsBadIdentityRanges(t *testing.T) {
	nodes := []Node{{1, "a:1"}, {2, "a:2"}, {3, "a:3"}, {4, "a:4"}}
	for name, cfg := range map[string]PBFTConfig{
		"three nodes":       {Nodes: nodes[:3]},
		"ids out of order":  {Nodes: []Node{{2, "a:1"}, {1, "a:2"}, {3, "a:3"}, {4, "a:4"}}},
		"range past max":    {Nodes: nodes, MaxClients: 16, FixedClientIDs: true, FirstClientID: 10, MaxInflight: 8},
		"more than max":     {Nodes: nodes, MaxClients: 16, MaxInflight: 17},
		"first, not fixed":  {Nodes: nodes, FirstClientID: 10},
		"lease too short":   {Nodes: nodes, Lease: time.Millisecond},
		"lease too long":    {Nodes: nodes, Lease: time.Hour},
		"missing address":   {Nodes: []Node{{1, ""}, {2, "a:2"}, {3, "a:3"}, {4, "a:4"}}},
		"inflight negative": {Nodes: nodes, MaxInflight: -1},
	} {
		if _, err := NewPBFT(context.Background(), cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPBFTResultsDecodeAndCount(t *testing.T) {
	body := wire.AppendClientReply(nil, &wire.ClientReply{Results: []wire.OpResult{{Status: wire.StatusOK, Value: []byte("v")}, {Status: wire.StatusNotFound}}})
	var res Results
	var rep wire.ClientReply
	if err := res.fillPBFT(&rep, body, 2); err != nil || string(res.Ops[0].Value) != "v" || res.Ops[1].Status != wire.StatusNotFound {
		t.Fatalf("fill: %v %+v", err, res.Ops)
	}
	if err := res.fillPBFT(&rep, body, 3); err == nil {
		t.Fatal("two results accepted for three ops")
	}
	if err := res.fillPBFT(&rep, []byte("junk"), 1); err == nil {
		t.Fatal("undecodable result accepted")
	}
}
