package transport

import "slices"

// Partition fault injection, for benchmarks under faults on one host (where there are no
// links to take down): while a peer is partitioned, every frame queued for it is dropped in
// Send and every frame received from it is dropped before it reaches the driver, exactly as
// a network that loses all their packets would. Connections and hellos are left alone, so
// healing is immediate, like a link coming back. Multi-host emulation (network namespaces)
// takes real links down instead.

// SetPartition makes the transport drop all traffic to and from the given peers, replacing
// any earlier set; an empty set heals. Safe for concurrent use.
func (t *Transport) SetPartition(peers []uint64) {
	if len(peers) == 0 {
		t.partition.Store(nil)
		return
	}
	s := slices.Clone(peers)
	t.partition.Store(&s)
}

// Partitioned returns the peers currently partitioned away (nil when healed).
func (t *Transport) Partitioned() []uint64 {
	if p := t.partition.Load(); p != nil {
		return slices.Clone(*p)
	}
	return nil
}

// partitioned reports whether traffic with peer id is being dropped. The set is a handful
// of IDs, so a scan beats a map; the common case (no partition) is one atomic load.
func (t *Transport) partitioned(id uint64) bool {
	p := t.partition.Load()
	return p != nil && slices.Contains(*p, id)
}
