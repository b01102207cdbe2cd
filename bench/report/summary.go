package report

import (
	"fmt"
	"io"
	"math"
	"text/tabwriter"

	"golang.org/x/perf/benchmath"
)

// RunStat summarizes one figure over repeated runs of one benchmark: benchstat's median and
// confidence interval (no distribution assumed) and the coefficient of variation.
type RunStat struct {
	Unit    string
	Summary benchmath.Summary
	CV      float64
	N       int
}

// SummaryUnits are the figures a repeated run reports, in order.
var SummaryUnits = []string{UnitThroughput, UnitPerCore, UnitP50, UnitP99, UnitP999}

// Summarize computes the RunStats of rs (runs of one benchmark) for SummaryUnits; a unit no
// run has is left out.
func Summarize(rs []*Result) []RunStat {
	var out []RunStat
	for _, unit := range SummaryUnits {
		var xs []float64
		for _, r := range rs {
			for _, v := range values(r) {
				if v.Unit == unit {
					xs = append(xs, v.Value)
				}
			}
		}
		if len(xs) == 0 {
			continue
		}
		s := benchmath.NewSample(xs, &benchmath.DefaultThresholds)
		out = append(out, RunStat{Unit: unit, Summary: benchmath.AssumeNothing.Summary(s, Confidence), CV: CV(xs), N: len(xs)})
	}
	return out
}

// WriteRunStats prints the repeated runs' summary: per figure the median, its 95% confidence
// interval, the CV and the number of runs; noisy and failed counts the runs so marked.
func WriteRunStats(w io.Writer, name string, stats []RunStat, noisy, failed int) error {
	fmt.Fprintf(w, "%s\n", name)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "unit\tmedian\t95% CI\tcv\tn")
	for _, s := range stats {
		ci := "-"
		if !math.IsInf(s.Summary.Lo, 0) && !math.IsInf(s.Summary.Hi, 0) && s.N > 1 {
			ci = fmt.Sprintf("%s .. %s", fmtValue(s.Summary.Lo, s.Unit), fmtValue(s.Summary.Hi, s.Unit))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", s.Unit, fmtValue(s.Summary.Center, s.Unit), ci, fmtCV(s.CV), s.N)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if noisy > 0 {
		fmt.Fprintf(w, "%d of the runs had a busy host (noisy)\n", noisy)
	}
	if failed > 0 {
		fmt.Fprintf(w, "%d of the runs were interrupted or failed their checks (included above)\n", failed)
	}
	if n := len(stats); n > 0 && stats[0].N < MinRunsForAlpha(0.05) {
		fmt.Fprintf(w, "note: %d runs are too few for a comparison to reach p < 0.05; use at least %d\n", stats[0].N, MinRunsForAlpha(0.05))
	}
	return nil
}
