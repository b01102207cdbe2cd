package cli

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/load"
	"github.com/consensusbench/consensusbench/bench/report"
	"github.com/consensusbench/consensusbench/server"
)

// Output defaults.
const (
	defaultResultsDir = "results/runs" // default home of --out; reference results are copied out by hand
)

// clusterFlags name the system under test.
type clusterFlags struct {
	system    string
	protocol  string
	targets   []string
	cluster   string
	local     int
	sync      string
	dataDir   string
	byz       string
	byzNodes  []uint
	raftReads string
	attempt   time.Duration
	insecure  bool   // --insecure-peers
	nodeProcs int    // --node-procs
	nodeLog   string // --node-log-level
}

func (c *clusterFlags) group() group {
	g := newGroup("Cluster")
	g.fs.StringVar(&c.system, "system", bench.SystemOurs, "what runs the cluster: "+systemsHelp())
	g.fs.StringVar(&c.protocol, "protocol", "", "consensus protocol: raft or pbft (default the --cluster spec's, else raft)")
	g.fs.StringSliceVar(&c.targets, "targets", nil, "replica addresses host:port,host:port,...")
	g.fs.StringVar(&c.cluster, "cluster", "", "cluster spec file (instead of --targets)")
	g.fs.IntVar(&c.local, "local", 0, "spawn N local node processes on loopback for the run (node binary: beside loadgen, else on PATH, else go build in the module)")
	g.fs.StringVar(&c.sync, "sync", "", "local clusters: fsync policy always or none (default none)")
	g.fs.StringVar(&c.dataDir, "data-dir", "", "local clusters: data directory (default a temporary one)")
	g.fs.StringVar(&c.byz, "byzantine", "", "local PBFT clusters: start --byzantine-nodes with node --byzantine MODE (silent, equivocate, bad-digest, bad-mac)")
	g.fs.UintSliceVar(&c.byzNodes, "byzantine-nodes", []uint{1}, "local PBFT clusters: the node IDs that misbehave (at most f; node 1 is the first primary)")
	g.fs.DurationVar(&c.attempt, "attempt-timeout", 0, "how long a client waits for one replica's reply before it tries another (default the client's, 2s)")
	g.fs.BoolVar(&c.insecure, "insecure-peers", false, "local clusters: run the nodes without a cluster secret (by default their peers authenticate with a random one); to measure what peer authentication costs")
	g.fs.StringVar(&c.nodeLog, "node-log-level", "info", "local clusters: every node's --log-level (debug, info, warn or error); the logs are kept after a failed run or with --data-dir")
	g.fs.IntVar(&c.nodeProcs, "node-procs", 0, "local clusters: GOMAXPROCS of every node process (default: each node's own, every core); on a host smaller than its nodes plus loadgen, 1 spares their runtimes handing goroutines between threads")
	g.fs.StringVar(&c.raftReads, "raft-reads", "", "local Raft clusters: how the leader confirms reads, safe (a ReadIndex heartbeat round) or lease (thesis §6.4.1; trusts bounded clock drift) (default safe); --system etcd: safe (linearizable, also a ReadIndex round) or serializable (any member's own state), local or remote")
	return g
}

func (c *clusterFlags) spec() (bench.Spec, error) {
	if c.protocol == "" {
		c.protocol = "raft"
		// Only where the spec is the one way the cluster is named; otherwise the checks below
		// name the conflict.
		if c.cluster != "" && len(c.targets) == 0 && c.local == 0 && c.system == bench.SystemOurs {
			cs, err := server.LoadClusterSpec(c.cluster)
			if err != nil {
				return bench.Spec{}, usageError{err}
			}
			c.protocol = cs.Protocol
		}
	}
	s := bench.Spec{System: c.system, Protocol: c.protocol, Targets: c.targets, ClusterFile: c.cluster, Local: c.local,
		Sync: c.sync, DataDir: c.dataDir, AttemptTimeout: c.attempt}
	if c.local < 0 {
		return s, usagef("--local %d: want a node count", c.local)
	}
	if err := s.Validate(); err != nil {
		return s, usageError{err}
	}
	if c.system != bench.SystemOurs {
		return c.peerSpec(s)
	}
	switch {
	case c.raftReads != "" && c.raftReads != "safe" && c.raftReads != "lease":
		return s, usagef("--raft-reads %q: want safe or lease", c.raftReads)
	case c.raftReads != "" && (c.local == 0 || c.protocol != "raft"):
		return s, usagef("--raft-reads applies to local Raft clusters (--local N --protocol raft); on other clusters set raft.reads in the cluster spec")
	}
	if c.nodeProcs < 0 || c.nodeProcs > 0 && c.local == 0 {
		return s, usagef("--node-procs %d applies to local clusters (--local N) and must be positive; other clusters' nodes take GOMAXPROCS from their environment", c.nodeProcs)
	}
	switch {
	case c.nodeLog != "debug" && c.nodeLog != "info" && c.nodeLog != "warn" && c.nodeLog != "error":
		return s, usagef("--node-log-level %q: want debug, info, warn or error", c.nodeLog)
	case c.nodeLog != "info" && c.local == 0:
		return s, usagef("--node-log-level applies to local clusters (--local N); other clusters' nodes take --log-level themselves")
	}
	if c.insecure && c.local == 0 {
		return s, usagef("--insecure-peers applies to local clusters (--local N); other clusters' nodes take --peer-secret-file or --insecure-peers themselves")
	}
	if c.byz != "" && (c.local == 0 || c.protocol != "pbft") {
		return s, usagef("--byzantine applies to local PBFT clusters (--local N --protocol pbft); on other clusters start node with --byzantine")
	}
	return s, nil
}

