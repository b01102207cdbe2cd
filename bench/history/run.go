package history

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/load"
	"github.com/consensusbench/consensusbench/bench/nemesis"
	"github.com/consensusbench/consensusbench/bench/report"
)

// RunConfig describes a load run under faults with its verdicts. It is what cmd/loadgen's
// --nemesis, --check-linearizability and --check-durability do, as a library, so that tests
// and the netns harness run the same thing.
type RunConfig struct {
	Target bench.Target
	Spec   bench.Spec
	Load   load.Config
	// Cluster receives the schedule's faults (may be nil when Schedule is empty and no
	// durability check is asked for).
	Cluster  nemesis.Cluster
	Schedule nemesis.Schedule
	Seed     uint64 // for the "-random" steps
	History  Config
	// OnInterval, if set, receives each second of the run as load.Options.OnInterval does:
	// report.Progress's Interval prints loadgen's per-second lines.
	OnInterval func(load.Interval)
	// Linearizability checks the history with porcupine; VizPath is where the HTML
	// visualization goes on failure.
	Linearizability bool
	VizPath         string
	CheckTimeout    time.Duration
	// ReadBack, when set, asks for the durability check: after the run every node is killed
	// (kill -9 with node processes), every node is restarted, and ReadBack returns a Target
	// connected to the restarted cluster, through which every key is read back.
	ReadBack func(ctx context.Context) (bench.Target, error)
	// ReadBackKill is how many running nodes the durability check kills before the
	// read-back (0: all of them). PBFT replicas restart from their last stable checkpoint
	// (docs/FAULTS.md), so killing all of them can lose later writes; kill at most f.
	ReadBackKill int
	// ReadBackBatch is how many keys one read-back request reads (0:
	// DefaultReadBackBatch); keep it times the value size well under a reply's limit.
	ReadBackBatch int
	// ReadBackTimeout bounds the restart and the read-back (0: DefaultReadBackTimeout).
	ReadBackTimeout time.Duration
}

// DefaultReadBackTimeout bounds a durability check's restart and read-back.
const DefaultReadBackTimeout = 60 * time.Second

// RunOutcome is a run's result with its fault figures and verdicts filled in.
type RunOutcome struct {
	Result   *report.Result
	Figures  []nemesis.Figures
	Recorder *Recorder
	// NemesisErr lists the steps that could not be applied (the run went on).
	NemesisErr error
}

// OK reports whether every verdict the run asked for passed.
func (o *RunOutcome) OK() bool {
	v := o.Result.Verdicts
	if v == nil {
		return true
	}
	return (v.Linearizability == nil || v.Linearizability.OK) && (v.Durability == nil || v.Durability.OK)
}

// Run drives the load, applies the schedule relative to the measured window's start, and
// then computes the figures and the verdicts asked for.
func Run(ctx context.Context, cfg RunConfig) (*RunOutcome, error) {
	if len(cfg.Schedule) > 0 && cfg.Cluster == nil {
		return nil, errors.New("history: a schedule needs a Cluster")
	}
	if cfg.ReadBack != nil && cfg.Cluster == nil {
		return nil, errors.New("history: the durability check needs a Cluster to kill and restart")
	}
	rec := New(cfg.History)
	var nem *nemesis.Nemesis
	if len(cfg.Schedule) > 0 {
		nem = nemesis.New(cfg.Cluster, cfg.Schedule, cfg.Seed)
	}
	nctx, stopNemesis := context.WithCancel(ctx)
	defer stopNemesis()
	var wg sync.WaitGroup
	var windowStart time.Time
	started := time.Now()
	o, err := load.Run(ctx, rec.Wrap(cfg.Target), cfg.Load, load.Options{OnInterval: cfg.OnInterval, OnWindow: func(start bool) {
		if !start {
			return
		}
		windowStart = time.Now()
		if nem != nil {
			wg.Go(func() { nem.Run(nctx, windowStart) })
		}
	}})
	stopNemesis()
	wg.Wait()
	if o == nil {
		return nil, err
	}
	r, rerr := report.New(o, cfg.Spec, report.CaptureEnv("."), started)
	if rerr != nil {
		return nil, rerr
	}
	out := &RunOutcome{Result: r, Recorder: rec}
	if nem != nil {
		r.Events = nem.Events()
		out.NemesisErr = nem.Err()
		if out.Figures, rerr = nemesis.Analyze(r, rec.Spans(windowStart)); rerr != nil {
			return out, rerr
		}
		nemesis.Annotate(r, out.Figures)
	}
	if cfg.Linearizability || cfg.ReadBack != nil {
		r.Verdicts = &report.Verdicts{}
	}
	if cfg.Linearizability {
		v, verr := rec.CheckLinearizable(cfg.CheckTimeout, cfg.VizPath)
		r.Verdicts.Linearizability = v
		err = errors.Join(err, verr)
	}
	if cfg.ReadBack != nil {
		v, derr := durability(ctx, cfg, rec)
		r.Verdicts.Durability = v
		err = errors.Join(err, derr)
	}
	return out, err
}

// durability kills every node still running (or ReadBackKill of them), restarts every
// node that is down (the schedule's own kills included) and reads every acknowledged write
// back.
func durability(ctx context.Context, cfg RunConfig, rec *Recorder) (*report.Verdict, error) {
	return rec.KillRestartReadBack(ctx, ReadBackConfig{Cluster: cfg.Cluster, ReadBack: cfg.ReadBack,
		Kill: cfg.ReadBackKill, Batch: cfg.ReadBackBatch, Timeout: cfg.ReadBackTimeout})
}

// ReadBackConfig is the durability check's set-up (see RunConfig's ReadBack fields).
type ReadBackConfig struct {
	Cluster  nemesis.Cluster
	ReadBack func(ctx context.Context) (bench.Target, error)
	Kill     int           // nodes to kill (0: all running)
	Batch    int           // keys per read-back request (0: DefaultReadBackBatch)
	Timeout  time.Duration // restart and read-back (0: DefaultReadBackTimeout)
}

// KillRestartReadBack is the durability check: kill cfg.Kill running nodes (all by
// default; from the highest ID down), restart every node that is down, and read every
// acknowledged write back through a Target connected to the restarted cluster.
func (rec *Recorder) KillRestartReadBack(ctx context.Context, cfg ReadBackConfig) (*report.Verdict, error) {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultReadBackTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var errs []error
	killed := 0
	ids := cfg.Cluster.Nodes()
	for i := range ids {
		// From the highest ID down, so that a partial kill spares node 1 (PBFT's primary of
		// view 0, which a restarted replica believes in until it hears otherwise).
		id := ids[len(ids)-1-i]
		if cfg.Kill > 0 && killed == cfg.Kill {
			break
		}
		if cfg.Cluster.Running(id) {
			errs = append(errs, cfg.Cluster.Kill(ctx, id))
			killed++
		}
	}
	for _, id := range ids {
		if !cfg.Cluster.Running(id) {
			errs = append(errs, cfg.Cluster.Restart(ctx, id))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("history: durability check: kill and restart: %w", err)
	}
	t, err := cfg.ReadBack(ctx)
	if err != nil {
		return nil, fmt.Errorf("history: durability check: %w", err)
	}
	defer t.Close()
	s, err := t.Open(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("history: durability check: %w", err)
	}
	defer s.Close()
	return rec.CheckDurable(ctx, s, cfg.Batch)
}
