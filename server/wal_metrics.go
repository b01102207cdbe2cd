package server

import "github.com/consensusbench/consensusbench/storage"

// registerWALMetrics exports what the WAL's zeroing ahead of its writer did (sync always).
func registerWALMetrics(m *Metrics, w *storage.WAL) {
	m.CounterFunc("cb_wal_zeroed_bytes_total", "Bytes of WAL segment written with zeros ahead of the writer, so that its fdatasync flushes only data (sync always).",
		func() uint64 { return w.ZeroAhead().Bytes })
	m.CounterFunc("cb_wal_zero_waits_total", "WAL batches whose write waited for a chunk of zeros being written under it (the writer had caught up with the zeroing).",
		func() uint64 { return w.ZeroAhead().Waits })
	m.CounterFunc("cb_wal_zero_failures_total", "Chunks of zeros that failed to be written or synced (the rest of that segment stays merely preallocated).",
		func() uint64 { return w.ZeroAhead().Failures })
	m.CounterFunc("cb_wal_zero_rested_batches_total", "WAL batches written while zeroing ahead rested because the batches were large (sync always; writing every byte twice would cost more than it spares).",
		func() uint64 { return w.ZeroAhead().Rested })
}
