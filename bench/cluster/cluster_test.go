package cluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/client"
	"github.com/consensusbench/consensusbench/wire"
)

var (
	buildOnce sync.Once
	nodeBin   string
	buildErr  error
	buildDir  string
)

// TestMain removes the node binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// node builds cmd/node once for the package's tests.
func node(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		var root string
		if root, buildErr = moduleRoot(); buildErr != nil {
			return
		}
		if buildDir, buildErr = os.MkdirTemp("", "cluster-test-bin-*"); buildErr != nil {
			return
		}
		nodeBin, buildErr = BuildNode(context.Background(), root, buildDir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return nodeBin
}

// writeProbe writes one key through the Raft client: it succeeds only once a leader has
// been elected and commits (Raft §5.2, §5.3).
func writeProbe(ctx context.Context, c *Cluster) error {
	var nodes []client.Node
	for _, n := range c.ClientAddrs() {
		nodes = append(nodes, client.Node{ID: n.ID, Addr: n.ClientAddr})
	}
	cl, err := client.NewRaft(client.Config{Nodes: nodes, AttemptTimeout: 500 * time.Millisecond})
	if err != nil {
		return err
	}
	defer cl.Close()
	var res client.Results
	if err := cl.Do(ctx, []wire.Op{{Kind: wire.OpPut, Key: []byte("ready"), Value: []byte("1")}}, &res); err != nil {
		return err
	}
	if res.Ops[0].Status != wire.StatusOK {
		return errors.New("probe write: " + res.Ops[0].Status.String())
	}
	return nil
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestStartServeStop(t *testing.T) {
	bin := node(t)
	c, err := Start(context.Background(), Config{Protocol: "raft", Nodes: 3, NodeBin: bin, Ready: writeProbe,
		StartTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nodes) != 3 || len(c.ClientAddrs()) != 3 {
		t.Fatalf("nodes %d, client addrs %d, want 3", len(c.Nodes), len(c.ClientAddrs()))
	}
	cpu, err := c.NodeCPUSeconds()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"n1", "n2", "n3"} {
		if _, ok := cpu[name]; !ok {
			t.Errorf("no CPU seconds for %s: %v", name, cpu)
		}
	}
	if err := c.Unexpected(); err != nil {
		t.Fatalf("a node died: %v", err)
	}
	pids := []int{c.Nodes[0].PID(), c.Nodes[1].PID(), c.Nodes[2].PID()}
	kept, err := c.Stop(false)
	if err != nil {
		t.Fatalf("stop: %v", err)
	}
	if kept != "" {
		t.Errorf("a successful run kept %s", kept)
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("run directory %s still there after a successful run (%v)", c.Dir, err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("node process %d still alive after Stop", pid)
		}
	}
}

func TestFailedRunKeepsLogs(t *testing.T) {
	bin := node(t)
	c, err := Start(context.Background(), Config{Protocol: "raft", Nodes: 1, NodeBin: bin, Ready: writeProbe,
		StartTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := c.Stop(true)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(c.Dir)
	if kept != c.Dir {
		t.Fatalf("failed run: kept %q, want %q", kept, c.Dir)
	}
	b, err := os.ReadFile(filepath.Join(c.Dir, "node-1.log"))
	if err != nil || !strings.Contains(string(b), "node ready") {
		t.Fatalf("node-1.log does not hold the node's log (%v): %q", err, b)
	}
}

// A node that cannot start makes Start fail at once, naming the node and quoting its log.
func TestStartNamesNodeThatExits(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "node")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"disk on fire\" >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), Config{Protocol: "raft", Nodes: 3, NodeBin: fake, Dir: filepath.Join(dir, "run"),
		StartTimeout: 10 * time.Second})
	if err == nil {
		t.Fatal("Start succeeded with nodes that exit")
	}
	for _, want := range []string{"exited during start-up", "disk on fire", "node-"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// A cluster whose probe never passes fails within StartTimeout and leaves nothing running.
func TestStartTimeoutStopsNodes(t *testing.T) {
	bin := node(t)
	var pids []int
	never := func(ctx context.Context, c *Cluster) error {
		for _, n := range c.Nodes {
			pids = append(pids, n.PID())
		}
		<-ctx.Done()
		return ctx.Err()
	}
	dir := t.TempDir()
	_, err := Start(context.Background(), Config{Protocol: "raft", Nodes: 1, NodeBin: bin, Dir: dir, Ready: never,
		StartTimeout: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "readiness probe failed") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Start: %v, want a readiness failure naming %s", err, dir)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("node process %d still alive after a failed Start", pid)
		}
	}
}

func TestConfigRejects(t *testing.T) {
	for name, cfg := range map[string]Config{
		"pbft3":    {Protocol: "pbft", Nodes: 3, NodeBin: "x"},
		"protocol": {Protocol: "paxos", Nodes: 3, NodeBin: "x"},
		"sync":     {Protocol: "raft", Nodes: 3, NodeBin: "x", Sync: "sometimes"},
		"nobin":    {Protocol: "raft", Nodes: 3},
		"many":     {Protocol: "raft", Nodes: MaxNodes + 1, NodeBin: "x"},
	} {
		if err := cfg.fill(); err == nil {
			t.Errorf("%s: config accepted", name)
		}
	}
}

func TestFindNodeRejectsImpostor(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "node")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'Usage: node [options] [ script.js ]'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if ok, why := isNode(context.Background(), fake); ok {
		t.Fatal("a Node.js-like impostor passed as consensusbench's node")
	} else if !strings.Contains(why, "not consensusbench") {
		t.Fatalf("reason %q", why)
	}
	if ok, why := isNode(context.Background(), node(t)); !ok {
		t.Fatalf("the real node binary was rejected: %s", why)
	}
}

// A run directory that already holds a node's data is refused, not wiped.
func TestStartRefusesUsedDataDir(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "node-2", "wal")
	if err := os.MkdirAll(old, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), Config{Protocol: "raft", Nodes: 3, NodeBin: node(t), Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("Start over old data: %v", err)
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("old data removed: %v", err)
	}
}
