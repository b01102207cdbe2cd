package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"

	"github.com/consensusbench/consensusbench/bench"
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

// Samples are the runs read for one side of a comparison.
type Samples struct {
	Results []*benchfmt.Result
	Units   benchfmt.UnitMetadataMap
	// Skipped lists the files left out because their run was interrupted or failed its own
	// checks (ReadSamples' keepPartial keeps them).
	Skipped []string
}

// noisyKey marks, in a result's configuration, a run whose host was busy with other work.
const noisyKey = ".noisy"

// MarkNoisy marks a record as a run whose host was busy (NoisyCounts counts it).
func MarkNoisy(r *benchfmt.Result) { r.SetConfig(noisyKey, "true") }

// NoisyCounts counts, per benchmark name, the results marked noisy by ReadSamples.
func NoisyCounts(rs []*benchfmt.Result) map[string]int {
	m := map[string]int{}
	for _, r := range rs {
		if r.GetConfig(noisyKey) == "true" {
			m[r.Name.String()]++
		}
	}
	return m
}

// ReadSamples reads result files (JSON) or benchmark-format text files (as `make bench` and
// loadgen's .txt write) and returns their results with the unit metadata they carry.
// Interrupted and failed runs are skipped unless keepPartial is set.
func ReadSamples(paths []string, keepPartial bool) (*Samples, error) {
	s := &Samples{Units: benchfmt.UnitMetadataMap{}}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
			r, err := Read(bytes.NewReader(b))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			if r.Partial() && !keepPartial {
				s.Skipped = append(s.Skipped, p)
				continue
			}
			rec := Records(r)
			if r.Host != nil && r.Host.Noisy {
				MarkNoisy(rec)
			}
			s.Results = append(s.Results, rec)
			continue
		}
		// loadgen's .txt carries a run's state in comment lines.
		if !keepPartial && (bytes.Contains(b, []byte("\n# interrupted: true")) || bytes.Contains(b, []byte("\n# failed: "))) {
			s.Skipped = append(s.Skipped, p)
			continue
		}
		noisy := bytes.Contains(b, []byte("NOISY:"))
		rd := benchfmt.NewReader(bytes.NewReader(b), p)
		for rd.Scan() {
			switch rec := rd.Result().(type) {
			case *benchfmt.Result:
				c := rec.Clone()
				if noisy {
					MarkNoisy(c)
				}
				s.Results = append(s.Results, c)
			case *benchfmt.SyntaxError:
				return nil, rec
			}
		}
		if err := rd.Err(); err != nil {
			return nil, err
		}
		for k, v := range rd.Units() {
			s.Units[k] = v
		}
	}
	return s, nil
}

// Comparison is one benchmark and unit, old against new.
type Comparison struct {
	Name, Unit string
	Old, New   benchmath.Summary
	NOld, NNew int
	Test       benchmath.Comparison
	DeltaPct   float64 // (new/old - 1) x 100
	Better     int     // +1 higher is better, -1 lower is better, 0 unknown
	// CVOld and CVNew are each side's coefficient of variation (standard deviation over
	// mean; NaN with fewer than two runs).
	CVOld, CVNew float64
	// NoisyOld and NoisyNew count the runs on each side whose host was busy with other work.
	NoisyOld, NoisyNew int
}

// Power of the comparison. The Mann-Whitney U test on n1 and n2 runs without ties can never
// give a two-sided p below 2/C(n1+n2, n1): 3 runs per side can never be significant at 0.05.
// To detect a change of d (a fraction) with 80% power when the runs vary by cv, a test at
// alpha needs about 2 (z(1-alpha/2) + z(0.8))^2 (cv/d)^2 runs per side (the normal
// approximation), divided by the U test's worst-case efficiency against the t test, 0.864.

// MinPValue is the smallest two-sided p-value the U test can give with n1 and n2 runs.
func MinPValue(n1, n2 int) float64 {
	if n1 < 1 || n2 < 1 {
		return 1
	}
	// 2 / C(n1+n2, n1), computed in floating point (no overflow for the sizes used here).
	c := 1.0
	for i := 1; i <= n1; i++ {
		c = c * float64(n2+i) / float64(i)
	}
	return min(2/c, 1)
}

// MinRunsForAlpha is the fewest runs per side (equal sides) for which the U test can reach
// p < alpha at all.
func MinRunsForAlpha(alpha float64) int {
	n := 1
	for MinPValue(n, n) >= alpha && n < 1000 {
		n++
	}
	return n
}

// uTestEfficiency is the Mann-Whitney U test's lowest asymptotic relative efficiency against
// the t test (Hodges and Lehmann, 1956).
const uTestEfficiency = 0.864

// RunsNeeded is the runs per side needed to detect a relative change pct (percent) with 80%
// power at alpha when the runs' coefficient of variation is cv: the normal approximation,
// corrected for the U test's efficiency, and never fewer than MinRunsForAlpha.
func RunsNeeded(alpha, pct, cv float64) int {
	need := MinRunsForAlpha(alpha)
	if !(pct > 0) || math.IsNaN(cv) {
		return need
	}
	za := normalQuantile(1 - alpha/2)
	zb := normalQuantile(0.8)
	d := pct / 100
	n := 2 * (za + zb) * (za + zb) * (cv / d) * (cv / d) / uTestEfficiency
	return max(need, int(math.Ceil(n)))
}