// peersBuild is the make target that builds a loadgen with the peer systems registered.
const peersBuild = "make build-peers (bin/loadgen-peers, built from the peers/ module)"

// systemsHelp lists the systems this build can drive, for --system's help.
func systemsHelp() string {
	var names []string
	for _, n := range bench.SystemNames() {
		if sys, ok := bench.LookupSystem(n); ok && sys.About != "" {
			n += " (" + sys.About + ")"
		} else if n == bench.SystemOurs {
			n += " (this repository's nodes)"
		}
		names = append(names, n)
	}
	if len(names) == 1 {
		names = append(names, "peer systems such as etcd need the loadgen that "+peersBuild+" builds")
	}
	return strings.Join(names, "; ")
}

// peerSpec checks the cluster flags against a registered peer system and resolves what the
// system decides for itself: its release, its durability and its read mode. Flags that
// configure consensusbench's own nodes are refused rather than ignored.
func (c *clusterFlags) peerSpec(s bench.Spec) (bench.Spec, error) {
	sys, ok := bench.LookupSystem(c.system)
	if !ok {
		return s, usagef("--system %q: this loadgen does not include it (it knows %s); peer systems are built by %s",
			c.system, strings.Join(bench.SystemNames(), ", "), peersBuild)
	}
	switch {
	case c.protocol != sys.Protocol:
		return s, usagef("--system %s runs %s, not --protocol %s", sys.Name, sys.Protocol, c.protocol)
	case c.cluster != "":
		return s, usagef("--system %s: name the cluster with --targets (client addresses) or --local N, not a consensusbench cluster spec", sys.Name)
	case c.sync != "" && c.sync != sys.Sync:
		return s, usagef("--system %s: --sync %s is not available (%s's only mode is %s)", sys.Name, c.sync, sys.Name, sys.Sync)
	case c.raftReads != "" && !slices.Contains(sys.Reads, c.raftReads):
		return s, usagef("--system %s: --raft-reads %q: want %s", sys.Name, c.raftReads, strings.Join(sys.Reads, " or "))
	case c.byz != "" || c.insecure || c.nodeProcs != 0 || c.nodeLog != localLogLevel:
		return s, usagef("--system %s: --byzantine, --insecure-peers, --node-procs and --node-log-level configure consensusbench's own nodes", sys.Name)
	}
	s.SystemVersion, s.Sync, s.Reads = sys.Version, sys.Sync, orDefault(c.raftReads, sys.Reads[0])
	s.Nodes = max(s.Local, len(s.Targets))
	return s, nil
}

// checkBatch refuses a batch larger than the system accepts in one request.
func checkBatch(spec bench.Spec, batch int) error {
	if sys, ok := bench.LookupSystem(spec.System); ok && sys.MaxBatch > 0 && batch > sys.MaxBatch {
		return usagef("--batch %d: %s takes at most %d ops in one request", batch, sys.Name, sys.MaxBatch)
	}
	return nil
}

// loadFlags pace the requests.
type loadFlags struct {
	mode     string
	rate     float64
	clients  int
	pipeline int
	batch    int
	conns    int
	duration time.Duration
	warmup   time.Duration
	drain    time.Duration
}

func (l *loadFlags) group(sweep bool) group {
	d := load.DefaultConfig()
	g := newGroup("Load")
	if !sweep {
		g.fs.StringVar(&l.mode, "mode", "open", "open (constant --rate, latency from intended send times) or closed (clients x pipeline, each waits for its reply)")
		g.fs.Float64Var(&l.rate, "rate", d.Rate, "open loop: ops/s offered over all clients")
	}
	g.fs.IntVar(&l.clients, "clients", d.Clients, "client sessions")
	g.fs.IntVar(&l.pipeline, "pipeline", d.Pipeline, "requests in flight per client (open loop: sized by default to keep --rate x 100ms of ops in flight, as wrk2 sizes its connections)")
	g.fs.IntVar(&l.batch, "batch", d.Batch, "ops per client request (client-side batch)")
	g.fs.IntVar(&l.conns, "conns", 0, "connections per node that the clients share, as etcd's benchmark --conns (0: each client its own); concurrent clients' requests then share system calls")
	g.fs.DurationVar(&l.duration, "duration", d.Duration, "measured window")
	g.fs.DurationVar(&l.warmup, "warmup", 2*time.Second, "load before the window, not recorded")
	g.fs.DurationVar(&l.drain, "drain", d.Drain, "after the window, wait this long for requests in flight")
	return g
}

