package cli

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/consensusbench/consensusbench/bench/report"
)

// inconclusiveError marks a comparison that could not decide what was asked: too few runs
// for the test, or runs too noisy to detect the threshold. main exits 3 for it.
type inconclusiveError struct{ error }

func (e inconclusiveError) Unwrap() error { return e.error }

// defaultGateUnits are the units --fail-on-regression decides on unless --gate names others:
// tail percentiles vary too much on a shared host for a gate of a few percent.
const defaultGateUnits = report.UnitThroughput + "," + report.UnitPerCore + "," + report.UnitP50

// compareFlags are shared by compare and ab.
type compareFlags struct {
	alpha       float64
	fail        float64
	gate        []string
	keepPartial bool
}

func (c *compareFlags) add(g group) {
	g.fs.Float64Var(&c.alpha, "alpha", 0.05, "significance level of the Mann-Whitney U test")
	g.fs.Float64Var(&c.fail, "fail-on-regression", 0, "exit 1 when a significant change in a --gate unit is worse than this many percent, and exit 3 when the runs are too few or too noisy to detect that much (0: never)")
	g.fs.StringSliceVar(&c.gate, "gate", strings.Split(defaultGateUnits, ","), "units --fail-on-regression decides on")
	g.fs.BoolVar(&c.keepPartial, "keep-partial", false, "keep interrupted runs and runs that failed their own checks (left out by default)")
}

func (c *compareFlags) validate(cmd string) error {
	if !(c.alpha > 0 && c.alpha < 1) || c.fail < 0 || math.IsNaN(c.fail) {
		return usagef("%s: --alpha %v outside (0, 1) or --fail-on-regression %v negative", cmd, c.alpha, c.fail)
	}
	return nil
}

func (a *app) compareCmd(args []string) error {
	g := newGroup("Compare (result .json files or benchmark-format .txt files; 10 runs per side recommended, see --count)")
	var cf compareFlags
	cf.add(g)
	col := g.fs.String("col", "", "compare by this key of the benchmark names instead of OLD -- NEW, e.g. --col sync (all files on one side)")
	fs, help, err := a.parse("compare", "loadgen compare [flags] OLD... -- NEW...  |  loadgen compare --col KEY FILE...", []group{g}, args)
	if err != nil || help {
		return err
	}
	if err := cf.validate("compare"); err != nil {
		return err
	}
	if *col != "" {
		return a.compareByKey(*col, fs.Args(), cf)
	}
	dash := fs.ArgsLenAtDash()
	if dash < 0 {
		return usagef("compare: separate OLD and NEW files with -- (or group by a key with --col)")
	}
	old, new := fs.Args()[:dash], fs.Args()[dash:]
	if len(old) == 0 || len(new) == 0 {
		return usagef("compare: need at least one OLD and one NEW file (got %d and %d)", len(old), len(new))
	}
	olds, err := report.ReadSamples(old, cf.keepPartial)
	if err != nil {
		return err
	}
	news, err := report.ReadSamples(new, cf.keepPartial)
	if err != nil {
		return err
	}
	a.noteSkipped(append(olds.Skipped, news.Skipped...))
	if len(olds.Results) == 0 || len(news.Results) == 0 {
		return fmt.Errorf("compare: no run left on a side (%d OLD, %d NEW) after leaving out interrupted and failed ones", len(olds.Results), len(news.Results))
	}
	for k, v := range news.Units {
		olds.Units[k] = v
	}
	cs, err := report.Compare(olds.Results, news.Results, olds.Units, cf.alpha)
	if err != nil {
		return err
	}
	report.SetNoise(cs, olds.Results, news.Results)
	return a.judge(cs, cf, "")
}

// compareByKey compares the files' runs grouped by one name key: the first value seen
// against each other.
func (a *app) compareByKey(key string, files []string, cf compareFlags) error {
	if len(files) == 0 {
		return usagef("compare: --col %s needs result files", key)
	}
	s, err := report.ReadSamples(files, cf.keepPartial)
	if err != nil {
		return err
	}
	a.noteSkipped(s.Skipped)
	values, groups, err := report.SplitByKey(s.Results, key)
	if err != nil {
		return err
	}
	if len(values) < 2 {
		return fmt.Errorf("compare: every run has %s=%s; nothing to compare", key, strings.Join(values, ","))
	}
	var errs []error
	for i, v := range values[1:] {
		if i > 0 {
			fmt.Fprintln(a.stdout)
		}
		fmt.Fprintf(a.stdout, "%s=%s (old) vs %s=%s (new)\n", key, values[0], key, v)
		cs, err := report.Compare(groups[values[0]], groups[v], s.Units, cf.alpha)
		if err != nil {
			return err
		}
		report.SetNoise(cs, groups[values[0]], groups[v])
		if err := a.judge(cs, cf, key+"="+v+": "); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

func (a *app) noteSkipped(paths []string) {
	if len(paths) > 0 {
		fmt.Fprintf(a.stderr, "loadgen: left out %d interrupted or failed runs (--keep-partial keeps them): %s\n",
			len(paths), strings.Join(paths, ", "))
	}
}

// judge prints the comparison, warns when the runs cannot show a difference, and applies
// --fail-on-regression.
func (a *app) judge(cs []report.Comparison, cf compareFlags, what string) error {
	if err := report.WriteComparison(a.stdout, cs); err != nil {
		return err
	}
	noisy := 0
	for _, c := range cs {
		noisy += c.NoisyOld + c.NoisyNew
	}
	if noisy > 0 {
		fmt.Fprintf(a.stdout, "\nnote: the \"noisy\" column counts runs whose host was busy with other work (see their host context); treat their deltas with care\n")
	}
	minN := math.MaxInt
	for _, c := range cs {
		minN = min(minN, c.NOld, c.NNew)
	}
	if p := report.MinPValue(minN, minN); p >= cf.alpha {
		fmt.Fprintf(a.stdout, "\nWARNING: with %d run(s) on a side no difference can be significant at p < %g (the U test's smallest p is %.3f); run at least %d per side (loadgen run --count N)\n",
			minN, cf.alpha, p, report.MinRunsForAlpha(cf.alpha))
	}
	if cf.fail == 0 {
		return nil
	}
	var bad, undetectable []string
	for _, c := range cs {
		if !slices.Contains(cf.gate, c.Unit) {
			continue
		}
		if c.Regression(cf.fail) {
			bad = append(bad, fmt.Sprintf("%s %s %+.2f%% (p=%.3f)", strings.TrimPrefix(c.Name, "Loadgen/"), c.Unit, c.DeltaPct, c.Test.P))
			continue
		}
		if ok, why := c.Detectable(cf.alpha, cf.fail); !ok {
			undetectable = append(undetectable, fmt.Sprintf("%s %s: %s", strings.TrimPrefix(c.Name, "Loadgen/"), c.Unit, why))
		}
	}
	switch {
	case len(bad) > 0:
		return fmt.Errorf("%sregression beyond %g%%:\n  %s", what, cf.fail, strings.Join(bad, "\n  "))
	case len(undetectable) > 0:
		return inconclusiveError{fmt.Errorf("%scannot tell whether there is a regression beyond %g%%:\n  %s", what, cf.fail, strings.Join(undetectable, "\n  "))}
	}
	fmt.Fprintf(a.stdout, "\n%sno significant regression beyond %g%% in %s\n", what, cf.fail, strings.Join(cf.gate, ", "))
	return nil
}
