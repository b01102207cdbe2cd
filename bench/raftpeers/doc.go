// Package raftpeers measures this project's Raft core against the Raft libraries people use
// today, side by side, under one workload: raftcore, go.etcd.io/raft/v3 v3.6.0 (RawNode) and
// github.com/hashicorp/raft v1.8.0.
//
// Each implementation runs as a 3-node cluster inside one process: messages are handed from
// node to node in memory, storage is in memory, nothing is fsynced. The workload is the same
// for all: the leader is given batches of proposals (1, 16 or 256 entries of 16 or 128 bytes)
// with depth batches in flight (1, 8 or 32), and a batch counts as done once the leader has
// applied every entry of it. At depth 1 each batch is committed and the cluster settles
// before the next (Cluster.Commit); deeper, a new batch is proposed as soon as the oldest in
// flight is applied (Cluster.Propose), as a server with many concurrent clients does. See
// Cluster for the exact contract and each constructor's doc comment for how that
// implementation is driven (chosen to be each library's best documented use, so the
// baselines are not handicapped).
//
// The package owns the cluster drivers (cluster.go, etcd.go, hashicorp.go, raftcore.go), the
// benchmarks (BenchmarkCommit) and the guard test that proves every driver really replicates:
// all three nodes apply the same entries in the same order as proposed.
//
// Run the comparison with
//
//	go test -run '^$' -bench . -benchmem -count 5 ./bench/raftpeers/
//
// and read entries/s, entries/cpu-s and allocs/entry (per committed entry; ns/op and
// allocs/op are per batch). entries/cpu-s charges each implementation for the CPU time of
// the whole process (getrusage), so a library that spreads work over goroutines and cores is
// compared by the work it does, not only by the wall time it takes; cpu-s/s says how many
// cores a run kept busy. Compare implementations at the same batch, size and depth. On a
// shared machine, ratios are fairest when the implementations are interleaved in time: build
// the test binary once and run it several times with -test.count 1.
//
// It must not contain protocol logic: elections, replication and commit rules belong to the
// implementations under test. It must not be imported by production code; the etcd and
// hashicorp modules are peer baselines only.
package raftpeers
