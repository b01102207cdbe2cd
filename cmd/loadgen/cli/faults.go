package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/adapter"
	"github.com/consensusbench/consensusbench/bench/cluster"
	"github.com/consensusbench/consensusbench/bench/history"
	"github.com/consensusbench/consensusbench/bench/nemesis"
	"github.com/consensusbench/consensusbench/bench/report"
	"github.com/consensusbench/consensusbench/server"
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
	adminToken    string
}

func (f *faultFlags) group() group {
	g := newGroup("Faults and verdicts (see docs/FAULTS.md)")
	g.fs.StringVar(&f.nemesis, "nemesis", "", "fault schedule, e.g. kill-leader@10s,restart@15s or partition-leader@10s:5s (times from the measured window's start; with --cluster, partitions and transfer-leader only, through each node's metrics_addr): "+nemesis.Grammar)
	g.fs.StringVar(&f.adminToken, "admin-token-file", "", "--cluster faults: file holding the bearer token of the nodes' --admin-token-file (nodes off loopback refuse faults without it)")
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
	if spec.Local == 0 {
		if f.durable {
			return usagef("--check-durability kills and restarts the nodes: it needs a cluster loadgen starts (--local; for namespaces use make netns-bench)")
		}
		if len(sched) > 0 {
			if err := remoteFaultsAllowed(spec, sched); err != nil {
				return err
			}
		}
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
		if at, remote := target.(*adminTarget); !ok && remote && !f.durable {
			token, err := readAdminToken(f.adminToken)
			if err != nil {
				return nil, err
			}
			ft, ok = at.faults(token), true
		}
		if !ok {
			return nil, usagef("--nemesis and --check-durability need a cluster loadgen controls (--local), or for partitions and transfer-leader a --cluster spec naming every node's metrics_addr")
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

// remoteFaultsAllowed checks a schedule for a cluster loadgen did not start: only actions
// that need no process (partitions, transfer-leader), and only with --cluster whose spec
// names every node's admin address (metrics_addr).
func remoteFaultsAllowed(spec bench.Spec, sched nemesis.Schedule) error {
	if spec.ClusterFile == "" {
		return usagef("--nemesis on a cluster loadgen does not start needs --cluster FILE naming every node's metrics_addr (its admin address; --targets names client addresses only), or --local")
	}
	for _, st := range sched {
		if st.Action.NeedsProcess() {
			return usagef("--nemesis step %s needs the node's process (kill, restart, pause): --local; against --cluster only partition-leader, partition-random and transfer-leader run, through each node's /admin/", st)
		}
	}
	cs, err := server.LoadClusterSpec(spec.ClusterFile)
	if err != nil {
		return err
	}
	var missing []string
	for _, n := range cs.Nodes {
		if n.MetricsAddr == "" {
			missing = append(missing, fmt.Sprint(n.ID))
		}
	}
	if len(missing) > 0 {
		return usagef("--nemesis with --cluster %s: nodes %s have no metrics_addr (the admin address faults go through)", spec.ClusterFile, strings.Join(missing, ", "))
	}
	return nil
}

// readAdminToken reads --admin-token-file ("" when not given).
func readAdminToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", usagef("--admin-token-file: %v", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// adminTarget is a cluster loadgen did not start whose spec names every node's admin
// address (--cluster with metrics_addr): its nodes' leader-change counters are read from
// /metrics, and the faults that need no process run through /admin/.
type adminTarget struct {
	*adapter.Target
	spec *server.ClusterSpec
}

// NodeEvents implements bench.EventReporter.
func (a *adminTarget) NodeEvents() (map[string]map[string]int64, error) {
	addrs := map[string]string{}
	for _, n := range a.spec.Nodes {
		addrs[fmt.Sprintf("n%d", n.ID)] = n.MetricsAddr
	}
	return cluster.EventsAt(a.spec.Protocol, addrs)
}

// faults is the nemesis view of the nodes: admin endpoints only (nemesis.Procs with remote
// nodes refuses kills, restarts and pauses).
func (a *adminTarget) faults(token string) faultTarget {
	p := &nemesis.Procs{AdminToken: token}
	for _, n := range a.spec.Nodes {
		p.Procs = append(p.Procs, nemesis.Proc{ID: n.ID, AdminURL: "http://" + n.MetricsAddr})
	}
	return remoteFaults{p}
}

// remoteFaults is faultTarget for an adminTarget; it has no read-back (the durability
// check needs to kill and restart the nodes, which validate refuses remotely).
type remoteFaults struct{ c nemesis.Cluster }

func (r remoteFaults) Nemesis() nemesis.Cluster { return r.c }

func (r remoteFaults) ReadBack(context.Context) (bench.Target, error) {
	return nil, errors.New("loadgen: no durability read-back on a cluster loadgen does not start")
}
