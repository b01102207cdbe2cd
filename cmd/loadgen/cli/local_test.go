package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/bench/adapter"
	"github.com/consensusbench/consensusbench/bench/cluster"
	"github.com/consensusbench/consensusbench/bench/report"
)

var (
	nodeOnce sync.Once
	nodeDir  string
	nodeErr  error
)

// nodeOnPath builds cmd/node once per test binary and puts it first on PATH, so that each
// local run finds it there (FindNode's second place) instead of building its own.
func nodeOnPath(t *testing.T) {
	t.Helper()
	nodeOnce.Do(func() {
		if nodeDir, nodeErr = os.MkdirTemp("", "loadgen-test-bin-*"); nodeErr == nil {
			_, nodeErr = cluster.BuildNode(context.Background(), "../../..", nodeDir)
		}
	})
	if nodeErr != nil {
		t.Fatal(nodeErr)
	}
	t.Setenv("PATH", nodeDir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func TestMain(m *testing.M) {
	code := m.Run()
	if nodeDir != "" {
		os.RemoveAll(nodeDir)
	}
	os.Exit(code)
}

// processesUsing returns the PIDs whose command line mentions dir (the nodes of a local
// cluster carry their data directory on the command line).
func processesUsing(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var pids []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(dir)) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// localRun drives a real local cluster through the command's entry point for a couple of
// seconds and checks the result file and that no node process outlives the run.
func localRun(t *testing.T, protocol string, nodes string, sync string, extra ...string) {
	if testing.Short() {
		t.Skip("starts real node processes")
	}
	nodeOnPath(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "cluster")
	prefix := filepath.Join(dir, "result")
	var out bytes.Buffer
	err := run(append([]string{"--local", nodes, "--protocol", protocol, "--sync", sync, "--data-dir", data,
		"--mode", "closed", "--clients", "2", "--pipeline", "4", "--batch", "8", "--value-size", "16",
		"--duration", "2s", "--warmup", "500ms", "--fsync-samples", "20", "--out", prefix}, extra...), &out, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	r, err := report.ReadFile(prefix + ".json")
	if err != nil {
		t.Fatal(err)
	}
	if len(extra) == 2 && extra[0] == "--conns" && fmt.Sprint(r.Load.Conns) != extra[1] {
		t.Errorf("load.conns %d in the result, want %s", r.Load.Conns, extra[1])
	}
	if r.Summary.Throughput <= 0 || r.Summary.Ops == 0 {
		t.Errorf("throughput %v, ops %d: want > 0\n%s", r.Summary.Throughput, r.Summary.Ops, out.String())
	}
	if r.Summary.Errors != 0 {
		t.Errorf("%d errors\n%s", r.Summary.Errors, out.String())
	}
	if r.ClusterInfo["nodes"] != nodes || r.ClusterInfo["sync"] != sync {
		t.Errorf("cluster info %v: want nodes=%s sync=%s", r.ClusterInfo, nodes, sync)
	}
	if len(r.Nodes) == 0 {
		t.Errorf("no per-node CPU seconds in the result")
	}
	if r.ClusterEvents == nil {
		t.Errorf("no cluster events (elections, leader or view changes) in a local run's result")
	}
	if sync == "always" && r.Fsync == nil {
		t.Errorf("a durable local run recorded no fdatasync probe")
	}
	for _, ext := range []string{".txt", ".hgrm"} {
		if _, err := os.Stat(prefix + ext); err != nil {
			t.Error(err)
		}
	}
	if b, err := os.ReadFile(prefix + ".txt"); err != nil || !strings.Contains(string(b), "nodes="+nodes) {
		t.Errorf("benchfmt lines do not name the node count (%v):\n%s", err, b)
	}
	if pids := processesUsing(t, data); len(pids) > 0 {
		t.Errorf("node processes %v still running after the run", pids)
	}
}

func TestLocalRaftRun(t *testing.T) { localRun(t, "raft", "3", "none") }

func TestLocalRaftDurableRun(t *testing.T) { localRun(t, "raft", "3", "always") }

func TestLocalPBFTRun(t *testing.T) { localRun(t, "pbft", "4", "none") }

// Both PBFT sessions share one client (one connection per replica, a pool of identities).
func TestLocalPBFTSharedRun(t *testing.T) { localRun(t, "pbft", "4", "none", "--conns", "1") }

// --cluster and --targets reach a cluster started elsewhere (here by the harness): the
// spec file's client addresses and IDs, or the addresses in ID order.
func TestClusterFileAndTargets(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real node processes")
	}
	nodeOnPath(t)
	bin, err := cluster.FindNode(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := cluster.Start(context.Background(), cluster.Config{Protocol: "raft", Nodes: 3, NodeBin: bin, Dir: t.TempDir(),
		Ready: func(ctx context.Context, c *cluster.Cluster) error {
			return adapter.Probe(ctx, adapter.Config{Protocol: "raft", Nodes: clientNodes(c)})
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(false)
	var addrs []string
	for _, n := range c.ClientAddrs() {
		addrs = append(addrs, n.ClientAddr)
	}
	for name, args := range map[string][]string{
		"cluster": {"--cluster", c.SpecPath},
		"targets": {"--targets", strings.Join(addrs, ",")},
		// Two clients on one shared connection per node: replies matched by client ID.
		"shared": {"--targets", strings.Join(addrs, ","), "--conns", "1"},
	} {
		prefix := filepath.Join(t.TempDir(), "r")
		var out bytes.Buffer
		err := run(append(args, "--mode", "closed", "--clients", "2", "--pipeline", "2", "--batch", "4",
			"--duration", "1s", "--warmup", "200ms", "--quiet", "--out", prefix), &out, &out)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out.String())
		}
		r, err := report.ReadFile(prefix + ".json")
		if err != nil {
			t.Fatal(err)
		}
		if r.Summary.Ops == 0 || r.Summary.Errors != 0 || r.ClusterInfo["nodes"] != "3" {
			t.Errorf("%s: ops %d errors %d info %v", name, r.Summary.Ops, r.Summary.Errors, r.ClusterInfo)
		}
		if want := map[bool]int{true: 1}[name == "shared"]; r.Load.Conns != want {
			t.Errorf("%s: load.conns %d in the result, want %d", name, r.Load.Conns, want)
		}
	}
	// The spec names every node's admin address (metrics_addr): faults that need no process
	// run against the cluster loadgen did not start, and its leader changes are counted.
	prefix := filepath.Join(t.TempDir(), "f")
	var fout bytes.Buffer
	err = run([]string{"--cluster", c.SpecPath, "--mode", "open", "--rate", "400", "--clients", "2", "--batch", "1",
		"--duration", "2s", "--warmup", "200ms", "--quiet", "--out", prefix, "--nemesis", "transfer-leader@500ms"}, &fout, &fout)
	if err != nil {
		t.Fatalf("remote transfer-leader: %v\n%s", err, fout.String())
	}
	r, err := report.ReadFile(prefix + ".json")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Events) != 1 || r.Events[0].Kind != "transfer-leader" || strings.Contains(fout.String(), "could not be injected") {
		t.Errorf("events %+v, want one transfer-leader that worked\n%s", r.Events, fout.String())
	}
	if e := r.ClusterEvents; e == nil || e["leader_changes"] < 1 {
		t.Errorf("cluster events %v after a leadership transfer: want a leader change counted from the nodes' /metrics", e)
	}
	// A cluster that cannot commit is refused before anything is measured, with the reason:
	// an address nobody listens on is named; with every address answering, the protocol.
	defer func(d time.Duration) { remoteReadyTimeout = d }(remoteReadyTimeout)
	remoteReadyTimeout = 2 * time.Second
	for name, tc := range map[string]struct {
		targets []string
		want    string
	}{
		"closed port":    {append(append([]string(nil), addrs...), freeAddr(t)), "not reachable: node 4"},
		"wrong protocol": {append(append([]string(nil), addrs...), c.Spec.Nodes[0].PeerAddr), "run pbft (--protocol)"},
	} {
		var out bytes.Buffer
		err := run([]string{"--protocol", "pbft", "--targets", strings.Join(tc.targets, ","), "--duration", "1s",
			"--quiet", "--out", filepath.Join(t.TempDir(), "x")}, &out, &out)
		if err == nil || !strings.Contains(err.Error(), "did not commit a probe write") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one saying %q", name, err, tc.want)
		}
	}
	// A spec for another protocol is refused by name.
	var out bytes.Buffer
	err = run([]string{"--protocol", "pbft", "--cluster", c.SpecPath, "--duration", "1s", "--out", filepath.Join(t.TempDir(), "x")}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "says raft") {
		t.Fatalf("pbft flag with a raft spec: %v", err)
	}
}

// A local Raft run under a leader crash and restart with both verdicts: the kill is real
// (SIGKILL of the leader's process, found through /admin/status), the event is in the
// result with its figures, the history is linearizable, and after kill -9 of every node and
// a restart every acknowledged write reads back (Raft §5.4: committed entries survive).
func TestLocalFaultRunVerdicts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real node processes")
	}
	nodeOnPath(t)
	dir := t.TempDir()
	prefix := filepath.Join(dir, "result")
	var out bytes.Buffer
	err := run([]string{"--local", "3", "--sync", "always", "--data-dir", filepath.Join(dir, "cluster"),
		"--rate", "300", "--clients", "4", "--workload", "ycsb-a", "--keys", "50", "--value-size", "16",
		"--duration", "3s", "--warmup", "300ms", "--fsync-samples", "10", "--quiet", "--out", prefix,
		"--nemesis", "kill-leader@1s,restart@2s", "--check-linearizability", "--check-durability"}, &out, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	r, err := report.ReadFile(prefix + ".json")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Events) != 2 || r.Events[0].Kind != "kill-leader" || !strings.Contains(r.Events[0].Detail, "unavailable") {
		t.Errorf("events %+v", r.Events)
	}
	v := r.Verdicts
	if v == nil || !v.Linearizability.OK || !v.Durability.OK || v.Durability.Checked == 0 {
		t.Errorf("verdicts %+v\n%s", v, out.String())
	}
	if !strings.Contains(out.String(), "fault kill-leader@") {
		t.Errorf("the summary has no fault line:\n%s", out.String())
	}
	// Killing the leader forces an election and a leader change, and the run says so.
	if e := r.ClusterEvents; e["elections"] < 1 || e["leader_changes"] < 1 {
		t.Errorf("cluster events %v after kill-leader: want an election and a leader change", e)
	}
	if !strings.Contains(out.String(), "leader change") {
		t.Errorf("the summary does not mention the leader change:\n%s", out.String())
	}
}

