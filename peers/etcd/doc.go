// Package etcd binds a real etcd cluster (go.etcd.io/etcd v3, server and clientv3) to the
// load generator, so that etcd runs the same workloads, drivers, verdicts and result files
// as consensusbench's own replicas. Importing it registers the system "etcd"
// (bench.RegisterSystem); peers/cmd/loadgen imports it for its side effect, as a program
// imports a database/sql driver.
//
// What it maps, and why that is a fair comparison:
//
//   - A write is a Put, a read a Get: linearizable by default (etcd confirms leadership with
//     a ReadIndex round, which is what consensusbench's Raft does under reads=safe, so the
//     two record the same read mode), serializable with --raft-reads serializable (served by
//     whichever member the client reached, from its own state, possibly stale).
//   - A batch of several ops is one Txn carrying them all (Then: puts and ranges in the
//     batch's order): one request, one Raft proposal, one apply and one reply, which is
//     exactly what a consensusbench client batch is (one request, one log entry, applied
//     together). Issuing the ops as separate pipelined calls instead would make etcd propose
//     and acknowledge each op on its own and measure a different client. A batch of one op
//     is a plain Put or Get, as etcd users issue them. etcd refuses a Txn that writes one key
//     twice; the last write of a key in a batch wins in both systems (consensusbench applies
//     a batch in order), so a batch keeps only each key's last put.
//   - Sessions: each load worker gets its own clientv3.Client (its own gRPC connections to
//     every member, requests spread round-robin by clientv3's balancer, followers forwarding
//     proposals to the leader as etcd does for any client) unless --conns N shares N clients
//     among the workers, as etcd's own benchmark tool does.
//   - Durability: etcd fsyncs its WAL before it acknowledges, always (its only supported
//     mode), so results record sync=always.
//
// Local clusters (--local N) run N peers/cmd/etcd-member processes on loopback through
// bench/cluster (free ports, a temporary run directory, SIGTERM then SIGKILL at the end,
// logs kept when the run failed), with fault injection (kill, restart, pause, leader
// transfer; the leader found through the Maintenance Status API), node CPU time and the
// leader-change counter from each member's /metrics. Partitions are not supported: etcd has
// no hook to drop a peer's traffic.
package etcd
