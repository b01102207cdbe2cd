// Package transport moves frames between replicas and between replicas and their clients.
//
// It owns: one gnet v2 engine with multicore event loops that accepts peer and client
// connections; frame reassembly with wire.Scanner in OnTraffic (every whole frame per read,
// a partial frame left in gnet's buffer, nothing used after Discard, bodies copied into
// pooled batches); a bounded inbound queue of batches for the server's driver goroutine;
// one writer goroutine per peer that dials, exchanges hellos (cluster ID, node ID, consensus
// protocol, protocol version) and, with a cluster secret, proves both ends hold it (auth.go),
// reconnects with backoff, and sends everything queued for the
// peer in one writev; per-peer outbound queues bounded in bytes that report "peer paused"
// instead of growing; batched replies to client connections, written by the driver on the socket (the rest
// through gnet's AsyncWritev when the socket is full); and
// counters (Metrics) for frames, bytes, queue depths, pauses and closed connections.
//
// Hostile or broken input closes only the connection it came on, is logged once and is
// counted: an oversized, corrupt or unknown frame (Metrics.ClosedBadFrame), a refused hello
// (ClosedHandshake), and a connection that does not present a hello within
// HandshakeTimeout or leaves a frame unfinished for PartialFrameTimeout (ClosedTimeout; this
// is the slowloris defence, since gnet has no read deadlines). Clients and peers have
// separate connection caps, idle timeouts and frame limits, and unfinished client frames
// share a memory budget (limits.go).
//
// It must not: decide protocol logic (it never decodes a message body other than the
// hello; which peer to send what is the core's business), grow any queue or buffer without
// a bound, block the driver on the network, or allocate per frame in steady state.
//
// Every type and method documents which goroutines may call it and how long the buffers it
// hands out stay valid; docs/ARCHITECTURE.md shows where the transport sits in the data path.
package transport
