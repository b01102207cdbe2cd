package netns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/adapter"
	"github.com/consensusbench/consensusbench/bench/history"
	"github.com/consensusbench/consensusbench/bench/load"
	"github.com/consensusbench/consensusbench/bench/nemesis"
	"github.com/consensusbench/consensusbench/bench/report"
	"github.com/consensusbench/consensusbench/client"
	"github.com/consensusbench/consensusbench/server"
)

// EnvScenario names the scenario file for the process re-executed inside the client
// namespace.
const EnvScenario = "CONSENSUSBENCH_NETNS_SCENARIO"

// Scenario limits.
const (
	// ReadyTimeout bounds the wait for the cluster to commit its first write.
	ReadyTimeout = 30 * time.Second
	// readBackBytes is the value bytes one durability read-back request asks for, and
	// TagBytesOverhead the per-op size beyond the value assumed with it.
	readBackBytes    = 2 << 10
	TagBytesOverhead = 32
	// innerGrace is added to the load's own length to bound the client process.
	innerGrace = 3 * time.Minute
)

// Scenario is one benchmark in namespaces. The outer process creates the network and runs
// the inner one inside the client namespace; both read this.
type Scenario struct {
	Prefix   string      `json:"prefix"` // namespace names (default cb<pid>)
	Protocol string      `json:"protocol"`
	Nodes    int         `json:"nodes"`
	Sync     string      `json:"sync"`
	Rate     string      `json:"rate,omitempty"` // tc tbf per link
	NodeBin  string      `json:"node_bin"`
	Dir      string      `json:"dir"` // spec, node data and logs, result
	Load     load.Config `json:"load"`
	Nemesis  string      `json:"nemesis,omitempty"`
	// Byzantine, for PBFT, starts the nodes ByzantineNodes (default node 1, the primary of
	// view 0) with --byzantine MODE.
	Byzantine      string `json:"byzantine,omitempty"`
	ByzantineNodes []int  `json:"byzantine_nodes,omitempty"`
	// Linearizability and Durability ask for the verdicts (see bench/history).
	Linearizability bool   `json:"linearizability"`
	Durability      bool   `json:"durability"`
	Result          string `json:"result"` // where the inner process writes the result JSON
	// Quiet leaves out the per-second lines (loadgen's --quiet).
	Quiet bool `json:"quiet,omitempty"`
}

// Run creates the network, runs self (a command that calls RunInner, given the scenario
// file in EnvScenario) inside the client namespace, tears everything down (also when it
// fails) and returns the result the inner process wrote. Its output goes to w.
func Run(ctx context.Context, sc Scenario, self []string, w io.Writer) (*report.Result, error) {
	if sc.Prefix == "" {
		sc.Prefix = defaultPrefix()
	}
	if sc.Result == "" {
		sc.Result = filepath.Join(sc.Dir, "result.json")
	}
	if _, err := nemesis.Parse(sc.Nemesis); err != nil {
		return nil, err
	}
	net, err := Create(ctx, Config{Nodes: sc.Nodes, Rate: sc.Rate, Prefix: sc.Prefix})
	if err != nil {
		return nil, err
	}
	defer net.Teardown()
	path := filepath.Join(sc.Dir, "scenario.json")
	b, _ := json.MarshalIndent(sc, "", "  ")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return nil, err
	}
	ictx, cancel := context.WithTimeout(ctx, sc.Load.Warmup+sc.Load.Duration+innerGrace)
	defer cancel()
	args := append([]string{"netns", "exec", clientNS(sc.Prefix)}, self...)
	cmd := exec.CommandContext(ictx, "ip", args...)
	cmd.Env = append(os.Environ(), EnvScenario+"="+path)
	cmd.Stdout, cmd.Stderr = w, w
	runErr := cmd.Run()
	r, rerr := report.ReadFile(sc.Result)
	if rerr != nil {
		return nil, errors.Join(fmt.Errorf("netns: the client process: %v", runErr), rerr)
	}
	if runErr != nil {
		return r, fmt.Errorf("netns: the client process: %w (node logs in %s)", runErr, sc.Dir)
	}
	return r, nil
}

