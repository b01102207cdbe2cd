package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/load"
)

// FormatLatency prints nanoseconds with three significant digits in the largest fitting unit.
func FormatLatency(ns int64) string {
	d := float64(ns)
	switch {
	case ns < int64(time.Microsecond):
		return strconv.FormatInt(ns, 10) + "ns"
	case ns < int64(time.Millisecond):
		return sig3(d/1e3) + "µs"
	case ns < int64(time.Second):
		return sig3(d/1e6) + "ms"
	}
	return sig3(d/1e9) + "s"
}

func sig3(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// Progress prints one line per second while a run goes on. On a terminal it redraws one line
// in place; into a pipe or file it prints plain lines (one per second), which also makes its
// output testable. It is not safe for concurrent use; load.Run calls OnInterval from one
// goroutine.
type Progress struct {
	w      io.Writer
	tty    bool
	header bool
	drawn  bool
}

// NewProgress returns a printer to w; tty says whether w is a terminal.
func NewProgress(w io.Writer, tty bool) *Progress { return &Progress{w: w, tty: tty} }

const progressFormat = "%8s %10s %9s %9s %9s %8s"

// Interval prints one second.
func (p *Progress) Interval(iv load.Interval) {
	if !p.header {
		fmt.Fprintf(p.w, progressFormat+"\n", "elapsed", "ops/s", "p50", "p99", "max", "errors")
		p.header = true
	}
	var p50, p99, mx = "-", "-", "-"
	if iv.Ops() > 0 {
		p50 = FormatLatency(iv.Hist.ValueAtQuantile(50))
		p99 = FormatLatency(iv.Hist.ValueAtQuantile(99))
		mx = FormatLatency(iv.Hist.Max())
	}
	secs := SeriesSeconds()
	line := fmt.Sprintf(progressFormat, strconv.Itoa((iv.Second+1)*secs)+"s",
		strconv.FormatInt(iv.Ops()/int64(secs), 10), p50, p99, mx, strconv.FormatInt(iv.Errors, 10))
	if p.tty {
		// Carriage return and erase-line: the newest second replaces the previous one.
		fmt.Fprint(p.w, "\r\x1b[2K"+line)
		p.drawn = true
		return
	}
	fmt.Fprintln(p.w, line)
}

// Done ends the in-place line on a terminal.
func (p *Progress) Done() {
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
	}
}

// SeriesSeconds is the length of one series interval in whole seconds.
func SeriesSeconds() int { return int(load.SeriesInterval / time.Second) }

// ModeNote explains what a mode's latency means.
func ModeNote(m load.Mode) string {
	if m == load.ClosedLoop {
		return "closed-loop: latency from each request's actual send; stalls are under-counted"
	}
	return "open-loop: latency from each request's intended send time (no coordinated omission)"
}

// WriteSummary prints the end-of-run table.
func WriteSummary(w io.Writer, r *Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	c := r.Load
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	row("mode", "%s", ModeNote(c.Mode))
	cluster := r.Cluster.Protocol
	if id := r.Cluster.SystemID(); id != bench.SystemOurs {
		cluster = id + " " + cluster
	}
	var extra []string
	if n := r.ClusterInfo["nodes"]; n != "" {
		extra = append(extra, n+" nodes")
	}
	if r.Cluster.Sync != "" {
		extra = append(extra, "sync "+r.Cluster.Sync)
	}
	if r.Cluster.Reads != "" {
		extra = append(extra, "reads "+r.Cluster.Reads)
	}
	if b := r.Cluster.Byzantine; b != "" && b != "none" {
		extra = append(extra, "byzantine "+b)
	}
	if len(extra) > 0 {
		cluster += " (" + strings.Join(extra, ", ") + ")"
	}
	row("cluster", "%s", cluster)
	wl := c.Workload
	keys := wl.Dist
	if wl.Dist == load.DistZipfian {
		keys += fmt.Sprintf(" s=%g", wl.ZipfS)
	}
	row("workload", "%s: read ratio %g, %d %s keys, %d B values, batch %d", wl.Name, wl.ReadRatio, wl.Keys, keys, wl.ValueSize, c.Batch)
	conns := ""
	if c.Conns > 0 {
		conns = fmt.Sprintf(", sharing %d connection(s) per node", c.Conns)
	}
	if c.Mode == load.OpenLoop {
		row("load", "%g ops/s offered over %d clients x pipeline %d%s", c.Rate, c.Clients, c.Pipeline, conns)
	} else {
		row("load", "%d client(s) x pipeline %d%s", c.Clients, c.Pipeline, conns)
	}
	row("window", "%v measured after %v warmup", time.Duration(r.Summary.DurationNs), c.Warmup)
	s := r.Summary
	row("ops", "%d ok, %d errors, %d unsent", s.Ops, s.Errors, s.Unsent)
	row("throughput", "%.1f ops/s", s.Throughput)
	l := s.Latency
	if s.Ops > 0 {
		row("latency", "p50 %s  p90 %s  p99 %s  p99.9 %s  p99.99 %s  max %s  mean %s",
			FormatLatency(l.P50), FormatLatency(l.P90), FormatLatency(l.P99), FormatLatency(l.P999),
			FormatLatency(l.P9999), FormatLatency(l.Max), FormatLatency(int64(l.Mean)))
	} else {
		row("latency", "no successful ops")
	}
	if s.Clamped > 0 {
		row("clamped", "%d latencies above %v recorded as %v", s.Clamped, time.Duration(load.LatencyHighest), time.Duration(load.LatencyHighest))
	}
	if s.LateSends > 0 {
		row("send lag", "%d batches sent late by loadgen's timer (worst %s; not counted as latency): the load host is short of CPU",
			s.LateSends, FormatLatency(s.SendLagMax))
	}
	if f := r.Fsync; f != nil {
		row("fdatasync", "p50 %s  p99 %s  (%d x %d B in %s)", FormatLatency(f.P50), FormatLatency(f.P99), f.Samples, f.BlockBytes, f.Dir)
	}
	if len(r.Nodes) > 0 {
		total := 0.0
		for _, n := range r.Nodes {
			total += n.CPUSeconds
		}
		row("node cpu", "%.2f s over %d nodes: %.0f ops per core-second", total, len(r.Nodes), r.OpsPerCoreSecond)
	}
	if r.LoadgenCPUSeconds > 0 {
		row("loadgen cpu", "%.2f s", r.LoadgenCPUSeconds)
	}
	if e := r.ClusterEvents; e != nil {
		row("disturbance", "%s during the window", DescribeClusterEvents(e))
	}
	if v := r.Verdicts; v != nil {
		for _, x := range []struct {
			name string
			v    *Verdict
		}{{"linearizable", v.Linearizability}, {"durable", v.Durability}} {
			if x.v != nil {
				row(x.name, "%v (%d checked, %d failed) %s", x.v.OK, x.v.Checked, x.v.Failed, x.v.Detail)
			}
		}
	}
	if h := r.Host; h != nil {
		row("host", "%s", h.String())
	}
	if r.Interrupted {
		row("INTERRUPTED", "the window was cut short; compare and ab leave this result out")
	}
	for _, f := range r.Failures {
		row("FAILED", "%s", f)
	}
	if len(r.MergedFrom) > 0 {
		hosts := make([]string, len(r.MergedFrom))
		for i, e := range r.MergedFrom {
			hosts[i] = e.Host
		}
		row("merged", "%d results: %s", len(r.MergedFrom), strings.Join(hosts, ", "))
	}
	return tw.Flush()
}
