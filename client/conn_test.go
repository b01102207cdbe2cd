package client

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/wire"
)

// A connection that breaks while callers write on it settles every registered call exactly
// once, through the call's done: a send that returns an error owes its caller nothing more.
// Before, a writer whose write failed returned the error while the reader goroutine's fail
// could still be about to signal that call, so the caller pooled a call that was then
// signalled (and written) after its reuse.
func TestBrokenConnSettlesEachCallOnce(t *testing.T) {
	addr := serveEach(t, func(nc net.Conn) {
		var b [64]byte
		_, _ = nc.Read(b[:])
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset at close: the client's writes and reads fail at once
		}
	})
	for round := range 50 {
		cn, err := dialConn(context.Background(), 1, addr, 1<<20, time.Second, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		const callers = 8
		var wg sync.WaitGroup
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range 10 {
					cl := &call{done: make(chan struct{}, 1)}
					req := &wire.ClientRequest{ClientID: uint64(i + 1), FirstSeq: uint64(k + 1),
						Ops: []wire.Op{{Kind: wire.OpPut, Key: []byte("k"), Value: make([]byte, 512)}}}
					if err := cn.send(cl, req); err != nil {
						// Settled by the error: nobody may signal this call later.
						select {
						case <-cl.done:
							t.Errorf("round %d: a call whose send failed was signalled as well", round)
						case <-time.After(2 * time.Millisecond):
						}
						continue
					}
					select {
					case <-cl.done:
						if cl.err == nil {
							t.Errorf("round %d: a call on a reset connection succeeded", round)
						}
					case <-time.After(5 * time.Second):
						t.Errorf("round %d: a sent call was never settled", round)
					}
					select {
					case <-cl.done:
						t.Errorf("round %d: a call was signalled twice", round)
					default:
					}
				}
			}()
		}
		wg.Wait()
		cn.close()
		if t.Failed() {
			return
		}
	}
}
