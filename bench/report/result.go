package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/load"
)

// Schema names the result format. A change that breaks readers bumps the version;
// results/README.md documents each field.
const (
	Schema        = "consensusbench/result/v1"
	KindRun       = "run"
	KindSweep     = "sweep"
	resultSizeMax = 512 << 20 // a day-long run's series is ~100 MB of JSON; refuse more
)

// Result is one result file.
type Result struct {
	Schema  string    `json:"schema"`
	Kind    string    `json:"kind"` // KindRun
	Env     Env       `json:"env"`
	Started time.Time `json:"started"`
	// MergedFrom lists the environments of the results that Merge combined (empty otherwise).
	MergedFrom []Env `json:"merged_from,omitempty"`

	Cluster bench.Spec `json:"cluster"`
	// ClusterInfo carries what the target adapter reports about the cluster's configuration
	// (nodes, f, batch limits, ...), as key-value strings.
	ClusterInfo map[string]string `json:"cluster_info,omitempty"`
	Load        load.Config       `json:"load"`

	Summary   Summary  `json:"summary"`
	Histogram string   `json:"histogram"` // HdrHistogram V2 compressed, base64; values in ns
	Series    []Second `json:"series"`

	Fsync             *Fsync    `json:"fsync,omitempty"`
	Nodes             []NodeCPU `json:"nodes,omitempty"`
	LoadgenCPUSeconds float64   `json:"loadgen_cpu_seconds,omitempty"`
	OpsPerCoreSecond  float64   `json:"ops_per_core_second,omitempty"`
	// ClusterEvents counts, over the measured window, what disturbs a run's figures:
	// "elections" (started by any node), "leader_changes" (Raft) or "view_changes" (PBFT),
	// the most any one node saw. Present when loadgen could read the nodes' metrics (local
	// clusters).
	ClusterEvents map[string]int64 `json:"cluster_events,omitempty"`

	Events   []Event   `json:"events,omitempty"`
	Verdicts *Verdicts `json:"verdicts,omitempty"`

	// Host is what else the load host was doing over the window (Host.Noisy marks a run whose
	// host was busy with other work).
	Host *Host `json:"host,omitempty"`
	// Interrupted is set when the window was cut short (Ctrl-C); Failures lists the run's
	// own checks that failed (no op succeeded, too many errors, too little of the offered
	// rate achieved). compare and ab leave such results out unless asked to keep them.
	Interrupted bool     `json:"interrupted,omitempty"`
	Failures    []string `json:"failures,omitempty"`
}

// Partial reports whether the result is interrupted or failed its own checks.
func (r *Result) Partial() bool { return r.Interrupted || len(r.Failures) > 0 }

// Env describes where a result was measured.
type Env struct {
	Commit string `json:"commit"`
	Dirty  bool   `json:"dirty"`
	Go     string `json:"go"`
	OS     string `json:"os"`
	Arch   string `json:"arch"`
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	Host   string `json:"host"`
}

// Summary is the run's headline numbers.
type Summary struct {
	Mode       load.Mode   `json:"mode"` // open-loop or closed-loop, repeated here so no reader misses it
	Ops        int64       `json:"ops"`
	Errors     int64       `json:"errors"`
	Unsent     int64       `json:"unsent"`
	Clamped    int64       `json:"clamped"`
	SendLagMax int64       `json:"send_lag_max_ns,omitempty"` // open loop: worst oversleep of the generator's timer
	LateSends  int64       `json:"late_sends,omitempty"`      // open loop: batches sent > 1 ms after their time by the timer
	DurationNs int64       `json:"duration_ns"`
	Throughput float64     `json:"throughput"` // successful ops/s
	Latency    Percentiles `json:"latency"`
}

// Percentiles of a latency histogram, in nanoseconds.
type Percentiles struct {
	P50   int64   `json:"p50_ns"`
	P90   int64   `json:"p90_ns"`
	P99   int64   `json:"p99_ns"`
	P999  int64   `json:"p999_ns"`
	P9999 int64   `json:"p9999_ns"`
	Max   int64   `json:"max_ns"`
	Mean  float64 `json:"mean_ns"`
}

// PercentilesOf reads the percentiles out of h.
func PercentilesOf(h *hdrhistogram.Histogram) Percentiles {
	if h.TotalCount() == 0 {
		return Percentiles{}
	}
	return Percentiles{P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90), P99: h.ValueAtQuantile(99),
		P999: h.ValueAtQuantile(99.9), P9999: h.ValueAtQuantile(99.99), Max: h.Max(), Mean: h.Mean()}
}

// Second is one second of the series.
type Second struct {
	T         int    `json:"t"` // seconds since the measured window began
	Ops       int64  `json:"ops"`
	Errors    int64  `json:"errors"`
	P50       int64  `json:"p50_ns"`
	P99       int64  `json:"p99_ns"`
	Max       int64  `json:"max_ns"`
	Histogram string `json:"histogram"` // as Result.Histogram, with the per-second geometry
}

// Fsync is the data directory's fdatasync latency measured just before a durable run.
type Fsync struct {
	Dir        string `json:"dir"`
	Samples    int    `json:"samples"`
	BlockBytes int    `json:"block_bytes"`
	P50        int64  `json:"p50_ns"`
	P99        int64  `json:"p99_ns"`
}

