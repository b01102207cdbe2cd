package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	gplot "gonum.org/v1/plot"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/plot"
	"github.com/consensusbench/consensusbench/bench/report"
)

func (a *app) plotCmd(args []string) error {
	g := newGroup("Plot (run results: percentile spectrum and time series; sweep results: throughput-latency curve)")
	out := g.fs.String("out", "", "directory for the images (default: the first file's directory)")
	formats := g.fs.StringSlice("format", []string{"png", "svg"}, "image formats: png, svg")
	fs, help, err := a.parse("plot", "loadgen plot [flags] FILE...", []group{g}, args)
	if err != nil || help {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("plot: name at least one result file")
	}
	for _, f := range *formats {
		if f != "png" && f != "svg" {
			return usagef("plot: --format %q: want png or svg", f)
		}
	}
	dir := *out
	if dir == "" {
		dir = filepath.Dir(fs.Arg(0))
	} else if err := os.MkdirAll(dir, 0o755); err != nil { // a new directory is made
		return fmt.Errorf("plot: --out: %w", err)
	}
	var spectrum []plot.Named
	var runs []string
	save := func(name string, plots ...*gplot.Plot) error {
		for _, f := range *formats {
			path := filepath.Join(dir, name+"."+f)
			if err := plot.Save(path, plots...); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "wrote %s\n", path)
		}
		return nil
	}
	for _, path := range fs.Args() {
		base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		run, sweep, err := report.ReadAny(path)
		if err != nil {
			return err
		}
		if sweep != nil {
			p, err := plot.Curve(sweep, plotTitle(sweep.Cluster, sweep.Env))
			if err != nil {
				return err
			}
			if err := save(base+"-curve", p); err != nil {
				return err
			}
			continue
		}
		h, err := run.DecodeHistogram()
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		label := fmt.Sprintf("%s %s (%s)", clusterName(run.Cluster), run.Load.Workload.Name, run.Load.Mode)
		if len(fs.Args()) > 1 {
			label = base + ": " + label
		}
		spectrum = append(spectrum, plot.Named{Label: label, Hist: h})
		runs = append(runs, base)
		ops, p99, err := plot.TimeSeries(run, plotTitle(run.Cluster, run.Env))
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := save(base+"-timeseries", ops, p99); err != nil {
			return err
		}
	}
	if len(spectrum) == 0 {
		return nil
	}
	p, err := plot.Spectrum("latency by percentile", spectrum)
	if err != nil {
		return err
	}
	return save(spectrumName(runs), p)
}

// plotTitle names what a plot shows: the system and protocol, the node count, the sync
// mode and the commit measured (a figure copied out of its directory still says what it is).
func plotTitle(spec bench.Spec, env report.Env) string {
	t := clusterName(spec)
	if spec.Nodes > 0 {
		t += fmt.Sprintf(", %d nodes", spec.Nodes)
	}
	if spec.Sync != "" {
		t += ", sync " + spec.Sync
	}
	if env.Commit != "" {
		t += ", " + env.Commit
		if env.Dirty {
			t += "+dirty"
		}
	}
	return t
}

// spectrumName is the spectrum file's name: the run's, or for several runs the first
// ones' names joined (and how many more), so that two comparisons in one directory do not
// overwrite each other.
func spectrumName(runs []string) string {
	const named = 3
	if len(runs) <= named {
		return strings.Join(runs, "-vs-") + "-spectrum"
	}
	return fmt.Sprintf("%s-and-%d-more-spectrum", strings.Join(runs[:named], "-vs-"), len(runs)-named)
}
