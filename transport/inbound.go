package transport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"

	"github.com/consensusbench/consensusbench/wire"
)

type connKind uint8

const (
	kindPeer connKind = iota + 1
	kindClient
)

func (k connKind) String() string {
	if k == kindPeer {
		return "peer"
	}
	return "client"
}

// inConn is the state of one inbound connection, kept in the gnet conn's context.
//
// Concurrency: scanner, peerID and the batch logic belong to the connection's event loop.
// ready, partialSince and closing are atomics because the sweeper goroutine reads them;
// openedAt, kind, remote and conn are immutable after OnOpen.
type inConn struct {
	conn     gnet.Conn
	kind     connKind
	remote   string
	openedAt int64
	client   *clientConn // kindClient only

	scanner   wire.Scanner
	peerID    uint64 // kindPeer, after the hello
	stage     uint8  // kindPeer: handshake stage until ready (auth.go)
	nonceD    [wire.PeerAuthNonceSize]byte
	nonceA    [wire.PeerAuthNonceSize]byte
	needBytes int // bytes the buffered partial frame needs in all; 0 when none is pending

	host     string // kindClient: the remote host, for MaxClientConnsPerHost
	reserved int    // bytes of PartialFrameBudget this connection holds (kindClient)
	evicted  bool   // a pending peer connection closed to admit a newer one (connsMu)

	ready        atomic.Bool  // peer: handshake complete; client: always
	partialSince atomic.Int64 // transport time when the pending partial frame began; 0 when none
	lastRead     atomic.Int64 // transport time of the last bytes read, for the idle timeouts
	closing      atomic.Bool  // a close has been decided (count and log it once)
}

// markClosing reports whether this call is the first to decide to close the connection.
func (ic *inConn) markClosing() bool { return ic.closing.CompareAndSwap(false, true) }

// overdue names the timeout a connection has exceeded at time now, or returns ""; idle says
// it is an idle timeout.
func (ic *inConn) overdue(now int64, cfg *Config) (reason string, idle bool) {
	if !ic.ready.Load() && now-ic.openedAt > int64(cfg.HandshakeTimeout) {
		return "no valid hello within HandshakeTimeout", false
	}
	if ps := ic.partialSince.Load(); ps != 0 && now-ps > int64(cfg.PartialFrameTimeout) {
		return "partial frame not completed within PartialFrameTimeout", false
	}
	last := max(ic.lastRead.Load(), ic.openedAt)
	if ic.client != nil {
		last = max(last, ic.client.lastWrite.Load())
	}
	idleFor := now - last
	switch {
	case ic.kind == kindClient && idleFor > int64(cfg.ClientIdleTimeout):
		return "nothing received or sent within ClientIdleTimeout", true
	case ic.kind == kindPeer && ic.ready.Load() && idleFor > int64(cfg.PeerIdleTimeout):
		return "nothing received within PeerIdleTimeout", true
	}
	return "", false
}

// handler is the gnet event handler. Its callbacks run on the event loops; each connection
// stays on one loop for its life, so per-connection state needs no locks.
type handler struct {
	gnet.BuiltinEventEngine
	t       *Transport
	bootErr error
}

func (h *handler) OnBoot(eng gnet.Engine) gnet.Action {
	if err := h.t.onBoot(eng); err != nil {
		h.bootErr = err
		h.t.log.Error("transport boot failed", "err", err)
		return gnet.Shutdown
	}
	return gnet.None
}

func (h *handler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	t := h.t
	ic := &inConn{conn: c, kind: kindPeer, openedAt: t.now()}
	// Until its handshake completes, a peer connection may send only hello-sized frames.
	ic.scanner.MaxFrameBytes = helloMaxFrameBytes
	if ra := c.RemoteAddr(); ra != nil {
		ic.remote = ra.String()
	}
	if la, ok := c.LocalAddr().(*net.TCPAddr); ok && t.clientAddr != nil && la.Port == t.clientAddr.Port {
		ic.kind = kindClient
		ic.scanner.MaxFrameBytes = t.cfg.MaxClientFrameBytes
	}
	if !t.admit(ic) {
		// No context is set, so OnClose ignores this connection.
		return nil, gnet.Close
	}
	if ic.kind == kindClient {
		ic.ready.Store(true)
		ic.client = t.addClient(c)
	}
	c.SetContext(ic)
	t.connsMu.Lock()
	t.conns[ic] = struct{}{}
	t.connsMu.Unlock()
	t.metrics.InboundOpen.Add(1)
	return nil, gnet.None
}

