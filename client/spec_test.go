package client_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/client"
	"github.com/consensusbench/consensusbench/server"
	"github.com/consensusbench/consensusbench/storage"
	"github.com/consensusbench/consensusbench/wire"
)

// A client built from nothing but the cluster spec file the replicas run from writes and
// reads back, for both protocols. The PBFT cluster uses a key seed and a client count of its
// own, which the client can only have read from the file: with the defaults its MACs would
// not verify and no replica would answer.
func TestNewFromSpecFile(t *testing.T) {
	for _, tc := range []struct {
		protocol string
		nodes    int
	}{{"raft", 3}, {"pbft", 4}} {
		t.Run(tc.protocol, func(t *testing.T) {
			spec := &server.ClusterSpec{ClusterID: 7, Protocol: tc.protocol, PBFT: server.PBFTSpec{KeySeed: "spec-file-test", MaxClients: 16}}
			c, err := server.StartLocalCluster(server.LocalClusterConfig{Protocol: tc.protocol, Nodes: tc.nodes, Dir: t.TempDir(),
				Sync: storage.SyncNone, Spec: spec})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Stop()
			b, err := c.Spec.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "cluster.json")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cl, err := client.NewFromSpecFile(ctx, path, client.SpecOptions{Inflight: 2, AttemptTimeout: 500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			var res client.Results
			if err := cl.Do(ctx, []wire.Op{{Kind: wire.OpPut, Key: []byte("k"), Value: []byte("v")}}, &res); err != nil {
				t.Fatal(err)
			}
			if err := cl.Do(ctx, []wire.Op{{Kind: wire.OpGet, Key: []byte("k")}}, &res); err != nil {
				t.Fatal(err)
			}
			if len(res.Ops) != 1 || res.Ops[0].Status != wire.StatusOK || string(res.Ops[0].Value) != "v" {
				t.Fatalf("read back %+v", res.Ops)
			}
		})
	}
}

// A spec the replicas would refuse is refused here too, naming the problem.
func TestNewFromSpecFileRefusesABadSpec(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.json")
	if err := os.WriteFile(path, []byte(`{"cluster_id": 1, "protocol": "paxos", "nodes": [{"id": 1, "peer_addr": "127.0.0.1:1", "client_addr": "127.0.0.1:2"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := client.NewFromSpecFile(context.Background(), path, client.SpecOptions{})
	if err == nil || !strings.Contains(err.Error(), `protocol "paxos"`) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want one naming the file and the protocol", err)
	}
}
