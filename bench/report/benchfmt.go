package report

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/perf/benchfmt"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/load"
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

// SystemKey is the name key that says which peer system a run measured; a name without it
// is consensusbench's own (bench.SystemOurs).
const SystemKey = "system"

// BenchmarkName names a run by its resolved configuration (Identity): the same name across
// commits means the same experiment, however the flags were spelled. Host-specific facts go
// in the headers and comments instead.
func BenchmarkName(r *Result) string {
	var b strings.Builder
	b.WriteString("BenchmarkLoadgen")
	for _, kv := range Identity(r) {
		fmt.Fprintf(&b, "/%s=%s", kv[0], kv[1])
	}
	return b.String()
}

// Identity is the resolved configuration that names a benchmark, in a fixed order, defaults
// spelled out. A result written before a field existed gets the value its run had: it
// measured consensusbench's own nodes, a local
// cluster synced nothing unless told to, Raft read through ReadIndex rounds, PBFT replicas
// were honest unless the cluster info says otherwise. What a remote run could not learn is
// "unknown".
func Identity(r *Result) [][2]string {
	c, l := r.Cluster, r.Load
	local := c.Local > 0
	orUnknown := func(v, localDefault string) string {
		switch {
		case v != "":
			return v
		case local:
			return localDefault
		}
		return bench.SyncUnknown
	}
	nodes := c.Nodes
	if nodes == 0 {
		nodes, _ = strconv.Atoi(r.ClusterInfo["nodes"])
	}
	if nodes == 0 {
		nodes = max(c.Local, len(c.Targets))
	}
	id := [][2]string{{"protocol", nonEmpty(c.Protocol)}, {"nodes", strconv.Itoa(nodes)}, {"sync", orUnknown(c.Sync, "none")}}
	// A peer system's runs (etcd) are different experiments from ours: their names lead with
	// system=<name>-<release>, and `compare --col system` sets them beside ours. Ours carry no
	// system key, so that their names, and every stored result's, stay what they were.
	if sys := c.SystemID(); sys != bench.SystemOurs {
		id = append([][2]string{{SystemKey, sys}}, id...)
	}
	if p := r.ClusterInfo["node_procs"]; p != "" { // absent: each node's default GOMAXPROCS
		id = append(id, [2]string{"node_procs", p})
	}
	switch c.Protocol {
	case "raft":
		id = append(id, [2]string{"reads", orUnknown(c.Reads, "safe")})
	case "pbft":
		byz := c.Byzantine
		if byz == "" {
			byz = r.ClusterInfo["byzantine"]
		}
		id = append(id, [2]string{"byzantine", strings.ReplaceAll(orUnknown(byz, "none"), " ", "")})
	}
	w := l.Workload
	id = append(id, [2]string{"workload", nonEmpty(w.Name)}, [2]string{"keys", strconv.Itoa(w.Keys)},
		[2]string{"dist", nonEmpty(w.Dist)}, [2]string{"value", strconv.Itoa(w.ValueSize)},
		[2]string{"mode", string(l.Mode)})
	if l.Mode == load.OpenLoop {
		id = append(id, [2]string{"rate", strconv.FormatFloat(l.Rate, 'f', -1, 64)})
	}
	id = append(id, [2]string{"clients", strconv.Itoa(l.Clients)}, [2]string{"pipeline", strconv.Itoa(l.Pipeline)},
		[2]string{"batch", strconv.Itoa(l.Batch)})
	if l.Conns > 0 { // absent before shared connections existed: one per client
		id = append(id, [2]string{"conns", strconv.Itoa(l.Conns)})
	}
	return id
}

func nonEmpty(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// headers are the key: value lines benchstat reads as file configuration. Only what no
// comparison spans goes here: benchstat splits its tables by configuration, so a per-run key
// (commit, start time) would put the old and new runs in separate one-column tables, and so
// would the CPU model when a stored reference from another machine is compared. The run's
// other facts, the CPU among them, go in comment lines (comments).
func headers(r *Result) [][2]string {
	e := r.Env
	return [][2]string{{"goos", e.OS}, {"goarch", e.Arch}, {"pkg", "consensusbench/loadgen"}}
}

// comments are the run's facts that are not configuration, written as "# key: value" lines,
// which benchstat ignores.
func comments(r *Result) [][2]string {
	e := r.Env
	c := [][2]string{{"commit", e.Commit}, {"dirty", strconv.FormatBool(e.Dirty)}, {"go", e.Go},
		{"cpu", e.CPU}, {"cores", strconv.Itoa(e.Cores)}, {"host", e.Host}, {"started", r.Started.Format("2006-01-02T15:04:05Z")}}
	if r.Fsync != nil {
		c = append(c, [2]string{"fdatasync-p50", fmt.Sprintf("%dns", r.Fsync.P50)},
			[2]string{"fdatasync-p99", fmt.Sprintf("%dns", r.Fsync.P99)})
	}
	if h := r.Host; h != nil {
		c = append(c, [2]string{"host-context", h.String()})
	}
	if r.Interrupted {
		c = append(c, [2]string{"interrupted", "true"})
	}
	for _, f := range r.Failures {
		c = append(c, [2]string{"failed", f})
	}
	return c
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
	for _, kv := range comments(r) {
		fmt.Fprintf(bw, "# %s: %s\n", kv[0], strings.ReplaceAll(kv[1], "\n", " "))
	}
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

// WriteFileSet writes a run's three files: prefix.json (the result), prefix.txt (benchstat
// lines) and prefix.hgrm (its percentile distribution), creating prefix's directory. Every
// command that produces a run result writes this set, so one run compares and plots like
// another whichever tool made it.
func WriteFileSet(prefix string, r *Result) error {
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		return err
	}
	if err := r.WriteFile(prefix + ".json"); err != nil {
		return err
	}
	for _, f := range []struct {
		ext   string
		write func(io.Writer, *Result) error
	}{{".txt", WriteBenchfmt}, {".hgrm", WriteHgrm}} {
		out, err := os.Create(prefix + f.ext)
		if err != nil {
			return err
		}
		if err := f.write(out, r); err != nil {
			_ = out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
	}
	return nil
}
