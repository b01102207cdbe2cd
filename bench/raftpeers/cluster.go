package raftpeers

import (
	"errors"
	"fmt"
)

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
	// leader has applied all of them and the cluster has settled. The payload slices must
	// stay unchanged until the cluster is closed: the implementations keep them in their logs
	// without copying. No batch of Propose may be in flight (Flush first).
	Commit(batch [][]byte) error
	// Propose is Commit pipelined: it proposes batch at the leader and returns without
	// waiting for it to be applied, keeping at most depth batches in flight. While depth
	// batches are proposed and not yet applied at the leader, it first lets the cluster work
	// until the oldest of them is applied. Batches are proposed in call order and apply in
	// that order. Each implementation keeps batches in flight the way its users do; see the
	// constructors.
	Propose(batch [][]byte, depth int) error
	// Flush returns once the leader has applied every batch given to Propose.
	Flush() error
	// Converge flushes, then waits until every node has applied everything the leader
	// applied and returns each node's applied payloads in apply order (nil slices when
	// Options.Record is off).
	Converge() ([][][]byte, error)
	// Close stops the cluster and releases its resources.
	Close() error
}

// ring is a FIFO queue over a circular buffer, so that a pipelined driver queues and retires
// batches without allocating in steady state. It grows (doubling) only when full.
type ring[T any] struct {
	buf        []T
	head, size int
}

func (r *ring[T]) len() int { return r.size }

func (r *ring[T]) push(v T) {
	if r.size == len(r.buf) {
		grown := make([]T, max(8, 2*len(r.buf)))
		for i := range r.size {
			grown[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = grown, 0
	}
	r.buf[(r.head+r.size)%len(r.buf)] = v
	r.size++
}

// peek returns the oldest element; the ring must not be empty.
func (r *ring[T]) peek() T { return r.buf[r.head] }

// pop removes and returns the oldest element; the ring must not be empty. The slot is zeroed
// so that the ring does not keep what it held alive.
func (r *ring[T]) pop() T {
	v := r.buf[r.head]
	var zero T
	r.buf[r.head] = zero
	r.head = (r.head + 1) % len(r.buf)
	r.size--
	return v
}

// errNotApplied reports a Commit that returned with fewer entries applied at the leader than
// were proposed: the measurement would have counted work that did not happen.
var errNotApplied = errors.New("raftpeers: leader did not apply the whole batch")

// errStalled reports a pipelined driver whose cluster stopped making progress with batches
// still in flight.
var errStalled = errors.New("raftpeers: cluster idle with batches in flight")

// checkDepth rejects a pipeline depth below one.
func checkDepth(depth int) error {
	if depth < 1 {
		return fmt.Errorf("raftpeers: pipeline depth %d, want >= 1", depth)
	}
	return nil
}
