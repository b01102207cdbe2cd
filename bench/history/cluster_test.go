package history

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/adapter"
	"github.com/consensusbench/consensusbench/bench/load"
	"github.com/consensusbench/consensusbench/bench/nemesis"
	"github.com/consensusbench/consensusbench/client"
	"github.com/consensusbench/consensusbench/server"
	"github.com/consensusbench/consensusbench/storage"
)

// Fault-run parameters: short, so that make test stays fast, but long enough for a leader
// change (election timeout 10 ticks of 10 ms) well inside the window.
const (
	faultRate     = 400
	faultDuration = 3 * time.Second
	faultWarmup   = 300 * time.Millisecond
)

func nodesOf(addrs map[uint64]string) []client.Node {
	var ns []client.Node
	for id := uint64(1); id <= uint64(len(addrs)); id++ {
		ns = append(ns, client.Node{ID: id, Addr: addrs[id]})
	}
	return ns
}

func targetConfig(c *server.LocalCluster) adapter.Config {
	return adapter.Config{Protocol: c.Spec.Protocol, Nodes: nodesOf(c.ClientAddrs()),
		PBFT:           adapter.PBFTConfig{KeySeed: c.Spec.PBFT.KeySeed, MaxClients: c.Spec.PBFT.MaxClients},
		RequestTimeout: time.Second, AttemptTimeout: 200 * time.Millisecond}
}

