package report

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/perf/benchfmt"
)

// Units of the benchmark-format lines. Latencies are in seconds so benchstat scales them.
const (
	UnitThroughput = "ops/s"
	UnitPerCore    = "ops/core-s"
	UnitErrors     = "errors"
	UnitP50        = "p50-sec"
	UnitP90        = "p90-sec"
	UnitP99        = "p99-sec"
	UnitP999       = "p99.9-sec"
	UnitMax        = "max-sec"
)

// unitBetter says which direction is an improvement for each unit (+1 higher, -1 lower).
var unitBetter = map[string]int{
	UnitThroughput: +1, UnitPerCore: +1, UnitErrors: -1,
	UnitP50: -1, UnitP90: -1, UnitP99: -1, UnitP999: -1, UnitMax: -1,
}

// BenchmarkName names a run by what makes runs comparable: the same name across commits means
// the same experiment. Host-specific facts go in the key: value headers instead.
func BenchmarkName(r *Result) string {
	c := r.Load
	var b strings.Builder
	b.WriteString("BenchmarkLoadgen")
	kv := func(k, v string) { fmt.Fprintf(&b, "/%s=%s", k, v) }
	kv("protocol", nonEmpty(r.Cluster.Protocol))
	if n := r.ClusterInfo["nodes"]; n != "" {
		kv("nodes", n)
	}
	if r.Cluster.Sync != "" {
		kv("sync", r.Cluster.Sync)
	}
	kv("workload", nonEmpty(c.Workload.Name))
	kv("mode", string(c.Mode))
	if c.Mode == "open-loop" {
		kv("rate", strconv.FormatFloat(c.Rate, 'f', -1, 64))
	}
	kv("clients", strconv.Itoa(c.Clients))
	kv("pipeline", strconv.Itoa(c.Pipeline))
	kv("batch", strconv.Itoa(c.Batch))
	kv("value", strconv.Itoa(c.Workload.ValueSize))
	return b.String()
}

func nonEmpty(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// headers are the key: value lines benchstat reads as file configuration.
func headers(r *Result) [][2]string {
	e := r.Env
	h := [][2]string{
		{"commit", e.Commit}, {"dirty", strconv.FormatBool(e.Dirty)}, {"goos", e.OS}, {"goarch", e.Arch},
		{"cpu", e.CPU}, {"cores", strconv.Itoa(e.Cores)}, {"go", e.Go}, {"host", e.Host},
		{"started", r.Started.Format("2006-01-02T15:04:05Z")}, {"protocol", r.Cluster.Protocol},
		{"mode", string(r.Load.Mode)},
	}
	if r.Cluster.Sync != "" {
		h = append(h, [2]string{"sync", r.Cluster.Sync})
	}
	if r.Fsync != nil {
		h = append(h, [2]string{"fdatasync-p50", fmt.Sprintf("%dns", r.Fsync.P50)},
			[2]string{"fdatasync-p99", fmt.Sprintf("%dns", r.Fsync.P99)})
	}
	return h
}

// values are the run's measurements in benchmark units.
func values(r *Result) []benchfmt.Value {
	s := r.Summary
	sec := func(ns int64) float64 { return float64(ns) / 1e9 }
	v := []benchfmt.Value{
		{Value: s.Throughput, Unit: UnitThroughput},
		{Value: sec(s.Latency.P50), Unit: UnitP50},
		{Value: sec(s.Latency.P90), Unit: UnitP90},
		{Value: sec(s.Latency.P99), Unit: UnitP99},
		{Value: sec(s.Latency.P999), Unit: UnitP999},
		{Value: sec(s.Latency.Max), Unit: UnitMax},
		{Value: float64(s.Errors), Unit: UnitErrors},
	}
	if r.OpsPerCoreSecond > 0 {
		v = append(v, benchfmt.Value{Value: r.OpsPerCoreSecond, Unit: UnitPerCore})
	}
	return v
}

// WriteBenchfmt writes r as Go benchmark-format text: key: value headers, unit metadata, and
// one benchmark line whose iteration count is the number of successful ops.
func WriteBenchfmt(w io.Writer, r *Result) error {
	bw := bufio.NewWriter(w)
	for _, kv := range headers(r) {
		// A value must stay on one line for the format.
		fmt.Fprintf(bw, "%s: %s\n", kv[0], strings.ReplaceAll(kv[1], "\n", " "))
	}
	for _, v := range values(r) {
		better := "lower"
		if unitBetter[v.Unit] > 0 {
			better = "higher"
		}
		fmt.Fprintf(bw, "Unit %s better=%s\n", v.Unit, better)
	}
	fmt.Fprintf(bw, "%s\t%d", BenchmarkName(r), max(r.Summary.Ops, 1))
	for _, v := range values(r) {
		fmt.Fprintf(bw, "\t%s %s", strconv.FormatFloat(v.Value, 'g', -1, 64), v.Unit)
	}
	fmt.Fprintln(bw)
	return bw.Flush()
}

// WriteHgrm writes the run's percentile distribution in the text form of HdrHistogram's
// PercentilesPrint, in milliseconds, for the standard plotter (hdrhistogram.github.io).
func WriteHgrm(w io.Writer, r *Result) error {
	h, err := r.DecodeHistogram()
	if err != nil {
		return err
	}
	const ticksPerHalfDistance, nsPerMs = 5, 1e6
	_, err = h.PercentilesPrint(w, ticksPerHalfDistance, nsPerMs)
	return err
}
