package client

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/pbftcore"
	"github.com/consensusbench/consensusbench/wire"
)

// refusingReplicas are four fake PBFT replicas on loopback that refuse every read-only
// request (as replicas with a prepared, unexecuted request do), or ignore it when silent, and
// answer an ordered request sent to the primary r0 with f+1 = 2 replies (r0's and r1's) after
// orderDelay.
type refusingReplicas struct {
	t          *testing.T
	keyring    *pbftcore.Keyring
	orderDelay atomic.Int64 // nanoseconds
	lns        []net.Listener
	mu         sync.Mutex
	conns      []net.Conn   // the client's connection to each replica
	start      atomic.Int64 // UnixNano when Do started
	orderedAt  atomic.Int64 // nanoseconds after start at which r0 got the ordered request
	toBackups  atomic.Int64 // ordered requests the client sent to r1..r3 (retransmissions)
	refusals   atomic.Int64
	silent     atomic.Bool // reads get no answer at all (replicas down or slow)
	wg         sync.WaitGroup
}

func newRefusingReplicas(t *testing.T, seed string, maxClients int, orderDelay time.Duration) *refusingReplicas {
	rr := &refusingReplicas{t: t, keyring: pbftcore.NewKeyring([]byte(seed), 4, maxClients), conns: make([]net.Conn, 4)}
	rr.orderDelay.Store(int64(orderDelay))
	for i := range 4 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		rr.lns = append(rr.lns, ln)
		rr.wg.Add(1)
		go rr.serve(i, ln)
	}
	t.Cleanup(func() {
		for _, ln := range rr.lns {
			ln.Close()
		}
		rr.mu.Lock()
		for _, c := range rr.conns {
			if c != nil {
				c.Close()
			}
		}
		rr.mu.Unlock()
		rr.wg.Wait()
	})
	return rr
}

func (rr *refusingReplicas) nodes() []Node {
	var ns []Node
	for i, ln := range rr.lns {
		ns = append(ns, Node{ID: uint64(i + 1), Addr: ln.Addr().String()})
	}
	return ns
}

// reply sends replica i's authenticated reply to req over its client connection.
func (rr *refusingReplicas) reply(i int, req *wire.Request, refused bool, result []byte) {
	m := pbftcore.Message{Type: pbftcore.MsgReply, From: i, To: pbftcore.ToClient, Client: req.ClientID,
		Timestamp: req.Timestamp, ReadOnly: req.ReadOnly, Refused: refused, Result: result}
	m.Auth = pbftcore.NewAuthenticator(rr.keyring.Replica(i), false).Seal(&m, nil)
	frame := wire.AppendMessageFrame(nil, 0, &wire.PBFTReply{Timestamp: m.Timestamp, ClientID: m.Client,
		Replica: uint64(i), ReadOnly: m.ReadOnly, Refused: m.Refused, Result: m.Result,
		Auth: wire.Authenticator{Kind: wire.AuthShortMACs, MACs: m.Auth}})
	rr.mu.Lock()
	c := rr.conns[i]
	rr.mu.Unlock()
	if c != nil {
		_, _ = c.Write(frame)
	}
}