// NodeCPU is one replica process's CPU time over the measured window.
type NodeCPU struct {
	Name       string  `json:"name"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

// Event is a fault or other happening during the run (the nemesis fills these in).
type Event struct {
	At     time.Duration `json:"at_ns"`            // since the measured window began
	End    time.Duration `json:"end_ns,omitempty"` // for faults with a duration
	Kind   string        `json:"kind"`             // kill-leader, partition-leader, pause, ...
	Target string        `json:"target,omitempty"` // which node
	Detail string        `json:"detail,omitempty"`
	// Figures are the fault's measured effect (faults only; bench/nemesis computes them);
	// Detail carries the same in words.
	Figures *FaultFigures `json:"figures,omitempty"`
}

// FaultFigures is what one fault did to the run (bench/nemesis.Figures has the definitions):
// durations in nanoseconds, -1 where the thing never happened, rates in ops/s, Dip a fraction.
type FaultFigures struct {
	PreRate       float64     `json:"pre_rate"`
	UnavailableNs int64       `json:"unavailable_ns"`
	MinRate       float64     `json:"min_rate"`
	Dip           float64     `json:"dip"`
	RecoveryNs    int64       `json:"recovery_ns"`
	Inside        Percentiles `json:"inside"`
	Outside       Percentiles `json:"outside"`
}

// Verdicts are the correctness checks of the run's history.
type Verdicts struct {
	Linearizability *Verdict `json:"linearizability,omitempty"`
	Durability      *Verdict `json:"durability,omitempty"`
}

// Verdict is one check's outcome.
type Verdict struct {
	OK       bool   `json:"ok"`
	Checked  int64  `json:"checked"`            // ops (linearizability) or acknowledged writes (durability)
	Failed   int64  `json:"failed"`             // durability: writes lost
	Detail   string `json:"detail,omitempty"`   // e.g. "sampled 64 keys" or the first violation
	Artifact string `json:"artifact,omitempty"` // e.g. porcupine's HTML visualization
}

// EncodeHistogram returns h in HdrHistogram's V2 compressed base64 form.
func EncodeHistogram(h *hdrhistogram.Histogram) (string, error) {
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	return string(b), err
}

// DecodeHistogram reverses EncodeHistogram.
func DecodeHistogram(s string) (*hdrhistogram.Histogram, error) {
	if s == "" {
		return nil, errors.New("report: empty histogram")
	}
	return hdrhistogram.Decode([]byte(s))
}

// New builds a result from a run's outcome.
func New(o *load.Outcome, spec bench.Spec, env Env, started time.Time) (*Result, error) {
	r := &Result{Schema: Schema, Kind: KindRun, Env: env, Started: started.UTC(), Cluster: spec, Load: o.Config}
	var err error
	if r.Histogram, err = EncodeHistogram(o.Total); err != nil {
		return nil, err
	}
	r.Summary = Summary{Mode: o.Config.Mode, Ops: o.Ops, Errors: o.Errors, Unsent: o.Unsent, Clamped: o.Clamped,
		SendLagMax: int64(o.SendLagMax), LateSends: o.LateSends,
		DurationNs: int64(o.Elapsed), Throughput: o.Throughput(), Latency: PercentilesOf(o.Total)}
	r.Series = make([]Second, 0, len(o.Intervals))
	for _, iv := range o.Intervals {
		s, err := SecondOf(iv.Second, iv.Hist, iv.Errors)
		if err != nil {
			return nil, err
		}
		r.Series = append(r.Series, s)
	}
	return r, nil
}

// SecondOf summarizes one second's histogram.
func SecondOf(t int, h *hdrhistogram.Histogram, errs int64) (Second, error) {
	enc, err := EncodeHistogram(h)
	if err != nil {
		return Second{}, err
	}
	p := PercentilesOf(h)
	return Second{T: t, Ops: h.TotalCount(), Errors: errs, P50: p.P50, P99: p.P99, Max: p.Max, Histogram: enc}, nil
}

// SetNodeCPU records each node's CPU time and derives ops per core-second, which is steadier
// than ops/s on a shared machine: it does not move when a neighbour takes the cores.
func (r *Result) SetNodeCPU(nodes []NodeCPU) {
	r.Nodes = nodes
	total := 0.0
	for _, n := range nodes {
		total += n.CPUSeconds
	}
	r.OpsPerCoreSecond = 0
	if total > 0 {
		r.OpsPerCoreSecond = float64(r.Summary.Ops) / total
	}
}

// DecodeHistogram returns the run's latency histogram.
func (r *Result) DecodeHistogram() (*hdrhistogram.Histogram, error) {
	return DecodeHistogram(r.Histogram)
}

// Write writes r as indented JSON.
func (r *Result) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteFile writes r to path.
func (r *Result) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.Write(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// Read decodes one run result and checks its schema.
func Read(rd io.Reader) (*Result, error) {
	var r Result
	dec := json.NewDecoder(io.LimitReader(rd, resultSizeMax))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("decode result: %w", err)
	}
	if r.Schema != Schema {
		return nil, fmt.Errorf("result schema %q, this loadgen reads %q", r.Schema, Schema)
	}
	if r.Kind != KindRun {
		return nil, fmt.Errorf("result kind %q, want %q", r.Kind, KindRun)
	}
	return &r, nil
}

// ReadFile reads a run result from path.
func ReadFile(path string) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}
