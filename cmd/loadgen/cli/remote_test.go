package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/bench/adapter"
	"github.com/consensusbench/consensusbench/bench/cluster"
	"github.com/consensusbench/consensusbench/bench/report"
	"github.com/consensusbench/consensusbench/server"
)

// Faults against a cluster loadgen did not start are refused before anything runs (exit
// 2), naming what is missing: the spec's admin addresses, the token for admin addresses off
// loopback, a pause longer than a node's /admin/pause takes.
func TestRemoteFaultsRefused(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, metrics ...string) string {
		spec := server.ClusterSpec{ClusterID: 1, Protocol: "raft"}
		for i, m := range metrics {
			id := uint64(i + 1)
			spec.Nodes = append(spec.Nodes, server.NodeSpec{ID: id, PeerAddr: freeAddr(t), ClientAddr: freeAddr(t), MetricsAddr: m})
		}
		b, err := json.Marshal(spec)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	noAdmin := write("no-admin.json", "127.0.0.1:7301", "", "")
	offLoopback := write("remote.json", "10.0.0.1:7301", "10.0.0.2:7301", "10.0.0.3:7301")
	loopback := write("loopback.json", "127.0.0.1:7301", "127.0.0.1:7302", "127.0.0.1:7303")
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"no metrics_addr":     {[]string{"--cluster", noAdmin, "--nemesis", "kill-leader@1s,restart@2s"}, "nodes 2, 3 have no metrics_addr"},
		"durability, no addr": {[]string{"--cluster", noAdmin, "--check-durability"}, "--check-durability with --cluster"},
		"no token":            {[]string{"--cluster", offLoopback, "--nemesis", "pause-leader@1s:1s"}, "give --admin-token-file"},
		"partition, no token": {[]string{"--cluster", offLoopback, "--nemesis", "partition-leader@1s:1s"}, "node 1 (10.0.0.1:7301)"},
		"missing token file":  {[]string{"--cluster", offLoopback, "--admin-token-file", filepath.Join(dir, "none"), "--nemesis", "kill-random@1s"}, "--admin-token-file: open"},
		"empty token file":    {[]string{"--cluster", offLoopback, "--admin-token-file", token, "--nemesis", "kill-random@1s"}, "is empty"},
		"long pause":          {[]string{"--cluster", loopback, "--nemesis", "pause-random@1s:2m"}, "lasts at most 1m0s"},
		"targets":             {[]string{"--targets", "127.0.0.1:1", "--nemesis", "kill-leader@1s"}, "needs --cluster FILE"},
	} {
		var out bytes.Buffer
		start := time.Now()
		err := run(append(c.args, "--duration", "3s", "--out", filepath.Join(dir, "r")), &out, &out)
		if err == nil || !strings.Contains(err.Error(), c.want) || exitStatus(err) != 2 {
			t.Errorf("%s: err %v (exit %d), want exit 2 saying %q", name, err, exitStatus(err), c.want)
		}
		if time.Since(start) > 5*time.Second { // far below the 10 s a cluster that cannot commit takes to refuse
			t.Errorf("%s: refused after %v: it must be refused before reaching the cluster", name, time.Since(start))
		}
	}
}

