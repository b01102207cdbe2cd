package client

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/wire"
)

// newAsyncPBFT is a client of four fake replicas (refusingReplicas: the primary and one
// backup answer each ordered request after orderDelay) with inflight identities, each of
// them made by one Do so that Start takes its fast path.
func newAsyncPBFT(t *testing.T, inflight int, orderDelay, attempt time.Duration) (*refusingReplicas, *PBFTClient) {
	t.Helper()
	rr := newRefusingReplicas(t, "async", 16, 0)
	cl, err := NewPBFT(context.Background(), PBFTConfig{Nodes: rr.nodes(), KeySeed: "async", MaxClients: 16,
		MaxInflight: inflight, AttemptTimeout: attempt})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	var wg sync.WaitGroup
	for range inflight { // concurrent, so that each takes its own identity
		wg.Add(1)
		go func() {
			defer wg.Done()
			var res Results
			if err := cl.Do(context.Background(), putOp, &res); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	rr.orderDelay.Store(int64(orderDelay))
	return rr, cl
}

// Chains of Starts, each completion starting the next request from the reader goroutine
// that completed it: every request completes once, with its result, on the first try.
func TestPBFTStartChains(t *testing.T) {
	const chains, rounds = 4, 200
	rr, cl := newAsyncPBFT(t, chains, 0, 5*time.Second)
	starts := make([]func(*Results, func(error)), chains)
	for i := range starts {
		starts[i] = func(res *Results, done func(error)) { cl.Start(putOp, res, 5*time.Second, done) }
	}
	runChains(t, starts, rounds, func(_ int, res *Results) error {
		if len(res.Ops) != 1 || string(res.Ops[0].Value) != "v" || res.Tries != 1 {
			return errors.New("wrong result or retried")
		}
		return nil
	})
	if n := rr.toBackups.Load(); n != 0 {
		t.Fatalf("%d retransmissions to backups with every reply on time", n)
	}
}

// A request whose replies take longer than AttemptTimeout is retransmitted to every
// replica by the identity's timer, and completes with the replies.
func TestPBFTStartRetransmits(t *testing.T) {
	rr, cl := newAsyncPBFT(t, 1, 250*time.Millisecond, 100*time.Millisecond)
	var res Results
	ch := make(chan error, 1)
	cl.Start(putOp, &res, 5*time.Second, func(err error) { ch <- err })
	if err := <-ch; err != nil {
		t.Fatal(err)
	}
	if res.Tries < 2 || rr.toBackups.Load() == 0 {
		t.Fatalf("Tries %d, %d retransmissions to backups; want a retransmission", res.Tries, rr.toBackups.Load())
	}
}

// A write not answered by its deadline ends with ErrMaybeApplied and gives its identity
// back; one in flight when the client closes ends with ErrClosed.
func TestPBFTStartGivesUp(t *testing.T) {
	_, cl := newAsyncPBFT(t, 1, 1500*time.Millisecond, 100*time.Millisecond)
	var res Results
	ch := make(chan error, 1)
	for range 2 { // the second finds the identity given back
		cl.Start(putOp, &res, 300*time.Millisecond, func(err error) { ch <- err })
		if err := <-ch; !errors.Is(err, ErrMaybeApplied) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("unanswered write: %v, want ErrMaybeApplied and the deadline", err)
		}
	}
	cl.Start(putOp, &res, 5*time.Second, func(err error) { ch <- err })
	time.Sleep(50 * time.Millisecond)
	go cl.Close()
	select {
	case err := <-ch:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("request in flight at Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the request in flight")
	}
}

// A gets-only batch goes through Do (the read-only path), and still completes through done.
func TestPBFTStartReadGoesThroughDo(t *testing.T) {
	rr, cl := newAsyncPBFT(t, 1, 0, 5*time.Second)
	var res Results
	ch := make(chan error, 1)
	cl.Start([]wire.Op{{Kind: wire.OpGet, Key: []byte("k")}}, &res, 5*time.Second, func(err error) { ch <- err })
	if err := <-ch; err != nil || string(res.Ops[0].Value) != "v" {
		t.Fatalf("read: %v %+v", err, res.Ops)
	}
	if rr.refusals.Load() == 0 {
		t.Fatal("the read did not take the read-only path")
	}
}
