package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/load"
	"github.com/consensusbench/consensusbench/bench/nemesis"
	"github.com/consensusbench/consensusbench/bench/report"
)

func (a *app) runCmd(ctx context.Context, args []string) (err error) {
	var cf clusterFlags
	var lf loadFlags
	var wf workloadFlags
	var of outputFlags
	var ff faultFlags
	var ck checkFlags
	fs, help, err := a.parse("run", "loadgen [run] [flags]", []group{cf.group(), lf.group(false), wf.group(), of.group(false), ck.group(), ff.group()}, args)
	if err != nil || help {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("run: unexpected arguments %q", fs.Args())
	}
	spec, err := cf.spec()
	if err != nil {
		return err
	}
	wl, err := wf.workload(fs)
	if err != nil {
		return err
	}
	cfg, err := lf.config(fs, wl)
	if err != nil {
		return err
	}
	if err := checkBatch(spec, cfg.Batch); err != nil {
		return err
	}
	if err := ck.validate(fs, &ff, cfg); err != nil {
		return err
	}
	if err := ff.validate(spec, cfg.Duration); err != nil { // before any node starts
		return err
	}
	if ck.count == 1 {
		_, err := a.runOnce(ctx, &cf, spec, cfg, &of, &ff, &ck, of.out)
		return err
	}
	// Repeated runs: each on a fresh cluster (a local one is started anew), written as
	// PREFIX-1 ... PREFIX-N, then summarized.
	prefix := of.out
	if prefix == "" {
		prefix = defaultPrefix(a.now(), a.env(), spec, cfg)
	}
	var results []*report.Result
	var failed []string
	for i := 1; i <= ck.count; i++ {
		fmt.Fprintf(a.stdout, "== run %d of %d\n", i, ck.count)
		r, err := a.runOnce(ctx, &cf, spec, cfg, &of, &ff, &ck, fmt.Sprintf("%s-%d", prefix, i))
		if r != nil {
			results = append(results, r)
		}
		if err != nil {
			if ctx.Err() != nil || r == nil {
				return err
			}
			failed = append(failed, fmt.Sprintf("run %d: %v", i, err))
		}
		fmt.Fprintln(a.stdout)
	}
	if err := a.writeSummary(results, prefix); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d runs failed:\n  %s", len(failed), ck.count, strings.Join(failed, "\n  "))
	}
	return nil
}

