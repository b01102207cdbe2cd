package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// Errors returned by Transport methods. They are sentinels: compare with errors.Is.
var (
	// ErrPeerPaused: the peer's outbound queue is full (the peer is slow, unreachable or not
	// reading). The frame was not queued. Tell the core the peer is paused (for Raft, treat
	// the follower as unreachable: it probes again later); Send accepts frames again once the
	// queue has drained below half (see PeerPaused).
	ErrPeerPaused = errors.New("transport: peer paused: outbound queue full")
	// ErrFrameTooLarge: the frame is larger than the whole outbound queue (PeerQueueBytes or
	// ClientQueueBytes) and can never be sent; nothing was queued and nothing is paused.
	ErrFrameTooLarge = errors.New("transport: frame larger than the outbound queue bound")
	// ErrUnknownPeer: Send to a node ID that is not in Config.Peers.
	ErrUnknownPeer = errors.New("transport: unknown peer")
	// ErrClientGone: the client connection is closed (or never existed); the reply is dropped.
	ErrClientGone = errors.New("transport: client connection closed")
	// ErrClientBusy: the client connection already has ClientQueueBytes of replies waiting
	// for their write; this reply was not queued. The connection stays open.
	ErrClientBusy = errors.New("transport: client reply queue full")
	// ErrClosed: the transport is closed.
	ErrClosed = errors.New("transport: closed")
)

// Transport moves frames between this node, its peers and its clients.
//
// Inbound: one gnet engine with multicore event loops accepts peer and client connections,
// splits the byte stream into frames with wire.Scanner and hands every whole frame to the
// owner through a bounded queue of batches (Inbound).
//
// Outbound to peers: one writer goroutine per peer owns a TCP connection (dial, hello,
// reconnect with backoff) and sends everything queued for that peer with one writev.
// Outbound to clients: replies are queued per connection and flushed once per connection per
// FlushClients, with one non-blocking writev on the socket by the driver itself; what the
// socket does not take goes to gnet's AsyncWritev (see clientConn), and so does every flush
// with Config.ClientWritesOnLoop.
//
// Concurrency contract: SendClient and FlushClients belong to one goroutine, the server's
// driver (they share its list of connections to flush); receiving from Inbound is meant for
// it too. Send, CloseClient, SetPeerAddr, Metrics, PeerConnected, PeerPaused,
// PeerQueueBytes, ClientQueueBytes and InboundQueueDepth are safe from any goroutine. Start
// and Close are called once each, by the owner.
type Transport struct {
	cfg     Config
	log     *slog.Logger
	metrics Metrics
	epoch   time.Time

	ctx         context.Context // cancelled by Close: aborts dials in progress
	cancel      context.CancelFunc
	inbound     chan *Batch
	batches     *batchPool
	closing     chan struct{}
	closeOnce   sync.Once
	clientTypes [256]bool
	helloFrame  []byte   // our hello, sent by dialers and answered by acceptors
	peerKey     *peerKey // derived from Config.PeerSecret; nil: peers are not authenticated

	peers    map[uint64]*peer // immutable after New
	peerList []*peer

	engine       gnet.Engine
	booted       chan struct{}
	engineDone   chan error
	peerListen   string // configured listen addresses with port 0 resolved
	clientListen string
	peerAddr     *net.TCPAddr
	clientAddr   *net.TCPAddr

	connsMu sync.Mutex
	conns   map[*inConn]struct{} // open inbound connections, for the timeout sweeper
	// Connection limits (limits.go), under connsMu: client connections per remote host, peer
	// connections in their handshake, and whether each cap's first refusal was logged.
	hostConns                                        map[string]int
	pending                                          map[*inConn]struct{}
	warnedClientCap, warnedHostCap, warnedPendingCap bool
	reclaim                                          chan struct{} // wakes the buffer reclaimer

	clientsMu    sync.RWMutex
	clients      map[ClientID]*clientConn
	nextClientID atomic.Uint64
	dirty        []*clientConn // driver goroutine only: clients with unflushed replies

	partition atomic.Pointer[[]uint64] // peers whose traffic is dropped (see SetPartition)

	wg sync.WaitGroup
}

