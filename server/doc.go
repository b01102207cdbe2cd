// Package server runs one replica: the transport, a consensus core (Raft or PBFT), the WAL
// and the KV state machine, driven by a single goroutine.
//
// The driver loop drains the transport's inbound queue in batches, steps every peer message
// into the core, turns client batches into proposals (one Propose per round), takes one
// Ready, sends its messages (the leader's AppendEntries leave before its own fsync, Raft
// thesis §10.2.1), hands entries and hard state to the WAL's group commit, acknowledges
// persistence back to the core when the WAL reports it durable, applies committed entries
// to the KV store and answers clients. Ticks come from a ticker. Nothing else here decides
// protocol logic: the core does, and the server only moves bytes and calls.
//
// It also holds the cluster spec shared with cmd/loadgen (ClusterSpec) and a small metrics
// registry that writes the Prometheus text format.
//
// It must not: leak protocol details into the transport, block the driver on the network,
// or acknowledge a write before the core has committed and applied it (except under the
// test-only ReplicaConfig.UnsafeAckBeforeCommit, which exists to prove the checkers work).
package server
