package main

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
	fs, help, err := a.parse("run", "loadgen [run] [flags]", []group{cf.group(), lf.group(false), wf.group(), of.group(false), ff.group()}, args)
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

	target, err := a.opener(&cf)(ctx, spec)
	if err != nil {
		return err
	}
	// A run with failed requests keeps a local cluster's logs, like a run that failed.
	var failedOps bool
	defer func() { err = closeTarget(target, err, failedOps, a.stderr) }()
	fsync, err := a.probeFsync(spec, target, of)
	if err != nil {
		return err
	}
	faults, err := newFaultRun(ctx, &ff, spec, target)
	if err != nil {
		return err
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
	warnSessionWindow(a.stderr, spec, cfg)
	cpu := newCPUWindow(a, target)
	opts.OnWindow = func(start bool) {
		cpu.sample(start)
		faults.window(start)
	}
	o, err := load.Run(ctx, faults.wrap(target), cfg, opts)
	progress.Done()
	interrupted := err != nil && ctx.Err() != nil && o != nil
	if err != nil && !interrupted {
		return fmt.Errorf("run: %w", err)
	}
	if interrupted {
		// Ctrl-C: keep what was measured, marked as cut short by its window length.
		fmt.Fprintf(a.stdout, "\ninterrupted after %v of the %v window: writing the partial result\n", o.Elapsed, cfg.Duration)
	}

	r, err := report.New(o, spec, env, started)
	if err != nil {
		return err
	}
	r.Fsync = fsync
	failedOps = r.Summary.Errors > 0
	if d, ok := target.(bench.Describer); ok {
		r.ClusterInfo = d.Describe()
	}
	cpu.apply(r)
	prefix := of.out
	if prefix == "" {
		prefix = defaultPrefix(started, env, spec, cfg)
	}
	figs, verdictsOK, err := faults.finish(ctx, r, prefix, a.stderr)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	failedOps = failedOps || !verdictsOK
	fmt.Fprintln(a.stdout)
	if err := report.WriteSummary(a.stdout, r); err != nil {
		return err
	}
	if err := nemesis.WriteFigures(a.stdout, figs); err != nil {
		return err
	}
	if fe, ok := target.(interface{ FirstError() (int64, error) }); ok {
		if n, err := fe.FirstError(); err != nil {
			fmt.Fprintf(a.stderr, "loadgen: %d batches failed; the first: %v\n", n, err)
		}
	}
	if err := a.writeRun(r, prefix); err != nil {
		return err
	}
	if interrupted {
		return ctx.Err()
	}
	if !verdictsOK {
		return verdictError(r)
	}
	return nil
}

// announce prints what is about to run, so a pasted log says what it measured.
func (a *app) announce(spec bench.Spec, cfg load.Config) {
	pace := fmt.Sprintf("%g ops/s", cfg.Rate)
	if cfg.Mode == load.ClosedLoop {
		pace = fmt.Sprintf("%d clients x pipeline %d", cfg.Clients, cfg.Pipeline)
	}
	fmt.Fprintf(a.stdout, "loadgen: %s cluster, %s %s, %s workload, %v measured after %v warmup\n",
		spec.Protocol, cfg.Mode, pace, cfg.Workload.Name, cfg.Duration, cfg.Warmup)
}

func defaultPrefix(started time.Time, env report.Env, spec bench.Spec, cfg load.Config) string {
	return filepath.Join(defaultResultsDir, fmt.Sprintf("%s-%s-%s-%s", started.UTC().Format("20060102T150405Z"),
		env.Commit, spec.Protocol, cfg.Workload.Name))
}

// writeRun writes prefix.json, prefix.txt and prefix.hgrm.
func (a *app) writeRun(r *report.Result, prefix string) error {
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		return err
	}
	if err := r.WriteFile(prefix + ".json"); err != nil {
		return err
	}
	if err := writeFile(prefix+".txt", func(f *os.File) error { return report.WriteBenchfmt(f, r) }); err != nil {
		return err
	}
	if err := writeFile(prefix+".hgrm", func(f *os.File) error { return report.WriteHgrm(f, r) }); err != nil {
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

// cpuWindow samples this process's and the nodes' CPU time at the measured window's edges.
type cpuWindow struct {
	a        *app
	nodes    bench.CPUReporter
	selfFrom float64
	selfTo   float64
	from, to map[string]float64
	err      error
}

func newCPUWindow(a *app, t bench.Target) *cpuWindow {
	w := &cpuWindow{a: a}
	w.nodes, _ = t.(bench.CPUReporter)
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
	if start {
		w.selfFrom, w.from = self, nodes
	} else {
		w.selfTo, w.to = self, nodes
	}
}

func (w *cpuWindow) apply(r *report.Result) {
	r.LoadgenCPUSeconds = max(w.selfTo-w.selfFrom, 0)
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

// opener is the app's Opener, or for --byzantine and --raft-reads a local cluster with
// Byzantine nodes or the chosen read mode.
func (a *app) opener(cf *clusterFlags) bench.Opener {
	if cf.byz == "" && cf.raftReads == "" {
		return a.open
	}
	var x localExtras
	if cf.byz != "" {
		x = byzantineExtras(cf.byz, cf.byzNodes)
	}
	if cf.raftReads != "" {
		x = raftReadsExtras(x, cf.local, cf.raftReads)
	}
	return func(ctx context.Context, spec bench.Spec) (bench.Target, error) { return openLocalWith(ctx, spec, x) }
}
