package main

import (
	"fmt"
	"strings"

	"github.com/consensusbench/consensusbench/bench/report"
)

func (a *app) compareCmd(args []string) error {
	g := newGroup("Compare (result .json files or benchmark-format .txt files; -count 10 runs per side recommended)")
	alpha := g.fs.Float64("alpha", 0.05, "significance level of the Mann-Whitney U test")
	fail := g.fs.Float64("fail-on-regression", 0, "exit non-zero when a significant change is worse than this many percent (0: never)")
	fs, help, err := a.parse("compare", "loadgen compare [flags] OLD... -- NEW...", []group{g}, args)
	if err != nil || help {
		return err
	}
	dash := fs.ArgsLenAtDash()
	if dash < 0 {
		return usagef("compare: separate OLD and NEW files with --")
	}
	old, new := fs.Args()[:dash], fs.Args()[dash:]
	if len(old) == 0 || len(new) == 0 {
		return usagef("compare: need at least one OLD and one NEW file (got %d and %d)", len(old), len(new))
	}
	if !(*alpha > 0 && *alpha < 1) || *fail < 0 {
		return usagef("compare: --alpha %v outside (0, 1) or --fail-on-regression %v negative", *alpha, *fail)
	}
	or, ou, err := report.ReadSamples(old)
	if err != nil {
		return err
	}
	nr, nu, err := report.ReadSamples(new)
	if err != nil {
		return err
	}
	for k, v := range nu {
		ou[k] = v
	}
	cs, err := report.Compare(or, nr, ou, *alpha)
	if err != nil {
		return err
	}
	if err := report.WriteComparison(a.stdout, cs); err != nil {
		return err
	}
	if *fail == 0 {
		return nil
	}
	var bad []string
	for _, c := range cs {
		if c.Regression(*fail) {
			bad = append(bad, fmt.Sprintf("%s %s %+.2f%% (p=%.3f)", strings.TrimPrefix(c.Name, "Loadgen/"), c.Unit, c.DeltaPct, c.Test.P))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("regression beyond %g%%:\n  %s", *fail, strings.Join(bad, "\n  "))
	}
	fmt.Fprintf(a.stdout, "\nno significant regression beyond %g%%\n", *fail)
	return nil
}
