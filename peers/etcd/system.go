package etcd

import (
	"go.etcd.io/etcd/api/v3/version"

	"github.com/consensusbench/consensusbench/bench"
)

// Name is the system's --system value.
const Name = "etcd"

// Version is the etcd release this binding is built against (client and, for local
// clusters, server), as it appears in result identities.
var Version = "v" + version.Version

// Read modes (bench.Spec.Reads). ReadsLinearizable is recorded as "safe", the name
// consensusbench's Raft gives the same ReadIndex-confirmed reads, so that `loadgen compare
// --col system` pairs the two.
const (
	ReadsLinearizable = "safe"
	ReadsSerializable = "serializable"
)

// MaxTxnOps is etcd's default --max-txn-ops: the most ops one Txn may carry, and so the
// largest --batch this binding accepts.
const MaxTxnOps = 128

func init() {
	bench.RegisterSystem(bench.System{
		Name:     Name,
		Version:  Version,
		About:    "etcd " + Version + " (go.etcd.io/etcd), Raft; needs peers/cmd/etcd-member for --local",
		Protocol: "raft",
		Sync:     "always",
		Reads:    []string{ReadsLinearizable, ReadsSerializable},
		MaxBatch: MaxTxnOps,
		NoFaults: []string{"partition-leader", "partition-random"},
		Open:     Open,
	})
}
