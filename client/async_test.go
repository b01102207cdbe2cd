package client

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/wire"
)

// scriptedNode is a replica whose answer to the n-th request it reads (from 1, over all its
// connections) answer decides: a reply, nothing (silent), or closing the connection.
type verdict int

const (
	reply verdict = iota
	silent
	hangUp
)

func scriptedNode(t *testing.T, answer func(n int64, req *wire.ClientRequest, rep *wire.ClientReply) verdict) string {
	t.Helper()
	var count atomic.Int64
	return serveEach(t, func(nc net.Conn) {
		r := wire.NewReader(nc, 1<<20)
		var out []byte
		var req wire.ClientRequest
		var rep wire.ClientReply // reused: the node allocates nothing per request
		for {
			f, err := r.ReadFrame()
			if err != nil {
				return
			}
			if err := wire.DecodeClientRequest(f.Body, &req); err != nil {
				return
			}
			rep = wire.ClientReply{ClientID: req.ClientID, FirstSeq: req.FirstSeq, Results: rep.Results[:0]}
			switch answer(count.Add(1), &req, &rep) {
			case silent:
				continue
			case hangUp:
				return
			}
			out = wire.AppendMessageFrame(out, 0, &rep)
			if r.HasFrame() {
				continue // answer what this read brought in one write, as a replica does
			}
			if _, err := nc.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
	})
}

// okFrom answers every op with id (below len(idValues)) as its value.
func okFrom(id uint64, req *wire.ClientRequest, rep *wire.ClientReply) verdict {
	for range req.Ops {
		rep.Results = append(rep.Results, wire.OpResult{Status: wire.StatusOK, Value: idValues[id]})
	}
	return reply
}

// idValues[i] is i encoded as okFrom's values, made once so that answering allocates nothing.
var idValues = func() [][]byte {
	v := make([][]byte, 256)
	for i := range v {
		v[i] = binary.LittleEndian.AppendUint64(nil, uint64(i))
	}
	return v
}()

// startAndWait runs one Start and waits for its completion.
func startAndWait(t *testing.T, c *RaftClient, ops []wire.Op, res *Results, timeout time.Duration) error {
	t.Helper()
	ch := make(chan error, 2)
	c.Start(ops, res, timeout, func(err error) { ch <- err })
	select {
	case err := <-ch:
		select {
		case err2 := <-ch:
			t.Fatalf("done called twice: %v, then %v", err, err2)
		case <-time.After(20 * time.Millisecond):
		}
		return err
	case <-time.After(timeout + 5*time.Second):
		t.Fatal("done never called")
		return nil
	}
}

var putOp = []wire.Op{{Kind: wire.OpPut, Key: []byte("k"), Value: []byte("v")}}

// Closed-loop chains of Starts on one shared connection: every completion starts the
// client's next batch from the reader goroutine, each client gets its own replies, and
// the answers arrive in order with no batch lost or doubled.
func TestStartChainsOnSharedConn(t *testing.T) {
	const clients, rounds = 8, 300
	addr := scriptedNode(t, func(_ int64, req *wire.ClientRequest, rep *wire.ClientReply) verdict {
		return okFrom(req.ClientID, req, rep) // value: the client's own ID
	})
	shared := NewSharedConns()
	defer shared.Close()
	var starts []func(*Results, func(error))
	var ids []uint64
	for i := range clients {
		c, err := NewRaft(Config{Nodes: []Node{{ID: 1, Addr: addr}}, ClientID: uint64(100 + i), Shared: shared})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		starts = append(starts, func(res *Results, done func(error)) { c.Start(putOp, res, 5*time.Second, done) })
		ids = append(ids, c.ID())
	}
	runChains(t, starts, rounds, func(i int, res *Results) error {
		if binary.LittleEndian.Uint64(res.Ops[0].Value) != ids[i] {
			return errors.New("got another client's reply")
		}
		return nil
	})
	if cn := shared.conns[1]; cn == nil || cn.isClosed() {
		t.Fatal("the shared connection broke")
	}
}

// runChains runs a closed-loop chain of rounds batches per element of starts: each
// completion checks its result and starts the chain's next batch (from whatever goroutine
// completed it). It fails the test on the first error of any chain.
func runChains(t *testing.T, starts []func(*Results, func(error)), rounds int, check func(chain int, res *Results) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(starts))
	for i, start := range starts {
		wg.Add(1)
		var res Results
		n := 0
		var step func(error)
		step = func(err error) {
			if err == nil {
				err = check(i, &res)
			}
			if err != nil {
				errs <- err
				wg.Done()
				return
			}
			if n++; n == rounds {
				wg.Done()
				return
			}
			start(&res, step)
		}
		start(&res, step)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// A redirect on the fast path is followed at once to the hinted leader.
func TestStartFollowsRedirect(t *testing.T) {
	var leader atomic.Uint64
	leader.Store(1)
	node := func(id uint64) string {
		return scriptedNode(t, func(_ int64, req *wire.ClientRequest, rep *wire.ClientReply) verdict {
			if l := leader.Load(); l != id {
				rep.LeaderHint = l
				rep.Results = append(rep.Results, wire.OpResult{Status: wire.StatusNotLeader})
				return reply
			}
			return okFrom(id, req, rep)
		})
	}
	c, err := NewRaft(Config{Nodes: []Node{{ID: 1, Addr: node(1)}, {ID: 2, Addr: node(2)}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var res Results
	for want := uint64(1); want <= 2; want++ {
		leader.Store(want)
		for i := range 20 {
			if err := startAndWait(t, c, putOp, &res, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if got := binary.LittleEndian.Uint64(res.Ops[0].Value); got != want {
				t.Fatalf("leader %d, batch %d answered by %d", want, i, got)
			}
		}
	}
}

// A first attempt that gets no reply within AttemptTimeout, or whose connection breaks, is
// retried on the next replica with the same sequence numbers.
func TestStartRetriesUnansweredAttempts(t *testing.T) {
	for _, tc := range []struct {
		name string
		then verdict // what replica 1 does after its first answer
	}{{"silent", silent}, {"hang up", hangUp}} {
		t.Run(tc.name, func(t *testing.T) {
			var seqs sync.Map // FirstSeq -> replicas that saw it
			one := scriptedNode(t, func(n int64, req *wire.ClientRequest, rep *wire.ClientReply) verdict {
				seqs.Store(req.FirstSeq, 1)
				if n == 1 {
					return okFrom(1, req, rep)
				}
				return tc.then
			})
			two := scriptedNode(t, func(_ int64, req *wire.ClientRequest, rep *wire.ClientReply) verdict {
				if _, ok := seqs.Load(req.FirstSeq); !ok {
					rep.Results = append(rep.Results, wire.OpResult{Status: wire.StatusError, Value: []byte("new sequence number on a retry")})
					return reply
				}
				return okFrom(2, req, rep)
			})
			c, err := NewRaft(Config{Nodes: []Node{{ID: 1, Addr: one}, {ID: 2, Addr: two}}, AttemptTimeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var res Results
			if err := startAndWait(t, c, putOp, &res, 5*time.Second); err != nil || res.Node != 1 {
				t.Fatalf("first batch: %v, node %d", err, res.Node)
			}
			if err := startAndWait(t, c, putOp, &res, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if res.Ops[0].Status != wire.StatusOK || binary.LittleEndian.Uint64(res.Ops[0].Value) != 2 || res.Tries < 2 {
				t.Fatalf("retry: %+v after %d tries, want OK from replica 2", res.Ops[0], res.Tries)
			}
		})
	}
}

// A write no replica answers ends at its timeout with ErrMaybeApplied, and the client's
// window and MaxInflight slots are all given back.
func TestStartTimesOut(t *testing.T) {
	var answered atomic.Bool
	addr := scriptedNode(t, func(n int64, req *wire.ClientRequest, rep *wire.ClientReply) verdict {
		if n == 1 {
			answered.Store(true)
			return okFrom(1, req, rep)
		}
		return silent
	})
	c, err := NewRaft(Config{Nodes: []Node{{ID: 1, Addr: addr}}, AttemptTimeout: 50 * time.Millisecond, MaxInflight: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var res Results
	if err := startAndWait(t, c, putOp, &res, time.Second); err != nil || !answered.Load() {
		t.Fatalf("first batch: %v", err)
	}
	for range 3 { // more than MaxInflight: each must have given its slot back
		err := startAndWait(t, c, putOp, &res, 300*time.Millisecond)
		if !errors.Is(err, ErrMaybeApplied) {
			t.Fatalf("unanswered write: %v, want ErrMaybeApplied", err)
		}
	}
	if len(c.slots) != 0 {
		t.Fatalf("%d MaxInflight slots still held", len(c.slots))
	}
	c.window.mu.Lock()
	defer c.window.mu.Unlock()
	if c.window.low != c.window.next {
		t.Fatalf("sequence numbers [%d, %d) still outstanding", c.window.low, c.window.next)
	}
}

// Steady-state Starts on a live connection allocate nothing per batch.
func TestStartAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are checked without the race detector")
	}
	addr := scriptedNode(t, func(_ int64, req *wire.ClientRequest, rep *wire.ClientReply) verdict {
		return okFrom(1, req, rep)
	})
	c, err := NewRaft(Config{Nodes: []Node{{ID: 1, Addr: addr}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var res Results
	ch := make(chan error, 1)
	done := func(err error) { ch <- err }
	run := func() {
		c.Start(putOp, &res, 5*time.Second, done)
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	for range 100 {
		run()
	}
	if a := testing.AllocsPerRun(200, run); a > 0.5 {
		t.Fatalf("%.1f allocations per Start, want 0", a)
	}
}
