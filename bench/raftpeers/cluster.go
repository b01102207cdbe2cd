package raftpeers

import "errors"

// ClusterSize is the number of voters in every measured cluster.
const ClusterSize = 3

// Every driver compacts its log on the same cadence, so that each implementation pays for
// compaction the same way in steady state and no log grows without bound in long runs.
const (
	// CompactEvery is how many applied entries accumulate before the log is compacted.
	CompactEvery = 8192
	// CompactRetain is how many applied entries stay in the log behind the compaction point,
	// so slightly lagging followers catch up from the log.
	CompactRetain = 1024
)

// Options configures a peer cluster.
type Options struct {
	// Record keeps a copy of every applied payload on every node so that a test can compare
	// the nodes' apply sequences. Benchmarks leave it off: the copies would dominate the cost
	// of small entries.
	Record bool
}

// Cluster is a ClusterSize-node cluster of one Raft implementation with an elected leader.
//
// A Cluster is driven from one goroutine: its methods are not safe for concurrent use
// (implementations may run goroutines of their own inside).
type Cluster interface {
	// Commit proposes every payload of batch at the leader, in order, and returns once the
	// leader has applied all of them. The payload slices must stay unchanged until the
	// cluster is closed: the implementations keep them in their logs without copying.
	Commit(batch [][]byte) error
	// Converge waits until every node has applied everything the leader applied and returns
	// each node's applied payloads in apply order (nil slices when Options.Record is off).
	Converge() ([][][]byte, error)
	// Close stops the cluster and releases its resources.
	Close() error
}

// errNotApplied reports a Commit that returned with fewer entries applied at the leader than
// were proposed: the measurement would have counted work that did not happen.
var errNotApplied = errors.New("raftpeers: leader did not apply the whole batch")
