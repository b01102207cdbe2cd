package transport

import "sync/atomic"

// Metrics are the transport's counters: plain atomics so that the hot path pays one atomic
// add and the server can export them (Prometheus) by reading them from any goroutine.
// Frames and bytes count whole frames including their headers.
type Metrics struct {
	FramesIn  atomic.Uint64 // frames received and queued for the driver (peers and clients)
	BytesIn   atomic.Uint64
	FramesOut atomic.Uint64 // frames accepted by Send/SendClient
	BytesOut  atomic.Uint64 // bytes written to sockets (peers) or handed to gnet (clients)
	// PeerWrites counts writev calls to peers; FramesOut/PeerWrites is the coalescing factor.
	PeerWrites atomic.Uint64
	// ClientDirectWrites counts reply flushes the driver wrote whole on the socket itself;
	// ClientAsyncWrites those handed (entirely or their rest) to the event loop. A high share
	// of async writes means clients that read slowly.
	ClientDirectWrites atomic.Uint64
	ClientAsyncWrites  atomic.Uint64

	ClosedBadFrame   atomic.Uint64 // connections closed for an oversized, corrupt or unknown frame
	ClosedHandshake  atomic.Uint64 // inbound peer connections refused at the hello
	ClosedTimeout    atomic.Uint64 // connections closed by HandshakeTimeout or PartialFrameTimeout
	ClosedSlowClient atomic.Uint64 // client connections closed for not reading their replies
	ClosedOverLimit  atomic.Uint64 // inbound connections refused at a connection cap, or evicted as the oldest pending handshake
	ClosedIdle       atomic.Uint64 // connections closed by ClientIdleTimeout or PeerIdleTimeout
	ClosedOverBudget atomic.Uint64 // client connections closed because their unfinished frame exceeded PartialFrameBudget

	ClientBusy      atomic.Uint64 // replies refused with ErrClientBusy
	PeerPaused      atomic.Uint64 // times a peer queue filled up and Send started returning ErrPeerPaused
	PeerResumed     atomic.Uint64 // times a paused peer queue drained below half and accepted frames again
	PeerConnects    atomic.Uint64 // outbound peer handshakes that succeeded
	PeerDialErrors  atomic.Uint64 // outbound attempts that failed (dial, hello, refused)
	PeerDroppedByte atomic.Uint64 // bytes dropped because a connection broke mid-write

	InboundStalls atomic.Uint64 // times an event loop found the inbound queue full and waited
	InboundOpen   atomic.Int64  // inbound connections currently open (peers and clients)
	ClientConns   atomic.Int64  // client connections open
	PeerConns     atomic.Int64  // established inbound peer connections open
	PendingPeers  atomic.Int64  // peer-port connections still in their handshake
	PartialBytes  atomic.Int64  // bytes of unfinished client frames held (counted at their announced size)
	Reclaims      atomic.Uint64 // times closed connections' large buffers were returned to the OS
}

// Gauges that are not counters are read through Transport: InboundQueueDepth,
// PeerQueueBytes and ClientQueueBytes.