// New validates cfg and builds a Transport; Start opens its sockets.
func New(cfg Config) (*Transport, error) {
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	t := &Transport{
		cfg:        c,
		log:        c.Logger, // the caller names the node (server and cmd/node add node=ID)
		epoch:      time.Now(),
		inbound:    make(chan *Batch, c.InboundQueueBatches),
		batches:    newBatchPool(c.InboundQueueBatches + freeBatchSlack),
		closing:    make(chan struct{}),
		peers:      make(map[uint64]*peer),
		booted:     make(chan struct{}),
		engineDone: make(chan error, 1),
		conns:      make(map[*inConn]struct{}),
		hostConns:  make(map[string]int),
		pending:    make(map[*inConn]struct{}),
		reclaim:    make(chan struct{}, 1),
		clients:    make(map[ClientID]*clientConn),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	for _, ty := range c.ClientFrameTypes {
		t.clientTypes[ty] = true
	}
	t.helloFrame = appendHello(nil, &t.cfg)
	t.peerKey = derivePeerKey(t.cfg.PeerSecret, t.cfg.ClusterID, t.cfg.Protocol)
	for _, p := range c.Peers {
		if p.ID == c.NodeID {
			continue
		}
		pp := newPeer(t, p)
		t.peers[p.ID] = pp
		t.peerList = append(t.peerList, pp)
	}
	return t, nil
}

// Start opens the listeners, starts the event loops, the peer writers and the timeout
// sweeper. It returns once the listeners accept connections.
func (t *Transport) Start() error {
	// Both ports are picked while both probe listeners are open, so that port 0 cannot
	// resolve to the same port twice.
	picked, release, err := pickPorts(t.cfg.PeerListen, t.cfg.ClientListen)
	release()
	if err != nil {
		return err
	}
	t.peerListen = picked[0]
	addrs := []string{"tcp://" + t.peerListen}
	if t.cfg.ClientListen != "" {
		t.clientListen = picked[1]
		if t.clientListen == t.peerListen {
			return fmt.Errorf("transport: peer and client listeners are both %s", t.peerListen)
		}
		addrs = append(addrs, "tcp://"+t.clientListen)
	}
	opts := []gnet.Option{
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(t.cfg.EventLoops),
		gnet.WithReadBufferCap(t.cfg.ReadBufferBytes),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithReuseAddr(true),
		// Half-open inbound connections (a peer host that vanished without a FIN) are found
		// and closed by the kernel, as Go's dialer does for the outbound side by default.
		gnet.WithTCPKeepAlive(tcpKeepAlive),
		gnet.WithLogger(gnetLogger{t.log}),
	}
	h := &handler{t: t}
	go func() {
		err := gnet.Rotate(h, addrs, opts...)
		t.engineDone <- err
	}()
	select {
	case <-t.booted:
	case err := <-t.engineDone:
		if err == nil {
			err = h.bootErr
		}
		if err == nil {
			err = errors.New("engine stopped before boot")
		}
		return fmt.Errorf("transport: start: %w", err)
	}
	for _, p := range t.peerList {
		t.wg.Add(1)
		go p.run()
	}
	t.wg.Add(2)
	go t.sweep()
	go t.reclaimer()
	return nil
}

// onBoot records the engine and the listeners' bound addresses (port 0 resolves here).
func (t *Transport) onBoot(eng gnet.Engine) error {
	t.engine = eng
	var err error
	if t.peerAddr, err = boundAddr(eng, t.peerListen); err != nil {
		return err
	}
	if t.clientListen != "" {
		if t.clientAddr, err = boundAddr(eng, t.clientListen); err != nil {
			return err
		}
		if t.clientAddr.Port == t.peerAddr.Port {
			return fmt.Errorf("transport: peer and client listeners share port %d", t.peerAddr.Port)
		}
	}
	close(t.booted)
	return nil
}

// pickPorts turns each port 0 into a free port chosen by the kernel (holding every probe
// listener open until release, so no two picks coincide). gnet only finds a listener by
// its configured address string, and OnOpen tells peer from client connections by the local
// port, so both listeners need distinct, known ports before gnet binds them. The port is
// free again for the instant between this probe and gnet's bind (SO_REUSEADDR is on), a
// window only port-0 callers (tests, in-process clusters) are exposed to.
func pickPorts(addrs ...string) (picked []string, release func(), err error) {
	var probes []net.Listener
	release = func() {
		for _, ln := range probes {
			ln.Close()
		}
	}
	for i, addr := range addrs {
		if addr == "" {
			picked = append(picked, "")
			continue
		}
		what := "listen address"
		if i < 2 {
			what = []string{"peer listen address", "client listen address"}[i]
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, release, fmt.Errorf("transport: %s %q: %w", what, addr, err)
		}
		// A fixed port is probed too: the event loops' own bind failure names neither the
		// address nor the cause ("setsockopt: bad file descriptor" for a port in use).
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, release, fmt.Errorf("transport: %s %s: %w", what, addr, err)
		}
		if port != "0" {
			ln.Close()
			picked = append(picked, addr)
			continue
		}
		probes = append(probes, ln)
		picked = append(picked, net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)))
	}
	return picked, release, nil
}

