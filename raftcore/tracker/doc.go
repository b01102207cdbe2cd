// Package tracker is the leader's per-follower replication state (etcd-io/raft's design):
// Progress with its probe, replicate and snapshot states, and Inflights, a fixed ring that
// bounds the AppendEntries in flight to one follower by count and bytes.
//
// It owns flow control only; it must not decide Raft rules (terms, commits, votes) or
// allocate after a Progress is created.
package tracker