// A schedule on a cluster loadgen does not control is refused before anything runs.
func TestNemesisNeedsLocal(t *testing.T) {
	var out bytes.Buffer
	err := run([]string{"--targets", "127.0.0.1:1", "--nemesis", "kill-leader@1s", "--duration", "1s"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "--local") {
		t.Fatalf("err = %v", err)
	}
	err = run([]string{"--targets", "127.0.0.1:1", "--nemesis", "kill-leader", "--duration", "1s"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "missing @TIME") {
		t.Fatalf("err = %v", err)
	}
}

// --node-log-level reaches every local node: at warn, a clean run logs no INFO line.
func TestNodeLogLevel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real node processes")
	}
	nodeOnPath(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "cluster")
	var out bytes.Buffer
	err := run([]string{"--local", "3", "--data-dir", data, "--node-log-level", "warn", "--mode", "closed",
		"--clients", "1", "--duration", "500ms", "--warmup", "0s", "--quiet", "--out", filepath.Join(dir, "r")}, &out, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	logs, _ := filepath.Glob(filepath.Join(data, "node-*.log"))
	if len(logs) != 3 {
		t.Fatalf("node logs %v, want 3", logs)
	}
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "level=INFO") {
			t.Errorf("%s has INFO lines at --node-log-level warn:\n%s", l, b)
		}
	}
}

// freeAddr returns a loopback address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	handedOut.mu.Lock()
	defer handedOut.mu.Unlock()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		// The kernel may give a port it just handed out again once its listener closed: a
		// spec with one address twice is refused, which is not what the test is about.
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return addr
		}
	}
}

// handedOut is every address freeAddr returned in this test process.
var handedOut = struct {
	mu    sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}
