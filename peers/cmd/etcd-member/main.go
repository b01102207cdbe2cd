package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/api/v3/version"
	"go.etcd.io/etcd/server/v3/embed"
)

// startTimeout bounds how long the member waits to join its cluster (a quorum of the
// initial members must be up) before it gives up.
const startTimeout = 60 * time.Second

type flags struct {
	name, dataDir           string
	peerAddr, clientAddr    string
	metricsAddr             string
	initialCluster, token   string
	logLevel                string
	snapshotCount           uint64
	quotaBytes              int64
	heartbeatMs, electionMs uint
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "etcd-member: "+err.Error())
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError marks a mistake on the command line; main exits 2 for it.
type usageError struct{ error }

func run(args []string) error {
	var f flags
	fs := pflag.NewFlagSet("etcd-member", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.StringVar(&f.name, "name", "", "member name, as in --initial-cluster (required)")
	fs.StringVar(&f.dataDir, "data-dir", "", "member data directory (required; an existing one is recovered)")
	fs.StringVar(&f.peerAddr, "peer-addr", "", "host:port for peer traffic (required)")
	fs.StringVar(&f.clientAddr, "client-addr", "", "host:port for client (gRPC) traffic (required)")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "host:port for /metrics and /health (default: served on the client address)")
	fs.StringVar(&f.initialCluster, "initial-cluster", "", "every member as name=http://host:port,... (peer addresses; required)")
	fs.StringVar(&f.token, "initial-cluster-token", "consensusbench-etcd", "cluster token (members of one cluster share it)")
	fs.StringVar(&f.logLevel, "log-level", "info", "etcd's log level: debug, info, warn or error")
	d := embed.NewConfig()
	fs.Uint64Var(&f.snapshotCount, "snapshot-count", d.SnapshotCount, "committed entries between snapshots (etcd's default)")
	fs.Int64Var(&f.quotaBytes, "quota-backend-bytes", d.QuotaBackendBytes, "backend size quota in bytes (0: etcd's default, 2 GiB)")
	fs.UintVar(&f.heartbeatMs, "heartbeat-interval", d.TickMs, "raft heartbeat interval in ms (etcd's default)")
	fs.UintVar(&f.electionMs, "election-timeout", d.ElectionMs, "raft election timeout in ms (etcd's default)")
	fs.Usage = func() {
		// The first line is what loadgen looks for to recognise this launcher.
		fmt.Fprintf(os.Stderr, "etcd-member runs one etcd member for consensusbench (go.etcd.io/etcd/server/v3 %s)\nusage: etcd-member --name N --data-dir D --peer-addr H:P --client-addr H:P --initial-cluster n1=http://H:P,...\n\n%s",
			"v"+version.Version, fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	cfg, err := f.config()
	if err != nil {
		return usageError{err}
	}

	// Ask for the signal before starting, so a SIGTERM that arrives during start-up stops
	// the member instead of killing the process half-way through.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return fmt.Errorf("etcd: %w", err)
	case s := <-sig:
		fmt.Fprintf(os.Stderr, "etcd-member: %v during start-up, stopping\n", s)
		return nil
	case <-time.After(startTimeout):
		e.Server.Stop()
		return fmt.Errorf("member %s did not join its cluster within %v", f.name, startTimeout)
	}
	fmt.Fprintf(os.Stderr, "etcd-member: %s ready, serving clients on %s\n", f.name, f.clientAddr)
	select {
	case err := <-e.Err():
		return fmt.Errorf("etcd: %w", err)
	case s := <-sig:
		fmt.Fprintf(os.Stderr, "etcd-member: %v, stopping\n", s)
		return nil // the deferred Close stops the server and waits for it
	}
}

// config checks the flags and builds etcd's configuration.
func (f *flags) config() (*embed.Config, error) {
	for _, req := range []struct{ name, v string }{{"--name", f.name}, {"--data-dir", f.dataDir},
		{"--peer-addr", f.peerAddr}, {"--client-addr", f.clientAddr}, {"--initial-cluster", f.initialCluster}} {
		if req.v == "" {
			return nil, fmt.Errorf("%s is required", req.name)
		}
	}
	switch f.logLevel {
	case "debug", "info", "warn", "error":
	default:
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", f.logLevel)
	}
	if !strings.Contains(f.initialCluster, f.name+"=") {
		return nil, fmt.Errorf("--initial-cluster %q does not list member %q", f.initialCluster, f.name)
	}
	peer, err := httpURL("--peer-addr", f.peerAddr)
	if err != nil {
		return nil, err
	}
	client, err := httpURL("--client-addr", f.clientAddr)
	if err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = f.name, f.dataDir
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	if f.metricsAddr != "" {
		m, err := httpURL("--metrics-addr", f.metricsAddr)
		if err != nil {
			return nil, err
		}
		cfg.ListenMetricsUrls = []url.URL{m}
	}
	cfg.InitialCluster, cfg.InitialClusterToken = f.initialCluster, f.token
	cfg.ClusterState = embed.ClusterStateFlagNew // ignored once the data directory holds a member
	cfg.LogLevel = f.logLevel
	cfg.LogOutputs = []string{"stderr"}
	cfg.SnapshotCount, cfg.QuotaBackendBytes = f.snapshotCount, f.quotaBytes
	cfg.TickMs, cfg.ElectionMs = f.heartbeatMs, f.electionMs
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func httpURL(flag, addr string) (url.URL, error) {
	u, err := url.Parse("http://" + addr)
	if err != nil || u.Port() == "" || u.Path != "" {
		return url.URL{}, fmt.Errorf("%s %q: want host:port", flag, addr)
	}
	return *u, nil
}
