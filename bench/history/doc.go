// Package history records what a load run asked of the cluster and what it was told, and
// judges it: Wrap puts a recording Session around every Session of a bench.Target; the
// Recorder then checks the history for linearizability with porcupine against a key-value
// model (writing porcupine's HTML visualization on failure), and reads every key back after
// faults to count acknowledged writes that were lost (durability).
//
// To make every write identifiable, the recording Session stamps each written value with a
// unique 8-byte tag in its first bytes (values shorter than 8 bytes become 8 bytes); reads
// decode the tag of the value they got. Writes whose batch failed or timed out are kept as
// possibly applied (an infinite return time); failed reads are dropped, having no effect.
//
// Size bound: every op is kept until the history holds Config.MaxOps ops; beyond that the
// Recorder keeps a deterministic sample of keys (a key stays if the low bits of its hash are
// zero; each time the bound is hit again one more bit is required, halving the sample) and
// drops the others' ops entirely. Linearizability is local (Herlihy and Wing 1990, §3.3):
// checking whole per-key histories of a subset of keys is sound, only less complete.
//
// It owns no fault injection and no load generation; it must not change what the wrapped
// Session sends beyond the value tags.
package history
