package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/adapter"
	"github.com/consensusbench/consensusbench/bench/history"
	"github.com/consensusbench/consensusbench/bench/nemesis"
	"github.com/consensusbench/consensusbench/bench/report"
)

// faultFlags ask for fault injection and correctness verdicts (docs/FAULTS.md).
type faultFlags struct {
	nemesis       string
	seed          uint64
	linearizable  bool
	maxOps        int
	checkTimeout  time.Duration
	durable       bool
	durableKill   int
	readBackBatch int
}

func (f *faultFlags) group() group {
	g := newGroup("Faults and verdicts (see docs/FAULTS.md)")
	g.fs.StringVar(&f.nemesis, "nemesis", "", "fault schedule, e.g. kill-leader@10s,restart@15s or partition-leader@10s:5s (times from the measured window's start; --local only): "+nemesis.Grammar)
	g.fs.Uint64Var(&f.seed, "nemesis-seed", 1, "seed of the -random faults' choices")
	g.fs.BoolVar(&f.linearizable, "check-linearizability", false, "record the history and check it with porcupine (KV model; timed-out writes possibly applied); on failure write <out>.linearizability.html and exit non-zero")
	g.fs.IntVar(&f.maxOps, "history-max-ops", history.DefaultMaxOps, "ops kept in full; beyond, a sample of keys (halved each time the bound is hit again)")
	g.fs.DurationVar(&f.checkTimeout, "check-timeout", history.DefaultCheckTimeout, "bound on porcupine's search (running out is reported as inconclusive)")
	g.fs.BoolVar(&f.durable, "check-durability", false, "after the run kill -9 the nodes, restart them and read every acknowledged write back (--local; use --sync always); exit non-zero if any was lost")
	g.fs.IntVar(&f.durableKill, "durability-kill", 0, "nodes the durability check kills (0: all of them at once)")
	g.fs.IntVar(&f.readBackBatch, "read-back-batch", history.DefaultReadBackBatch, "keys per read-back request (batch x value size must fit a PBFT reply's 8 KiB)")
	return g
}

// faultTarget is a target whose nodes loadgen controls (--local).
type faultTarget interface {
	Nemesis() nemesis.Cluster
	ReadBack(ctx context.Context) (bench.Target, error)
}

// faultRun holds a run's fault injection and recording.
type faultRun struct {
	f     *faultFlags
	sched nemesis.Schedule
	rec   *history.Recorder
	nem   *nemesis.Nemesis
	ft    faultTarget

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	start  time.Time
}

// validate checks the fault flags against the cluster description before anything starts:
// a schedule that does not parse or has a step after the window, faults on a cluster
// loadgen does not start, or a
// durability check without durable writes would otherwise be found only after the nodes
// were up (or, remotely, after waiting for the cluster).
func (f *faultFlags) validate(spec bench.Spec, window time.Duration) error {
	sched, err := nemesis.Parse(f.nemesis)
	if err != nil {
		return usageError{err}
	}
	if (len(sched) > 0 || f.durable) && spec.Local == 0 {
		return usagef("--nemesis and --check-durability need a cluster loadgen controls (--local; for namespaces use make netns-bench)")
	}
	if f.durable && spec.Sync != "always" {
		return usagef("--check-durability needs --sync always (acknowledged writes must be on disk)")
	}
	sys, peer := bench.LookupSystem(spec.System)
	for _, st := range sched {
		if peer && slices.Contains(sys.NoFaults, string(st.Action)) {
			return usagef("--nemesis step %s: %s clusters cannot apply %s (they support none of %s)", st, sys.Name, st.Action, strings.Join(sys.NoFaults, ", "))
		}
		if st.At >= window {
			return usagef("--nemesis step %s starts at or after the end of the %v measured window: it would never run (times count from the window's start)", st, window)
		}
	}
	return nil
}

