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
// durability contract and /work/main/.coord/raftcore-api.md for the driver loop.
//
// Membership change is one server at a time (thesis §4.1): a configuration takes effect as
// soon as its entry is appended, a leader proposes a change only after it has committed an
// entry of its own term, and at most one change is uncommitted at a time.
//
// A Node is not safe for concurrent use: one goroutine drives it.
package raftcore
