package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/consensusbench/consensusbench/wire"
)

// errConnClosed is returned for calls in flight when their connection breaks.
var errConnClosed = errors.New("client: connection closed")

// call is one request batch in flight on a conn. The reader goroutine fills results and
// signals done; the caller owns the call again after done fires (or after it removed the
// call itself on timeout).
type call struct {
	key     callKey
	done    chan struct{}
	reply   wire.ClientReply // Results' Values alias vals
	vals    []byte
	err     error
	replica uint64 // PBFT: the replica that answered (for f+1 matching)
	// timer bounds one attempt; kept with the pooled call so attempts do not allocate one.
	timer *time.Timer
	// onDone, when set, settles the call instead of done: the reader (or whoever fails the
	// connection) calls it once, after removing the call from the table. It must not block.
	// RaftClient.Start's calls use it, so that a reply starts the caller's next request on
	// the reader goroutine with no goroutine woken in between.
	onDone func(*call)
}

// callKey names a call on its connection: clients that share a connection (SharedConns)
// number their batches independently, and every reply carries the client ID it answers.
type callKey struct{ client, seq uint64 }

var callPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &call{done: make(chan struct{}, 1), timer: t}
}}

func getCall(seq uint64) *call {
	c := callPool.Get().(*call)
	c.key, c.err, c.vals = callKey{seq: seq}, nil, c.vals[:0]
	c.reply.Results = c.reply.Results[:0]
	return c
}

func putCall(c *call) {
	select {
	case <-c.done: // drain a late signal
	default:
	}
	callPool.Put(c)
}

// conn is one TCP connection to one replica's client port with its reader goroutine.
// Writers combine: a caller appends its frame to wbuf and, if nobody is writing, writes
// everything pending itself, so N concurrent callers cost about one write, and frames go
// out in the order their sequence numbers were taken (taken under wmu). While the reader
// settles asynchronous calls from the frames one read brought (deferring), their callbacks'
// next frames only queue, and the reader writes them all once those frames are handled.
type conn struct {
	node         uint64
	nc           net.Conn
	writeTimeout time.Duration

	wmu       sync.Mutex
	wbuf      []byte
	spare     []byte
	writing   bool
	deferring bool
	werr      error

	mu     sync.Mutex
	calls  map[callKey]*call
	closed bool
	err    error
	done   chan struct{}

	// onReply, when set, receives every decoded reply instead of the call table (PBFT, where
	// one request collects replies from several replicas).
	onReply func(from uint64, r *wire.ClientReply)
}

func dialConn(ctx context.Context, node uint64, addr string, maxFrame int, dialTimeout, writeTimeout time.Duration) (*conn, error) {
	d := net.Dialer{Timeout: dialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	c := &conn{node: node, nc: nc, writeTimeout: writeTimeout, calls: make(map[callKey]*call), done: make(chan struct{})}
	go c.readLoop(maxFrame)
	return c, nil
}

// send registers cl under req.FirstSeq and queues req's frame. An error means cl was never
// registered (the connection had already failed); once registered, cl is settled only
// through cl.done or cl.onDone (its reply, or cl.err when the connection breaks), exactly
// once.
func (c *conn) send(cl *call, req *wire.ClientRequest) error {
	c.wmu.Lock()
	if c.werr != nil {
		err := c.werr
		c.wmu.Unlock()
		return err
	}
	c.wbuf = wire.AppendMessageFrame(c.wbuf, 0, req)
	if cl != nil {
		cl.key = callKey{req.ClientID, req.FirstSeq}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			c.wmu.Unlock()
			return c.err
		}
		c.calls[cl.key] = cl
		c.mu.Unlock()
	}
	if c.writing || c.deferring {
		c.wmu.Unlock()
		return nil
	}
	c.writing = true
	// Let the goroutines already runnable go first: callers woken by the same read of
	// replies append their frames while this one waits, and one write carries them all
	// (one system call per request was most of a one-op client's CPU).
	c.wmu.Unlock()
	runtime.Gosched()
	c.wmu.Lock()
	if err := c.writeQueuedLocked(); err != nil && cl == nil {
		return err
	}
	// An error with cl registered: cl is settled through its done signal or callback, by
	// a fail (this one, or the reader's racing it, which may not have reached cl yet) or by
	// its reply, if its frame left in an earlier write. Returning the error as well would
	// let the caller reuse cl while that signal is still coming.
	return nil
}

