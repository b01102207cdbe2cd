package client

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/pbftcore"
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

// A write whose attempts reached a replica that never answered ends with ErrMaybeApplied
// (and the context's error); a read, or a write that never left the client, does not.
func TestMaybeApplied(t *testing.T) {
	silent := serveEach(t, func(nc net.Conn) { _, _ = io.Copy(io.Discard, nc) }) // reads everything, answers nothing
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := closed.Addr().String()
	closed.Close()
	write := []wire.Op{{Kind: wire.OpPut, Key: []byte("k"), Value: []byte("v")}}
	read := []wire.Op{{Kind: wire.OpGet, Key: []byte("k")}}
	for _, c := range []struct {
		name  string
		addr  string
		ops   []wire.Op
		maybe bool
	}{
		{"write, silent replica", silent, write, true},
		{"read, silent replica", silent, read, false},
		{"write, nobody listening", deadAddr, write, false},
	} {
		cl, err := NewRaft(Config{Nodes: []Node{{ID: 1, Addr: c.addr}}, AttemptTimeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 350*time.Millisecond)
		var res Results
		err = cl.Do(ctx, c.ops, &res)
		cancel()
		cl.Close()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v, want the deadline", c.name, err)
		}
		if errors.Is(err, ErrMaybeApplied) != c.maybe {
			t.Errorf("%s: %v; want ErrMaybeApplied %v", c.name, err, c.maybe)
		}
	}
}

// PBFT: a write sent to silent replicas ends with ErrMaybeApplied; a read does not.
func TestPBFTMaybeApplied(t *testing.T) {
	var nodes []Node
	kr := pbftcore.NewKeyring([]byte(PBFTDefaultKeySeed), 4, PBFTDefaultMaxClients)
	for i := range 4 {
		addr := serveEach(t, func(nc net.Conn) { // answers claims only
			r := wire.NewReader(nc, 0)
			for {
				f, err := r.ReadFrame()
				if err != nil {
					return
				}
				var req wire.Request
				if f.Type == wire.TypePBFTRequest && wire.DecodeRequest(f.Body, &req) == nil {
					fakeGrant(kr, i, nc, &req)
				}
			}
		})
		nodes = append(nodes, Node{ID: uint64(i + 1), Addr: addr})
	}
	cl, err := NewPBFT(context.Background(), PBFTConfig{Nodes: nodes, AttemptTimeout: 100 * time.Millisecond, MaxInflight: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, c := range []struct {
		ops   []wire.Op
		maybe bool
	}{
		{[]wire.Op{{Kind: wire.OpPut, Key: []byte("k"), Value: []byte("v")}}, true},
		{[]wire.Op{{Kind: wire.OpGet, Key: []byte("k")}}, false},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		var res Results
		err := cl.Do(ctx, c.ops, &res)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrMaybeApplied) != c.maybe {
			t.Errorf("%v: %v; want the deadline, ErrMaybeApplied %v", c.ops[0].Kind, err, c.maybe)
		}
	}
}
