package load

import (
	"context"
	"fmt"
	"time"

	"github.com/consensusbench/consensusbench/bench"
)

// Sweep limits.
const (
	SweepStepsMax = 64 // a geometric sweep from 1 op/s by x1.25 passes 1M ops/s in 62 steps
)

// SweepConfig steps an open-loop run's rate up until the target saturates.
type SweepConfig struct {
	Run       Config  `json:"run"`        // every step runs this, with Rate replaced
	StartRate float64 `json:"start_rate"` // ops/s of the first step
	// Factor multiplies the rate between steps (geometric steps cover orders of magnitude
	// in few runs); Add, when > 0, is added instead.
	Factor float64 `json:"factor,omitempty"`
	Add    float64 `json:"add,omitempty"`
	Steps  int     `json:"steps"` // at most this many steps
	// A step is saturated when its throughput falls below Keep x the offered rate, more
	// scheduled ops went unsent than the lanes could have had in flight at the window's end
	// (clients x pipeline x batch: those are cut off by the end, not by the target), errors
	// exceed ErrorRatio of the ops, or p99 exceeds P99Limit (when > 0). The sweep stops after
	// the first saturated step.
	Keep       float64       `json:"keep"`
	ErrorRatio float64       `json:"error_ratio"`
	P99Limit   time.Duration `json:"p99_limit_ns,omitempty"`
	// AutoPipeline sizes each step's pipeline for its rate (SizePipeline) instead of using
	// Run.Pipeline.
	AutoPipeline bool `json:"auto_pipeline,omitempty"`
}

// DefaultSweep returns a sweep from 100 ops/s by x1.5 per step, stopping below 90% of the
// offered rate or at 1% errors.
func DefaultSweep(run Config) SweepConfig {
	run.Mode = OpenLoop
	return SweepConfig{Run: run, StartRate: 100, Factor: 1.5, Steps: 20, Keep: 0.9, ErrorRatio: 0.01}
}

// Validate checks the sweep's fields and the run config at the first rate.
func (c SweepConfig) Validate() error {
	switch {
	case c.Run.Mode != OpenLoop:
		return fmt.Errorf("a sweep runs open loop (got %s)", c.Run.Mode)
	case !(c.StartRate > 0):
		return fmt.Errorf("start rate %v must be > 0", c.StartRate)
	case c.Add < 0 || (c.Add == 0 && !(c.Factor > 1)):
		return fmt.Errorf("sweep step: need --factor > 1 or --add > 0 (got factor %v, add %v)", c.Factor, c.Add)
	case c.Steps < 1 || c.Steps > SweepStepsMax:
		return fmt.Errorf("steps %d outside [1, %d]", c.Steps, SweepStepsMax)
	case !(c.Keep > 0 && c.Keep <= 1):
		return fmt.Errorf("keep %v outside (0, 1]", c.Keep)
	case c.ErrorRatio < 0 || c.ErrorRatio > 1:
		return fmt.Errorf("error ratio %v outside [0, 1]", c.ErrorRatio)
	case c.P99Limit < 0:
		return fmt.Errorf("p99 limit %v is negative", c.P99Limit)
	}
	run := c.Run
	run.Rate = c.StartRate
	return run.Validate()
}

// SweepStep is one rate's run.
type SweepStep struct {
	Offered   float64
	Outcome   *Outcome
	Saturated bool
	Reason    string // why the step counts as saturated; empty when it is not
}

// Sweep runs cfg's steps against target, calling onStep (if set) after each, and returns every
// step. The last step is the first saturated one, unless Steps ran out first.
func Sweep(ctx context.Context, target bench.Target, cfg SweepConfig, opts Options, onStep func(SweepStep)) ([]SweepStep, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var steps []SweepStep
	rate := cfg.StartRate
	for i := 0; i < cfg.Steps; i++ {
		run := cfg.Run
		run.Rate = min(rate, RateMax)
		if cfg.AutoPipeline {
			run.Pipeline = SizePipeline(run.Rate, run.Clients, run.Batch)
		}
		o, err := Run(ctx, target, run, opts)
		if err != nil {
			return steps, fmt.Errorf("sweep step %d (%.0f ops/s): %w", i, run.Rate, err)
		}
		st := SweepStep{Offered: run.Rate, Outcome: o}
		st.Reason = saturation(cfg, st)
		st.Saturated = st.Reason != ""
		steps = append(steps, st)
		if onStep != nil {
			onStep(st)
		}
		if st.Saturated || run.Rate >= RateMax {
			break
		}
		if cfg.Add > 0 {
			rate += cfg.Add
		} else {
			rate *= cfg.Factor
		}
	}
	return steps, nil
}

func saturation(cfg SweepConfig, st SweepStep) string {
	o := st.Outcome
	tput := o.Throughput()
	all := o.Ops + o.Errors
	inflight := int64(o.Config.Clients * o.Config.Pipeline * o.Config.Batch)
	switch {
	case o.Unsent > inflight:
		return fmt.Sprintf("%d scheduled ops unsent (more than the %d the lanes can hold at the window's end)", o.Unsent, inflight)
	case tput < cfg.Keep*st.Offered:
		return fmt.Sprintf("throughput %.0f ops/s below %.0f%% of offered", tput, 100*cfg.Keep)
	case all > 0 && float64(o.Errors) > cfg.ErrorRatio*float64(all):
		return fmt.Sprintf("%d errors of %d ops", o.Errors, all)
	case cfg.P99Limit > 0 && o.Total.ValueAtQuantile(99) > int64(cfg.P99Limit):
		return fmt.Sprintf("p99 %v above limit %v", time.Duration(o.Total.ValueAtQuantile(99)), cfg.P99Limit)
	}
	return ""
}
