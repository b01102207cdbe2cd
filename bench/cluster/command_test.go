package cluster

import (
	"context"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/consensusbench/consensusbench/server"
)

// helperEnv makes the test binary act as a member launcher (TestHelperMember).
const helperEnv = "CLUSTER_TEST_HELPER_MEMBER"

// TestHelperMember is not a test: run with helperEnv set, it listens on the client address
// its command line names (after "--") until SIGTERM, as a peer system's launcher would.
func TestHelperMember(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("helper process")
	}
	args := os.Args[slices.Index(os.Args, "--")+1:]
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		os.Exit(3)
	}
	defer ln.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	<-sig
	os.Exit(0)
}

// Config.Command runs another executable on the ports Start picked: it gets its own
// addresses and every node's, no peer secret is written, and the cluster starts, reports
// CPU time and stops as for cmd/node.
func TestCommand(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(helperEnv, "1")
	var seen [][]string
	c, err := Start(context.Background(), Config{Protocol: "raft", Nodes: 3, NodeBin: exe,
		Command: func(spec *server.ClusterSpec, n *Node) []string {
			if len(spec.Nodes) != 3 || n.ClientAddr == "" || n.MetricsAddr == "" || n.DataDir == "" {
				t.Errorf("node %d: spec %d nodes, addresses %q %q, data %q", n.ID, len(spec.Nodes), n.ClientAddr, n.MetricsAddr, n.DataDir)
			}
			seen = append(seen, []string{n.ClientAddr})
			return []string{"-test.run=^TestHelperMember$", "--", n.ClientAddr}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 3 {
		t.Errorf("Command called %d times, want 3", len(seen))
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "peer.secret")); !os.IsNotExist(err) {
		t.Errorf("a peer secret was written for a launcher that cannot use it (%v)", err)
	}
	cpu, err := c.NodeCPUSeconds()
	if err != nil || len(cpu) != 3 {
		t.Errorf("NodeCPUSeconds = %v, %v", cpu, err)
	}
	kept, err := c.Stop(false)
	if err != nil || kept != "" {
		t.Fatalf("Stop: kept %q, %v", kept, err)
	}
}