func (h *handler) OnClose(c gnet.Conn, err error) gnet.Action {
	t := h.t
	ic, ok := c.Context().(*inConn)
	if !ok {
		return gnet.None
	}
	t.connsMu.Lock()
	delete(t.conns, ic)
	t.connsMu.Unlock()
	t.metrics.InboundOpen.Add(-1)
	t.release(ic)
	if ic.client != nil {
		t.removeClient(ic.client)
	}
	if ic.kind == kindPeer && ic.ready.Load() {
		t.log.Info("inbound peer connection closed", "peer", ic.peerID, "remote", ic.remote, "err", err)
	}
	return gnet.None
}

// OnTraffic splits everything buffered into frames (scan), discards exactly the bytes of the
// whole frames (a partial frame stays in gnet's buffer for the next read), and only then hands
// the batch to the driver: no slice of gnet's buffer is used after Discard or outside this
// callback.
func (h *handler) OnTraffic(c gnet.Conn) gnet.Action {
	t := h.t
	ic := c.Context().(*inConn)
	if ic.needBytes > 0 && c.InboundBuffered() < ic.needBytes {
		// The pending frame is still incomplete. Peeking now would copy the whole partial
		// frame out of gnet's ring buffer on every read: quadratic in the frame's size.
		return gnet.None
	}
	ic.lastRead.Store(t.now())
	buf, err := c.Peek(-1)
	if err != nil || len(buf) == 0 {
		return gnet.None
	}
	consumed, frames, b, ok := h.scan(ic, buf, c)
	if !ok {
		return gnet.Close
	}
	if consumed > 0 {
		_, _ = c.Discard(consumed)
	}
	// buf is dead from here on.
	ic.needBytes = 0
	switch partial := consumed < len(buf); {
	case !partial:
		ic.partialSince.Store(0)
	case frames > 0 || ic.partialSince.Load() == 0:
		// A new partial frame began in this read: its deadline starts now.
		ic.partialSince.Store(t.now())
		fallthrough
	default:
		ic.needBytes = len(buf) - consumed + ic.scanner.Need()
	}
	ic.scanner.Reset(nil) // drop the scanner's reference to gnet's buffer
	if !t.reserve(ic, ic.needBytes) {
		if ic.markClosing() {
			t.metrics.ClosedOverBudget.Add(1)
			t.log.Warn("closing client connection: its unfinished frame does not fit PartialFrameBudget", "remote", ic.remote,
				"frame_bytes", ic.needBytes, "held_bytes", t.metrics.PartialBytes.Load(), "budget", t.cfg.PartialFrameBudget)
		}
		if b != nil {
			b.Release()
		}
		return gnet.Close
	}
	if b == nil {
		return gnet.None
	}
	t.metrics.FramesIn.Add(uint64(len(b.Frames)))
	t.metrics.BytesIn.Add(uint64(consumed))
	return t.enqueue(b)
}

// scan takes every whole frame at the start of buf: the hello of a peer connection is
// checked and answered through w, every later frame's body is copied into a batch. It
// returns the bytes the whole frames occupy, how many there were, the sealed batch (nil when
// no frame is for the driver) and ok = false when the connection must close (the reason is
// counted and logged here). Only ic.scanner still refers to buf when it returns.
func (h *handler) scan(ic *inConn, buf []byte, w io.Writer) (consumed, frames int, b *Batch, ok bool) {
	t := h.t
	fail := func() (int, int, *Batch, bool) {
		if b != nil {
			b.Release()
		}
		return 0, 0, nil, false
	}
	ic.scanner.Reset(buf)
	for {
		f, whole, err := ic.scanner.Next()
		if err != nil {
			h.badFrame(ic, err, wire.TypeInvalid)
			return fail()
		}
		if !whole {
			break
		}
		frames++
		if !ic.ready.Load() {
			// Answer with our own hello (and authentication) so the dialer can check it
			// reached the node it meant.
			answer, err := h.acceptHandshake(ic, f)
			if err != nil {
				h.refuse(ic, err)
				return fail()
			}
			if answer != nil {
				if _, err := w.Write(answer); err != nil {
					return fail()
				}
			}
			continue
		}
		if f.Type == wire.TypePeerAuth && ic.kind == kindPeer {
			h.refuse(ic, errAuthOffered)
			return fail()
		}
		if !h.accepts(ic, f.Type) {
			h.badFrame(ic, errUnexpectedType, f.Type)
			return fail()
		}
		if ic.peerID != 0 && t.partitioned(ic.peerID) {
			continue // lost in the (injected) partition
		}
		if b == nil {
			b = t.batches.get()
		}
		var client ClientID
		if ic.client != nil {
			client = ic.client.id
		}
		b.add(ic.peerID, client, f)
	}
	if b != nil {
		b.seal()
	}
	return ic.scanner.Consumed(), frames, b, true
}

