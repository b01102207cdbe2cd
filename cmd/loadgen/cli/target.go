package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/adapter"
	"github.com/consensusbench/consensusbench/bench/cluster"
	"github.com/consensusbench/consensusbench/bench/load"
	"github.com/consensusbench/consensusbench/client"
	"github.com/consensusbench/consensusbench/kv"
	"github.com/consensusbench/consensusbench/server"
)

// openTarget is the production bench.Opener: it connects to the cluster that spec names
// (--targets, --cluster) or spawns one (--local).
//
// --targets lists client addresses; the nodes get IDs 1..N in that order (PBFT replica i is
// node i+1, so list them in replica order). --cluster reads a cluster spec file and uses each
// node's ID and client_addr. --local N starts N node processes on loopback (see openLocal).
func openTarget(ctx context.Context, spec bench.Spec) (bench.Target, error) {
	if err := adapter.Check(spec.Protocol); err != nil {
		return nil, err
	}
	var nodes []client.Node
	switch {
	case spec.Local > 0:
		return openLocal(ctx, spec)
	case spec.ClusterFile != "":
		cs, err := server.LoadClusterSpec(spec.ClusterFile)
		if err != nil {
			return nil, err
		}
		if cs.Protocol != spec.Protocol {
			return nil, usagef("--protocol %s, but the cluster spec %s says %s", spec.Protocol, spec.ClusterFile, cs.Protocol)
		}
		admin := true
		for _, n := range cs.Nodes {
			nodes = append(nodes, client.Node{ID: n.ID, Addr: n.ClientAddr})
			admin = admin && n.MetricsAddr != ""
		}
		cfg := adapter.Config{Protocol: spec.Protocol, Nodes: nodes, PBFT: pbftOf(cs), AttemptTimeout: spec.AttemptTimeout}
		t, err := openRemote(ctx, cfg)
		if err != nil || !admin {
			return t, err
		}
		return &adminTarget{Target: t.(*adapter.Target), spec: cs, cfg: cfg}, nil
	default:
		for i, a := range spec.Targets {
			nodes = append(nodes, client.Node{ID: uint64(i + 1), Addr: a})
		}
		return openRemote(ctx, adapter.Config{Protocol: spec.Protocol, Nodes: nodes, AttemptTimeout: spec.AttemptTimeout})
	}
}

// remoteReadyTimeout bounds the check that a cluster loadgen did not start can commit (a
// variable so that tests of the failure wait less).
var remoteReadyTimeout = 10 * time.Second

// openRemote opens a cluster started elsewhere, after checking that it commits a write, so
// a run never measures a cluster that cannot serve (seconds of 0 ops/s, then latencies of
// the client's retries). On failure the error names every address that refused or did
// not answer a connection, and otherwise says what else to check.
func openRemote(ctx context.Context, cfg adapter.Config) (bench.Target, error) {
	t, err := adapter.Open(cfg)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, remoteReadyTimeout)
	defer cancel()
	if perr := adapter.Probe(pctx, cfg); perr != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var down []string
		for _, n := range cfg.Nodes {
			c, err := net.DialTimeout("tcp", n.Addr, time.Second)
			if err != nil {
				down = append(down, fmt.Sprintf("node %d (%s): %v", n.ID, n.Addr, err))
				continue
			}
			c.Close()
		}
		hint := fmt.Sprintf("every address accepts connections: check that the nodes run %s (--protocol) and that a majority of them is up and connected", cfg.Protocol)
		if len(down) > 0 {
			hint = "not reachable: " + strings.Join(down, "; ")
		}
		return nil, fmt.Errorf("the cluster did not commit a probe write within %v (%v); %s", remoteReadyTimeout, perr, hint)
	}
	return t, nil
}

// pbftOf is what a PBFT client must share with the replicas of cs.
func pbftOf(cs *server.ClusterSpec) adapter.PBFTConfig {
	return adapter.PBFTConfig{KeySeed: cs.PBFT.KeySeed, MaxClients: cs.PBFT.MaxClients, SignAll: cs.PBFT.Auth == "sign"}
}

