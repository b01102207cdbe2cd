package server

import (
	"sync/atomic"

	"github.com/consensusbench/consensusbench/transport"
)

// registerTransportMetrics exports the transport's atomic counters. They are read at
// exposition time, so the event loops keep counting with plain atomic adds.
func registerTransportMetrics(m *Metrics, tr *transport.Transport) {
	tm := tr.Metrics()
	counters := []struct {
		name, help string
		v          *atomic.Uint64
	}{
		{"cb_transport_frames_in_total", "Frames received from peers and clients.", &tm.FramesIn},
		{"cb_transport_bytes_in_total", "Frame bytes received.", &tm.BytesIn},
		{"cb_transport_frames_out_total", "Frames sent to peers and clients.", &tm.FramesOut},
		{"cb_transport_bytes_out_total", "Bytes written to peers and clients.", &tm.BytesOut},
		{"cb_transport_peer_writes_total", "writev calls to peers (frames_out / peer_writes is the coalescing factor).", &tm.PeerWrites},
		{"cb_transport_client_direct_writes_total", "Reply flushes the driver wrote whole on the client's socket itself.", &tm.ClientDirectWrites},
		{"cb_transport_client_async_writes_total", "Reply flushes handed (whole or their rest) to the event loop: the first per connection, and those the socket did not take.", &tm.ClientAsyncWrites},
		{"cb_transport_closed_bad_frame_total", "Connections closed for an oversized, corrupt or unknown frame.", &tm.ClosedBadFrame},
		{"cb_transport_closed_handshake_total", "Peer connections refused at the hello.", &tm.ClosedHandshake},
		{"cb_transport_closed_timeout_total", "Connections closed by the handshake or partial-frame timeout.", &tm.ClosedTimeout},
		{"cb_transport_closed_slow_client_total", "Client connections closed for not reading replies.", &tm.ClosedSlowClient},
		{"cb_transport_closed_over_limit_total", "Inbound connections refused at a connection cap (MaxClientConns, MaxClientConnsPerHost, MaxPeerConns) or evicted as the oldest pending peer handshake (MaxPendingPeerConns).", &tm.ClosedOverLimit},
		{"cb_transport_closed_idle_total", "Connections closed by ClientIdleTimeout or PeerIdleTimeout.", &tm.ClosedIdle},
		{"cb_transport_closed_over_budget_total", "Client connections closed because their unfinished frame exceeded PartialFrameBudget.", &tm.ClosedOverBudget},
		{"cb_transport_buffer_reclaims_total", "Times closed connections' large buffers were returned to the OS.", &tm.Reclaims},
		{"cb_transport_client_busy_total", "Client replies refused because the connection's reply queue was full.", &tm.ClientBusy},
		{"cb_transport_peer_paused_total", "Times a peer's outbound queue filled up.", &tm.PeerPaused},
		{"cb_transport_peer_resumed_total", "Times a paused peer queue drained and accepted frames again.", &tm.PeerResumed},
		{"cb_transport_peer_dropped_bytes_total", "Bytes lost because a peer connection broke mid-write.", &tm.PeerDroppedByte},
		{"cb_transport_peer_connects_total", "Outbound peer handshakes that succeeded.", &tm.PeerConnects},
		{"cb_transport_peer_dial_errors_total", "Outbound peer connection attempts that failed.", &tm.PeerDialErrors},
		{"cb_transport_inbound_stalls_total", "Times an event loop found the inbound queue full.", &tm.InboundStalls},
	}
	for _, c := range counters {
		v := c.v
		m.CounterFunc(c.name, c.help, v.Load)
	}
	m.GaugeFunc("cb_transport_inbound_queue_batches", "Inbound batches waiting for the driver.", func() int64 {
		return int64(tr.InboundQueueDepth())
	})
	m.GaugeFunc("cb_transport_open_connections", "Inbound connections open.", tm.InboundOpen.Load)
	m.GaugeFunc("cb_transport_client_connections", "Client connections open (MaxClientConns).", tm.ClientConns.Load)
	m.GaugeFunc("cb_transport_peer_connections", "Established inbound peer connections open (MaxPeerConns).", tm.PeerConns.Load)
	m.GaugeFunc("cb_transport_pending_peer_connections", "Peer-port connections still in their handshake (MaxPendingPeerConns).", tm.PendingPeers.Load)
	m.GaugeFunc("cb_transport_partial_frame_bytes", "Bytes of unfinished client frames held, at their announced size (PartialFrameBudget).", tm.PartialBytes.Load)
}