// boundAddr asks the kernel which address a gnet listener is bound to (gnet keeps only the
// configured string, and tests listen on port 0).
func boundAddr(eng gnet.Engine, addr string) (*net.TCPAddr, error) {
	fd, err := eng.DupListener("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listener %s: %w", addr, err)
	}
	defer unix.Close(fd)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("transport: getsockname %s: %w", addr, err)
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}, nil
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port, Zone: strconv.Itoa(int(a.ZoneId))}, nil
	}
	return nil, fmt.Errorf("transport: listener %s: unexpected address type %T", addr, sa)
}

// PeerAddr returns the bound peer listener address (valid after Start).
func (t *Transport) PeerAddr() string { return t.peerAddr.String() }

// ClientAddr returns the bound client listener address, or "" without a client listener.
func (t *Transport) ClientAddr() string {
	if t.clientAddr == nil {
		return ""
	}
	return t.clientAddr.String()
}

// Metrics returns the transport's counters (safe from any goroutine).
func (t *Transport) Metrics() *Metrics { return &t.metrics }

// Inbound returns the inbound queue. Every Batch received must be Released. The channel is
// never closed (select on your own stop signal as well); it is bounded by
// InboundQueueBatches, and when it is full the event loops wait, so a driver that falls
// behind slows its senders down through TCP instead of growing memory.
func (t *Transport) Inbound() <-chan *Batch { return t.inbound }

// InboundQueueDepth returns the number of batches waiting in the inbound queue.
func (t *Transport) InboundQueueDepth() int { return len(t.inbound) }

// now returns monotonic nanoseconds since the transport was built (an int64, so it fits in
// an atomic shared with the sweeper).
func (t *Transport) now() int64 { return int64(time.Since(t.epoch)) }

// Close stops everything: listeners, inbound and outbound connections, goroutines. Batches
// already received stay valid until released. Close is idempotent.
func (t *Transport) Close() error {
	var err error
	t.closeOnce.Do(func() {
		close(t.closing)
		t.cancel()
		for _, p := range t.peerList {
			p.closeConn()
		}
		select {
		case <-t.booted:
			// Engine.Stop polls for the end of shutdown every 500 ms; gnet.Rotate returning is
			// the precise signal, so wait for that instead.
			ctx, cancel := context.WithTimeout(context.Background(), engineStopTimeout)
			go func() { _ = t.engine.Stop(ctx) }()
			select {
			case err = <-t.engineDone:
			case <-ctx.Done():
				err = fmt.Errorf("transport: engine did not stop within %v", engineStopTimeout)
			}
			cancel()
		default:
		}
		t.wg.Wait()
		// Drain what the event loops queued: nobody will release it otherwise.
		for {
			select {
			case b := <-t.inbound:
				b.Release()
				continue
			default:
			}
			break
		}
	})
	return err
}

// sweep enforces HandshakeTimeout and PartialFrameTimeout on inbound connections. gnet has
// no read deadlines, so a goroutine looks at every connection a few times per timeout and
// closes the late ones (Conn.Close is safe off the event loop).
func (t *Transport) sweep() {
	defer t.wg.Done()
	every := max(min(t.cfg.HandshakeTimeout, t.cfg.PartialFrameTimeout)/sweepsPerTimeout, minSweepInterval)
	tick := time.NewTicker(every)
	defer tick.Stop()
	var late []*inConn
	for {
		select {
		case <-t.closing:
			return
		case <-tick.C:
		}
		now := t.now()
		late = late[:0]
		t.connsMu.Lock()
		for ic := range t.conns {
			if r, _ := ic.overdue(now, &t.cfg); r != "" {
				late = append(late, ic)
			}
		}
		t.connsMu.Unlock()
		for _, ic := range late {
			reason, idle := ic.overdue(now, &t.cfg)
			if reason == "" || !ic.markClosing() {
				continue
			}
			if idle {
				t.metrics.ClosedIdle.Add(1)
			} else {
				t.metrics.ClosedTimeout.Add(1)
			}
			t.log.Warn("closing inbound connection", "remote", ic.remote, "kind", ic.kind, "reason", reason)
			_ = ic.conn.Close()
		}
	}
}

const (
	// sweepsPerTimeout is how many times per timeout the sweeper looks: a late connection
	// lives at most 1/sweepsPerTimeout longer than its timeout.
	sweepsPerTimeout = 4
	// minSweepInterval stops tiny test timeouts from turning the sweeper into a busy loop.
	minSweepInterval = 5 * time.Millisecond
	// freeBatchSlack adds room in the batch free list beyond a full inbound queue for the
	// batches the driver holds and the event loops are filling.
	freeBatchSlack = 64
	// tcpKeepAlive is the keep-alive idle time on inbound connections (Go's dialer default).
	tcpKeepAlive = 15 * time.Second
	// engineStopTimeout bounds Close's wait for gnet's event loops to finish.
	engineStopTimeout = 10 * time.Second
)
