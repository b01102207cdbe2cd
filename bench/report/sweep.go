package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/load"
)

// SweepResult is the result file of a rate sweep: the throughput-latency curve.
type SweepResult struct {
	Schema  string            `json:"schema"`
	Kind    string            `json:"kind"` // KindSweep
	Env     Env               `json:"env"`
	Started time.Time         `json:"started"`
	Cluster bench.Spec        `json:"cluster"`
	Sweep   load.SweepConfig  `json:"sweep"`
	Points  []SweepPoint      `json:"points"`
	Info    map[string]string `json:"cluster_info,omitempty"`
}

// SweepPoint is one step of the sweep.
type SweepPoint struct {
	Offered    float64     `json:"offered"`    // ops/s scheduled
	Throughput float64     `json:"throughput"` // ops/s completed
	Ops        int64       `json:"ops"`
	Errors     int64       `json:"errors"`
	Unsent     int64       `json:"unsent"`
	Latency    Percentiles `json:"latency"`
	Histogram  string      `json:"histogram"`
	Saturated  bool        `json:"saturated"`
	Reason     string      `json:"reason,omitempty"`
}

// NewSweep builds a sweep result from its steps.
func NewSweep(cfg load.SweepConfig, steps []load.SweepStep, spec bench.Spec, env Env, started time.Time) (*SweepResult, error) {
	r := &SweepResult{Schema: Schema, Kind: KindSweep, Env: env, Started: started.UTC(), Cluster: spec, Sweep: cfg}
	for _, st := range steps {
		p, err := PointOf(st)
		if err != nil {
			return nil, err
		}
		r.Points = append(r.Points, p)
	}
	return r, nil
}

// PointOf summarizes one sweep step.
func PointOf(st load.SweepStep) (SweepPoint, error) {
	o := st.Outcome
	enc, err := EncodeHistogram(o.Total)
	if err != nil {
		return SweepPoint{}, err
	}
	return SweepPoint{Offered: st.Offered, Throughput: o.Throughput(), Ops: o.Ops, Errors: o.Errors,
		Unsent: o.Unsent, Latency: PercentilesOf(o.Total), Histogram: enc, Saturated: st.Saturated,
		Reason: st.Reason}, nil
}

// Write writes r as indented JSON.
func (r *SweepResult) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadAny reads a result file of either kind; exactly one of the returns is non-nil on success.
func ReadAny(path string) (*Result, *SweepResult, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var head struct{ Schema, Kind string }
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if head.Schema != Schema {
		return nil, nil, fmt.Errorf("%s: schema %q, this loadgen reads %q", path, head.Schema, Schema)
	}
	switch head.Kind {
	case KindRun:
		var r Result
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return &r, nil, nil
	case KindSweep:
		var s SweepResult
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return nil, &s, nil
	}
	return nil, nil, fmt.Errorf("%s: unknown result kind %q", path, head.Kind)
}