// supervise plays a node's supervisor (systemd's Restart=always) for a local cluster: a
// node that exited without being killed through the harness is started again after
// restartDelay. It returns how many restarts it made once ctx ends.
func supervise(ctx context.Context, t *testing.T, c *cluster.Cluster, restartDelay time.Duration) func() int {
	var mu sync.Mutex
	restarts := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			for _, n := range c.Nodes {
				if exited, _ := n.Exited(); !exited || n.Killed() {
					continue
				}
				time.Sleep(restartDelay)
				if err := c.Restart(ctx, n.ID); err != nil {
					if ctx.Err() == nil {
						t.Errorf("supervisor: restarting node %d: %v", n.ID, err)
					}
					continue
				}
				mu.Lock()
				restarts++
				mu.Unlock()
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return func() int {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return restarts
	}
}

// The process faults against a cluster loadgen did not start, end to end: a local cluster
// whose nodes the test supervises (it restarts a node that crashed) is driven through its
// spec file (--cluster). kill-leader crashes the leader through /admin/crash, restart waits
// for the supervisor and records how long the node was gone, pause-random stops a node
// through /admin/pause; the durability check crashes every node the same way, and both
// verdicts pass.
func TestRemoteProcessFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real node processes")
	}
	nodeOnPath(t)
	bin, err := cluster.FindNode(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := cluster.Start(context.Background(), cluster.Config{Protocol: "raft", Nodes: 3, NodeBin: bin, Dir: t.TempDir(), Sync: "always",
		Ready: func(ctx context.Context, c *cluster.Cluster) error {
			return adapter.Probe(ctx, adapter.Config{Protocol: "raft", Nodes: clientNodes(c)})
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	restarts := supervise(ctx, t, c, 100*time.Millisecond)
	defer func() {
		cancel()
		restarts()
		if _, err := c.Stop(t.Failed()); err != nil {
			t.Error(err)
		}
	}()
	prefix := filepath.Join(t.TempDir(), "r")
	var out bytes.Buffer
	err = run([]string{"--cluster", c.SpecPath, "--rate", "300", "--clients", "4", "--workload", "ycsb-a", "--keys", "50",
		"--value-size", "16", "--duration", "4s", "--warmup", "300ms", "--quiet", "--out", prefix,
		"--nemesis", "kill-leader@500ms,restart@1500ms,pause-random@2500ms:700ms",
		"--check-linearizability", "--check-durability"}, &out, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if strings.Contains(out.String(), "could not be injected") {
		t.Errorf("a fault failed:\n%s", out.String())
	}
	r, err := report.ReadFile(prefix + ".json")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Events) != 3 {
		t.Fatalf("events %+v, want kill-leader, restart, pause-random", r.Events)
	}
	kill, restart, pause := r.Events[0], r.Events[1], r.Events[2]
	if kill.Kind != "kill-leader" || kill.Figures == nil || kill.Figures.UnavailableNs <= 0 || kill.End != restart.At {
		t.Errorf("kill-leader event %+v: want figures with an unavailability window, ended by the restart", kill)
	}
	if restart.Kind != "restart" || restart.Target != "["+kill.Target+"]" || !strings.Contains(restart.Detail, kill.Target+" back ") {
		t.Errorf("restart event %+v: want %s back after its crash", restart, kill.Target)
	}
	if !strings.Contains(out.String(), "repair restart@") || !strings.Contains(out.String(), kill.Target+" back ") {
		t.Errorf("the summary has no line for the supervised restart:\n%s", out.String())
	}
	if pause.Kind != "pause-random" || pause.End-pause.At < 600*time.Millisecond || pause.Figures == nil {
		t.Errorf("pause-random event %+v: want a window of about 700ms with figures", pause)
	}
	// The nodes' logs say what was done to them, through their own admin endpoints.
	paused := 0
	for _, n := range c.Nodes {
		b, err := os.ReadFile(n.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "pausing on POST /admin/pause") {
			paused++
		}
		if n.Name() == kill.Target && !strings.Contains(string(b), "crashing on POST /admin/crash") {
			t.Errorf("the killed leader's log (%s) has no crash line", n.LogPath)
		}
	}
	if paused != 1 {
		t.Errorf("%d nodes paused through /admin/pause, want 1", paused)
	}
	v := r.Verdicts
	if v == nil || !v.Linearizability.OK || v.Durability == nil || !v.Durability.OK || v.Durability.Checked == 0 {
		t.Errorf("verdicts %+v\n%s", v, out.String())
	}
	cancel()
	// One restart after kill-leader, three after the durability check crashed every node.
	if n := restarts(); n != 4 {
		t.Errorf("the supervisor restarted %d nodes, want 4", n)
	}
}