// runOnce opens the cluster, drives it once, writes the result under prefix ("" for the
// default) and returns it. The error reports a failed verdict or a failed check of the run's
// own (the result is still returned and written).
func (a *app) runOnce(ctx context.Context, cf *clusterFlags, spec bench.Spec, cfg load.Config, of *outputFlags,
	ff *faultFlags, ck *checkFlags, prefix string) (_ *report.Result, err error) {
	target, err := a.opener(cf)(ctx, spec)
	if err != nil {
		return nil, err
	}
	// A run with failed requests keeps a local cluster's logs, like a run that failed.
	var failedOps bool
	defer func() { err = closeTarget(target, err, failedOps, a.stderr) }()
	spec = a.resolveSpec(ctx, spec, cf)
	if v, ok := target.(bench.VersionReporter); ok && v.SystemVersion() != "" {
		spec.SystemVersion = v.SystemVersion() // the release the cluster runs, not the client's
	}
	fsync, err := a.probeFsync(spec, target, *of)
	if err != nil {
		return nil, err
	}
	faults, err := newFaultRun(ctx, ff, spec, target)
	if err != nil {
		return nil, err
	}

	env := a.env()
	started := a.now()
	a.announce(spec, cfg)
	progress := report.NewProgress(a.stdout, a.tty)
	opts := load.Options{Clock: a.newClock()}
	if !of.quiet {
		opts.OnInterval = progress.Interval
	}
	if p, ok := target.(pipeliner); ok {
		p.SetPipeline(cfg.Pipeline)
	}
	if err := setConns(target, cfg.Conns, cfg.Clients); err != nil {
		return nil, err
	}
	warnSessionWindow(a.stderr, spec, cfg)
	cpu := newCPUWindow(a, target)
	var hostFrom, hostTo report.HostSample
	opts.OnWindow = func(start bool) {
		cpu.sample(start)
		if a.hostSample != nil {
			if start {
				hostFrom = a.hostSample()
			} else {
				hostTo = a.hostSample()
			}
		}
		faults.window(start)
	}
	o, err := load.Run(ctx, faults.wrap(target), cfg, opts)
	progress.Done()
	interrupted := err != nil && ctx.Err() != nil && o != nil
	if err != nil && !interrupted {
		return nil, fmt.Errorf("run: %w", err)
	}
	if interrupted {
		// Ctrl-C: keep what was measured, marked as cut short.
		fmt.Fprintf(a.stdout, "\ninterrupted after %v of the %v window: writing the partial result (marked interrupted; compare leaves it out)\n", o.Elapsed, cfg.Duration)
		if a.hostSample != nil && hostTo.At.IsZero() {
			hostTo = a.hostSample()
		}
	}

	r, err := report.New(o, spec, env, started)
	if err != nil {
		return nil, err
	}
	r.Fsync = fsync
	r.Interrupted = interrupted
	failedOps = r.Summary.Errors > 0
	if d, ok := target.(bench.Describer); ok {
		r.ClusterInfo = d.Describe()
	}
	cpu.apply(r)
	if a.hostSample != nil && !hostFrom.At.IsZero() && !hostTo.At.IsZero() {
		own := r.LoadgenCPUSeconds
		for _, n := range r.Nodes {
			own += n.CPUSeconds
		}
		r.Host = report.HostOver(hostFrom, hostTo, env.Cores, own)
	}
	r.Failures = ck.judge(r)
	if prefix == "" {
		prefix = defaultPrefix(started, env, spec, cfg)
	}
	figs, verdictsOK, err := faults.finish(ctx, r, prefix, a.stderr)
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	failedOps = failedOps || !verdictsOK || len(r.Failures) > 0
	fmt.Fprintln(a.stdout)
	if err := report.WriteSummary(a.stdout, r); err != nil {
		return nil, err
	}
	if err := nemesis.WriteFigures(a.stdout, figs); err != nil {
		return nil, err
	}
	if err := nemesis.WriteRepairs(a.stdout, r.Events); err != nil {
		return nil, err
	}
	if fe, ok := target.(interface{ FirstError() (int64, error) }); ok {
		if n, err := fe.FirstError(); err != nil {
			fmt.Fprintf(a.stderr, "loadgen: %d batches failed; the first: %v\n", n, err)
		}
	}
	if err := a.writeRun(r, prefix); err != nil {
		return nil, err
	}
	switch {
	case interrupted:
		return r, ctx.Err()
	case !verdictsOK:
		return r, verdictError(r)
	case len(r.Failures) > 0:
		return r, fmt.Errorf("run: failed: %s", strings.Join(r.Failures, "; "))
	}
	return r, nil
}

// announce prints what is about to run, so a pasted log says what it measured.
func (a *app) announce(spec bench.Spec, cfg load.Config) {
	pace := fmt.Sprintf("%g ops/s", cfg.Rate)
	if cfg.Mode == load.ClosedLoop {
		pace = fmt.Sprintf("%d clients x pipeline %d", cfg.Clients, cfg.Pipeline)
	}
	fmt.Fprintf(a.stdout, "loadgen: %s cluster, %s %s, %s workload, %v measured after %v warmup\n",
		clusterName(spec), cfg.Mode, pace, cfg.Workload.Name, cfg.Duration, cfg.Warmup)
}

// clusterName is the protocol, after the system when it is a peer's ("etcd-v3.7.3 raft").
func clusterName(spec bench.Spec) string {
	if id := spec.SystemID(); id != bench.SystemOurs {
		return id + " " + spec.Protocol
	}
	return spec.Protocol
}

func defaultPrefix(started time.Time, env report.Env, spec bench.Spec, cfg load.Config) string {
	return filepath.Join(defaultResultsDir, fmt.Sprintf("%s-%s-%s-%s", started.UTC().Format("20060102T150405Z"),
		env.Commit, fileSystem(spec), cfg.Workload.Name))
}

// fileSystem is what a default result file name says about the cluster: the protocol for
// ours, the system and release for a peer (which runs one protocol).
func fileSystem(spec bench.Spec) string {
	if id := spec.SystemID(); id != bench.SystemOurs {
		return id
	}
	return spec.Protocol
}

// writeRun writes prefix.json, prefix.txt and prefix.hgrm.
func (a *app) writeRun(r *report.Result, prefix string) error {
	if err := report.WriteFileSet(prefix, r); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "\nwrote %s.json (result), %s.txt (benchstat), %s.hgrm (percentiles)\n", prefix, prefix, prefix)
	return nil
}

