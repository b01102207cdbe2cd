package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"
)

// Confidence is the level of the confidence intervals compare prints, as benchstat's.
const Confidence = 0.95

// Records returns a run result as benchfmt results, one per run (with every unit).
func Records(r *Result) *benchfmt.Result {
	res := &benchfmt.Result{Name: benchfmt.Name(strings.TrimPrefix(BenchmarkName(r), "Benchmark")),
		Iters: int(max(r.Summary.Ops, 1)), Values: values(r)}
	for _, kv := range headers(r) {
		res.SetConfig(kv[0], kv[1])
	}
	return res
}

// ReadSamples reads result files (JSON) or benchmark-format text files (as `make bench` and
// loadgen's .txt write) and returns their results with the unit metadata they carry.
func ReadSamples(paths []string) ([]*benchfmt.Result, benchfmt.UnitMetadataMap, error) {
	var out []*benchfmt.Result
	units := benchfmt.UnitMetadataMap{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, err
		}
		if bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
			r, err := Read(bytes.NewReader(b))
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", p, err)
			}
			out = append(out, Records(r))
			continue
		}
		rd := benchfmt.NewReader(bytes.NewReader(b), p)
		for rd.Scan() {
			switch rec := rd.Result().(type) {
			case *benchfmt.Result:
				out = append(out, rec.Clone())
			case *benchfmt.SyntaxError:
				return nil, nil, rec
			}
		}
		if err := rd.Err(); err != nil {
			return nil, nil, err
		}
		for k, v := range rd.Units() {
			units[k] = v
		}
	}
	return out, units, nil
}

// Comparison is one benchmark and unit, old against new.
type Comparison struct {
	Name, Unit string
	Old, New   benchmath.Summary
	NOld, NNew int
	Test       benchmath.Comparison
	DeltaPct   float64 // (new/old - 1) x 100
	Better     int     // +1 higher is better, -1 lower is better, 0 unknown
}

// Significant reports whether the samples differ at the test's alpha.
func (c Comparison) Significant() bool { return c.Test.P < c.Test.Alpha }

// Regression reports whether c is a significant change in the worse direction by more than
// pct percent.
func (c Comparison) Regression(pct float64) bool {
	if !c.Significant() || c.Better == 0 || math.IsNaN(c.DeltaPct) {
		return false
	}
	return -float64(c.Better)*c.DeltaPct > pct
}

// Compare matches old and new results by benchmark name and unit and compares each pair with
// benchstat's statistics: medians with Confidence intervals (no distribution assumed) and the
// Mann-Whitney U test at alpha.
func Compare(old, new []*benchfmt.Result, units benchfmt.UnitMetadataMap, alpha float64) ([]Comparison, error) {
	type key struct{ name, unit string }
	collect := func(rs []*benchfmt.Result) (map[key][]float64, []key) {
		m := map[key][]float64{}
		var order []key
		for _, r := range rs {
			for _, v := range r.Values {
				k := key{r.Name.String(), v.Unit}
				if _, ok := m[k]; !ok {
					order = append(order, k)
				}
				m[k] = append(m[k], v.Value)
			}
		}
		return m, order
	}
	om, order := collect(old)
	nm, _ := collect(new)
	th := &benchmath.Thresholds{CompareAlpha: alpha}
	var out []Comparison
	for _, k := range order {
		nv, ok := nm[k]
		if !ok {
			continue
		}
		assume := units.GetAssumption(k.unit)
		so := benchmath.NewSample(slices.Clone(om[k]), th)
		sn := benchmath.NewSample(slices.Clone(nv), th)
		c := Comparison{Name: k.name, Unit: k.unit, Old: assume.Summary(so, Confidence),
			New: assume.Summary(sn, Confidence), NOld: len(so.Values), NNew: len(sn.Values),
			Test: assume.Compare(so, sn), Better: betterOf(units, k.unit)}
		c.DeltaPct = math.NaN()
		if c.Old.Center != 0 {
			c.DeltaPct = (c.New.Center/c.Old.Center - 1) * 100
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("compare: no benchmark appears in both OLD and NEW")
	}
	return out, nil
}

func betterOf(units benchfmt.UnitMetadataMap, unit string) int {
	if b := units.GetBetter(unit); b != 0 {
		return b
	}
	return unitBetter[unit]
}

// WriteComparison prints a benchstat-like table: per benchmark and unit, each side's median
// with its confidence interval and sample count, the change, and the p-value.
func WriteComparison(w io.Writer, cs []Comparison) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "name\tunit\told\t±\tnew\t±\tdelta\tp\tn")
	for _, c := range cs {
		delta := "~"
		if c.Significant() {
			delta = fmt.Sprintf("%+.2f%%", c.DeltaPct)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.3f\t%d+%d\n", strings.TrimPrefix(c.Name, "Loadgen/"), c.Unit,
			fmtValue(c.Old.Center, c.Unit), c.Old.PctRangeString(), fmtValue(c.New.Center, c.Unit),
			c.New.PctRangeString(), delta, c.Test.P, c.NOld, c.NNew)
	}
	return tw.Flush()
}

// fmtValue prints latencies in time units and the rest with 4 significant digits.
func fmtValue(v float64, unit string) string {
	if strings.HasSuffix(unit, "-sec") {
		return FormatLatency(int64(v * 1e9))
	}
	return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.4g", v), ".0"), ".")
}
