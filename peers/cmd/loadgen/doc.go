// Command loadgen is consensusbench's load generator (cmd/loadgen) with the peer systems
// registered: --system etcd drives a real etcd cluster through the same workloads,
// drivers, verdicts and result files as consensusbench's own nodes. `make build-peers`
// builds it as bin/loadgen-peers, with bin/etcd-member beside it for --local clusters.
package main
