package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/load"
	"github.com/consensusbench/consensusbench/bench/report"
)

func (a *app) sweepCmd(ctx context.Context, args []string) (err error) {
	var cf clusterFlags
	var lf loadFlags
	var wf workloadFlags
	var of outputFlags
	d := load.DefaultSweep(load.DefaultConfig())
	sg := newGroup("Sweep (each step is an open-loop run, its pipeline sized for its rate unless --pipeline is given; a step is saturated when its throughput is below --keep of the offered rate, more ops went unsent than clients x pipeline x batch (the most the window's end can cut off), errors exceed --error-ratio, or p99 exceeds --p99-limit; the sweep stops after the first saturated step and says which rule stopped it)")
	sg.fs.Float64Var(&d.StartRate, "start-rate", d.StartRate, "ops/s of the first step")
	sg.fs.Float64Var(&d.Factor, "factor", d.Factor, "multiply the rate by this between steps")
	sg.fs.Float64Var(&d.Add, "add", 0, "add this many ops/s between steps instead of --factor")
	sg.fs.IntVar(&d.Steps, "steps", d.Steps, "at most this many steps")
	sg.fs.Float64Var(&d.Keep, "keep", d.Keep, "saturated when throughput falls below this fraction of the offered rate")
	sg.fs.Float64Var(&d.ErrorRatio, "error-ratio", d.ErrorRatio, "saturated when errors exceed this fraction of ops")
	sg.fs.DurationVar(&d.P99Limit, "p99-limit", 0, "saturated when p99 exceeds this (0: no limit)")
	fs, help, err := a.parse("sweep", "loadgen sweep [flags]",
		[]group{cf.group(), lf.group(true), wf.group(), sg, of.group(true)}, args)
	if err != nil || help {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("sweep: unexpected arguments %q", fs.Args())
	}
	spec, err := cf.spec()
	if err != nil {
		return err
	}
	wl, err := wf.workload(fs)
	if err != nil {
		return err
	}
	lf.rate = d.StartRate
	if d.Run, err = lf.config(fs, wl); err != nil {
		return err
	}
	if err := checkBatch(spec, d.Run.Batch); err != nil {
		return err
	}
	d.AutoPipeline = !fs.Changed("pipeline")
	if err := d.Validate(); err != nil {
		return usageError{err}
	}

	target, err := a.opener(&cf)(ctx, spec)
	if err != nil {
		return err
	}
	defer func() { err = closeTarget(target, err, false, a.stderr) }()
	if p, ok := target.(pipeliner); ok {
		depth := d.Run.Pipeline
		if d.AutoPipeline {
			depth = load.SizePipeline(load.RateMax, d.Run.Clients, d.Run.Batch) // the deepest any step uses
		}
		p.SetPipeline(depth)
	}
	if err := setConns(target, d.Run.Conns, d.Run.Clients); err != nil {
		return err
	}
	env := a.env()
	started := a.now()
	fmt.Fprintf(a.stdout, "loadgen sweep: %s cluster, %s workload, %v per step after %v warmup, from %g ops/s\n",
		clusterName(spec), wl.Name, d.Run.Duration, d.Run.Warmup, d.StartRate)
	// Fixed-width columns: each step prints as soon as it ends.
	const row = "%10s %10s %9s %9s %9s %8s %8s"
	fmt.Fprintf(a.stdout, row+"\n", "offered", "ops/s", "p50", "p99", "p99.9", "errors", "unsent")
	steps, err := load.Sweep(ctx, target, d, load.Options{Clock: a.newClock()}, func(st load.SweepStep) {
		o := st.Outcome
		l := report.PercentilesOf(o.Total)
		fmt.Fprintf(a.stdout, row, fmt.Sprintf("%g", st.Offered), fmt.Sprintf("%.0f", o.Throughput()),
			report.FormatLatency(l.P50), report.FormatLatency(l.P99), report.FormatLatency(l.P999),
			fmt.Sprint(o.Errors), fmt.Sprint(o.Unsent))
		if st.Saturated {
			fmt.Fprintf(a.stdout, "  saturated: %s", st.Reason)
		}
		fmt.Fprintln(a.stdout)
	})
	if err != nil {
		return err
	}
	r, err := report.NewSweep(d, steps, spec, env, started)
	if err != nil {
		return err
	}
	if d, ok := target.(bench.Describer); ok {
		r.Info = d.Describe()
	}
	prefix := of.out
	if prefix == "" {
		prefix = filepath.Join(defaultResultsDir, fmt.Sprintf("%s-%s-%s-%s-sweep",
			started.UTC().Format("20060102T150405Z"), env.Commit, fileSystem(spec), wl.Name))
	}
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		return err
	}
	if err := writeFile(prefix+".json", func(f *os.File) error { return r.Write(f) }); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "\nwrote %s.json (sweep; plot it with loadgen plot)\n", prefix)
	return nil
}
