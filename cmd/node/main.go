// Command node runs one consensusbench replica (Raft or PBFT) of the cluster described by
// a cluster spec file (--cluster) or by --peers.
//
// main only calls run, so the command is testable: flags in, exit status out.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/consensusbench/consensusbench/internal/version"
	"github.com/consensusbench/consensusbench/server"
	"github.com/consensusbench/consensusbench/storage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "node:", err)
			os.Exit(1)
		}
	}
}

type options struct {
	help, version bool
	groups        []flagGroup // for --help
	protocol      string
	id            uint64
	clusterFile   string
	peers         string
	clusterID     uint64
	dataDir       string
	init          bool
	sync          string
	metricsAddr   string
	adminToken    string // --admin-token-file
	peerSecret    string // --peer-secret-file
	insecure      bool   // --insecure-peers
	pprof         bool
	logLevel      string
	tick          time.Duration
	byzantine     string
	// tickSet and clusterIDSet: the flag was given (they only apply with --peers).
	tickSet, clusterIDSet bool
}

// newFlags builds the flag set in groups, so --help prints each group under its heading
// from the flags themselves (it cannot drift from what is parsed).
// After a bad flag the usage goes to stderr; --help prints it to stdout (run).
func newFlags(o *options, stderr io.Writer) *pflag.FlagSet {
	cluster := pflag.NewFlagSet("cluster", pflag.ContinueOnError)
	cluster.SortFlags = false
	cluster.Uint64Var(&o.id, "id", 0, "this node's ID in the cluster (required)")
	cluster.StringVar(&o.clusterFile, "cluster", "", "cluster spec file (JSON; see docs/CLUSTER.md)")
	cluster.StringVar(&o.peers, "peers", "", "instead of --cluster: ID=PEERHOST:PORT/CLIENTHOST:PORT,... for every node")
	cluster.StringVar(&o.protocol, "protocol", "", "raft or pbft (required with --peers; must match the spec with --cluster)")
	cluster.Uint64Var(&o.clusterID, "cluster-id", 1, "cluster ID checked in every peer hello (with --peers)")
	cluster.DurationVar(&o.tick, "tick", 0, "logical tick with --peers (0: 10ms)")
	cluster.StringVar(&o.peerSecret, "peer-secret-file", "", "file holding the cluster secret (at least 16 bytes, the same on every node): peers prove they hold it at the hello, and a peer that does not is refused")
	cluster.BoolVar(&o.insecure, "insecure-peers", false, "accept unauthenticated peers on a cluster whose peer addresses are not all loopback (only where nobody else can reach the peer ports)")

	store := pflag.NewFlagSet("storage", pflag.ContinueOnError)
	store.SortFlags = false
	store.StringVar(&o.dataDir, "data-dir", "", "directory for the WAL and snapshots (required); stamped with the cluster, node and protocol, and refused at start when stamped for another")
	store.BoolVar(&o.init, "init", false, "this is a new node: accept an empty --data-dir and stamp it (only for a node's first start: a node whose data was lost must not rejoin as the same member)")
	store.StringVar(&o.sync, "sync", "always", "WAL sync policy: always (fdatasync before acknowledging) or none (memory speed; results must say so)")

	faults := pflag.NewFlagSet("faults", pflag.ContinueOnError)
	faults.SortFlags = false
	faults.StringVar(&o.byzantine, "byzantine", "", "PBFT only, for benchmarks under faults: misbehave as silent, equivocate, bad-digest or bad-mac (at most f replicas; see docs/FAULTS.md)")

	obs := pflag.NewFlagSet("observability", pflag.ContinueOnError)
	obs.SortFlags = false
	obs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics and the /admin/ endpoints (status, fault injection) on this address (empty: off; a bare :PORT binds loopback; another host needs --admin-token-file)")
	obs.StringVar(&o.adminToken, "admin-token-file", "", "file holding the bearer token the mutating /admin/ endpoints require (Authorization: Bearer TOKEN); without one they answer only on loopback, to requests without an Origin header")
	obs.BoolVar(&o.pprof, "pprof", false, "also serve /debug/pprof on --metrics-addr (it exposes the command line and memory)")
	obs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	obs.BoolVar(&o.version, "version", false, "print the build (module version and commit) and exit")
	obs.BoolVarP(&o.help, "help", "h", false, "print this help and exit")

	groups := []flagGroup{{"Cluster", cluster}, {"Storage", store}, {"Faults", faults}, {"Observability", obs}}
	o.groups = groups
	fs := pflag.NewFlagSet("node", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	for _, g := range groups {
		fs.AddFlagSet(g.fs)
	}
	fs.Usage = func() { printUsage(stderr, groups) }
	return fs
}

func printUsage(w io.Writer, groups []flagGroup) {
	fmt.Fprint(w, `Usage: node --id N (--cluster FILE | --peers LIST) --data-dir DIR [flags]

Runs one replica of a consensusbench cluster. SIGTERM or SIGINT stops it cleanly after
flushing the WAL. Bad flags or a bad cluster spec exit with status 1 and a message.
`)
	fmt.Fprint(w, usageExample)
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s:\n%s", g.title, g.fs.FlagUsages())
	}
}

