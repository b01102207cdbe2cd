package transport

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/consensusbench/consensusbench/wire"
)

// Defaults for Config fields left zero. Each bounds memory or time; relationships between
// them are checked once in Config.validate.
const (
	// DefaultPeerQueueBytes bounds one peer's outbound queue (frames queued plus the write in
	// flight). It must hold one frame of wire.DefaultMaxFrameBytes; 16 MiB is still only a
	// few milliseconds of a saturated loopback stream, so a dead peer holds little memory.
	DefaultPeerQueueBytes = 16 << 20
	// DefaultClientQueueBytes bounds one client connection's reply queue plus what gnet still
	// holds in that connection's outbound buffer.
	DefaultClientQueueBytes = 4 << 20
	// DefaultChunkBytes is the size of one outbound queue chunk; a write sends whole chunks
	// (writev), so it is also the granularity of buffer reuse.
	DefaultChunkBytes = 64 << 10
	// DefaultInboundQueueBatches bounds the inbound queue in batches. A batch is what one
	// OnTraffic call produced (at most ReadBufferCap bytes of frames plus one frame that was
	// left partial earlier), so the queue holds at most
	// InboundQueueBatches * (ReadBufferBytes + MaxFrameBytes) bytes; in practice batches are
	// far smaller.
	DefaultInboundQueueBatches = 1024
	// DefaultReadBufferBytes is gnet's per-event-loop read buffer: the most one OnTraffic sees
	// from the socket at a time.
	DefaultReadBufferBytes = 64 << 10
	// DefaultMaxClientConns bounds open client connections; beyond it new ones are closed at
	// once, so a connection flood cannot exhaust file descriptors or memory. Peers have their
	// own caps, so a client flood never keeps a peer out.
	DefaultMaxClientConns = 4096
	// DefaultMaxClientConnsPerHost bounds the client connections from one remote address, so
	// one host cannot take every client slot.
	DefaultMaxClientConnsPerHost = 1024
	// DefaultMaxPendingPeerConns bounds peer-port connections still in their handshake. When
	// it is full, the oldest is closed to admit the new one: a flood of connections that never
	// finish a hello cannot keep a real peer (whose handshake takes a round trip) out.
	DefaultMaxPendingPeerConns = 64
	// DefaultPeerConnsPerPeer sets the default MaxPeerConns: this many established inbound
	// connections per configured peer (a reconnect can briefly overlap the old connection).
	DefaultPeerConnsPerPeer = 4
	// DefaultClientIdleTimeout and DefaultPeerIdleTimeout close an inbound connection that sent
	// nothing for that long (a client connection: nor received a reply), so idle connections
	// cannot hold slots forever. A client or peer reconnects when it has something to send.
	DefaultClientIdleTimeout = 2 * time.Minute
	DefaultPeerIdleTimeout   = 2 * time.Minute
	// DefaultPartialFrameBudget bounds the bytes of unfinished frames that client connections
	// hold together (each frame counted at its announced size while it is incomplete); a
	// connection whose frame would exceed it is closed. The event loops buffer a partial
	// frame whole, so without a budget many connections each announcing a large frame could
	// take memory without bound.
	DefaultPartialFrameBudget = 128 << 20
	// DefaultHandshakeTimeout bounds how long an inbound peer connection may take to present
	// a valid hello before it is closed.
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultPartialFrameTimeout is the read deadline of a partial frame: once some bytes of
	// a frame have arrived, the rest must arrive within it or the connection is closed. This
	// is what defeats a slowloris trickle (a header that never completes), since gnet has no
	// read deadlines of its own.
	DefaultPartialFrameTimeout = 10 * time.Second
	// DefaultDialTimeout bounds one outbound connection attempt including the hello exchange.
	DefaultDialTimeout = 2 * time.Second
	// DefaultReconnectMin and DefaultReconnectMax bound the reconnect backoff; it doubles
	// from min to max after each failed attempt (with jitter) and resets after a handshake
	// succeeds.
	DefaultReconnectMin = 20 * time.Millisecond
	DefaultReconnectMax = 1 * time.Second
)

// DefaultClientFrameTypes lists the frame types accepted on client connections when
// Config.ClientFrameTypes is nil.
var DefaultClientFrameTypes = []wire.Type{wire.TypeClientRequest, wire.TypePBFTRequest}

// ProtocolVersion is the peer protocol version carried in the hello. Peers with another
// version are refused.
const ProtocolVersion uint16 = 1

// Peer names one member of the cluster.
type Peer struct {
	// ID is the node ID; 0 is reserved (it means "no node").
	ID uint64
	// Addr is the peer listener address, host:port; "" means "not known yet": the peer is
	// not dialled until Transport.SetPeerAddr names it.
	Addr string
}

