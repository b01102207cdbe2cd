package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	gplot "gonum.org/v1/plot"

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
	var firstRun string
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
			p, err := plot.Curve(sweep, sweep.Cluster.Protocol)
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
		if firstRun == "" {
			firstRun = base
		}
		ops, p99, err := plot.TimeSeries(run, clusterName(run.Cluster))
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
	name := firstRun + "-spectrum"
	if len(spectrum) > 1 {
		name = "spectrum"
	}
	p, err := plot.Spectrum("latency by percentile", spectrum)
	if err != nil {
		return err
	}
	return save(name, p)
}
