// Command etcd-member runs one etcd member (go.etcd.io/etcd/server/v3, started with
// embed.StartEtcd) with the flags a local benchmark cluster needs: its name, data directory,
// peer and client addresses and the initial cluster. loadgen --system etcd --local N starts N
// of these on loopback; they are plain etcd servers, so any etcd client can talk to them.
//
// The member keeps etcd's own durability (every raft entry and hard state is fsynced before
// it is acknowledged; etcd has no setting that skips that short of --unsafe-no-fsync, which
// this launcher does not offer). SIGTERM or SIGINT stops it cleanly (embed's Close: stop the
// raft node, close the listeners and the backend); it exits 0 then.
package main