// RunInner runs inside the client namespace: it starts the nodes in theirs, waits until the
// cluster commits, drives the load under the schedule, checks the verdicts, writes the
// result and stops the nodes. It fails when a verdict fails.
func RunInner(ctx context.Context, path string, w io.Writer) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var sc Scenario
	if err := json.Unmarshal(b, &sc); err != nil {
		return fmt.Errorf("netns: %s: %w", path, err)
	}
	sched, err := nemesis.Parse(sc.Nemesis)
	if err != nil {
		return err
	}
	spec, err := ClusterSpec(sc.Protocol, sc.Nodes)
	if err != nil {
		return err
	}
	extra := map[int][]string{}
	if sc.Byzantine != "" {
		ids := sc.ByzantineNodes
		if len(ids) == 0 {
			ids = []int{1}
		}
		for _, id := range ids {
			extra[id] = []string{"--byzantine", sc.Byzantine}
		}
	}
	nodes, err := StartNodes(ctx, sc.Prefix, sc.NodeBin, sc.Dir, sc.Sync, spec, extra)
	if err != nil {
		return err
	}
	defer nodes.Stop()
	acfg := adapter.Config{Protocol: sc.Protocol, Nodes: clientNodes(spec),
		PBFT:           adapter.PBFTConfig{KeySeed: spec.PBFT.KeySeed, MaxClients: spec.PBFT.MaxClients, SignAll: spec.PBFT.Auth == "sign"},
		RequestTimeout: 2 * time.Second, AttemptTimeout: 300 * time.Millisecond}
	rctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	err = adapter.Probe(rctx, acfg)
	cancel()
	if err != nil {
		return fmt.Errorf("netns: cluster not ready within %v (exited: %v): %w", ReadyTimeout, nodes.Exited(), err)
	}
	tg, err := adapter.Open(acfg)
	if err != nil {
		return err
	}
	tg.SetPipeline(sc.Load.Pipeline)
	// loadgen's per-second lines (ops/s, p50, p99, max, errors), redrawn in place on a
	// terminal: the inner process writes to the outer one's output.
	progress := report.NewProgress(w, report.IsTerminal(w))
	rc := history.RunConfig{Target: tg, Load: sc.Load, Cluster: nodes, Schedule: sched, Seed: 1,
		Spec:            bench.Spec{Protocol: sc.Protocol, ClusterFile: filepath.Join(sc.Dir, "cluster.json"), Sync: sc.Sync},
		Linearizability: sc.Linearizability, VizPath: filepath.Join(filepath.Dir(sc.Result), "linearizability.html")}
	if sc.Durability {
		if sc.Protocol == "pbft" {
			// A restarted PBFT replica resumes from its last stable checkpoint and catches
			// up from its peers (docs/FAULTS.md): kill f.
			rc.ReadBackKill = (sc.Nodes - 1) / 3
		}
		// Reads of about 2 KiB of values per request: well inside a PBFT reply's 8 KiB.
		rc.ReadBackBatch = max(1, readBackBytes/(sc.Load.Workload.ValueSize+TagBytesOverhead))
		rc.ReadBack = func(ctx context.Context) (bench.Target, error) {
			if err := adapter.Probe(ctx, acfg); err != nil {
				return nil, err
			}
			return adapter.Open(acfg)
		}
	}
	if !sc.Quiet {
		rc.OnInterval = progress.Interval
	}
	out, err := history.Run(ctx, rc)
	progress.Done()
	if out == nil {
		return err
	}
	out.Result.ClusterInfo = tg.Describe()
	out.Result.ClusterInfo["netns"] = fmt.Sprintf("%d node namespaces + 1 client, bridge, %s", sc.Nodes, rateNote(sc.Rate))
	if sc.Byzantine != "" {
		out.Result.ClusterInfo["byzantine"] = fmt.Sprintf("%s on nodes %v", sc.Byzantine, sc.ByzantineNodes)
	}
	// The same file set as loadgen's: result.json, result.txt (benchstat), result.hgrm.
	if werr := report.WriteFileSet(strings.TrimSuffix(sc.Result, ".json"), out.Result); werr != nil {
		return errors.Join(err, werr)
	}
	fmt.Fprintln(w)
	_ = report.WriteSummary(w, out.Result)
	_ = nemesis.WriteFigures(w, out.Figures)
	if out.NemesisErr != nil {
		fmt.Fprintf(w, "nemesis: %v\n", out.NemesisErr)
	}
	if err != nil {
		return err
	}
	if !out.OK() {
		return errors.New("netns: a verdict failed (see the result's verdicts)")
	}
	return nil
}

func rateNote(r string) string {
	if r == "" {
		return "links not rate-limited"
	}
	return "tc tbf " + r + " per link"
}

func clientNodes(spec *server.ClusterSpec) []client.Node {
	ns := make([]client.Node, len(spec.Nodes))
	for i, n := range spec.Nodes {
		ns[i] = client.Node{ID: n.ID, Addr: n.ClientAddr}
	}
	return ns
}