// writeQueuedLocked writes wbuf until it stays empty. It is called with wmu held and
// writing set by the caller, and returns with wmu released and writing cleared; on a
// write error the connection is failed and the error returned.
func (c *conn) writeQueuedLocked() error {
	for len(c.wbuf) > 0 {
		buf := c.wbuf
		c.wbuf, c.spare = c.spare[:0], nil
		c.wmu.Unlock()
		// A replica that stops reading (paused, or pushing back on a full inbound queue)
		// must not hold this caller, and everyone queued behind it, beyond one attempt.
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
		_, err := c.nc.Write(buf)
		c.wmu.Lock()
		c.spare = buf[:0]
		if err != nil {
			c.werr = err
			c.writing = false
			c.wmu.Unlock()
			c.fail(err)
			return err
		}
	}
	c.writing = false
	c.wmu.Unlock()
	return nil
}

// deferWrites makes sends only queue their frames until flushDeferred (the reader, while
// it settles asynchronous calls).
func (c *conn) deferWrites() {
	c.wmu.Lock()
	c.deferring = true
	c.wmu.Unlock()
}

// flushDeferred ends deferWrites and writes what queued meanwhile, unless a writer is
// already at it (it takes the queued frames with its own).
func (c *conn) flushDeferred() {
	c.wmu.Lock()
	c.deferring = false
	if c.writing || len(c.wbuf) == 0 || c.werr != nil {
		c.wmu.Unlock()
		return
	}
	c.writing = true
	_ = c.writeQueuedLocked()
}

// forget removes a call that the caller gave up on (timeout). It reports false when the
// reader already took the call (and will signal it).
func (c *conn) forget(cl *call) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls[cl.key] == cl {
		delete(c.calls, cl.key)
		return true
	}
	return false
}

func (c *conn) readLoop(maxFrame int) {
	r := wire.NewReader(c.nc, maxFrame)
	var rep wire.ClientReply
	deferred := false // writes deferred while the frames already read are handled
	for {
		if deferred && !r.HasFrame() {
			deferred = false
			c.flushDeferred()
		}
		f, err := r.ReadFrame()
		if err != nil {
			c.fail(err)
			return
		}
		if f.Type != wire.TypeClientReply {
			c.fail(fmt.Errorf("client: unexpected %v frame from node %d", f.Type, c.node))
			return
		}
		if err := wire.DecodeClientReply(f.Body, &rep); err != nil {
			c.fail(fmt.Errorf("client: bad reply from node %d: %w", c.node, err))
			return
		}
		if c.onReply != nil {
			c.onReply(c.node, &rep)
			continue
		}
		c.mu.Lock()
		k := callKey{rep.ClientID, rep.FirstSeq}
		cl := c.calls[k]
		delete(c.calls, k)
		c.mu.Unlock()
		if cl == nil {
			continue // the caller timed out and went elsewhere
		}
		copyReply(cl, &rep, c.node)
		if cl.onDone == nil {
			cl.done <- struct{}{}
			continue
		}
		if !deferred {
			deferred = true
			c.deferWrites()
		}
		cl.onDone(cl)
	}
}

// copyReply copies rep into cl, values into cl.vals (rep aliases the reader's buffer).
func copyReply(cl *call, rep *wire.ClientReply, from uint64) {
	cl.replica = from
	res := cl.reply.Results[:0]
	cl.reply = *rep
	cl.vals = cl.vals[:0]
	for _, r := range rep.Results {
		cl.vals = append(cl.vals, r.Value...)
	}
	off := 0
	for _, r := range rep.Results {
		n := len(r.Value)
		var v []byte
		if n > 0 {
			v = cl.vals[off : off+n : off+n]
		}
		res = append(res, wire.OpResult{Status: r.Status, Value: v})
		off += n
	}
	cl.reply.Results = res
	cl.reply.Auth = wire.Authenticator{}
}

// fail closes the connection and fails every call in flight.
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed, c.err = true, fmt.Errorf("%w (node %d): %v", errConnClosed, c.node, err)
	calls := c.calls
	c.calls = nil
	c.mu.Unlock()
	c.nc.Close()
	close(c.done)
	for _, cl := range calls {
		cl.err = c.err
		if cl.onDone != nil {
			cl.onDone(cl)
		} else {
			cl.done <- struct{}{}
		}
	}
}

func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *conn) close() { c.fail(errors.New("closed by client")) }