// flagGroup is a titled set of flags, printed together in --help.
type flagGroup struct {
	title string
	fs    *pflag.FlagSet
}

const usageExample = `
Example (three nodes on one host; start each with its own --id):
  node --id 1 --peers 1=127.0.0.1:7001/127.0.0.1:8001,2=127.0.0.1:7002/127.0.0.1:8002,3=127.0.0.1:7003/127.0.0.1:8003 \
       --protocol raft --data-dir /var/lib/cb/n1 --init --metrics-addr :9101
`

// parsePeers reads "1=host:port/host:port,2=..." into a spec.
func parsePeers(s string) ([]server.NodeSpec, error) {
	var nodes []server.NodeSpec
	for _, item := range strings.Split(s, ",") {
		id, addrs, ok := strings.Cut(strings.TrimSpace(item), "=")
		peer, cli, ok2 := strings.Cut(addrs, "/")
		if !ok || !ok2 {
			return nil, fmt.Errorf("--peers entry %q: want ID=PEERADDR/CLIENTADDR", item)
		}
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("--peers entry %q: bad ID: %v", item, err)
		}
		nodes = append(nodes, server.NodeSpec{ID: n, PeerAddr: peer, ClientAddr: cli})
	}
	return nodes, nil
}

func buildSpec(o *options) (*server.ClusterSpec, error) {
	switch {
	case o.clusterFile != "" && o.peers != "":
		return nil, errors.New("give --cluster or --peers, not both")
	case o.clusterFile != "" && (o.tickSet || o.clusterIDSet):
		return nil, errors.New("--tick and --cluster-id go with --peers; with --cluster they come from the spec file")
	case o.clusterFile != "":
		spec, err := server.LoadClusterSpec(o.clusterFile)
		if err != nil {
			return nil, err
		}
		if o.protocol != "" && o.protocol != spec.Protocol {
			return nil, fmt.Errorf("--protocol %s but the cluster spec says %s", o.protocol, spec.Protocol)
		}
		return spec, nil
	case o.peers != "":
		nodes, err := parsePeers(o.peers)
		if err != nil {
			return nil, err
		}
		spec := &server.ClusterSpec{ClusterID: o.clusterID, Protocol: o.protocol, Nodes: nodes, Tick: server.Duration(o.tick)}
		if err := spec.Validate(); err != nil {
			return nil, fmt.Errorf("--peers/--protocol: %w", err)
		}
		return spec, nil
	}
	return nil, errors.New("--cluster FILE or --peers LIST is required")
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := newFlags(&o, stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case o.help:
		printUsage(stdout, o.groups)
		return pflag.ErrHelp
	case o.version:
		fmt.Fprintln(stdout, version.String("node"))
		return pflag.ErrHelp // nothing else to do; main exits 0
	}
	o.tickSet, o.clusterIDSet = fs.Changed("tick"), fs.Changed("cluster-id")
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	level, err := parseLevel(o.logLevel)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if o.id == 0 {
		return errors.New("--id is required (a node ID from the cluster spec)")
	}
	if o.dataDir == "" {
		return errors.New("--data-dir is required")
	}
	policy, err := storage.ParseSyncPolicy(o.sync)
	if err != nil {
		return fmt.Errorf("--sync: %w", err)
	}
	spec, err := buildSpec(&o)
	if err != nil {
		return err
	}
	self, ok := spec.Node(o.id)
	if !ok {
		return fmt.Errorf("--id %d is not a node of the cluster", o.id)
	}
	byz, err := server.ParseByzantineMode(o.byzantine)
	if err != nil {
		return fmt.Errorf("--byzantine: %w", err)
	}
	if byz != server.ByzantineNone && spec.Protocol != "pbft" {
		return fmt.Errorf("--byzantine: only PBFT replicas have Byzantine modes (this cluster runs %s)", spec.Protocol)
	}
	secret, err := loadPeerSecret(o.peerSecret, o.insecure, spec)
	if err != nil {
		return err
	}
	if secret == nil {
		log.Warn("peers are not authenticated: anyone who reaches the peer port can speak as a member (give --peer-secret-file)")
	}
	metrics := server.NewMetrics()
	r, err := server.NewReplica(server.ReplicaConfig{Spec: spec, ID: o.id, DataDir: o.dataDir, Init: o.init, Sync: policy,
		Logger: log.With("node", o.id), Metrics: metrics, PeerSecret: secret})
	if err != nil {
		return err
	}
	if p, ok := r.(*server.PBFTReplica); ok && byz != server.ByzantineNone {
		p.SetByzantine(byz)
		log.Warn("this replica is Byzantine on purpose", "mode", byz)
	}
	if err := r.Start(); err != nil {
		_ = r.Stop()
		return err
	}
	if o.metricsAddr == "" {
		o.metricsAddr = self.MetricsAddr // the spec's admin address, when it names one
	}
	if o.metricsAddr != "" {
		srv, err := serveMetrics(adminOptions{addr: o.metricsAddr, tokenFile: o.adminToken, pprof: o.pprof}, metrics, r, log)
		if err != nil {
			_ = r.Stop()
			return err
		}
		defer srv.Close()
	}
	log.Info("node ready", "protocol", spec.Protocol, "peer_addr", r.PeerAddr(), "client_addr", r.ClientAddr(), "sync", policy)
	select {
	case <-ctx.Done():
		log.Info("stopping")
		return r.Stop()
	case <-r.Done():
		err := r.Err()
		_ = r.Stop()
		if err == nil {
			err = errors.New("replica stopped")
		}
		return err
	}
}

// logged says in the node's log what a process fault is about to do: after a crash the
// log's last line says why it ends, and a pause explains the gap in the timestamps.
func logged(p processControl, log *slog.Logger) processControl {
	crash, pause := p.crash, p.pause
	p.crash = func() {
		log.Warn("crashing on POST /admin/crash (SIGKILL to itself)")
		crash()
	}
	if pause != nil {
		p.pause = func(d time.Duration) (func(), error) {
			stop, err := pause(d)
			if err != nil {
				return nil, err
			}
			return func() {
				log.Warn("pausing on POST /admin/pause (SIGSTOP to itself)", "for", d)
				stop()
				log.Info("resumed after /admin/pause", "for", d)
			}, nil
		}
	}
	return p
}

func serveMetrics(o adminOptions, m *server.Metrics, r server.Replica, log *slog.Logger) (*http.Server, error) {
	addr, token, err := o.resolve()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		if err := m.Write(w); err != nil {
			log.Debug("metrics write", "err", err)
		}
	})
	if o.pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	addAdmin(mux, r, o.pprof, logged(selfControl, log))
	srv := &http.Server{Handler: guardAdmin(mux, token), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, nil
}
