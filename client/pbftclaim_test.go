package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/pbftcore"
	"github.com/consensusbench/consensusbench/server"
	"github.com/consensusbench/consensusbench/storage"
	"github.com/consensusbench/consensusbench/wire"
)

// claimCluster starts four in-process PBFT replicas with maxClients identities.
func claimCluster(t *testing.T, maxClients int) *server.LocalCluster {
	t.Helper()
	spec := &server.ClusterSpec{ClusterID: 9, Protocol: "pbft", Tick: server.Duration(5 * time.Millisecond),
		PBFT: server.PBFTSpec{KeySeed: "claim-test", MaxClients: maxClients, CheckpointInterval: 8, WindowSize: 32, RequestTimeout: 40}}
	c, err := server.StartLocalCluster(server.LocalClusterConfig{Protocol: "pbft", Nodes: 4, Dir: t.TempDir(),
		Sync: storage.SyncNone, Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	return c
}

func claimConfig(c *server.LocalCluster, inflight int) PBFTConfig {
	var nodes []Node
	for _, n := range c.Spec.Nodes {
		nodes = append(nodes, Node{ID: n.ID, Addr: n.ClientAddr})
	}
	return PBFTConfig{Nodes: nodes, KeySeed: c.Spec.PBFT.KeySeed, MaxClients: c.Spec.PBFT.MaxClients, MaxInflight: inflight,
		AttemptTimeout: 300 * time.Millisecond, DialTimeout: time.Second}
}

func claimPut(ctx context.Context, cl *PBFTClient, k, v string) error {
	var res Results
	return cl.Do(ctx, []wire.Op{{Kind: wire.OpPut, Key: []byte(k), Value: []byte(v)}}, &res)
}

func claimGet(t *testing.T, cl *PBFTClient, k string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var res Results
	if err := cl.Do(ctx, []wire.Op{{Kind: wire.OpGet, Key: []byte(k)}}, &res); err != nil {
		t.Fatal(err)
	}
	return string(res.Ops[0].Value)
}

// Clients started at once, each from the spec with no identities named, claim disjoint
// ranges through the log; one more than the table holds is refused with a reason; a closed
// client's range is free again at once.
func TestPBFTConcurrentClientsGetDisjointIdentities(t *testing.T) {
	const maxClients, inflight, clients = 64, 8, 8
	c := claimCluster(t, maxClients)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cls := make([]*PBFTClient, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cls[i], errs[i] = NewPBFT(ctx, claimConfig(c, inflight))
		}()
	}
	wg.Wait()
	held := make([]int, maxClients)
	for i, cl := range cls {
		if errs[i] != nil {
			t.Fatalf("client %d: %v", i, errs[i])
		}
		defer cl.Close()
		for p := cl.FirstClientID(); p < cl.FirstClientID()+inflight; p++ {
			held[p]++
		}
	}
	for p, n := range held {
		if n != 1 {
			t.Fatalf("identity %d held by %d clients (%v)", p, n, held)
		}
	}
	// Every client's sessions work side by side: each one's writes are its own.
	for i, cl := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range inflight {
				if err := claimPut(ctx, cl, fmt.Sprintf("c%d-%d", i, k), fmt.Sprint(i)); err != nil {
					errs[i] = err
				}
			}
		}()
	}
	wg.Wait()
	for i, cl := range cls {
		if errs[i] != nil {
			t.Fatalf("client %d: %v", i, errs[i])
		}
		if v := claimGet(t, cl, fmt.Sprintf("c%d-%d", (i+1)%clients, inflight-1)); v != fmt.Sprint((i+1)%clients) {
			t.Fatalf("client %d read %q", i, v)
		}
	}
	if extra, err := NewPBFT(ctx, claimConfig(c, 1)); err == nil {
		extra.Close()
		t.Fatalf("a client got identity %d of a full table", extra.FirstClientID())
	} else if !strings.Contains(err.Error(), "no free range") {
		t.Fatalf("full table: %v, want one saying no range is free", err)
	}
	first := cls[3].FirstClientID()
	cls[3].Close()
	cfg := claimConfig(c, inflight)
	cfg.FixedClientIDs, cfg.FirstClientID = true, first
	again, err := NewPBFT(ctx, cfg)
	if err != nil {
		t.Fatalf("claiming a closed client's range: %v", err)
	}
	defer again.Close()
	if err := claimPut(ctx, again, "again", "1"); err != nil {
		t.Fatal(err)
	}
}