func openTarget(t *testing.T, c *server.LocalCluster) *adapter.Target {
	t.Helper()
	tg, err := adapter.Open(targetConfig(c))
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// faultRun runs a cluster under sched with both verdicts.
func faultRun(t *testing.T, protocol string, nodes int, sched string, unsafe bool, keys int) *RunOutcome {
	return faultRunWith(t, runOpts{protocol: protocol, nodes: nodes, sched: sched, unsafe: unsafe, keys: keys})
}

// faultRunKill is faultRun whose durability check kills only `kill` nodes (0: all).
func faultRunKill(t *testing.T, protocol string, nodes int, sched string, unsafe bool, keys, kill int) *RunOutcome {
	return faultRunWith(t, runOpts{protocol: protocol, nodes: nodes, sched: sched, unsafe: unsafe, keys: keys, kill: kill})
}

type runOpts struct {
	protocol     string
	nodes        int
	sched        string
	unsafe       bool
	keys, kill   int
	duration     time.Duration
	noDurability bool
	setup        func(*server.LocalCluster)
	spec         *server.ClusterSpec // protocol settings (nil: defaults)
}

func faultRunWith(t *testing.T, o runOpts) *RunOutcome {
	t.Helper()
	protocol, nodes, sched, unsafe, keys, kill := o.protocol, o.nodes, o.sched, o.unsafe, o.keys, o.kill
	c, err := server.StartLocalCluster(server.LocalClusterConfig{Protocol: protocol, Nodes: nodes, Dir: t.TempDir(),
		Sync: storage.SyncAlways, UnsafeAckBeforeCommit: unsafe, Spec: o.spec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	if o.setup != nil {
		o.setup(c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := adapter.Probe(ctx, targetConfig(c)); err != nil {
		t.Fatal(err)
	}
	s, err := nemesis.Parse(sched)
	if err != nil {
		t.Fatal(err)
	}
	cfg := load.DefaultConfig()
	cfg.Rate, cfg.Duration, cfg.Warmup, cfg.Clients, cfg.Drain = faultRate, faultDuration, faultWarmup, 4, 2*time.Second
	cfg.Workload, _ = load.NewWorkload("ycsb-a")
	cfg.Workload.Keys, cfg.Workload.Dist, cfg.Workload.ValueSize = keys, load.DistUniform, 16
	if o.duration > 0 {
		cfg.Duration = o.duration
	}
	tg := openTarget(t, c)
	rc := RunConfig{Target: tg, Spec: bench.Spec{Protocol: protocol, Local: nodes, Sync: "always"}, Load: cfg,
		Cluster: &nemesis.InProcess{C: c}, Schedule: s, Seed: 1, Linearizability: true, ReadBackKill: kill,
		VizPath: filepath.Join(t.TempDir(), "linearizability.html"),
		ReadBack: func(ctx context.Context) (bench.Target, error) {
			if err := adapter.Probe(ctx, targetConfig(c)); err != nil {
				return nil, err
			}
			return openTarget(t, c), nil
		}}
	if o.noDurability {
		rc.ReadBack = nil
	}
	out, err := Run(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	if out.NemesisErr != nil {
		t.Fatalf("nemesis: %v", out.NemesisErr)
	}
	return out
}

// A partition of the leader under load: Raft §5.2 elects a new leader in the majority, the
// old one cannot commit (§5.3, §5.4.2), and the history stays linearizable with no
// acknowledged write lost after every node is stopped and restarted.
func TestRaftPartitionLeaderVerdicts(t *testing.T) {
	out := faultRun(t, "raft", 3, "partition-leader@1s:1s", false, 50)
	r := out.Result
	if len(r.Events) != 1 || r.Events[0].Kind != "partition-leader" || r.Events[0].End <= r.Events[0].At {
		t.Fatalf("events %+v: want one partition-leader with an end", r.Events)
	}
	if len(out.Figures) != 1 || out.Figures[0].PreRate == 0 {
		t.Fatalf("figures %+v", out.Figures)
	}
	t.Logf("figures: %s", out.Figures[0].Summary())
	lin, dur := r.Verdicts.Linearizability, r.Verdicts.Durability
	if !lin.OK || lin.Checked == 0 {
		t.Errorf("linearizability: %+v", lin)
	}
	if !dur.OK || dur.Checked == 0 || dur.Failed != 0 {
		t.Errorf("durability: %+v", dur)
	}
}

// A leader crash and restart (Raft §5.2: a new leader is elected; §5.4.1: it holds every
// committed entry).
func TestRaftKillLeaderVerdicts(t *testing.T) {
	out := faultRun(t, "raft", 3, "kill-leader@1s,restart@2s", false, 50)
	r := out.Result
	if len(r.Events) != 2 || r.Events[0].End != r.Events[1].At {
		t.Fatalf("events %+v: the kill's window should end at the restart", r.Events)
	}
	if !out.OK() {
		t.Errorf("verdicts: lin %+v dur %+v", r.Verdicts.Linearizability, r.Verdicts.Durability)
	}
	if f := out.Figures[0]; f.Unavailable < 0 {
		t.Errorf("nothing succeeded after the leader was killed: %s", f.Summary())
	}
}

// The deliberately broken build: a leader that acknowledges writes before they commit keeps
// acknowledging while partitioned away, and those writes are discarded when the majority's
// new leader overwrites its log (Raft §5.3). The checkers must catch it.
//
// CheckQuorum is off in this cluster, so the isolated leader does not step down after an
// election timeout: it keeps acknowledging for the whole partition (with CheckQuorum on it
// acknowledges only for ~100 ms, which on a loaded machine may be too few writes to see).
// The scenario is still tried up to brokenAttempts times; the test fails if the checkers
// pass every time.
func TestUnsafeAckBeforeCommitIsCaught(t *testing.T) {
	const brokenAttempts = 3
	spec := &server.ClusterSpec{Protocol: "raft", Raft: server.RaftSpec{DisableCheckQuorum: true}}
	for attempt := 1; attempt <= brokenAttempts; attempt++ {
		out := faultRunWith(t, runOpts{protocol: "raft", nodes: 3, sched: "partition-leader@1s:1500ms", unsafe: true, keys: 8, spec: spec})
		lin, dur := out.Result.Verdicts.Linearizability, out.Result.Verdicts.Durability
		t.Logf("attempt %d: linearizability: %+v", attempt, lin)
		t.Logf("attempt %d: durability: %+v", attempt, dur)
		if !lin.OK && (lin.Artifact == "" || !strings.Contains(lin.Detail, "NOT linearizable")) {
			t.Errorf("a failed linearizability check must name its visualization: %+v", lin)
		}
		if !lin.OK || !dur.OK {
			return
		}
	}
	t.Fatalf("the broken cluster passed both checks %d times", brokenAttempts)
}

// PBFT with its primary crashed and restarted: the backups' view change (Castro and Liskov
// §4.4) installs a new primary, and the f+1 matching replies a client waits for (§4.1) keep
// the history linearizable. The durability check then kills all four replicas at once and
// restarts them: each restarts from its stable checkpoint plus its log of protocol records
// (server/pbftlog.go), so every acknowledged write reads back, including those executed
// after the last stable checkpoint.
func TestPBFTKillPrimaryVerdicts(t *testing.T) {
	out := faultRunKill(t, "pbft", 4, "kill-leader@1s,restart@2s", false, 50, 0)
	r := out.Result
	if len(r.Events) != 2 {
		t.Fatalf("events %+v", r.Events)
	}
	t.Logf("figures: %s", out.Figures[0].Summary())
	lin, dur := r.Verdicts.Linearizability, r.Verdicts.Durability
	if !lin.OK || lin.Checked == 0 {
		t.Errorf("linearizability: %+v", lin)
	}
	if !dur.OK || dur.Checked == 0 {
		t.Errorf("durability: %+v", dur)
	}
}

// A Byzantine primary in each mode (Castro and Liskov §4: safety with f = 1 faulty replica
// of 4): the backups time out and change view (§4.4) or outvote it, clients accept only f+1
// matching replies (§4.1), and the history stays linearizable.
func TestPBFTByzantinePrimaryStaysLinearizable(t *testing.T) {
	for _, mode := range []server.ByzantineMode{server.ByzantineSilent, server.ByzantineEquivocate, server.ByzantineBadDigest, server.ByzantineBadMAC} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			var cluster *server.LocalCluster
			out := faultRunWith(t, runOpts{protocol: "pbft", nodes: 4, keys: 50, duration: 1500 * time.Millisecond, noDurability: true,
				setup: func(c *server.LocalCluster) {
					cluster = c
					c.Replicas[0].(*server.PBFTReplica).SetByzantine(mode)
				}})
			// The mode must have bitten: the backups deposed the primary (view > 0).
			if st := cluster.Replicas[1].(server.Admin).Status(); st.Term == 0 {
				t.Errorf("a %s primary was never replaced: %+v", mode, st)
			}
			lin := out.Result.Verdicts.Linearizability
			if !lin.OK || lin.Checked == 0 {
				t.Errorf("linearizability with a %s primary: %+v", mode, lin)
			}
			t.Logf("%s primary: %.0f ops/s, p99 %v, %d errors", mode, out.Result.Summary.Throughput,
				time.Duration(out.Result.Summary.Latency.P99), out.Result.Summary.Errors)
		})
	}
}