// Config configures a Transport. Zero values select the defaults above. New copies it; later
// changes to the caller's value have no effect.
type Config struct {
	// ClusterID must match between peers; a hello with another one is refused.
	ClusterID uint64
	// NodeID is this node's ID (non-zero).
	NodeID uint64
	// Protocol is the consensus protocol this cluster runs; a hello naming another is refused.
	Protocol wire.Protocol
	// PeerListen is the address peers connect to (host:port; port 0 picks a free one,
	// see Transport.PeerAddr).
	PeerListen string
	// ClientListen is the address clients connect to; empty means no client listener.
	ClientListen string
	// Peers are the other members this node dials (entries with ID == NodeID are ignored).
	// Only these IDs are accepted in inbound hellos.
	Peers []Peer
	// PeerSecret, when set (at least PeerSecretMinBytes), is the cluster secret every peer
	// must prove it holds at the hello (auth.go); nil accepts any peer that names a
	// configured ID, which is safe only on a network nobody else reaches.
	PeerSecret []byte

	// EventLoops is the number of gnet event loops; 0 is DefaultEventLoops().
	EventLoops int
	// ReadBufferBytes is gnet's per-loop read buffer (ReadBufferCap).
	ReadBufferBytes int
	// MaxFrameBytes bounds every inbound frame (header + body); 0 is wire's default.
	MaxFrameBytes int
	// InboundQueueBatches bounds the inbound queue (see DefaultInboundQueueBatches).
	InboundQueueBatches int
	// PeerQueueBytes bounds each peer's outbound queue; Send returns ErrPeerPaused beyond it.
	PeerQueueBytes int
	// ClientQueueBytes bounds each client connection's replies in flight; beyond it the
	// client is closed as too slow (it is not reading its replies).
	ClientQueueBytes int
	// ChunkBytes is the outbound queue chunk size.
	ChunkBytes int
	// ClientWritesOnLoop hands every reply flush to the event loops (gnet's AsyncWritev)
	// instead of writing it on the socket from the driver (see clientConn). Direct writes
	// save an eventfd write and a loop wake-up per flush, which is most of the reply path's
	// cost when each request is small; the event loops instead write beside the driver and
	// coalesce a connection's replies of several rounds into one writev, which pays when the
	// driver is the bottleneck and replies are many. PBFT replicas set it: every replica
	// answers every request there, and direct writes cost PBFT's saturated shape 11% of
	// its throughput (results/bench/README.md, "Direct client replies").
	ClientWritesOnLoop bool
	// ClientFrameTypes are the types accepted from clients (nil: DefaultClientFrameTypes).
	ClientFrameTypes []wire.Type
	// MaxClientFrameBytes bounds frames on client connections (0: MaxFrameBytes); the server
	// sizes it to its largest client request, far below what peers may send.
	MaxClientFrameBytes int
	// MaxClientConns and MaxClientConnsPerHost bound client connections in all and per
	// remote address; MaxPeerConns bounds established inbound peer connections (0:
	// DefaultPeerConnsPerPeer per configured peer) and MaxPendingPeerConns those still in
	// their handshake (see the defaults). Event loops check the totals independently, so
	// they may be overshot by at most EventLoops-1.
	MaxClientConns        int
	MaxClientConnsPerHost int
	MaxPeerConns          int
	MaxPendingPeerConns   int
	// PartialFrameBudget bounds the unfinished frames of client connections, in bytes (see
	// DefaultPartialFrameBudget); at least MaxClientFrameBytes.
	PartialFrameBudget int

	HandshakeTimeout    time.Duration
	PartialFrameTimeout time.Duration
	ClientIdleTimeout   time.Duration
	PeerIdleTimeout     time.Duration
	DialTimeout         time.Duration
	ReconnectMin        time.Duration
	ReconnectMax        time.Duration

	// Logger receives connection events (refused hellos, bad frames, reconnects);
	// nil discards them. The transport adds no node attribute: the caller's logger names
	// the node (with one, every line would carry it twice).
	Logger *slog.Logger
}

func (c *Config) withDefaults() Config {
	d := *c
	d.PeerSecret = bytes.Clone(c.PeerSecret)
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt(&d.EventLoops, DefaultEventLoops())
	setInt(&d.ReadBufferBytes, DefaultReadBufferBytes)
	if d.MaxFrameBytes == 0 {
		d.MaxFrameBytes = wire.DefaultMaxFrameBytes
	}
	setInt(&d.InboundQueueBatches, DefaultInboundQueueBatches)
	setInt(&d.PeerQueueBytes, DefaultPeerQueueBytes)
	setInt(&d.ClientQueueBytes, DefaultClientQueueBytes)
	setInt(&d.ChunkBytes, DefaultChunkBytes)
	setInt(&d.MaxClientFrameBytes, d.MaxFrameBytes)
	setInt(&d.MaxClientConns, DefaultMaxClientConns)
	setInt(&d.MaxClientConnsPerHost, DefaultMaxClientConnsPerHost)
	setInt(&d.MaxPeerConns, DefaultPeerConnsPerPeer*max(1, len(d.Peers)))
	setInt(&d.MaxPendingPeerConns, DefaultMaxPendingPeerConns)
	setInt(&d.PartialFrameBudget, max(DefaultPartialFrameBudget, d.MaxClientFrameBytes))
	setDur(&d.ClientIdleTimeout, DefaultClientIdleTimeout)
	setDur(&d.PeerIdleTimeout, DefaultPeerIdleTimeout)
	if d.ClientFrameTypes == nil {
		d.ClientFrameTypes = DefaultClientFrameTypes
	}
	setDur(&d.HandshakeTimeout, DefaultHandshakeTimeout)
	setDur(&d.PartialFrameTimeout, DefaultPartialFrameTimeout)
	setDur(&d.DialTimeout, DefaultDialTimeout)
	setDur(&d.ReconnectMin, DefaultReconnectMin)
	setDur(&d.ReconnectMax, DefaultReconnectMax)
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return d
}

