// Package storage owns durable bytes: a segmented write-ahead log with group commit,
// snapshot files, and a probe that measures a directory's fdatasync latency.
//
// The WAL serves a replicated log (entries with index, term, type and data; hard-state
// records of term, vote and commit; compaction below a snapshot index; overwriting a
// conflicting suffix) but it must not know the rules of any consensus protocol: it never
// decides which entries are valid, only that what it acknowledged as durable comes back
// intact after a crash.
//
// # On-disk format
//
// A WAL directory holds segment files named %016x.wal (the segment's sequence number).
// Every record is framed as
//
//	crc32c uint32 | length uint32 | type uint8 | payload[length]
//
// little-endian, where the CRC32C (Castagnoli) covers length, type and payload. A segment
// starts with a segment-header record (format version, segment sequence, sync policy, the
// compaction point and the hard state as of its creation) that is fsynced before the
// segment is renamed into place. After it come batches: a batch record (batch sequence,
// body length) followed by the body's entry, hard-state and compaction records. One batch
// is exactly one write system call followed (sync policy always) by one fdatasync.
//
// Segments are preallocated with fallocate. Under sync policy always a goroutine keeps the
// next few megabytes past the writer written with zeros and synced (zeroahead.go), so that
// the writer's fdatasync flushes only data: the first write into fallocated ("unwritten")
// space also changes the file's extent map, which that fdatasync would have to write.
// Zeros are what the preallocated space reads as, so the format and recovery are the same.
// Zeroing rests while batches are large (Options.ZeroAheadMaxBatchBytes), where writing
// every byte twice costs more than the extent updates it spares.
//
// # Recovery
//
// Open scans every segment and verifies every CRC. Damage is classified as follows:
//   - damage inside the last batch of the last segment, with no valid later batch, is a
//     torn tail: that batch was never acknowledged (its fdatasync had not returned), so it
//     is cut off and the rest of the segment zeroed. State.TornTailBytes reports it.
//   - damage anywhere else (a later batch or a later segment exists) is corruption of data
//     that was acknowledged: Open refuses to start with a *CorruptionError naming the file
//     and byte offset. It never silently drops data.
//   - compaction removes whole old segments without fsyncing the directory; segments that
//     reappear before a gap in the sequence after a machine crash are removed again
//     (State.StaleSegmentsRemoved), and if entries still needed are missing Open refuses.
//   - segments written with sync policy none promise nothing after a machine crash: damage
//     there truncates the log at the first bad byte (later segments are removed).
//
// A bit flip inside the final, already acknowledged batch is indistinguishable from a torn
// write and is treated as one; every WAL that group-commits shares this limit.
//
// # Failure
//
// A write or fdatasync error fails the WAL stop: the error is sticky, every later call
// returns it, and nothing is retried (after a failed fdatasync the page cache may have
// dropped the dirty pages, so a retry could report success for lost data). The process
// should restart and recover from disk.
package storage
