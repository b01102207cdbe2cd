package transport

import (
	"net"
	"runtime/debug"
	"time"
)

// Inbound connection limits, by kind. Clients and peers have separate caps, so a flood on
// the client port never keeps a peer out: MaxClientConns and MaxClientConnsPerHost for
// clients; MaxPendingPeerConns for peer-port connections still in their handshake (full:
// the oldest is evicted), MaxPeerConns for established ones. Frames are bounded per port
// (MaxClientFrameBytes on the client port; helloMaxFrameBytes on a peer connection until its
// handshake completes, MaxFrameBytes after), unfinished client frames share
// PartialFrameBudget, and idle connections are closed after ClientIdleTimeout or
// PeerIdleTimeout. Every refusal is counted in Metrics and logged once per kind of refusal.

// admit decides whether a new inbound connection may stay, and counts it. It returns false
// (counted in ClosedOverLimit) when a cap is reached. Called from OnOpen, before the
// connection is in t.conns.
func (t *Transport) admit(ic *inConn) bool {
	t.connsMu.Lock()
	defer t.connsMu.Unlock()
	switch ic.kind {
	case kindClient:
		if t.metrics.ClientConns.Load() >= int64(t.cfg.MaxClientConns) {
			t.refuseOverLimit(&t.warnedClientCap, "refusing client connections over MaxClientConns", t.cfg.MaxClientConns)
			return false
		}
		ic.host = remoteHost(ic.remote)
		if t.hostConns[ic.host] >= t.cfg.MaxClientConnsPerHost {
			t.refuseOverLimit(&t.warnedHostCap, "refusing client connections over MaxClientConnsPerHost", t.cfg.MaxClientConnsPerHost)
			return false
		}
		t.hostConns[ic.host]++
		t.metrics.ClientConns.Add(1)
	default:
		if len(t.pending) >= t.cfg.MaxPendingPeerConns {
			t.evictOldestPending()
		}
		t.pending[ic] = struct{}{}
		t.metrics.PendingPeers.Add(1)
	}
	return true
}

// refuseOverLimit counts a refusal and logs the first of its kind.
func (t *Transport) refuseOverLimit(warned *bool, msg string, limit int) {
	t.metrics.ClosedOverLimit.Add(1)
	if !*warned {
		*warned = true
		t.log.Warn(msg, "limit", limit)
	}
}

// evictOldestPending closes the peer-port connection that has waited longest in its
// handshake. connsMu is held.
func (t *Transport) evictOldestPending() {
	var oldest *inConn
	for ic := range t.pending {
		if oldest == nil || ic.openedAt < oldest.openedAt {
			oldest = ic
		}
	}
	delete(t.pending, oldest)
	t.metrics.PendingPeers.Add(-1)
	oldest.evicted = true
	if oldest.markClosing() {
		t.refuseOverLimit(&t.warnedPendingCap, "closing the oldest unfinished peer handshake to admit a new connection (MaxPendingPeerConns)", t.cfg.MaxPendingPeerConns)
	}
	_ = oldest.conn.Close()
}

// established moves a peer connection whose handshake completed from the pending set to the
// established count; false when MaxPeerConns is reached.
func (t *Transport) established(ic *inConn) bool {
	t.connsMu.Lock()
	defer t.connsMu.Unlock()
	if _, ok := t.pending[ic]; !ok {
		return false // evicted meanwhile: it is being closed
	}
	if t.metrics.PeerConns.Load() >= int64(t.cfg.MaxPeerConns) {
		return false
	}
	delete(t.pending, ic)
	t.metrics.PendingPeers.Add(-1)
	t.metrics.PeerConns.Add(1)
	ic.scanner.MaxFrameBytes = t.cfg.MaxFrameBytes
	return true
}

// release undoes admit and established for a closing connection, and returns its partial
// frame reservation.
func (t *Transport) release(ic *inConn) {
	t.connsMu.Lock()
	switch {
	case ic.kind == kindClient:
		if t.hostConns[ic.host]--; t.hostConns[ic.host] <= 0 {
			delete(t.hostConns, ic.host)
		}
		t.metrics.ClientConns.Add(-1)
	case ic.evicted:
		// Its pending slot went at eviction.
	case ic.ready.Load():
		t.metrics.PeerConns.Add(-1)
	default:
		if _, ok := t.pending[ic]; ok {
			delete(t.pending, ic)
			t.metrics.PendingPeers.Add(-1)
		}
	}
	t.connsMu.Unlock()
	if ic.reserved >= reclaimAfterBytes {
		t.reclaimSoon()
	}
	t.reserve(ic, 0)
}

// reserve sets ic's share of PartialFrameBudget to want bytes (its unfinished frame at its
// announced size; 0 when none). It returns false, changing nothing, when the budget cannot
// hold the growth. Only client connections draw on the budget: peers are authenticated and
// capped by MaxPeerConns.
func (t *Transport) reserve(ic *inConn, want int) bool {
	if ic.kind != kindClient || want == ic.reserved {
		return true
	}
	delta := int64(want - ic.reserved)
	if delta > 0 && t.metrics.PartialBytes.Add(delta) > int64(t.cfg.PartialFrameBudget) {
		t.metrics.PartialBytes.Add(-delta)
		return false
	}
	if delta < 0 {
		t.metrics.PartialBytes.Add(delta)
	}
	ic.reserved = want
	return true
}

// Buffer reclaim. gnet returns a closed connection's inbound buffer to a sync.Pool, so the
// memory of a large partial frame stays in the heap (and the process's RSS) until two
// garbage collections pass, which an idle node may not run for a long time. After a
// connection that held at least reclaimAfterBytes closes, the reclaimer frees the memory
// back to the OS, at most once per reclaimEvery.
const (
	reclaimAfterBytes = 256 << 10
	reclaimEvery      = 5 * time.Second
)

// reclaimSoon asks the reclaimer goroutine to run (it coalesces requests).
func (t *Transport) reclaimSoon() {
	select {
	case t.reclaim <- struct{}{}:
	default:
	}
}

// reclaimer runs debug.FreeOSMemory when asked, at most once per reclaimEvery; twice, since
// the first collection only moves pooled buffers to the pool's victim cache.
func (t *Transport) reclaimer() {
	defer t.wg.Done()
	var last time.Time
	for {
		select {
		case <-t.closing:
			return
		case <-t.reclaim:
		}
		if wait := reclaimEvery - time.Since(last); wait > 0 {
			select {
			case <-t.closing:
				return
			case <-time.After(wait):
			}
		}
		debug.FreeOSMemory()
		debug.FreeOSMemory()
		t.metrics.Reclaims.Add(1)
		last = time.Now()
	}
}

// remoteHost is the host part of a remote address ("" stays "").
func remoteHost(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}
