package adapter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/client"
	"github.com/consensusbench/consensusbench/server"
	"github.com/consensusbench/consensusbench/storage"
	"github.com/consensusbench/consensusbench/transport"
	"github.com/consensusbench/consensusbench/wire"
)

func startRaft(t *testing.T) (*server.LocalCluster, []client.Node) {
	t.Helper()
	c, err := server.StartLocalCluster(server.LocalClusterConfig{Protocol: "raft", Nodes: 3, Dir: t.TempDir(),
		Sync: storage.SyncNone, TuneTransport: func(tc *transport.Config) { tc.EventLoops = 2 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	var nodes []client.Node
	for _, n := range c.Spec.Nodes {
		nodes = append(nodes, client.Node{ID: n.ID, Addr: n.ClientAddr})
	}
	return c, nodes
}

// Writes from concurrent pipelined calls on several sessions are all readable afterwards,
// reads of missing keys report not found, and the read values land in Out.
func TestRaftSessionsWriteAndRead(t *testing.T) {
	_, nodes := startRaft(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := Probe(ctx, Config{Protocol: "raft", Nodes: nodes}); err != nil {
		t.Fatalf("probe: %v", err)
	}
	tg, err := Open(Config{Protocol: "raft", Nodes: nodes, Info: map[string]string{"sync": "none"}})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if d := tg.Describe(); d["nodes"] != "3" || d["f"] != "1" || d["protocol"] != "raft" || d["sync"] != "none" {
		t.Fatalf("Describe() = %v", d)
	}
	const sessions, pipeline, batches, batchSize = 2, 4, 10, 8
	var wg sync.WaitGroup
	errs := make(chan error, sessions*pipeline)
	var opened []bench.Session
	for w := range sessions {
		s, err := tg.Open(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		opened = append(opened, s)
		for p := range pipeline {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ops := make([]bench.Op, batchSize)
				for b := range batches {
					for i := range ops {
						k := fmt.Sprintf("k-%d-%d-%d-%d", w, p, b, i)
						ops[i] = bench.Op{Kind: bench.OpWrite, Key: []byte(k), Value: []byte("v" + k)}
					}
					if err := s.Do(ctx, ops); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("write: %v", err)
	}
	reads := []bench.Op{
		{Kind: bench.OpRead, Key: []byte("k-1-3-9-7"), Out: make([]byte, 0, 4)},
		{Kind: bench.OpRead, Key: []byte("missing"), Found: true},
		{Kind: bench.OpRead, Key: []byte("k-0-0-0-0")},
	}
	if err := opened[0].Do(ctx, reads); err != nil {
		t.Fatalf("read: %v", err)
	}
	if !reads[0].Found || string(reads[0].Out) != "vk-1-3-9-7" {
		t.Errorf("read k-1-3-9-7: found=%v out=%q", reads[0].Found, reads[0].Out)
	}
	if reads[1].Found || len(reads[1].Out) != 0 {
		t.Errorf("read missing: found=%v out=%q", reads[1].Found, reads[1].Out)
	}
	if !reads[2].Found || string(reads[2].Out) != "vk-0-0-0-0" {
		t.Errorf("read k-0-0-0-0: found=%v out=%q", reads[2].Found, reads[2].Out)
	}
	for _, s := range opened {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A batch fails when the cluster is gone, within the request timeout, not at the end of the
// caller's context.
func TestRaftSessionTimesOutWhenClusterIsDown(t *testing.T) {
	c, nodes := startRaft(t)
	tg, err := Open(Config{Protocol: "raft", Nodes: nodes, RequestTimeout: 300 * time.Millisecond, AttemptTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	octx, ocancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer ocancel()
	if err := Probe(octx, Config{Protocol: "raft", Nodes: nodes}); err != nil {
		t.Fatal(err)
	}
	s, err := tg.Open(octx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = s.Do(ctx, []bench.Op{{Kind: bench.OpWrite, Key: []byte("k"), Value: []byte("v")}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do on a stopped cluster: %v, want the request timeout", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the caller's context ran out: the request timeout did not bound the call")
	}
}

func TestFromResults(t *testing.T) {
	ops := []bench.Op{{Kind: bench.OpRead}, {Kind: bench.OpWrite}, {Kind: bench.OpRead}}
	ok := []client.Result{{Status: wire.StatusOK, Value: []byte("x")}, {Status: wire.StatusOK}, {Status: wire.StatusNotFound}}
	if err := fromResults(ops, ok); err != nil {
		t.Fatalf("all fine: %v", err)
	}
	if !ops[0].Found || string(ops[0].Out) != "x" || ops[2].Found {
		t.Fatalf("reads not filled: %+v", ops)
	}
	for name, res := range map[string][]client.Result{
		"write not found": {{Status: wire.StatusOK}, {Status: wire.StatusNotFound}, {Status: wire.StatusOK}},
		"busy":            {{Status: wire.StatusBusy}, {Status: wire.StatusOK}, {Status: wire.StatusOK}},
		"short":           {{Status: wire.StatusOK}},
	} {
		if err := fromResults(ops, res); err == nil {
			t.Errorf("%s: batch accepted", name)
		}
	}
}

// PBFT sessions get disjoint client identity ranges, pipeline on them, and read back what
// they wrote after f+1 matching replies (Castro and Liskov §4.1).
func TestPBFTSessionsWriteAndRead(t *testing.T) {
	c, err := server.StartLocalCluster(server.LocalClusterConfig{Protocol: "pbft", Nodes: 4, Dir: t.TempDir(),
		Sync: storage.SyncNone, Spec: &server.ClusterSpec{Protocol: "pbft", PBFT: server.PBFTSpec{MaxClients: 16, KeySeed: "adapter-test"}},
		TuneTransport: func(tc *transport.Config) { tc.EventLoops = 1 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	var nodes []client.Node
	for _, n := range c.Spec.Nodes {
		nodes = append(nodes, client.Node{ID: n.ID, Addr: n.ClientAddr})
	}
	cfg := Config{Protocol: "pbft", Nodes: nodes, PBFT: PBFTConfig{KeySeed: "adapter-test", MaxClients: 16}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Probe(ctx, cfg); err != nil {
		t.Fatalf("probe: %v", err)
	}
	tg, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d := tg.Describe(); d["nodes"] != "4" || d["f"] != "1" {
		t.Fatalf("Describe() = %v", d)
	}
	const pipeline = 4
	tg.SetPipeline(pipeline)
	var sessions []bench.Session
	for w := range 4 {
		s, err := tg.Open(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	// 4 sessions x 4 identities = 16 of 16 (the probe released its identity on return): the
	// replicas grant a fifth session nothing.
	if _, err := tg.Open(ctx, 4); err == nil || !strings.Contains(err.Error(), "max_clients") {
		t.Fatalf("a session beyond max_clients: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(sessions)*pipeline)
	for w, s := range sessions {
		for p := range pipeline {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k := fmt.Sprintf("p-%d-%d", w, p)
				if err := s.Do(ctx, []bench.Op{{Kind: bench.OpWrite, Key: []byte(k), Value: []byte("v" + k)}}); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("write: %v", err)
	}
	reads := []bench.Op{{Kind: bench.OpRead, Key: []byte("p-2-3")}, {Kind: bench.OpRead, Key: []byte("nope")}}
	if err := sessions[0].Do(ctx, reads); err != nil {
		t.Fatal(err)
	}
	if !reads[0].Found || string(reads[0].Out) != "vp-2-3" || reads[1].Found {
		t.Fatalf("reads: %+v", reads)
	}
	for _, s := range sessions {
		s.Close()
	}
}

// The session's request path allocates nothing per batch beyond the request timeout's
// context (see raftSession.Do): toWire and fromResults reuse their buffers.
func TestConversionDoesNotAllocate(t *testing.T) {
	ops := []bench.Op{{Kind: bench.OpWrite, Key: []byte("k"), Value: []byte("v")}, {Kind: bench.OpRead, Key: []byte("k"), Out: make([]byte, 0, 8)}}
	res := []client.Result{{Status: wire.StatusOK}, {Status: wire.StatusOK, Value: []byte("v")}}
	dst := make([]wire.Op, 0, 4)
	if n := testing.AllocsPerRun(100, func() {
		dst = toWire(dst[:0], ops)
		if err := fromResults(ops, res); err != nil {
			panic(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocs per batch", n)
	}
}
