package cli

import (
	"fmt"

	"github.com/consensusbench/consensusbench/bench/report"
)

func (a *app) mergeCmd(args []string) error {
	g := newGroup("Merge (results of load hosts that drove one cluster at the same time)")
	out := g.fs.String("out", "", "result path prefix for the merged .json, .txt and .hgrm (required)")
	fs, help, err := a.parse("merge", "loadgen merge --out PREFIX FILE...", []group{g}, args)
	if err != nil || help {
		return err
	}
	if *out == "" {
		return usagef("merge: --out is required")
	}
	if fs.NArg() < 2 {
		return usagef("merge: need at least two result files (got %d)", fs.NArg())
	}
	var rs []*report.Result
	for _, p := range fs.Args() {
		r, err := report.ReadFile(p)
		if err != nil {
			return err
		}
		rs = append(rs, r)
	}
	m, err := report.Merge(rs)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "merged %d results\n\n", len(rs))
	if err := report.WriteSummary(a.stdout, m); err != nil {
		return err
	}
	return a.writeRun(m, *out)
}
