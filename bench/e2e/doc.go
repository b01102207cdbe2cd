// Package e2e holds the end-to-end benchmarks of whole clusters inside one process: every
// replica runs the real transport (gnet over loopback), driver, WAL and KV store
// (server.StartLocalCluster), and the load comes through the real pipelined clients
// (client.RaftClient for 3-node Raft, client.PBFTClient for 4-replica PBFT). They answer what a cluster on this machine does end to end — ops/s,
// latency percentiles and allocations per operation across client, replicas and network —
// beside the per-package micro-benchmarks.
//
// It has no non-test code: this file exists to say what the package is for. It must not
// contain protocol logic or reach into the replicas' internals; it measures what a user of
// the client sees.
package e2e
