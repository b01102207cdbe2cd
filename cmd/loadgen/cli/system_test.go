package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/benchtest"
	"github.com/consensusbench/consensusbench/bench/report"
)

// fakepeer is a peer system registered for every test of this package (from init, so that
// the golden transcripts see the same systems whatever runs first): its Opener hands out the
// fake target and remembers the spec it was given.
var (
	fakePeerSpec  bench.Spec
	fakePeerClock *benchtest.Clock // the clock of the target Open handed out last
)

func init() {
	bench.RegisterSystem(bench.System{Name: "fakepeer", Version: "v9.9.9", About: "a test double", Protocol: "raft",
		Sync: "always", Reads: []string{"safe", "serializable"}, MaxBatch: 8,
		NoFaults: []string{"partition-leader"},
		Open: func(ctx context.Context, spec bench.Spec) (bench.Target, error) {
			fakePeerSpec, fakePeerClock = spec, benchtest.NewClock()
			return &benchtest.Target{Clock: fakePeerClock, Service: 100 * time.Microsecond}, nil
		}})
}

// A registered peer system runs through the same run command: its spec reaches its
// Opener resolved, and the result names the system and its release.
func TestPeerSystemRun(t *testing.T) {
	var out bytes.Buffer
	a := testApp(&out, fakeSpec{service: 100 * time.Microsecond})
	a.newClock = func() bench.Clock { return fakePeerClock } // the driver reads the target's simulated clock
	prefix := filepath.Join(t.TempDir(), "peer")
	err := a.main(context.Background(), []string{"--system", "fakepeer", "--targets", "a:1,b:2,c:3", "--raft-reads", "serializable",
		"--mode", "closed", "--clients", "2", "--batch", "4", "--duration", "1s", "--warmup", "0s", "--out", prefix, "--quiet"})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	want := bench.Spec{System: "fakepeer", SystemVersion: "v9.9.9", Protocol: "raft", Targets: []string{"a:1", "b:2", "c:3"},
		Sync: "always", Reads: "serializable", Nodes: 3}
	if got := fakePeerSpec; got.System != want.System || got.SystemVersion != want.SystemVersion || got.Sync != want.Sync ||
		got.Reads != want.Reads || got.Nodes != want.Nodes {
		t.Fatalf("the opener got %+v, want %+v", got, want)
	}
	r, err := report.ReadFile(prefix + ".json")
	if err != nil {
		t.Fatal(err)
	}
	if name := report.BenchmarkName(r); !strings.HasPrefix(name, "BenchmarkLoadgen/system=fakepeer-v9.9.9/protocol=raft/nodes=3/sync=always/reads=serializable/") {
		t.Fatalf("result name %s", name)
	}
	if !strings.Contains(out.String(), "fakepeer-v9.9.9 raft cluster") {
		t.Fatalf("the run does not announce the system:\n%s", out.String())
	}
}

// Flags that configure our own nodes, or that the system cannot honour, are refused.
func TestPeerSystemFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--local", "3", "--sync", "none"}, "--sync none is not available"},
		{[]string{"--local", "3", "--raft-reads", "lease"}, `--raft-reads "lease": want safe or serializable`},
		{[]string{"--local", "3", "--protocol", "pbft"}, "runs raft, not --protocol pbft"},
		{[]string{"--cluster", "c.json"}, "not a consensusbench cluster spec"},
		{[]string{"--local", "3", "--node-procs", "1"}, "configure consensusbench's own nodes"},
		{[]string{"--local", "4", "--protocol", "raft", "--insecure-peers"}, "configure consensusbench's own nodes"},
		{[]string{"--local", "3", "--batch", "9"}, "--batch 9: fakepeer takes at most 8 ops in one request"},
		{[]string{"--local", "3", "--nemesis", "partition-leader@0s:500ms"}, "fakepeer clusters cannot apply partition-leader"},
	} {
		var out bytes.Buffer
		err := testApp(&out, fakeSpec{}).main(context.Background(), append([]string{"--system", "fakepeer", "--duration", "1s"}, c.args...))
		if err == nil || !strings.Contains(err.Error(), c.want) || exitStatus(err) != 2 {
			t.Errorf("%v: got %v (exit %d), want a usage error naming %q", c.args, err, exitStatus(err), c.want)
		}
	}
}