// enqueue hands a batch to the driver, waiting while the queue is full: the event loop stops
// reading, so TCP pushes back on the senders. The wait ends when the transport closes.
func (t *Transport) enqueue(b *Batch) gnet.Action {
	select {
	case t.inbound <- b:
		return gnet.None
	default:
	}
	t.metrics.InboundStalls.Add(1)
	select {
	case t.inbound <- b:
		return gnet.None
	case <-t.closing:
		b.Release()
		return gnet.Close
	}
}

var (
	errUnexpectedType = errors.New("frame type not allowed on this connection")
	errHelloCluster   = errors.New("cluster ID mismatch")
	errHelloVersion   = errors.New("protocol version mismatch")
	errHelloProtocol  = errors.New("consensus protocol mismatch")
	errHelloNode      = errors.New("node ID is not a configured peer")
	errHelloSelf      = errors.New("node ID is our own")
)

// accepts reports whether a frame of type ty may arrive on this connection after its
// handshake: clients send only ClientFrameTypes; peers send anything but another hello or a
// client-only type.
func (h *handler) accepts(ic *inConn, ty wire.Type) bool {
	if ic.kind == kindClient {
		return h.t.clientTypes[ty]
	}
	return ty != wire.TypePeerHello && ty != wire.TypePeerAuth && ty != wire.TypeClientRequest && ty != wire.TypeClientReply
}

// acceptHello checks the first frame of an inbound peer connection.
func (h *handler) acceptHello(ic *inConn, f wire.Frame) error {
	t := h.t
	if f.Type != wire.TypePeerHello {
		return fmt.Errorf("first frame is %v, want PeerHello", f.Type)
	}
	hello, err := decodeHello(f.Body)
	if err != nil {
		return err
	}
	if err := t.checkHello(hello, 0); err != nil {
		return err
	}
	ic.peerID = hello.NodeID
	return nil
}

// refuse counts and logs (once per connection) a peer connection refused at its handshake.
func (h *handler) refuse(ic *inConn, err error) {
	if ic.markClosing() {
		h.t.metrics.ClosedHandshake.Add(1)
		h.t.log.Warn("refusing peer connection", "remote", ic.remote, "peer", ic.peerID, "reason", err)
	}
}

// checkHello validates a peer's hello; want is the node ID expected (0: any configured peer).
func (t *Transport) checkHello(h wire.PeerHello, want uint64) error {
	switch {
	case h.ClusterID != t.cfg.ClusterID:
		return fmt.Errorf("%w: got %d, want %d", errHelloCluster, h.ClusterID, t.cfg.ClusterID)
	case h.Protocol != t.cfg.Protocol:
		return fmt.Errorf("%w: got %v, want %v", errHelloProtocol, h.Protocol, t.cfg.Protocol)
	case h.ProtocolVersion != ProtocolVersion:
		return fmt.Errorf("%w: got %d, want %d", errHelloVersion, h.ProtocolVersion, ProtocolVersion)
	case h.NodeID == t.cfg.NodeID:
		return fmt.Errorf("%w: %d", errHelloSelf, h.NodeID)
	case t.peers[h.NodeID] == nil:
		return fmt.Errorf("%w: %d", errHelloNode, h.NodeID)
	case want != 0 && h.NodeID != want:
		return fmt.Errorf("%w: got %d, dialled %d", errHelloNode, h.NodeID, want)
	}
	return nil
}

// badFrame counts and logs (once per connection) a frame that closes its connection.
func (h *handler) badFrame(ic *inConn, err error, ty wire.Type) {
	if !ic.markClosing() {
		return
	}
	h.t.metrics.ClosedBadFrame.Add(1)
	h.t.log.Warn("closing connection on bad frame", "kind", ic.kind, "remote", ic.remote, "peer", ic.peerID, "type", ty, "err", err)
}
