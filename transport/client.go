package transport

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// clientConn is the reply path of one inbound client connection.
//
// Replies are queued in a byte-bounded outQueue by SendClient and flushed by FlushClients,
// once per connection per driver iteration, not once per reply. The flush writes directly:
// the driver issues one non-blocking writev on the connection's socket, which on a healthy
// connection takes everything. Only what the socket refuses (a full send buffer: the client
// reads slowly) goes to gnet through AsyncWritev, whose completion callback (on the event
// loop) sends whatever was queued meanwhile and closes a client whose unsent bytes exceed
// ClientQueueBytes. Handing every flush to gnet instead cost an eventfd write and an event
// loop wake-up per flush (BenchmarkClientReplies, and docs/ARCHITECTURE.md's data path).
//
// Writing on the socket from the driver is safe because:
//   - bytes never interleave or reorder: only the owner of a write writes (the driver while
//     it holds mu with inflight unset; the event loop while inflight is set), and the
//     driver writes directly only while gnet's own outbound buffer is known to be empty
//     (direct; cleared when bytes go to gnet, set again by the callback that sees gnet's
//     buffer drained);
//   - the descriptor cannot be closed and reused under the write: the driver writes holding
//     mu, and gnet calls OnClose (which marks the connection closed under mu, see
//     removeClient) before it closes the descriptor.
//
// Concurrency: dirty belongs to the driver goroutine. mu guards inflight, closed and direct,
// and serialises take-and-mark, so that a reply queued while a write completes is never left
// behind. taken and iov belong to whoever set inflight (the driver in kick, then the event
// loop in onWritten), or to the driver while it writes directly under mu.
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

	fd       int // the socket, for the driver's direct writes (see the type's comment)
	mu       sync.Mutex
	inflight bool
	closed   bool
	direct   bool // gnet holds none of this connection's bytes: the driver may write itself
	taken    []*chunk
	iov      [][]byte
	vecs     []unix.Iovec // the direct write's iovec array, reused

	onWrittenFn gnet.AsyncCallback // cached method value: no closure per write
}

func (t *Transport) addClient(c gnet.Conn) *clientConn {
	cc := &clientConn{
		t:    t,
		id:   ClientID(t.nextClientID.Add(1)),
		conn: c,
		fd:   c.Fd(),
		q:    newOutQueue(t.cfg.ClientQueueBytes, t.cfg.ChunkBytes),
		// direct starts false: the first flush goes through gnet, since the handshake answer
		// may still sit in gnet's buffer; its callback enables direct writes once it is empty.
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

// kick sends everything queued: directly on the socket when it can (see clientConn), and
// through one gnet AsyncWritev for what the socket did not take. Nothing happens while a
// write is in flight: its callback picks the new replies up.
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
	cc.t.metrics.BytesOut.Add(uint64(n))
	if cc.direct {
		w, err := cc.writeDirect()
		switch {
		case w == n:
			cc.t.metrics.ClientDirectWrites.Add(1)
			cc.release()
			cc.mu.Unlock()
			return
		case err != nil && err != unix.EAGAIN:
			// The connection is broken: drop the replies as a failed gnet write would.
			// The event loop sees the error on its side and closes the connection.
			cc.release()
			cc.mu.Unlock()
			return
		}
		// The socket took part (or nothing): gnet writes the rest when it can.
		cc.iov = trimIovec(cc.iov, w)
		cc.direct = false
	}
	cc.inflight = true
	cc.mu.Unlock()
	cc.t.metrics.ClientAsyncWrites.Add(1)
	if err := cc.conn.AsyncWritev(cc.iov, cc.onWrittenFn); err != nil {
		cc.release()
		cc.endInflight()
	}
}

// writeDirect issues one non-blocking writev of cc.iov on the socket and returns the bytes
// it took. Caller holds mu.
func (cc *clientConn) writeDirect() (int, error) {
	cc.vecs = cc.vecs[:0]
	for _, b := range cc.iov {
		if len(b) == 0 {
			continue
		}
		v := unix.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		cc.vecs = append(cc.vecs, v)
		if len(cc.vecs) == maxDirectIovecs {
			break // the rest goes through gnet (a writev takes at most IOV_MAX buffers)
		}
	}
	if len(cc.vecs) == 0 {
		return 0, nil
	}
	defer clear(cc.vecs) // no references to the chunks beyond this call
	for {
		r, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(cc.fd), uintptr(unsafe.Pointer(&cc.vecs[0])), uintptr(len(cc.vecs)))
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// maxDirectIovecs bounds one direct writev (Linux's IOV_MAX is 1024).
const maxDirectIovecs = 1024

// trimIovec drops the first n bytes of iov, in place.
func trimIovec(iov [][]byte, n int) [][]byte {
	i := 0
	for i < len(iov) && n >= len(iov[i]) {
		n -= len(iov[i])
		i++
	}
	if i < len(iov) {
		iov[i] = iov[i][n:]
	}
	k := copy(iov, iov[i:])
	clear(iov[k:])
	return iov[:k]
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
			// gnet wrote everything (or still buffers some, to write on EPOLLOUT): the
			// driver may write itself only in the first case.
			cc.direct = c.OutboundBuffered() == 0 && !cc.t.cfg.ClientWritesOnLoop
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