// Local cluster settings.
const (
	// localLogLevel is every local node's --log-level: start-up, elections and shutdown,
	// which is what a kept log is for.
	localLogLevel = "info"
)

// openLocal starts spec.Local node processes on loopback and returns once a write through
// the client succeeds (a leader is elected). The node binary is, in this order: `node`
// beside the loadgen executable (bin/ after `make build`), `node` on PATH if it is
// consensusbench's, or built with `go build ./cmd/node` into a temporary directory when
// loadgen runs inside the consensusbench module (go run, go test).
func openLocal(ctx context.Context, spec bench.Spec) (bench.Target, error) {
	return openLocalWith(ctx, spec, localExtras{})
}

// localExtras are local-cluster settings beyond bench.Spec: extra node flags (--byzantine)
// and what to record about them in the result's cluster info.
type localExtras struct {
	nodeArgs  func(id uint64) []string
	template  *server.ClusterSpec
	info      map[string]string
	insecure  bool   // peers without a cluster secret
	nodeProcs int    // every node's GOMAXPROCS (0: its default)
	logLevel  string // every node's --log-level ("": localLogLevel)
}

// raftReadsExtras sets the spec's raft.reads.
func raftReadsExtras(x localExtras, nodes int, reads string) localExtras {
	x.template = server.LocalClusterSpec("raft", nodes, 0)
	x.template.Raft.Reads = reads
	info := map[string]string{"raft_reads": reads}
	for k, v := range x.info {
		info[k] = v
	}
	x.info = info
	return x
}

// byzantineExtras starts nodes ids with node --byzantine mode.
func byzantineExtras(mode string, ids []uint) localExtras {
	set := map[uint64]bool{}
	for _, id := range ids {
		set[uint64(id)] = true
	}
	return localExtras{
		nodeArgs: func(id uint64) []string {
			if set[id] {
				return []string{"--byzantine", mode}
			}
			return nil
		},
		info: map[string]string{"byzantine": fmt.Sprintf("%s on nodes %v", mode, ids)},
	}
}

func openLocalWith(ctx context.Context, spec bench.Spec, x localExtras) (bench.Target, error) {
	binDir, err := os.MkdirTemp("", "consensusbench-bin-*")
	if err != nil {
		return nil, err
	}
	bin, err := cluster.FindNode(ctx, binDir)
	if err != nil {
		os.RemoveAll(binDir)
		return nil, err
	}
	logLevel := x.logLevel
	if logLevel == "" {
		logLevel = localLogLevel
	}
	c, err := cluster.Start(ctx, cluster.Config{Protocol: spec.Protocol, Nodes: spec.Local, Sync: spec.Sync,
		Dir: spec.DataDir, NodeBin: bin, LogLevel: logLevel, NodeArgs: x.nodeArgs, Template: x.template,
		UnauthenticatedPeers: x.insecure, NodeProcs: x.nodeProcs,
		Ready: func(ctx context.Context, c *cluster.Cluster) error {
			return adapter.Probe(ctx, adapter.Config{Protocol: spec.Protocol, Nodes: clientNodes(c), PBFT: pbftOf(c.Spec)})
		}})
	if err != nil {
		os.RemoveAll(binDir)
		return nil, err
	}
	sync := spec.Sync
	if sync == "" {
		sync = "none"
	}
	// Peer authentication is a handshake per connection, nothing per message, so it is a
	// recorded fact of the run rather than part of its identity (results/bench/README.md
	// measures that it costs nothing in steady state).
	peerAuth := "secret"
	if x.insecure {
		peerAuth = "none"
	}
	info := map[string]string{"sync": sync, "local": strconv.Itoa(spec.Local), "peer_auth": peerAuth}
	if x.nodeProcs > 0 {
		info["node_procs"] = strconv.Itoa(x.nodeProcs) // in the identity: it changes the figures
	}
	for k, v := range x.info {
		info[k] = v
	}
	t, err := adapter.Open(adapter.Config{Protocol: spec.Protocol, Nodes: clientNodes(c), PBFT: pbftOf(c.Spec), Info: info,
		AttemptTimeout: spec.AttemptTimeout})
	if err != nil {
		_, _ = c.Stop(true)
		os.RemoveAll(binDir)
		return nil, err
	}
	return &localTarget{Target: t, c: c, binDir: binDir}, nil
}

