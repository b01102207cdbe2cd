package etcd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/nemesis"
	"github.com/consensusbench/consensusbench/bench/report"
	"github.com/consensusbench/consensusbench/cmd/loadgen/cli"
)

// These tests start real etcd members (peers/cmd/etcd-member, built into a temporary
// directory by FindMember when no launcher is beside the test binary or on PATH).

func loadgen(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := cli.Main(args, &out, &out)
	return out.String(), err
}

// A short closed-loop run on 3 local members, through the same loadgen code as
// consensusbench's own nodes: the result names etcd and its release, records etcd's
// durability, the members' CPU time and no failed request.
func TestLocalRun(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "etcd")
	out, err := loadgen(t, "--system", "etcd", "--local", "3", "--mode", "closed", "--clients", "4", "--pipeline", "2",
		"--batch", "8", "--workload", "ycsb-a", "--duration", "2s", "--warmup", "500ms", "--quiet", "--out", prefix)
	if err != nil {
		t.Fatalf("loadgen: %v\n%s", err, out)
	}
	r, err := report.ReadFile(prefix + ".json")
	if err != nil {
		t.Fatal(err)
	}
	c := r.Cluster
	if c.System != Name || c.SystemVersion != Version || c.Sync != "always" || c.Reads != ReadsLinearizable || c.Nodes != 3 {
		t.Fatalf("cluster %+v", c)
	}
	if r.Summary.Ops == 0 || r.Summary.Errors != 0 {
		t.Fatalf("ops %d, errors %d\n%s", r.Summary.Ops, r.Summary.Errors, out)
	}
	if len(r.Nodes) != 3 || r.OpsPerCoreSecond <= 0 {
		t.Fatalf("node CPU %+v, ops/core-s %v", r.Nodes, r.OpsPerCoreSecond)
	}
	if !strings.HasPrefix(report.BenchmarkName(r), "BenchmarkLoadgen/system=etcd-"+Version+"/protocol=raft/nodes=3/sync=always/reads=safe/") {
		t.Fatalf("name %s", report.BenchmarkName(r))
	}
	if r.ClusterEvents == nil {
		t.Fatalf("no leader-change counts from the members' /metrics")
	}
}

// Killing the leader and restarting it keeps the history linearizable and every
// acknowledged write durable (the verdicts run against etcd exactly as against ours).
func TestFaultVerdicts(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "fault")
	out, err := loadgen(t, "--system", "etcd", "--local", "3", "--mode", "closed", "--clients", "4", "--pipeline", "2",
		"--batch", "4", "--workload", "ycsb-a", "--keys", "200", "--duration", "4s", "--warmup", "500ms", "--quiet",
		"--nemesis", "kill-leader@1s,restart@2s", "--check-linearizability", "--check-durability", "--out", prefix)
	if err != nil {
		t.Fatalf("loadgen: %v\n%s", err, out)
	}
	r, err := report.ReadFile(prefix + ".json")
	if err != nil {
		t.Fatal(err)
	}
	v := r.Verdicts
	if v == nil || v.Linearizability == nil || !v.Linearizability.OK || v.Durability == nil || !v.Durability.OK || v.Durability.Checked == 0 {
		t.Fatalf("verdicts %+v\n%s", v, out)
	}
	if len(r.Events) < 2 || r.Events[0].Kind != "kill-leader" || r.Events[0].Target == "" {
		t.Fatalf("events %+v", r.Events)
	}
}

// The session maps a batch to one Txn: reads see the batch's earlier writes, a key written
// twice keeps its last value, and absent keys read as not found; a remote Open (--targets)
// reaches the same members and reports their release.
func TestTxnBatchesAndRemote(t *testing.T) {
	ctx := context.Background()
	lt, err := startLocal(ctx, bench.Spec{System: Name, Protocol: "raft", Local: 3, Sync: "always", Reads: ReadsLinearizable})
	if err != nil {
		t.Fatal(err)
	}
	l := lt.(*localTarget)
	defer func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	}()
	remote, err := Open(ctx, bench.Spec{System: Name, Protocol: "raft", Targets: endpoints(l.c), Reads: ReadsSerializable})
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	if v := remote.(bench.VersionReporter).SystemVersion(); v != Version {
		t.Fatalf("remote release %q, want %q", v, Version)
	}
	s, err := l.Open(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	ops := []bench.Op{
		{Kind: bench.OpWrite, Key: []byte("k1"), Value: []byte("a")},
		{Kind: bench.OpWrite, Key: []byte("k1"), Value: []byte("b")},
		{Kind: bench.OpWrite, Key: []byte("k2"), Value: []byte("c")},
		{Kind: bench.OpRead, Key: []byte("k1")},
		{Kind: bench.OpRead, Key: []byte("absent")},
	}
	if err := s.Do(ctx, ops); err != nil {
		t.Fatal(err)
	}
	if !ops[3].Found || string(ops[3].Out) != "b" || ops[4].Found {
		t.Fatalf("reads in the batch: k1 %q found %v, absent found %v", ops[3].Out, ops[3].Found, ops[4].Found)
	}
	rs, err := remote.Open(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	one := []bench.Op{{Kind: bench.OpRead, Key: []byte("k2")}}
	deadline := time.Now().Add(5 * time.Second) // a serializable read may trail the commit
	for {
		if err := rs.Do(ctx, one); err != nil {
			t.Fatal(err)
		}
		if one[0].Found && string(one[0].Out) == "c" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("k2 reads %q (found %v)", one[0].Out, one[0].Found)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The leader, found through Maintenance Status, is the node every member names.
	m := l.Nemesis()
	leader, err := nemesis.FindLeader(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range m.Nodes() {
		st, err := m.Status(ctx, id)
		if err != nil || st.Leader != leader {
			t.Fatalf("n%d: status %+v, %v; want leader n%d", id, st, err, leader)
		}
	}
	if err := m.Isolate(ctx, leader); err != nemesis.ErrUnsupported {
		t.Fatalf("Isolate: %v, want ErrUnsupported", err)
	}
	// Leadership moves where transfer-leader asks (MoveLeader on the leader).
	to := leader%3 + 1
	if err := m.TransferLeader(ctx, leader, to); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if now, err := nemesis.FindLeader(ctx, m); err == nil && now == to {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leadership did not move from n%d to n%d", leader, to)
		}
	}
}

// A cluster that cannot commit is refused before the run, naming the address.
func TestRemoteUnreachable(t *testing.T) {
	old := probeTimeout
	probeTimeout = 500 * time.Millisecond
	defer func() { probeTimeout = old }()
	_, err := Open(context.Background(), bench.Spec{System: Name, Protocol: "raft", Targets: []string{"127.0.0.1:1"}})
	if err == nil || !strings.Contains(err.Error(), "not reachable: 127.0.0.1:1") {
		t.Fatalf("got %v", err)
	}
}

func TestMain(m *testing.M) {
	// Build the launcher once for every test rather than once per cluster.
	dir, err := os.MkdirTemp("", "etcd-member-*")
	if err != nil {
		panic(err)
	}
	bin, err := FindMember(context.Background(), dir)
	if err != nil {
		panic(err)
	}
	os.Setenv("PATH", filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