// normalQuantile is the standard normal distribution's quantile function.
func normalQuantile(p float64) float64 { return math.Sqrt2 * math.Erfinv(2*p-1) }

// CV is the coefficient of variation of xs (NaN with fewer than two values or a zero mean).
func CV(xs []float64) float64 {
	if len(xs) < 2 {
		return math.NaN()
	}
	mean := 0.0
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if mean == 0 {
		return math.NaN()
	}
	ss := 0.0
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return math.Sqrt(ss/float64(len(xs)-1)) / math.Abs(mean)
}

// Detectable says whether the comparison's runs are enough to detect a change of pct percent
// at alpha: the U test must be able to reach alpha at all, and the noisier side's CV must
// allow it (RunsNeeded). why explains a false.
func (c Comparison) Detectable(alpha, pct float64) (ok bool, why string) {
	n := min(c.NOld, c.NNew)
	if p := MinPValue(c.NOld, c.NNew); p >= alpha {
		return false, fmt.Sprintf("%d+%d runs can never reach p < %g with the U test (its smallest p is %.3f; need %d runs per side)",
			c.NOld, c.NNew, alpha, p, MinRunsForAlpha(alpha))
	}
	cv := math.Max(c.CVOld, c.CVNew)
	if need := RunsNeeded(alpha, pct, cv); n < need {
		return false, fmt.Sprintf("too noisy to detect %g%%: CV %.1f%% (old) / %.1f%% (new) needs %d runs per side, have %d",
			pct, 100*c.CVOld, 100*c.CVNew, need, n)
	}
	return true, ""
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
			Test: assume.Compare(so, sn), Better: betterOf(units, k.unit), CVOld: CV(om[k]), CVNew: CV(nv)}
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
// with its confidence interval, coefficient of variation and sample count, the change, and
// the p-value; runs whose host was busy are counted in the last column.
func WriteComparison(w io.Writer, cs []Comparison) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "name\tunit\told\t±\tcv\tnew\t±\tcv\tdelta\tp\tn\tnoisy")
	for _, c := range cs {
		delta := "~"
		if c.Significant() {
			delta = fmt.Sprintf("%+.2f%%", c.DeltaPct)
		}
		noisy := "-"
		if c.NoisyOld+c.NoisyNew > 0 {
			noisy = fmt.Sprintf("%d+%d", c.NoisyOld, c.NoisyNew)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.3f\t%d+%d\t%s\n", strings.TrimPrefix(c.Name, "Loadgen/"), c.Unit,
			fmtValue(c.Old.Center, c.Unit), c.Old.PctRangeString(), fmtCV(c.CVOld), fmtValue(c.New.Center, c.Unit),
			c.New.PctRangeString(), fmtCV(c.CVNew), delta, c.Test.P, c.NOld, c.NNew, noisy)
	}
	return tw.Flush()
}

func fmtCV(cv float64) string {
	if math.IsNaN(cv) {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*cv)
}

// SetNoise counts each side's noisy runs (NoisyCounts) into the comparisons.
func SetNoise(cs []Comparison, old, new []*benchfmt.Result) {
	o, n := NoisyCounts(old), NoisyCounts(new)
	for i := range cs {
		cs[i].NoisyOld, cs[i].NoisyNew = o[cs[i].Name], n[cs[i].Name]
	}
}

// fmtValue prints latencies in time units and the rest with 4 significant digits.
func fmtValue(v float64, unit string) string {
	if strings.HasSuffix(unit, "-sec") {
		return FormatLatency(int64(v * 1e9))
	}
	if math.Abs(v) >= 1000 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.4g", v), ".0"), ".")
}

// SplitByKey groups results by the value of one key of their benchmark names (as benchstat's
// -col /key): each result is renamed without that key, so the groups' rows line up. values
// are in order of first appearance. Results whose names lack the key are an error.
func SplitByKey(rs []*benchfmt.Result, key string) (values []string, groups map[string][]*benchfmt.Result, err error) {
	groups = map[string][]*benchfmt.Result{}
	for _, r := range rs {
		parts := strings.Split(r.Name.String(), "/")
		val, kept := "", parts[:0:0]
		for _, p := range parts {
			if k, v, ok := strings.Cut(p, "="); ok && k == key {
				val = v
				continue
			}
			kept = append(kept, p)
		}
		if val == "" && key == SystemKey {
			val = bench.SystemOurs // our runs' names carry no system key (see Identity)
		}
		if val == "" {
			return nil, nil, fmt.Errorf("compare: benchmark %s has no %q key", r.Name, key)
		}
		c := r.Clone()
		c.Name = benchfmt.Name(strings.Join(kept, "/"))
		if _, ok := groups[val]; !ok {
			values = append(values, val)
		}
		groups[val] = append(groups[val], c)
	}
	return values, groups, nil
}
