package client

import (
	"context"
	"strings"
	"testing"

	"github.com/consensusbench/consensusbench/wire"
)

func TestRaftClientConfigAndBatchBounds(t *testing.T) {
	if _, err := NewRaft(Config{}); err != ErrNoNodes {
		t.Fatalf("no nodes: %v", err)
	}
	if _, err := NewRaft(Config{Nodes: []Node{{ID: 0, Addr: "x:1"}}}); err == nil {
		t.Fatal("node ID 0 accepted")
	}
	c, err := NewRaft(Config{Nodes: []Node{{ID: 1, Addr: "127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.ID() == 0 {
		t.Fatal("random client ID is zero")
	}
	var res Results
	// A batch wider than the session window could never be retried exactly-once.
	big := make([]wire.Op, MaxOutstandingOps+1)
	if err := c.Do(context.Background(), big, &res); err == nil || !strings.Contains(err.Error(), "1 to 1024 ops") {
		t.Fatalf("oversized batch: %v", err)
	}
	if err := c.Do(context.Background(), nil, &res); err == nil {
		t.Fatal("empty batch accepted")
	}
}

func TestRandomClientIDsDiffer(t *testing.T) {
	seen := map[uint64]bool{}
	for i := 0; i < 1000; i++ {
		id := RandomClientID()
		if id == 0 || seen[id] {
			t.Fatalf("client ID %d repeated or zero", id)
		}
		seen[id] = true
	}
}
