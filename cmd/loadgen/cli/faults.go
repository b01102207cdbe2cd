package cli

import (
	"context"
	"fmt"
	"io"
	"net"
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
	g.fs.StringVar(&f.nemesis, "nemesis", "", "fault schedule, e.g. kill-leader@10s,restart@15s or partition-leader@10s:5s (times from the measured window's start; with --cluster, every fault goes through each node's metrics_addr: kills by /admin/crash, restart waits for the node's supervisor, pauses by /admin/pause): "+nemesis.Grammar)
	g.fs.StringVar(&f.adminToken, "admin-token-file", "", "--cluster faults: file holding the bearer token of the nodes' --admin-token-file (required when a metrics_addr is off loopback)")
	g.fs.Uint64Var(&f.seed, "nemesis-seed", 1, "seed of the -random faults' choices")
	g.fs.BoolVar(&f.linearizable, "check-linearizability", false, "record the history and check it with porcupine (KV model; timed-out writes possibly applied); on failure write <out>.linearizability.html and exit non-zero")
	g.fs.IntVar(&f.maxOps, "history-max-ops", history.DefaultMaxOps, "ops kept in full; beyond, a sample of keys (halved each time the bound is hit again)")
	g.fs.DurationVar(&f.checkTimeout, "check-timeout", history.DefaultCheckTimeout, "bound on porcupine's search (running out is reported as inconclusive)")
	g.fs.BoolVar(&f.durable, "check-durability", false, "after the run kill -9 the nodes, restart them and read every acknowledged write back (--local with --sync always, or --cluster nodes under their supervisors through /admin/crash); exit non-zero if any was lost")
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
// loadgen does not start whose spec lacks admin addresses or whose token is missing, or a
// durability check without durable writes would otherwise be found only after the nodes
// were up (or, remotely, after waiting for the cluster). A remote cluster's sync mode is
// known only from its nodes' status, so newFaultRun checks it there, still before the run.
func (f *faultFlags) validate(spec bench.Spec, window time.Duration) error {
	sched, err := nemesis.Parse(f.nemesis)
	if err != nil {
		return usageError{err}
	}
	if spec.Local == 0 {
		if len(sched) > 0 || f.durable {
			if err := f.remoteFaultsAllowed(spec, sched); err != nil {
				return err
			}
		}
	} else if f.durable && spec.Sync != "always" {
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
		if at, remote := target.(*adminTarget); !ok && remote {
			token, err := readAdminToken(f.adminToken)
			if err != nil {
				return nil, err
			}
			ft, ok = at.faults(token), true
		}
		if !ok {
			return nil, usagef("--nemesis and --check-durability need a cluster loadgen controls (--local), or a --cluster spec naming every node's metrics_addr")
		}
		fr.ft = ft
	}
	if f.durable && spec.Sync != "always" {
		if spec.Local == 0 {
			return nil, usagef("--check-durability needs nodes that fsync before they acknowledge: the cluster's nodes report sync %q (start them with --sync always)", spec.Sync)
		}
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
	if c, ok := fr.ft.(interface{ Close() }); ok {
		defer c.Close()
	}
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

// remoteFaultsAllowed checks faults for a cluster loadgen did not start: they need --cluster
// whose spec names every node's admin address (metrics_addr), the token when an address is
// off loopback (the nodes refuse mutating requests without it), and pauses no longer than a
// node's /admin/pause takes.
func (f *faultFlags) remoteFaultsAllowed(spec bench.Spec, sched nemesis.Schedule) error {
	what := "--nemesis"
	if len(sched) == 0 {
		what = "--check-durability"
	}
	if spec.ClusterFile == "" {
		return usagef("%s on a cluster loadgen does not start needs --cluster FILE naming every node's metrics_addr (its admin address; --targets names client addresses only), or --local", what)
	}
	for _, st := range sched {
		if st.For > server.MaxAdminPause && (st.Action == nemesis.Pause || st.Action == nemesis.PauseLeader || st.Action == nemesis.PauseRandom) {
			return usagef("--nemesis step %s: a node's /admin/pause lasts at most %v", st, server.MaxAdminPause)
		}
	}
	cs, err := server.LoadClusterSpec(spec.ClusterFile)
	if err != nil {
		return err
	}
	var missing, offLoopback []string
	for _, n := range cs.Nodes {
		switch {
		case n.MetricsAddr == "":
			missing = append(missing, fmt.Sprint(n.ID))
		case !loopbackAddr(n.MetricsAddr):
			offLoopback = append(offLoopback, fmt.Sprintf("node %d (%s)", n.ID, n.MetricsAddr))
		}
	}
	if len(missing) > 0 {
		return usagef("%s with --cluster %s: nodes %s have no metrics_addr (the admin address faults go through)", what, spec.ClusterFile, strings.Join(missing, ", "))
	}
	if len(offLoopback) > 0 && f.adminToken == "" {
		return usagef("%s with --cluster %s: give --admin-token-file (the nodes' --admin-token-file token): %s serve /admin/ off loopback and refuse faults without it", what, spec.ClusterFile, strings.Join(offLoopback, ", "))
	}
	if _, err := readAdminToken(f.adminToken); err != nil {
		return err
	}
	return nil
}

// loopbackAddr reports whether host:port names a loopback host (a bare :port binds
// loopback, as node does).
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "" || host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
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
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", usagef("--admin-token-file %s is empty", path)
	}
	return token, nil
}

// adminTarget is a cluster loadgen did not start whose spec names every node's admin
// address (--cluster with metrics_addr): its nodes' leader-change counters are read from
// /metrics, and the faults that need no process run through /admin/.
type adminTarget struct {
	*adapter.Target
	spec *server.ClusterSpec
	cfg  adapter.Config // the client's, for the durability check's read-back
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
// nodes: kills by /admin/crash, restarts by their supervisors, pauses by /admin/pause).
func (a *adminTarget) faults(token string) faultTarget {
	p := &nemesis.Procs{AdminToken: token}
	for _, n := range a.spec.Nodes {
		p.Procs = append(p.Procs, nemesis.Proc{ID: n.ID, AdminURL: "http://" + n.MetricsAddr})
	}
	return remoteFaults{p: p, cfg: a.cfg}
}

// remoteFaults is faultTarget for an adminTarget. The durability check crashes the nodes
// through /admin/crash, waits for their supervisors to start them again, and reads back
// through a fresh client.
type remoteFaults struct {
	p   *nemesis.Procs
	cfg adapter.Config
}

func (r remoteFaults) Nemesis() nemesis.Cluster { return r.p }

// Close stops watching for crashed nodes.
func (r remoteFaults) Close() { r.p.Close() }

// ReadBack implements faultTarget: a fresh client target once the restarted cluster
// commits again.
func (r remoteFaults) ReadBack(ctx context.Context) (bench.Target, error) {
	if err := adapter.Probe(ctx, r.cfg); err != nil {
		return nil, err
	}
	return adapter.Open(r.cfg)
}