// workloadFlags say what each request does.
type workloadFlags struct {
	name      string
	readRatio float64
	keys      int
	valueSize int
	dist      string
	zipfS     float64
	seed      uint64
}

func (w *workloadFlags) group() group {
	d, _ := load.NewWorkload("write-only")
	var names []string
	for _, p := range load.Presets {
		names = append(names, p.Name)
	}
	g := newGroup("Workload (YCSB A = 50% reads/50% updates, B = 95/5, C = 100% reads; A-C use zipfian keys)")
	g.fs.StringVar(&w.name, "workload", "write-only", "preset: "+strings.Join(names, ", "))
	g.fs.Float64Var(&w.readRatio, "read-ratio", 0, "fraction of reads, 0..1 (overrides the preset's)")
	g.fs.IntVar(&w.keys, "keys", d.Keys, "key space size")
	g.fs.IntVar(&w.valueSize, "value-size", d.ValueSize, "bytes per written value")
	g.fs.StringVar(&w.dist, "dist", "", "key distribution uniform or zipfian (overrides the preset's)")
	g.fs.Float64Var(&w.zipfS, "zipf-s", d.ZipfS, "zipfian exponent (YCSB: 0.99)")
	g.fs.Uint64Var(&w.seed, "seed", d.Seed, "random seed: the same seed gives the same requests")
	return g
}

func (w *workloadFlags) workload(fs *pflag.FlagSet) (load.Workload, error) {
	wl, err := load.NewWorkload(w.name)
	if err != nil {
		return wl, usageError{fmt.Errorf("--workload: %w", err)}
	}
	if fs.Changed("read-ratio") {
		wl.ReadRatio = w.readRatio
		wl.Name += "+reads"
	}
	if fs.Changed("dist") {
		wl.Dist = w.dist
	}
	wl.Keys, wl.ValueSize, wl.ZipfS, wl.Seed = w.keys, w.valueSize, w.zipfS, w.seed
	if err := wl.Validate(); err != nil {
		return wl, usageError{err}
	}
	return wl, nil
}

// outputFlags say where the results go.
type outputFlags struct {
	out          string
	quiet        bool
	fsyncProbe   string
	fsyncSamples int
}

func (o *outputFlags) group(sweep bool) group {
	g := newGroup("Output")
	if sweep {
		g.fs.StringVar(&o.out, "out", "", "result path prefix: writes .json (default "+defaultResultsDir+"/<time>-<commit>-<protocol>-<workload>-sweep)")
		return g
	}
	g.fs.StringVar(&o.out, "out", "", "result path prefix: writes .json, .txt (benchstat) and .hgrm (default "+defaultResultsDir+"/<time>-<commit>-<protocol>-<workload>)")
	g.fs.BoolVar(&o.quiet, "quiet", false, "no per-second lines")
	g.fs.StringVar(&o.fsyncProbe, "fsync-probe", "", "measure fdatasync latency in this directory before the run and record it (durable local runs do this on their data directory)")
	g.fs.IntVar(&o.fsyncSamples, "fsync-samples", report.FsyncSamplesDefault, "fdatasync calls the probe times")
	return g
}

func (l *loadFlags) config(fs *pflag.FlagSet, wl load.Workload) (load.Config, error) {
	c := load.Config{Rate: l.rate, Clients: l.clients, Pipeline: l.pipeline, Batch: l.batch, Conns: l.conns,
		Duration: l.duration, Warmup: l.warmup, Drain: l.drain, Workload: wl}
	switch l.mode {
	case "open", string(load.OpenLoop):
		c.Mode = load.OpenLoop
	case "closed", string(load.ClosedLoop):
		c.Mode = load.ClosedLoop
		if fs.Changed("rate") {
			return c, usagef("--rate applies to open loop only (closed loop is paced by --clients x --pipeline)")
		}
		c.Rate = 0
	case "":
		c.Mode = load.OpenLoop // sweeps
	default:
		return c, usagef("--mode %q: want open or closed", l.mode)
	}
	if c.Mode == load.OpenLoop && c.Rate > 0 {
		if !fs.Changed("pipeline") {
			c.Pipeline = load.SizePipeline(c.Rate, c.Clients, c.Batch)
		} else if b := c.RequestTimeBudget(); b < load.OpenLoopMinRequestTime {
			return c, usagef("--rate %g with %d clients x pipeline %d x batch %d: every request would have to complete within %v to offer that rate; raise --pipeline or --clients, or leave --pipeline out to size it",
				c.Rate, c.Clients, c.Pipeline, c.Batch, b)
		}
	}
	if err := c.Validate(); err != nil {
		return c, usageError{err}
	}
	return c, nil
}