func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("transport: "+format, args...)) }
	if c.NodeID == 0 {
		bad("NodeID must be non-zero")
	}
	if c.Protocol != wire.ProtocolRaft && c.Protocol != wire.ProtocolPBFT {
		bad("Protocol must be raft or pbft, got %v", c.Protocol)
	}
	if c.PeerListen == "" {
		bad("PeerListen is required")
	}
	seen := map[uint64]bool{}
	for _, p := range c.Peers {
		if p.ID == 0 {
			bad("peer %q has ID 0", p.Addr)
		}
		if seen[p.ID] {
			bad("peer ID %d listed twice", p.ID)
		}
		seen[p.ID] = true
	}
	if c.PeerSecret != nil && len(c.PeerSecret) < PeerSecretMinBytes {
		bad("PeerSecret has %d bytes, want at least %d", len(c.PeerSecret), PeerSecretMinBytes)
	}
	if err := wire.CheckMaxFrameBytes(c.MaxFrameBytes); err != nil {
		errs = append(errs, err)
	}
	if c.EventLoops < 0 || c.ReadBufferBytes < wire.HeaderSize || c.InboundQueueBatches < 1 || c.ChunkBytes < 1 {
		bad("EventLoops, ReadBufferBytes, InboundQueueBatches and ChunkBytes must be positive")
	}
	if c.MaxClientConns < 1 || c.MaxClientConnsPerHost < 1 || c.MaxPeerConns < 1 || c.MaxPendingPeerConns < 1 {
		bad("MaxClientConns, MaxClientConnsPerHost, MaxPeerConns and MaxPendingPeerConns must be positive")
	}
	if c.MaxClientFrameBytes < wire.HeaderSize || c.MaxClientFrameBytes > c.MaxFrameBytes {
		bad("MaxClientFrameBytes (%d) must hold a frame header and be at most MaxFrameBytes (%d)", c.MaxClientFrameBytes, c.MaxFrameBytes)
	}
	if c.PartialFrameBudget < c.MaxClientFrameBytes {
		bad("PartialFrameBudget (%d) must hold one client frame of MaxClientFrameBytes (%d)", c.PartialFrameBudget, c.MaxClientFrameBytes)
	}
	// A queue must hold at least one maximal frame, or a legal frame could never be sent.
	if c.PeerQueueBytes < c.MaxFrameBytes {
		bad("PeerQueueBytes (%d) must be at least MaxFrameBytes (%d)", c.PeerQueueBytes, c.MaxFrameBytes)
	}
	if c.ClientQueueBytes < wire.HeaderSize {
		bad("ClientQueueBytes (%d) must hold at least a frame header", c.ClientQueueBytes)
	}
	if c.HandshakeTimeout < 0 || c.PartialFrameTimeout < 0 || c.DialTimeout < 0 || c.ClientIdleTimeout < 0 || c.PeerIdleTimeout < 0 {
		bad("timeouts must be positive")
	}
	if c.ReconnectMin <= 0 || c.ReconnectMax < c.ReconnectMin {
		bad("need 0 < ReconnectMin <= ReconnectMax")
	}
	for _, t := range c.ClientFrameTypes {
		if !t.Valid() || t == wire.TypePeerHello {
			bad("ClientFrameTypes holds %v, which is not a client message type", t)
		}
	}
	return errors.Join(errs...)
}

// DefaultEventLoops is the number of event loops when the config names none: one per four
// Ps (GOMAXPROCS), at least one. An event loop sleeps in epoll_wait, a blocking system call
// that keeps its P until the runtime's monitor takes it back, so gnet's default of one loop
// per CPU left no P free for the driver on a small machine: the driver then waited for the
// monitor (which ran every 20 us doing so) and woke threads to get one. On the 2-core dev VM
// one loop instead of two took one-op-per-request node CPU from 12.8 to 10.4 us/op and
// make run from 406k to 452k ops/s, PBFT unchanged (results/bench/README.md, "One event loop
// per node"). The quarter is a guess above 2 cores: nothing larger was measured.
func DefaultEventLoops() int { return max(1, runtime.GOMAXPROCS(0)/4) }
