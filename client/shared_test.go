package client

import (
	"context"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/wire"
)

// fakeReplica accepts client connections and answers each request's ops with the request's
// client ID as the value, holding replies until it has `hold` requests on a connection and
// then answering them in reverse order: replies do not come back in request order, and
// clients sharing the connection reuse the same sequence numbers.
func fakeReplica(t *testing.T, hold int) (addr string, conns func() int) {
	t.Helper()
	var mu sync.Mutex
	n := 0
	addr = serveEach(t, func(nc net.Conn) {
		mu.Lock()
		n++
		mu.Unlock()
		r := wire.NewReader(nc, 1<<20)
		var held []wire.ClientReply
		for {
			f, err := r.ReadFrame()
			if err != nil {
				return
			}
			var req wire.ClientRequest
			if err := wire.DecodeClientRequest(f.Body, &req); err != nil {
				return
			}
			rep := wire.ClientReply{ClientID: req.ClientID, FirstSeq: req.FirstSeq}
			for range req.Ops {
				v := binary.LittleEndian.AppendUint64(nil, req.ClientID)
				rep.Results = append(rep.Results, wire.OpResult{Status: wire.StatusOK, Value: v})
			}
			held = append(held, rep)
			if len(held) < hold {
				continue
			}
			var out []byte
			for i := len(held) - 1; i >= 0; i-- {
				out = wire.AppendMessageFrame(out, 0, &held[i])
			}
			held = held[:0]
			if _, err := nc.Write(out); err != nil {
				return
			}
		}
	})
	return addr, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// serveEach listens on loopback until the test ends and runs handle on each accepted
// connection in its own goroutine, closing the connection when handle returns.
func serveEach(t *testing.T, handle func(net.Conn)) (addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				handle(nc)
			}()
		}
	}()
	return ln.Addr().String()
}

// Clients sharing connections get their own replies: the connection matches a reply by
// client ID and sequence number, and the clients' sequence numbers collide.
func TestSharedConnsMatchRepliesByClient(t *testing.T) {
	const clients = 4
	addr, conns := fakeReplica(t, clients)
	shared := NewSharedConns()
	defer shared.Close()
	var cls []*RaftClient
	for i := range clients {
		c, err := NewRaft(Config{Nodes: []Node{{ID: 1, Addr: addr}}, ClientID: uint64(100 + i), Shared: shared})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cls = append(cls, c)
	}
	for round := range 20 {
		var wg sync.WaitGroup
		errs := make([]error, clients)
		got := make([]uint64, clients)
		for i, c := range cls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var res Results
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				errs[i] = c.Do(ctx, []wire.Op{{Kind: wire.OpPut, Key: []byte("k"), Value: []byte("v")}}, &res)
				if errs[i] == nil {
					got[i] = binary.LittleEndian.Uint64(res.Ops[0].Value)
				}
			}()
		}
		wg.Wait()
		for i := range cls {
			if errs[i] != nil {
				t.Fatalf("round %d client %d: %v", round, i, errs[i])
			}
			if got[i] != cls[i].ID() {
				t.Fatalf("round %d: client %d got the reply for client %d", round, cls[i].ID(), got[i])
			}
		}
	}
	if n := conns(); n != 1 {
		t.Fatalf("%d clients made %d connections, want 1 shared", clients, n)
	}
	// Closing a client leaves the shared connection to the others.
	cls[0].Close()
	if cn := shared.conns[1]; cn == nil || cn.isClosed() {
		t.Fatal("closing one client closed the shared connection")
	}
}
