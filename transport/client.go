package transport

import (
	"sync"
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"
)

// clientConn is the reply path of one inbound client connection.
//
// Replies are queued in a byte-bounded outQueue by SendClient and flushed by FlushClients
// with one gnet AsyncWritev for everything queued, so the event loop is woken once per
// connection per driver iteration, not once per reply, and gnet's unbounded async queue
// never holds more than one request per connection. While that write is in flight, newer
// replies accumulate; the write's completion callback (on the event loop) sends them with a
// synchronous Writev.
//
// Concurrency: dirty belongs to the driver goroutine. mu guards inflight and closed, and
// serialises take-and-mark, so that a reply queued while a write completes is never left
// behind. taken and iov belong to whoever set inflight (the driver in kick, then the event
// loop in onWritten).
type clientConn struct {
	t    *Transport
	id   ClientID
	conn gnet.Conn
	q    *outQueue

	dirty bool // driver only: listed in Transport.dirty
	// lastWrite is the transport time replies were last flushed to this connection. A
	// connection that only receives is in use (a PBFT client hears from every backup but
	// sends to the primary alone), so the idle timeout counts writes as well as reads.
	lastWrite atomic.Int64

	mu       sync.Mutex
	inflight bool
	closed   bool
	taken    []*chunk
	iov      [][]byte

	onWrittenFn gnet.AsyncCallback // cached method value: no closure per write
}

func (t *Transport) addClient(c gnet.Conn) *clientConn {
	cc := &clientConn{
		t:    t,
		id:   ClientID(t.nextClientID.Add(1)),
		conn: c,
		q:    newOutQueue(t.cfg.ClientQueueBytes, t.cfg.ChunkBytes),
	}
	cc.onWrittenFn = cc.onWritten
	t.clientsMu.Lock()
	t.clients[cc.id] = cc
	t.clientsMu.Unlock()
	return cc
}

func (t *Transport) removeClient(cc *clientConn) {
	t.clientsMu.Lock()
	delete(t.clients, cc.id)
	t.clientsMu.Unlock()
	cc.mu.Lock()
	cc.closed = true
	inflight := cc.inflight
	cc.mu.Unlock()
	if !inflight {
		cc.q.drop()
	}
}

func (t *Transport) client(id ClientID) *clientConn {
	t.clientsMu.RLock()
	cc := t.clients[id]
	t.clientsMu.RUnlock()
	return cc
}

// SendClient queues one whole frame for the client connection id; FlushClients sends it.
// The bytes are copied. ErrClientGone means the connection closed (drop the reply: the
// client retries on a new connection with the same session and sequence number).
// ErrClientBusy means ClientQueueBytes of replies are already waiting for this connection's
// write: the reply was not queued (drop it, and the client retransmits after its timeout, or
// CloseClient to make it reconnect at once). A client that stops reading is detected by the
// write path instead, and closed (Metrics.ClosedSlowClient).
//
// Driver goroutine only (with FlushClients).
func (t *Transport) SendClient(id ClientID, frame []byte) error {
	cc := t.client(id)
	if cc == nil {
		return ErrClientGone
	}
	if _, err := cc.q.push(frame); err != nil {
		if err == ErrFrameTooLarge {
			return err
		}
		t.metrics.ClientBusy.Add(1)
		return ErrClientBusy
	}
	t.metrics.FramesOut.Add(1)
	if !cc.dirty {
		cc.dirty = true
		t.dirty = append(t.dirty, cc)
	}
	return nil
}

// FlushClients starts one write per client connection with replies queued since the last
// call. Call it once per driver iteration, after the iteration's SendClient calls.
//
// Driver goroutine only.
func (t *Transport) FlushClients() {
	if len(t.dirty) == 0 {
		return
	}
	now := t.now()
	for i, cc := range t.dirty {
		cc.lastWrite.Store(now)
		cc.dirty = false
		cc.kick()
		t.dirty[i] = nil
	}
	t.dirty = t.dirty[:0]
}

// CloseClient closes a client connection (for example after a request it could not parse at
// the message level). Safe from any goroutine.
func (t *Transport) CloseClient(id ClientID) {
	if cc := t.client(id); cc != nil {
		_ = cc.conn.Close()
	}
}

// ClientOpen reports whether client connection id is still open.
func (t *Transport) ClientOpen(id ClientID) bool { return t.client(id) != nil }

// ClientQueueBytes returns the reply bytes queued or in flight for client id.
func (t *Transport) ClientQueueBytes(id ClientID) int {
	cc := t.client(id)
	if cc == nil {
		return 0
	}
	n, _ := cc.q.state()
	return n
}

// kick hands everything queued to the event loop in one AsyncWritev, unless a write is
// already in flight (its callback will pick the new replies up).
func (cc *clientConn) kick() {
	cc.mu.Lock()
	if cc.inflight || cc.closed {
		cc.mu.Unlock()
		return
	}
	var n int
	cc.taken, cc.iov, n = cc.q.take(cc.taken[:0], cc.iov[:0])
	if n == 0 {
		cc.mu.Unlock()
		return
	}
	cc.inflight = true
	cc.mu.Unlock()
	cc.t.metrics.BytesOut.Add(uint64(n))
	if err := cc.conn.AsyncWritev(cc.iov, cc.onWrittenFn); err != nil {
		cc.release()
		cc.endInflight()
	}
}

// onWritten runs on the event loop after gnet wrote (or buffered) cc.iov. The chunks are
// free again; anything queued meanwhile is written now, synchronously, since we are on the
// loop. A client whose unsent bytes in gnet exceed ClientQueueBytes is not reading: close
// it rather than buffer without bound.
func (cc *clientConn) onWritten(c gnet.Conn, err error) error {
	for {
		cc.release()
		if err != nil {
			cc.endInflight()
			return nil
		}
		if c.OutboundBuffered() > cc.t.cfg.ClientQueueBytes {
			cc.endInflight()
			cc.t.closeSlowClient(cc)
			return nil
		}
		cc.mu.Lock()
		if cc.closed {
			cc.inflight = false
			cc.mu.Unlock()
			cc.q.drop()
			return nil
		}
		var n int
		cc.taken, cc.iov, n = cc.q.take(cc.taken[:0], cc.iov[:0])
		if n == 0 {
			cc.inflight = false
			cc.mu.Unlock()
			return nil
		}
		cc.mu.Unlock()
		cc.t.metrics.BytesOut.Add(uint64(n))
		_, err = c.Writev(cc.iov)
	}
}

// release recycles the chunks of the write that just finished. Only the owner of the write
// in flight calls it.
func (cc *clientConn) release() {
	cc.q.recycle(cc.taken)
	clear(cc.taken)
	clear(cc.iov)
	cc.taken = cc.taken[:0]
	cc.iov = cc.iov[:0]
}

// endInflight ends the write in flight without starting another; a closed connection's
// leftovers are dropped.
func (cc *clientConn) endInflight() {
	cc.mu.Lock()
	cc.inflight = false
	closed := cc.closed
	cc.mu.Unlock()
	if closed {
		cc.q.drop()
	}
}

func (t *Transport) closeSlowClient(cc *clientConn) {
	cc.mu.Lock()
	already := cc.closed
	cc.closed = true
	cc.mu.Unlock()
	if already {
		return
	}
	t.metrics.ClosedSlowClient.Add(1)
	t.log.Warn("closing client connection: replies not read", "client", cc.id, "limit", t.cfg.ClientQueueBytes)
	_ = cc.conn.Close()
}
