package netns

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/bench/cluster"
	"github.com/consensusbench/consensusbench/bench/load"
)

// TestMain runs the client side of the scenario when this test binary is re-executed
// inside the client namespace.
func TestMain(m *testing.M) {
	if path := os.Getenv(EnvScenario); path != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		err := RunInner(ctx, path, os.Stdout)
		cancel()
		if err != nil {
			os.Stdout.WriteString("inner: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestNames(t *testing.T) {
	p := "cb4194304"[:8] // the longest prefix Create accepts
	seen := map[string]bool{}
	for id := 1; id <= MaxNodes; id++ {
		for _, n := range []string{nodeNS(p, id), hubLink(p, id)} {
			if seen[n] {
				t.Fatalf("name %q used twice", n)
			}
			seen[n] = true
		}
		if len(hubLink(p, id)) > 15 {
			t.Errorf("interface name %q exceeds Linux's 15 characters", hubLink(p, id))
		}
	}
	if len(clientLink(p)) > 15 || seen[clientNS(p)] || seen[hubNS(p)] || seen[clientLink(p)] {
		t.Errorf("client or hub names collide or are too long: %q %q %q", clientNS(p), hubNS(p), clientLink(p))
	}
}

// TestPartitionUnderLoad is make test's netns scenario: three Raft nodes in their own
// namespaces, the load in a fourth, the leader's link taken down for a second and brought
// back, then every node killed with SIGKILL and restarted; the history must be linearizable
// (Raft §5.4: no acknowledged write lost or reordered) and every acknowledged write must
// read back.
func TestPartitionUnderLoad(t *testing.T) {
	if err := Check(); err != nil {
		t.Skipf("skipping the network-namespace scenario: %v (make test runs it as root with iproute2, as CI does)", err)
	}
	if _, err := exec.LookPath("tc"); err != nil {
		t.Skip("skipping: tc not on PATH")
	}
	dir := t.TempDir()
	bin, err := cluster.BuildNode(context.Background(), "../..", dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := load.DefaultConfig()
	cfg.Rate, cfg.Duration, cfg.Warmup, cfg.Clients, cfg.Drain = 300, 3*time.Second, 300*time.Millisecond, 4, 2*time.Second
	cfg.Workload, _ = load.NewWorkload("ycsb-a")
	cfg.Workload.Keys, cfg.Workload.Dist, cfg.Workload.ValueSize = 50, load.DistUniform, 16
	sc := Scenario{Protocol: "raft", Nodes: 3, Sync: "always", Rate: "1gbit", NodeBin: bin, Dir: dir, Load: cfg,
		Nemesis: "partition-leader@1s:1s", Linearizability: true, Durability: true}
	self := []string{os.Args[0], "-test.run=^$"}
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := Run(ctx, sc, self, &out)
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	checkPerSecondLines(t, out.String(), int(cfg.Duration/time.Second))
	if len(r.Events) != 1 || r.Events[0].Kind != "partition-leader" || r.Events[0].End <= r.Events[0].At {
		t.Errorf("events %+v", r.Events)
	}
	if v := r.Verdicts; v == nil || !v.Linearizability.OK || !v.Durability.OK || v.Durability.Checked == 0 {
		t.Errorf("verdicts %+v", v)
	}
	// loadgen's file set: the result, its benchstat lines and its percentile distribution.
	for _, name := range []string{"result.json", "result.txt", "result.hgrm"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Everything is gone: no namespace of ours is left.
	ls, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(ls), defaultPrefix()+"-") {
		t.Errorf("namespaces left behind:\n%s", ls)
	}
}

// checkPerSecondLines wants loadgen's per-second lines in a run's output: the header, then
// one line for each second of the window ("1s", "2s", ...) with ops/s, p50, p99, max and
// errors.
func checkPerSecondLines(t *testing.T, out string, seconds int) {
	t.Helper()
	header := false
	seen := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 6 && f[0] == "elapsed" && f[1] == "ops/s" && f[5] == "errors":
			header = true
		case header && len(f) == 6 && strings.HasSuffix(f[0], "s"):
			seen[f[0]] = true
		}
	}
	if !header {
		t.Fatalf("no per-second header (elapsed ops/s p50 p99 max errors) in the output")
	}
	for s := 1; s <= seconds; s++ {
		if !seen[strconv.Itoa(s)+"s"] {
			t.Errorf("no per-second line for second %d (saw %v)", s, seen)
		}
	}
}