// A fixed range that overlaps a live client's is refused before any request is sent.
func TestPBFTFixedOverlappingRangeIsRefused(t *testing.T) {
	c := claimCluster(t, 16)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := claimConfig(c, 4)
	cfg.FixedClientIDs, cfg.FirstClientID = true, 2
	a, err := NewPBFT(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	cfg.FirstClientID = 5
	if b, err := NewPBFT(ctx, cfg); err == nil {
		b.Close()
		t.Fatal("identities [5, 9) granted while [2, 6) is held")
	} else if !strings.Contains(err.Error(), "[5, 9)") || !strings.Contains(err.Error(), "another live client") {
		t.Fatalf("overlap refused with %v, want the range and the reason", err)
	}
	if b, err := NewPBFT(ctx, claimConfig(c, 4)); err != nil {
		t.Fatal(err)
	} else {
		defer b.Close()
		if f := b.FirstClientID(); f < 6 && f+4 > 2 {
			t.Fatalf("automatic range [%d, %d) overlaps the fixed [2, 6)", f, f+4)
		}
	}
}

// stall stops c's renewals, as a process stopped (SIGSTOP) or cut off would; its
// connections stay open.
func (c *PBFTClient) stall() {
	c.bgCancel()
	<-c.renewDone
}

// crash stops c as a killed process: no renewal, no release, connections gone.
func (c *PBFTClient) crash() {
	c.stall()
	c.closed.Store(true)
	close(c.closedC)
	for _, pc := range c.conns {
		pc.close()
	}
}

// A client that crashed, and one that stalled past its lease, lose their identities to the
// next claimant; the stalled one's requests are then refused by every replica (never
// executed), its renewal finds its lease lost and its Do calls fail with ErrIdentitiesLost.
func TestPBFTExpiredIdentitiesAreReclaimedAndFenced(t *testing.T) {
	const maxClients = 8
	c := claimCluster(t, maxClients)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lease := time.Second
	cfg := claimConfig(c, maxClients)
	cfg.Lease = lease
	claimAll := func(who string) *PBFTClient {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			cl, err := NewPBFT(ctx, cfg)
			if err == nil {
				return cl
			}
			if !strings.Contains(err.Error(), "no free range") || time.Now().After(deadline) {
				t.Fatalf("%s: %v", who, err)
			}
			time.Sleep(lease / 4)
		}
	}
	crashed := claimAll("first client")
	if err := claimPut(ctx, crashed, "x", "crashed"); err != nil {
		t.Fatal(err)
	}
	crashed.crash()
	stalled := claimAll("after the crash") // waits out the crashed client's lease
	defer stalled.Close()
	if stalled.FirstClientID() != 0 {
		t.Fatalf("reclaimed range starts at %d, want 0", stalled.FirstClientID())
	}
	if err := claimPut(ctx, stalled, "x", "stalled"); err != nil {
		t.Fatal(err)
	}
	stalled.stall()
	next := claimAll("after the stall")
	defer next.Close()
	// The stalled client resumes: its request must not execute.
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	err := claimPut(short, stalled, "x", "resumed")
	cancelShort()
	if err == nil {
		t.Fatal("a request on identities whose lease expired was executed")
	}
	if v := claimGet(t, next, "x"); v != "stalled" {
		t.Fatalf("x = %q, want the stalled client's last acknowledged write", v)
	}
	if err := claimPut(ctx, next, "x", "next"); err != nil {
		t.Fatal(err)
	}
	// Its renewal finds the lease lost: Do fails at once from then on.
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	g, err := stalled.control(rctx, stalled.first, &pbftcore.Claim{Kind: pbftcore.ClaimRenew, Nonce: stalled.nonce})
	rcancel()
	if err != nil || g.Status != pbftcore.Lost {
		t.Fatalf("renewal after the lease: %+v %v, want Lost", g, err)
	}
	stalled.lostOnce.Do(func() { close(stalled.lost) })
	if err := claimPut(ctx, stalled, "x", "again"); !errors.Is(err, ErrIdentitiesLost) {
		t.Fatalf("Do after a lost lease: %v, want ErrIdentitiesLost", err)
	}
	if v := claimGet(t, next, "x"); v != "next" {
		t.Fatalf("x = %q, want \"next\"", v)
	}
}

// A live client renews its lease: it keeps its identities across many leases while others
// try to claim them.
func TestPBFTLeaseIsRenewed(t *testing.T) {
	c := claimCluster(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := claimConfig(c, 4)
	cfg.Lease = time.Second
	a, err := NewPBFT(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for i := range 8 {
		time.Sleep(cfg.Lease / 2)
		if b, err := NewPBFT(ctx, cfg); err == nil {
			b.Close()
			t.Fatalf("after %v the live client's identities were granted again", time.Duration(i+1)*cfg.Lease/2)
		}
	}
	if err := claimPut(ctx, a, "k", "v"); err != nil {
		t.Fatal(err)
	}
}