func (rr *refusingReplicas) serve(i int, ln net.Listener) {
	defer rr.wg.Done()
	nc, err := ln.Accept()
	if err != nil {
		return
	}
	rr.mu.Lock()
	rr.conns[i] = nc
	rr.mu.Unlock()
	r := wire.NewReader(nc, 0)
	for {
		f, err := r.ReadFrame()
		if err != nil {
			return
		}
		if f.Type != wire.TypePBFTRequest {
			continue // the client's registration
		}
		var req wire.Request
		if err := wire.DecodeRequest(f.Body, &req); err != nil {
			rr.t.Errorf("r%d: %v", i, err)
			return
		}
		req.Op = append([]byte(nil), req.Op...)
		if fakeGrant(rr.keyring, i, nc, &req) {
			continue
		}
		switch {
		case req.ReadOnly && rr.silent.Load():
		case req.ReadOnly:
			rr.refusals.Add(1)
			rr.reply(i, &req, true, nil)
		case i != 0:
			rr.toBackups.Add(1)
		default:
			rr.orderedAt.Store(time.Now().UnixNano() - rr.start.Load())
			var cr wire.ClientRequest
			if err := wire.DecodeClientRequest(req.Op, &cr); err != nil {
				rr.t.Errorf("r0: %v", err)
				return
			}
			res := wire.AppendClientReply(nil, &wire.ClientReply{ClientID: cr.ClientID, FirstSeq: cr.FirstSeq,
				Results: []wire.OpResult{{Status: wire.StatusOK, Value: []byte("v")}}})
			rr.wg.Add(1)
			go func() {
				defer rr.wg.Done()
				time.Sleep(time.Duration(rr.orderDelay.Load()))
				rr.reply(0, &req, false, res)
				rr.reply(1, &req, false, res)
			}()
		}
	}
}

// PBFT read-only optimization (OSDI '99 §5.1.3) through the Go client: the replicas' refused
// replies reach the core, so f+1 refusals order the read at once instead of after
// ReadTimeout; and that ordered request gets a whole AttemptTimeout before it is
// retransmitted to every replica (it is not cut short by the read timer still running).
func TestPBFTClientOrdersReadOnRefusals(t *testing.T) {
	const readTimeout, orderDelay = 500 * time.Millisecond, 800 * time.Millisecond
	rr := newRefusingReplicas(t, "refusals", 4, orderDelay)
	cl, err := NewPBFT(context.Background(), PBFTConfig{Nodes: rr.nodes(), KeySeed: "refusals", MaxClients: 4,
		MaxInflight: 1, ReadTimeout: readTimeout, AttemptTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var res Results
	rr.start.Store(time.Now().UnixNano())
	if err := cl.Do(ctx, []wire.Op{{Kind: wire.OpGet, Key: []byte("k")}}, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Ops) != 1 || string(res.Ops[0].Value) != "v" {
		t.Fatalf("result %+v", res.Ops)
	}
	at := time.Duration(rr.orderedAt.Load())
	if at == 0 || at >= readTimeout {
		t.Fatalf("the ordered retry reached the primary %v after Do started, want before the %v read timeout (refusals: %d)",
			at, readTimeout, rr.refusals.Load())
	}
	if n := rr.toBackups.Load(); n != 0 {
		t.Fatalf("the ordered retry was retransmitted to the backups %d times before its attempt timeout", n)
	}
	if res.Tries != 2 {
		t.Fatalf("Tries = %d, want 2 (the read, then its ordered retry)", res.Tries)
	}

	// An ordered retry answered before the read timer fires is the second try as well.
	rr.orderDelay.Store(0)
	rr.start.Store(time.Now().UnixNano())
	if err := cl.Do(ctx, []wire.Op{{Kind: wire.OpGet, Key: []byte("k")}}, &res); err != nil {
		t.Fatal(err)
	}
	if at := time.Duration(rr.orderedAt.Load()); at >= readTimeout || res.Tries != 2 || rr.toBackups.Load() != 0 {
		t.Fatalf("second read: ordered after %v, Tries = %d (want 2), %d retransmissions to backups", at, res.Tries,
			rr.toBackups.Load())
	}

	// Replicas that stay silent: the read timer orders the read, also the second try.
	rr.silent.Store(true)
	rr.start.Store(time.Now().UnixNano())
	if err := cl.Do(ctx, []wire.Op{{Kind: wire.OpGet, Key: []byte("k")}}, &res); err != nil {
		t.Fatal(err)
	}
	if at := time.Duration(rr.orderedAt.Load()); at < readTimeout || res.Tries != 2 || rr.toBackups.Load() != 0 {
		t.Fatalf("silent replicas: ordered after %v (want the %v read timeout), Tries = %d (want 2), %d retransmissions to backups",
			at, readTimeout, res.Tries, rr.toBackups.Load())
	}
}