// newFaultRun validates the flags against the target; nil when nothing was asked.
func newFaultRun(ctx context.Context, f *faultFlags, spec bench.Spec, target bench.Target) (*faultRun, error) {
	sched, err := nemesis.Parse(f.nemesis)
	if err != nil {
		return nil, usageError{err}
	}
	if len(sched) == 0 && !f.linearizable && !f.durable {
		return nil, nil
	}
	fr := &faultRun{f: f, sched: sched}
	if len(sched) > 0 || f.durable {
		ft, ok := target.(faultTarget)
		if !ok {
			return nil, usagef("--nemesis and --check-durability need a cluster loadgen controls (--local; for namespaces use make netns-bench)")
		}
		fr.ft = ft
	}
	if f.durable && spec.Sync != "always" {
		return nil, usagef("--check-durability needs --sync always (acknowledged writes must be on disk)")
	}
	fr.rec = history.New(history.Config{MaxOps: f.maxOps})
	if len(sched) > 0 {
		fr.nem = nemesis.New(fr.ft.Nemesis(), sched, f.seed)
	}
	fr.ctx, fr.cancel = context.WithCancel(ctx)
	return fr, nil
}

// wrap returns the target the driver uses: recording, when a verdict needs the history
// (the figures need the request spans, so a schedule records too).
func (fr *faultRun) wrap(t bench.Target) bench.Target {
	if fr == nil {
		return t
	}
	return fr.rec.Wrap(t)
}

// window starts the schedule when the measured window begins.
func (fr *faultRun) window(start bool) {
	if fr == nil || !start {
		return
	}
	fr.start = time.Now()
	if fr.nem != nil {
		fr.wg.Go(func() { fr.nem.Run(fr.ctx, fr.start) })
	}
}

// finish stops the schedule (undoing faults still in force), fills in the events, figures
// and verdicts, and says whether every verdict passed.
func (fr *faultRun) finish(ctx context.Context, r *report.Result, prefix string, w io.Writer) (figs []nemesis.Figures, ok bool, err error) {
	if fr == nil {
		return nil, true, nil
	}
	fr.cancel()
	fr.wg.Wait()
	if fr.nem != nil {
		r.Events = fr.nem.Events()
		if err := fr.nem.Err(); err != nil {
			fmt.Fprintf(w, "loadgen: some faults could not be injected: %v\n", err)
		}
		if figs, err = nemesis.Analyze(r, fr.rec.Spans(fr.start)); err != nil {
			return nil, false, err
		}
		nemesis.Annotate(r, figs)
	}
	if !fr.f.linearizable && !fr.f.durable {
		return figs, true, nil
	}
	r.Verdicts = &report.Verdicts{}
	ok = true
	if fr.f.linearizable {
		v, err := fr.rec.CheckLinearizable(fr.f.checkTimeout, prefix+".linearizability.html")
		if err != nil {
			return figs, false, err
		}
		r.Verdicts.Linearizability = v
		ok = ok && v.OK
	}
	if fr.f.durable {
		v, err := fr.rec.KillRestartReadBack(ctx, history.ReadBackConfig{Cluster: fr.ft.Nemesis(), ReadBack: fr.ft.ReadBack,
			Kill: fr.f.durableKill, Batch: fr.f.readBackBatch})
		if err != nil {
			return figs, false, err
		}
		r.Verdicts.Durability = v
		ok = ok && v.OK
	}
	return figs, ok, nil
}

// Nemesis implements faultTarget for a local cluster.
func (l *localTarget) Nemesis() nemesis.Cluster { return l.c.Nemesis() }

// ReadBack implements faultTarget: a fresh client target once the restarted cluster
// commits again.
func (l *localTarget) ReadBack(ctx context.Context) (bench.Target, error) {
	cfg := adapter.Config{Protocol: l.c.Spec.Protocol, Nodes: clientNodes(l.c), PBFT: pbftOf(l.c.Spec)}
	if err := adapter.Probe(ctx, cfg); err != nil {
		return nil, err
	}
	return adapter.Open(cfg)
}