func writeFile(path string, write func(*os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// probeFsync measures fdatasync where the user asked, or on a durable local cluster's disk.
func (a *app) probeFsync(spec bench.Spec, target bench.Target, of outputFlags) (*report.Fsync, error) {
	dir := of.fsyncProbe
	if dir == "" && spec.Sync == "always" {
		if d, ok := target.(bench.DataDirReporter); ok {
			dir = d.DataDir()
		}
	}
	if dir == "" {
		return nil, nil
	}
	f, err := report.MeasureFdatasync(dir, of.fsyncSamples, report.FsyncBlockDefault)
	if err != nil {
		return nil, fmt.Errorf("fsync probe: %w", err)
	}
	return f, nil
}

// cpuWindow samples this process's and the nodes' CPU time, and the nodes' event counters
// (elections, leader and view changes), at the measured window's edges.
type cpuWindow struct {
	a        *app
	nodes    bench.CPUReporter
	events   bench.EventReporter
	evFrom   map[string]map[string]int64
	evTo     map[string]map[string]int64
	evErr    error
	selfFrom float64
	selfTo   float64
	from, to map[string]float64
	err      error
}

func newCPUWindow(a *app, t bench.Target) *cpuWindow {
	w := &cpuWindow{a: a}
	w.nodes, _ = t.(bench.CPUReporter)
	w.events, _ = t.(bench.EventReporter)
	return w
}

func (w *cpuWindow) sample(start bool) {
	self := w.a.cpu()
	var nodes map[string]float64
	if w.nodes != nil {
		var err error
		nodes, err = w.nodes.NodeCPUSeconds()
		w.err = errors.Join(w.err, err)
	}
	var ev map[string]map[string]int64
	if w.events != nil {
		var err error
		ev, err = w.events.NodeEvents()
		w.evErr = errors.Join(w.evErr, err)
	}
	if start {
		w.selfFrom, w.from, w.evFrom = self, nodes, ev
	} else {
		w.selfTo, w.to, w.evTo = self, nodes, ev
	}
}

func (w *cpuWindow) apply(r *report.Result) {
	r.LoadgenCPUSeconds = max(w.selfTo-w.selfFrom, 0)
	if w.events != nil && w.evErr == nil && w.evFrom != nil && w.evTo != nil {
		r.ClusterEvents = report.AggregateClusterEvents(w.evFrom, w.evTo)
	}
	if w.nodes == nil || w.err != nil || w.from == nil || w.to == nil {
		return
	}
	var nodes []report.NodeCPU
	for name, end := range w.to {
		nodes = append(nodes, report.NodeCPU{Name: name, CPUSeconds: max(end-w.from[name], 0)})
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	r.SetNodeCPU(nodes)
}

// verdictError says which verdict failed and where its evidence is.
func verdictError(r *report.Result) error {
	var msgs []string
	if v := r.Verdicts.Linearizability; v != nil && !v.OK {
		m := "linearizability: " + v.Detail
		if v.Artifact != "" {
			m += " (visualization: " + v.Artifact + ")"
		}
		msgs = append(msgs, m)
	}
	if v := r.Verdicts.Durability; v != nil && !v.OK {
		msgs = append(msgs, "durability: "+v.Detail)
	}
	return fmt.Errorf("run: verdict failed: %s", strings.Join(msgs, "; "))
}

// opener is the app's Opener, a peer system's (--system), or for --byzantine, --raft-reads, --insecure-peers and
// --node-procs and --node-log-level a local cluster with Byzantine nodes, the chosen read
// mode, unauthenticated peers, the nodes' GOMAXPROCS or their log level.
func (a *app) opener(cf *clusterFlags) bench.Opener {
	if sys, ok := bench.LookupSystem(cf.system); ok {
		return sys.Open // a peer system (spec() refused the flags of our own nodes)
	}
	if cf.byz == "" && cf.raftReads == "" && !cf.insecure && cf.nodeProcs == 0 && cf.nodeLog == localLogLevel {
		return a.open
	}
	x := localExtras{insecure: cf.insecure, nodeProcs: cf.nodeProcs, logLevel: cf.nodeLog}
	if cf.byz != "" {
		x = byzantineExtras(cf.byz, cf.byzNodes)
		x.insecure, x.nodeProcs, x.logLevel = cf.insecure, cf.nodeProcs, cf.nodeLog
	}
	if cf.raftReads != "" {
		x = raftReadsExtras(x, cf.local, cf.raftReads)
	}
	return func(ctx context.Context, spec bench.Spec) (bench.Target, error) { return openLocalWith(ctx, spec, x) }
}
