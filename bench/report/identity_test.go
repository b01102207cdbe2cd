package report

import (
	"strings"
	"testing"

	"golang.org/x/perf/benchfmt"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/load"
)

// A result from before Spec.System existed names the same benchmark as one of ours written
// now (no system key), and an etcd run of the same shape differs only in its system, so
// `compare --col system` pairs them row by row, ours as consensusbench.
func TestIdentitySystem(t *testing.T) {
	wl, err := load.NewWorkload("write-only")
	if err != nil {
		t.Fatal(err)
	}
	mk := func(spec bench.Spec) *Result {
		return &Result{Cluster: spec, Load: load.Config{Mode: load.ClosedLoop, Clients: 32, Pipeline: 2, Batch: 16, Workload: wl},
			Summary: Summary{Ops: 100, Throughput: 10}}
	}
	old := mk(bench.Spec{Protocol: "raft", Local: 3, Nodes: 3, Sync: "always", Reads: "safe"})
	ours := mk(bench.Spec{System: bench.SystemOurs, Protocol: "raft", Local: 3, Nodes: 3, Sync: "always", Reads: "safe"})
	etcd := mk(bench.Spec{System: "etcd", SystemVersion: "v3.7.3", Protocol: "raft", Local: 3, Nodes: 3, Sync: "always", Reads: "safe"})
	if BenchmarkName(old) != BenchmarkName(ours) {
		t.Fatalf("an old result names %s, ours now %s", BenchmarkName(old), BenchmarkName(ours))
	}
	if !strings.HasPrefix(BenchmarkName(ours), "BenchmarkLoadgen/protocol=raft/") { // as before peers existed
		t.Fatalf("ours: %s", BenchmarkName(ours))
	}
	if !strings.HasPrefix(BenchmarkName(etcd), "BenchmarkLoadgen/system=etcd-v3.7.3/protocol=raft/") {
		t.Fatalf("etcd: %s", BenchmarkName(etcd))
	}
	values, groups, err := SplitByKey([]*benchfmt.Result{Records(ours), Records(etcd)}, "system")
	if err != nil {
		t.Fatal(err)
	}
	if len(values) != 2 || values[0] != bench.SystemOurs || values[1] != "etcd-v3.7.3" ||
		groups[values[0]][0].Name.String() != groups[values[1]][0].Name.String() {
		t.Fatalf("split by system: %v, names %v", values, groups)
	}
	var b strings.Builder
	if err := WriteSummary(&b, etcd); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "etcd-v3.7.3 raft") {
		t.Fatalf("summary does not name the system:\n%s", b.String())
	}
}
