// Package raftcore is the suite's Raft: a deterministic state machine in the shape of
// etcd-io/raft's RawNode.
//
// It owns the protocol (Raft paper and Ongaro's thesis): randomized elections, PreVote,
// CheckQuorum, pipelined log replication with a count- and byte-bounded in-flight window per
// follower, the current-term commit rule, fast log backtracking, ReadIndex and lease reads,
// snapshots with chunked InstallSnapshot, single-server membership change with learners, and
// leadership transfer. It also owns the in-memory log (a ring of entry headers over payload
// blocks) that serves replication and apply.
//
// It must not do I/O, start goroutines, read the clock or use a global RNG: time arrives as
// Tick, randomness from Config.Rand, messages through Step, and everything the application
// must do (send, persist, apply, snapshot) leaves through Ready. See the Ready type for the
// durability contract and docs/RAFTCORE.md for the driver loop.
//
// Design decisions, each documented where it is implemented:
//
//   - Durability (thesis §10.2.1): every message in a Ready may be sent at once. The core
//     holds back what depends on state not yet durable (votes, vote requests, a follower's
//     acknowledgements, snapshot acknowledgements) until AckPersisted covers it. A leader's
//     appends leave before its own write; its log counts toward the commit quorum only up to
//     what it acknowledged.
//   - Batching: proposals only append to the log; appends to followers are built once per
//     Ready, so everything proposed since the last Ready leaves as one message per follower
//     (split by MaxSizePerMsg/MaxEntriesPerMsg, bounded by the in-flight window). A follower
//     answers all appends received between two Readies with one acknowledgement.
//   - Membership change is one server at a time (thesis §4.1): a configuration takes effect
//     as soon as its entry is appended, a leader proposes a change only after it has
//     committed an entry of its own term, and at most one change is uncommitted at a time.
//     A removed leader steps down when its removal commits (§4.2.2); a voter whose removal is
//     still uncommitted keeps campaigning, since it may hold the only up-to-date log.
//   - Nodes ignore vote requests while they hear a leader (thesis §4.2.3), regardless of
//     CheckQuorum, except the requests of a leadership transfer.
//   - Reads (thesis §6.4): every heartbeat broadcast is a numbered round; reads wait for the
//     next round a quorum acknowledges, so one round confirms a batch. Lease reads rest on
//     the same rounds and are disabled for the rest of a term once a transfer started.
//
// A Node is not safe for concurrent use: one goroutine drives it.
package raftcore
