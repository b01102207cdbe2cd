// Package kv is the replicated state machine: a key-value map with put, get, delete and
// compare-and-set; client sessions that make retried writes exactly-once; deterministic
// streaming snapshot and restore; and an incremental state digest for checkpoints.
//
// kv must not know which protocol drives it. The server decodes client operations, maps
// them to Op, and calls Apply with each operation's log index (or PBFT sequence number),
// in order, on one goroutine, or ApplyBatch with a committed client batch's operations. Every replica that applies the same operations at the same
// indexes ends in the same state, the same snapshot bytes and the same digest: nothing
// here reads a clock, a random source that affects results, or map iteration order.
//
// # Memory layout
//
// Keys and values live in an arena of large byte chunks; an open-addressing hash table of
// pointer-free slots maps a key to its record, and the session table is a map with
// pointer-free values. The garbage collector therefore scans a handful of chunk pointers
// instead of one or two pointers per key. Overwriting a value with one of equal or smaller
// size happens in place; growing a value moves the record and leaves a hole that is
// reclaimed by compacting the arena once holes outweigh live data. A record is its header,
// key and value, behind the pair's digest hash when the store keeps a digest.
//
// A lookup in a large store misses the cache twice, on the table slot and on the record.
// ApplyBatch hashes up to BatchPrefetch keys first and prefetches their slots, then their
// records' lines, before applying any of them, so that a batch's misses overlap instead of
// following one another.
//
// # State digest
//
// The digest is an additive multiset hash (AdHash, Bellare–Micciancio): the sum modulo
// 2^256 of SHA-256 over each key-value pair and each client session, with each pair's hash
// kept beside it so a write subtracts the old contribution and adds the new one in O(1).
// A session changes on every write of its client, so it is only marked dirty then; Digest
// (and Snapshot) rehash the sessions changed since the previous call, once each.
// Addition commutes, so equal states have equal digests whatever order writes arrived in.
// Config.NoDigest turns hashing off where nothing reads this digest: Raft never compares
// replica states, and the PBFT replica digests its serialized checkpoint with SHA-256
// instead (collision-resistant, see below); the simulator's checkers use this one.
// Limitation: with a 256-bit modulus the generalized birthday attack (Wagner, CRYPTO 2002)
// finds colliding multisets in far fewer than 2^128 steps; it suits checkpoint agreement
// among replicas that applied the same ordered log, not adversarial state commitments.
// A larger modulus or a lattice hash (LtHash) would be the upgrade path.
package kv