func clientNodes(c *cluster.Cluster) []client.Node {
	var nodes []client.Node
	for _, n := range c.ClientAddrs() {
		nodes = append(nodes, client.Node{ID: n.ID, Addr: n.ClientAddr})
	}
	return nodes
}

// localTarget is the client adapter plus the processes it drives. It reports node CPU
// time and the data directory, and keeps the node logs when the run failed.
type localTarget struct {
	*adapter.Target
	c      *cluster.Cluster
	binDir string
	failed bool
	kept   string
}

func (l *localTarget) NodeCPUSeconds() (map[string]float64, error) { return l.c.NodeCPUSeconds() }

// NodeEvents is the local nodes' election, leader-change and view-change counters.
func (l *localTarget) NodeEvents() (map[string]map[string]int64, error) { return l.c.NodeEvents() }

// DataDir is the run directory that holds every node's data directory, so the fdatasync
// probe measures the disk the WALs are on.
func (l *localTarget) DataDir() string { return l.c.Dir }

// Failed marks the run as failed: Close then keeps the node logs.
func (l *localTarget) Failed() { l.failed = true }

// Kept names the directory that holds the node logs after Close, or "" when it was removed.
func (l *localTarget) Kept() string { return l.kept }

// Close stops the nodes (SIGTERM, bounded wait, SIGKILL) and removes the run directory
// unless the run failed or a node misbehaved.
func (l *localTarget) Close() error {
	kept, err := l.c.Stop(l.failed)
	l.kept = kept
	return errors.Join(l.Target.Close(), err, os.RemoveAll(l.binDir))
}

// warnSessionWindow says when a Raft client will keep more writes outstanding than the
// replicated store remembers per client (kv.SessionWindow sequence numbers): a batch retried
// after a redirect or timeout then lands too far behind and fails as session-expired.
func warnSessionWindow(w io.Writer, spec bench.Spec, cfg load.Config) {
	if spec.System != bench.SystemOurs || spec.Protocol != "raft" || cfg.Workload.ReadRatio >= 1 {
		return
	}
	if n := cfg.Pipeline * cfg.Batch; n > kv.SessionWindow {
		fmt.Fprintf(w, "loadgen: warning: --pipeline %d x --batch %d = %d ops outstanding per client exceeds the store's session window of %d: retried batches may fail (session-expired)\n",
			cfg.Pipeline, cfg.Batch, n, kv.SessionWindow)
	}
}

// pipeliner is a target that must know the pipeline depth before sessions open (PBFT
// sessions take one client identity per request in flight).
type pipeliner interface{ SetPipeline(int) }

// setConns makes the target's clients sessions share n connection sets (--conns); a
// target that cannot share refuses a nonzero n. Call it after SetPipeline.
func setConns(t bench.Target, n, clients int) error {
	if n == 0 {
		return nil
	}
	c, ok := t.(interface{ SetConns(n, clients int) error })
	if !ok {
		return usagef("--conns: this target cannot share connections")
	}
	if err := c.SetConns(n, clients); err != nil {
		return usagef("--conns: %v", err)
	}
	return nil
}

// closeTarget closes the target at the end of a command, telling it first whether the run
// failed (a local cluster then keeps its logs), and says where kept logs are. It returns
// the close error joined to runErr.
func closeTarget(t bench.Target, runErr error, failed bool, stderr io.Writer) error {
	if f, ok := t.(interface{ Failed() }); ok && (failed || runErr != nil) {
		f.Failed()
	}
	err := t.Close()
	if k, ok := t.(interface{ Kept() string }); ok && k.Kept() != "" && (failed || runErr != nil || err != nil) {
		fmt.Fprintf(stderr, "loadgen: node logs kept in %s\n", k.Kept())
	}
	if err != nil {
		err = fmt.Errorf("closing the cluster: %w", err)
	}
	return errors.Join(runErr, err)
}
