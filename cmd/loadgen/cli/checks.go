package cli

import (
	"fmt"
	"math"
	"os"

	"github.com/spf13/pflag"

	"github.com/consensusbench/consensusbench/bench/load"
	"github.com/consensusbench/consensusbench/bench/report"
)

// Limits of the run checks.
const (
	countMax              = 1000
	defaultMaxErrorRatio  = 0.01
	defaultMinAchieved    = 0.9
	faultRunMaxErrorRatio = 1 // a fault schedule makes errors: no bound unless asked
)

// checkFlags repeat a run and decide when a run failed on its own terms: a script must be
// able to tell a broken benchmark from a good one by the exit status alone.
type checkFlags struct {
	count         int
	maxErrorRatio float64
	minAchieved   float64
}

func (c *checkFlags) group() group {
	g := newGroup("Repetition and checks (a run that fails a check is written, marked failed, and exits 1)")
	g.fs.IntVar(&c.count, "count", 1, "run this many times (local clusters start fresh each time), write PREFIX-1... and PREFIX.summary.txt with median, 95% CI and CV")
	g.fs.Float64Var(&c.maxErrorRatio, "max-error-ratio", defaultMaxErrorRatio, "fail when more than this share of ops failed (default 0.01; no bound with --nemesis unless given)")
	g.fs.Float64Var(&c.minAchieved, "min-achieved", defaultMinAchieved, "open loop: fail when the throughput is below this share of the offered --rate (0 to 1; 0 with --nemesis unless given)")
	return g
}

func (c *checkFlags) validate(fs *pflag.FlagSet, ff *faultFlags, cfg load.Config) error {
	switch {
	case c.count < 1 || c.count > countMax:
		return usagef("--count %d outside [1, %d]", c.count, countMax)
	case !(c.maxErrorRatio >= 0 && c.maxErrorRatio <= 1):
		return usagef("--max-error-ratio %v outside [0, 1]", c.maxErrorRatio)
	case !(c.minAchieved >= 0 && c.minAchieved <= 1):
		return usagef("--min-achieved %v outside [0, 1]", c.minAchieved)
	case fs.Changed("min-achieved") && cfg.Mode != load.OpenLoop:
		return usagef("--min-achieved applies to open loop only (closed loop offers no rate)")
	case c.count > 1 && ff.durable:
		return usagef("--count with --check-durability: the durability check kills the cluster; run them separately")
	}
	if ff.nemesis != "" {
		if !fs.Changed("max-error-ratio") {
			c.maxErrorRatio = faultRunMaxErrorRatio
		}
		if !fs.Changed("min-achieved") {
			c.minAchieved = 0
		}
	}
	return nil
}

// judge returns the checks r failed.
func (c *checkFlags) judge(r *report.Result) []string {
	s := r.Summary
	var out []string
	if s.Ops == 0 {
		out = append(out, fmt.Sprintf("no op succeeded (%d errors, %d unsent)", s.Errors, s.Unsent))
	}
	if total := s.Ops + s.Errors; total > 0 && c.maxErrorRatio < 1 {
		if ratio := float64(s.Errors) / float64(total); ratio > c.maxErrorRatio {
			out = append(out, fmt.Sprintf("%.2f%% of ops failed, above --max-error-ratio %g", 100*ratio, c.maxErrorRatio))
		}
	}
	if r.Load.Mode == load.OpenLoop && c.minAchieved > 0 && r.Load.Rate > 0 && s.Ops > 0 {
		if share := s.Throughput / r.Load.Rate; share < c.minAchieved && !nearly(share, c.minAchieved) {
			out = append(out, fmt.Sprintf("achieved %.1f%% of the offered %g ops/s, below --min-achieved %g", 100*share, r.Load.Rate, c.minAchieved))
		}
	}
	return out
}

func nearly(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// writeSummary prints and writes PREFIX.summary.txt for repeated runs.
func (a *app) writeSummary(rs []*report.Result, prefix string) error {
	if len(rs) == 0 {
		return nil
	}
	noisy, failed := 0, 0
	for _, r := range rs {
		if r.Host != nil && r.Host.Noisy {
			noisy++
		}
		if r.Partial() {
			failed++
		}
	}
	name := fmt.Sprintf("%s: %d runs", report.BenchmarkName(rs[0]), len(rs))
	stats := report.Summarize(rs)
	if err := report.WriteRunStats(a.stdout, name, stats, noisy, failed); err != nil {
		return err
	}
	path := prefix + ".summary.txt"
	if err := writeFile(path, func(f *os.File) error { return report.WriteRunStats(f, name, stats, noisy, failed) }); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "\nwrote %s (summary) beside %s-1 ... %s-%d\n", path, prefix, prefix, len(rs))
	return nil
}
