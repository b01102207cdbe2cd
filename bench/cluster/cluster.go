package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/consensusbench/consensusbench/bench/report"
	"github.com/consensusbench/consensusbench/server"
)

// Defaults and limits.
const (
	// DefaultStartTimeout bounds Start: processes up, client ports accepting, probe passed.
	DefaultStartTimeout = 30 * time.Second
	// DefaultStopTimeout bounds the wait after SIGTERM before stragglers get SIGKILL.
	DefaultStopTimeout = 10 * time.Second
	// MaxNodes mirrors the cluster spec's limit.
	MaxNodes = server.MaxNodes
	// startAttempts bounds how often Start picks fresh ports when a node could not bind its
	// port (another process took it between our probe and the node's listen).
	startAttempts = 3
	// pollInterval is how often Start re-dials a client port that does not accept yet.
	pollInterval = 20 * time.Millisecond
	// logTailBytes is how much of a failed node's log an error quotes.
	logTailBytes = 2048
)

// Config describes a local cluster.
type Config struct {
	// Protocol is "raft" or "pbft".
	Protocol string
	// Nodes is the replica count (PBFT needs at least 4).
	Nodes int
	// Sync is the WAL policy passed to every node: "always" or "none" ("" means none).
	Sync string
	// Dir is the run directory (spec, node data, logs). Empty: a new temporary directory,
	// removed by Stop unless the run failed. A given Dir is never removed.
	Dir string
	// NodeBin is the node executable (see FindNode). Required.
	NodeBin string
	// Template, when set, supplies the protocol settings (its nodes are replaced).
	Template *server.ClusterSpec
	// LogLevel is each node's --log-level ("" means info).
	LogLevel string
	// NodeArgs, when set, returns extra flags for node id (e.g. --byzantine MODE).
	NodeArgs func(id uint64) []string
	// UnauthenticatedPeers runs the nodes without a cluster secret (on loopback they need no
	// --insecure-peers); by default they share a random one (--peer-secret-file), as a real
	// deployment should.
	UnauthenticatedPeers bool
	// NodeProcs, when positive, is every node process's GOMAXPROCS. By default each node
	// sizes its scheduler to every core of the host, which the other nodes and the load
	// generator share: on a small host their runtimes then hand goroutines between threads
	// (a futex wake and a context switch each) for parallelism nobody has.
	NodeProcs int
	// Command, when set, returns node n's command line (the arguments after NodeBin) in
	// place of cmd/node's flags: a peer system's member launcher (peers/cmd/etcd-member)
	// takes the addresses Start picked (spec lists every node's; n has its own, its data
	// directory and its MetricsAddr) instead of a cluster spec file. Sync, LogLevel, NodeArgs
	// and the peer secret are then the Command's business; Protocol and Nodes still shape
	// the node IDs and ports, and everything else (start, readiness, kill, restart, stop,
	// CPU) is the same.
	Command func(spec *server.ClusterSpec, n *Node) []string
	// StartTimeout and StopTimeout bound Start and Stop (0: the defaults).
	StartTimeout, StopTimeout time.Duration
	// Ready, when set, runs after every client port accepts, with Start's deadline in ctx;
	// Start fails if it does not return nil in time. A probe typically writes one key through
	// the real client, which proves a leader (or primary) is in place.
	Ready func(ctx context.Context, c *Cluster) error
}

func (c *Config) fill() error {
	switch c.Protocol {
	case "raft":
		if c.Nodes < 1 {
			return fmt.Errorf("cluster: raft needs at least 1 node, got %d", c.Nodes)
		}
	case "pbft":
		if c.Nodes < 4 {
			return fmt.Errorf("cluster: pbft needs at least 4 nodes (n = 3f+1), got %d", c.Nodes)
		}
	default:
		return fmt.Errorf("cluster: protocol %q: want raft or pbft", c.Protocol)
	}
	if c.Nodes > MaxNodes {
		return fmt.Errorf("cluster: %d nodes exceed MaxNodes=%d", c.Nodes, MaxNodes)
	}
	switch c.Sync {
	case "":
		c.Sync = "none"
	case "none", "always":
	default:
		return fmt.Errorf("cluster: sync %q: want always or none", c.Sync)
	}
	if c.NodeBin == "" {
		return errors.New("cluster: NodeBin is required (see FindNode)")
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	return nil
}

// Node is one replica process.
type Node struct {
	ID         uint64
	PeerAddr   string
	ClientAddr string
	DataDir    string
	LogPath    string
	// MetricsAddr is the node's --metrics-addr: Prometheus /metrics and the /admin/
	// endpoints (status, partitions, leader transfer) the fault injection uses.
	MetricsAddr string

	args []string // the node's command line, for restarts
	env  []string // the node's environment (nil: loadgen's own)
	// mu guards the process fields, which Kill and Restart replace while others read them.
	mu     sync.Mutex
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{} // closed when the process has been reaped
	err    error         // its exit status, valid after exited is closed
	killed bool          // killed on purpose (fault injection) and not restarted
}

// Name is how the node appears in results ("n1").
func (n *Node) Name() string { return fmt.Sprintf("n%d", n.ID) }

// PID is the node's process ID.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd.Process.Pid
}

// Exited reports whether the process has ended, and how.
func (n *Node) Exited() (bool, error) {
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	select {
	case <-exited:
		n.mu.Lock()
		defer n.mu.Unlock()
		return true, n.err
	default:
		return false, nil
	}
}

// Killed reports whether the node was killed on purpose (Cluster.Kill) and not restarted.
func (n *Node) Killed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.killed
}

// Cluster is a running local cluster. Its methods are safe for concurrent use.
type Cluster struct {
	Spec     *server.ClusterSpec
	SpecPath string
	Dir      string
	Nodes    []*Node

	cfg      Config
	faultMu  sync.Mutex // serializes Kill, Restart and stop
	tempDir  bool
	stopOnce sync.Once
	stopErr  error
	kept     string
	stopping chan struct{}
	// secretPath is the cluster secret file the nodes share ("" without one).
	secretPath string
}

// Start writes the spec, starts every node and waits until the cluster serves. On error
// nothing is left running; the run directory is kept and the error names it.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	dir, temp := cfg.Dir, false
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "consensusbench-local-*"); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		temp = true
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	var lastErr error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		c, retry, err := start(ctx, cfg, dir, temp, attempt)
		if err == nil {
			return c, nil
		}
		lastErr = err
		if !retry || ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("%w (node logs kept in %s)", lastErr, dir)
}

// start makes one attempt. retry is true when a node failed to bind its address, which a
// fresh set of ports may fix.
func start(ctx context.Context, cfg Config, dir string, temp bool, attempt int) (c *Cluster, retry bool, err error) {
	spec, err := localSpec(cfg)
	if err != nil {
		return nil, false, err
	}
	b, err := spec.Marshal()
	if err != nil {
		return nil, false, err
	}
	c = &Cluster{Spec: spec, SpecPath: filepath.Join(dir, "cluster.json"), Dir: dir, cfg: cfg, tempDir: temp,
		stopping: make(chan struct{})}
	if err := os.WriteFile(c.SpecPath, b, 0o644); err != nil {
		return nil, false, fmt.Errorf("cluster: %w", err)
	}
	if !cfg.UnauthenticatedPeers && cfg.Command == nil {
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, false, fmt.Errorf("cluster: %w", err)
		}
		c.secretPath = filepath.Join(dir, "peer.secret")
		if err := os.WriteFile(c.secretPath, []byte(hex.EncodeToString(secret)), 0o600); err != nil {
			return nil, false, fmt.Errorf("cluster: %w", err)
		}
	}
	for _, ns := range spec.Nodes {
		n, err := c.spawn(ns, attempt > 1)
		if err != nil {
			_ = c.stop()
			return nil, false, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	if err := c.waitServing(ctx); err != nil {
		_ = c.stop()
		return nil, c.bindFailed(), err
	}
	if cfg.Ready != nil {
		if err := cfg.Ready(ctx, c); err != nil {
			dead := c.deadNodes()
			_ = c.stop()
			if dead != nil {
				return nil, c.bindFailed(), dead
			}
			return nil, false, fmt.Errorf("cluster: %d %s nodes started but the readiness probe failed within %v: %w",
				cfg.Nodes, cfg.Protocol, cfg.StartTimeout, err)
		}
	}
	return c, false, nil
}

// localSpec builds the spec with free loopback ports, and picks each node's metrics (admin)
// address. The ports are held open together while being picked, so they are distinct;
// another process could still take one before the node binds it, which Start handles by
// retrying.
func localSpec(cfg Config) (*server.ClusterSpec, error) {
	spec := server.LocalClusterSpec(cfg.Protocol, cfg.Nodes, 0)
	if cfg.Template != nil {
		s := *cfg.Template
		s.Protocol, s.Nodes = cfg.Protocol, spec.Nodes
		spec = &s
	}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	addr := func() (string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("cluster: picking a free port: %w", err)
		}
		lns = append(lns, ln)
		return ln.Addr().String(), nil
	}
	for i := range spec.Nodes {
		var err error
		if spec.Nodes[i].PeerAddr, err = addr(); err != nil {
			return nil, err
		}
		if spec.Nodes[i].ClientAddr, err = addr(); err != nil {
			return nil, err
		}
		// In the spec file, so that loadgen --cluster on a kept run finds the nodes' admin
		// endpoints (remote faults, leader-change counters).
		if spec.Nodes[i].MetricsAddr, err = addr(); err != nil {
			return nil, err
		}
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return spec, nil
}

func (c *Cluster) spawn(ns server.NodeSpec, retry bool) (*Node, error) {
	n := &Node{ID: ns.ID, PeerAddr: ns.PeerAddr, ClientAddr: ns.ClientAddr, MetricsAddr: ns.MetricsAddr,
		DataDir: filepath.Join(c.Dir, fmt.Sprintf("node-%d", ns.ID)),
		LogPath: filepath.Join(c.Dir, fmt.Sprintf("node-%d.log", ns.ID)), exited: make(chan struct{})}
	if retry {
		// This attempt's own leftovers from the failed one before: start empty again.
		if err := os.RemoveAll(n.DataDir); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	} else if ents, err := os.ReadDir(n.DataDir); err == nil && len(ents) > 0 {
		// A benchmark starts from empty replicas; old data would be recovered and change the
		// run. Refuse rather than delete what the caller may want to keep.
		return nil, fmt.Errorf("cluster: %s is not empty: give an empty or new run directory", n.DataDir)
	}
	if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	// --init: the directory is new (checked above). Restarts reuse these arguments; on a
	// stamped directory --init changes nothing.
	n.args = []string{"--cluster", c.SpecPath, "--id", fmt.Sprint(ns.ID), "--init",
		"--data-dir", n.DataDir, "--sync", c.cfg.Sync, "--log-level", c.cfg.LogLevel, "--metrics-addr", ns.MetricsAddr}
	if c.secretPath != "" {
		n.args = append(n.args, "--peer-secret-file", c.secretPath)
	}
	if c.cfg.NodeArgs != nil {
		n.args = append(n.args, c.cfg.NodeArgs(ns.ID)...)
	}
	if c.cfg.Command != nil {
		n.args = c.cfg.Command(c.Spec, n)
	}
	if c.cfg.NodeProcs > 0 {
		n.env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", c.cfg.NodeProcs))
	}
	if err := n.launch(c.cfg.NodeBin, os.O_TRUNC); err != nil {
		return nil, err
	}
	return n, nil
}

// launch starts the node process with its log opened with flag (O_TRUNC at first, O_APPEND
// on a restart, so the log tells the node's whole story).
func (n *Node) launch(bin string, flag int) error {
	f, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|flag, 0o644)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	cmd := exec.Command(bin, n.args...)
	cmd.Env = n.env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("cluster: starting node %d (%s): %w", n.ID, bin, err)
	}
	exited := make(chan struct{})
	n.mu.Lock()
	n.cmd, n.log, n.exited, n.err = cmd, f, exited, nil
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		f.Close()
		n.mu.Lock()
		n.err = err
		n.mu.Unlock()
		close(exited)
	}()
	return nil
}

// waitServing waits until every node's client port accepts a connection, failing early
// when a node exits and naming the nodes that did not come up.
func (c *Cluster) waitServing(ctx context.Context) error {
	up := make([]bool, len(c.Nodes))
	var d net.Dialer
	for {
		all := true
		for i, n := range c.Nodes {
			if up[i] {
				continue
			}
			if done, err := n.Exited(); done {
				return fmt.Errorf("cluster: node %d exited during start-up (%v); its log %s ends:\n%s",
					n.ID, err, n.LogPath, tail(n.LogPath))
			}
			dctx, cancel := context.WithTimeout(ctx, pollInterval*5)
			conn, err := d.DialContext(dctx, "tcp", n.ClientAddr)
			cancel()
			if err == nil {
				conn.Close()
				up[i] = true
				continue
			}
			all = false
		}
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			var down []string
			for i, n := range c.Nodes {
				if !up[i] {
					down = append(down, fmt.Sprintf("node %d (client %s, log %s)", n.ID, n.ClientAddr, n.LogPath))
				}
			}
			return fmt.Errorf("cluster: not serving after %v: %s: %w", c.cfg.StartTimeout, strings.Join(down, ", "), ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// deadNodes names the nodes that have exited, or returns nil.
func (c *Cluster) deadNodes() error {
	var errs []error
	for _, n := range c.Nodes {
		if done, err := n.Exited(); done && !n.Killed() {
			errs = append(errs, fmt.Errorf("cluster: node %d exited (%v); its log %s ends:\n%s", n.ID, err, n.LogPath, tail(n.LogPath)))
		}
	}
	return errors.Join(errs...)
}

// bindFailed reports whether some node's log says its address was taken.
func (c *Cluster) bindFailed() bool {
	for _, n := range c.Nodes {
		if done, _ := n.Exited(); done {
			if b, err := os.ReadFile(n.LogPath); err == nil && bytes.Contains(b, []byte("address already in use")) {
				return true
			}
		}
	}
	return false
}

// tail returns the end of a log file for an error message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
	}
	return strings.TrimRight(string(b), "\n")
}

// Unexpected returns an error naming every node that exited while the cluster was meant to
// be running (before Stop), or nil.
func (c *Cluster) Unexpected() error {
	select {
	case <-c.stopping:
		return nil
	default:
	}
	return c.deadNodes()
}

// NodeCPUSeconds returns each running node's cumulative CPU seconds (user + system), keyed
// by Node.Name. It implements bench.CPUReporter.
func (c *Cluster) NodeCPUSeconds() (map[string]float64, error) {
	m := make(map[string]float64, len(c.Nodes))
	var errs []error
	for _, n := range c.Nodes {
		if done, _ := n.Exited(); done {
			if !n.Killed() { // a node killed on purpose has no CPU time to report
				errs = append(errs, fmt.Errorf("cluster: node %d is not running", n.ID))
			}
			continue
		}
		s, err := report.PIDCPUSeconds(n.PID())
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster: node %d: %w", n.ID, err))
			continue
		}
		m[n.Name()] = s
	}
	return m, errors.Join(errs...)
}

// ClientAddrs returns every node's ID and client address, in ID order.
func (c *Cluster) ClientAddrs() []server.NodeSpec {
	out := make([]server.NodeSpec, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = server.NodeSpec{ID: n.ID, PeerAddr: n.PeerAddr, ClientAddr: n.ClientAddr}
	}
	return out
}

// Stop ends every node (SIGTERM, then SIGKILL after StopTimeout). A temporary run
// directory is removed unless failed is set, a node exited before Stop, or a node had to be
// killed or stopped with an error; kept then names the directory holding the logs (a Dir the
// caller gave is always kept and named). Only the first call acts; later calls repeat its
// answer.
func (c *Cluster) Stop(failed bool) (kept string, err error) {
	c.stopOnce.Do(func() {
		c.stopErr = errors.Join(c.Unexpected(), c.stop())
		if c.tempDir && !failed && c.stopErr == nil {
			if err := os.RemoveAll(c.Dir); err != nil {
				c.stopErr, c.kept = err, c.Dir
			}
			return
		}
		c.kept = c.Dir
		if c.tempDir {
			ReleasePreallocation(c.Dir) // keep the logs and data, not 64 MiB of zeros per node
		}
	})
	return c.kept, c.stopErr
}

// stop signals and reaps every node within StopTimeout, killing stragglers.
func (c *Cluster) stop() error {
	select {
	case <-c.stopping:
	default:
		close(c.stopping)
	}
	c.faultMu.Lock() // no Kill or Restart while stopping
	defer c.faultMu.Unlock()
	for _, n := range c.Nodes {
		if done, _ := n.Exited(); !done {
			p := n.process()
			_ = p.Signal(syscall.SIGCONT) // a paused node must be able to act on SIGTERM
			_ = p.Signal(syscall.SIGTERM)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.StopTimeout)
	defer cancel()
	var errs []error
	for _, n := range c.Nodes {
		n.mu.Lock()
		exited := n.exited
		n.mu.Unlock()
		select {
		case <-exited:
		case <-ctx.Done():
		}
		done, err := n.Exited()
		if !done {
			_ = n.process().Kill()
			<-exited
			errs = append(errs, fmt.Errorf("cluster: node %d did not stop within %v of SIGTERM and was killed (log %s)", n.ID, c.cfg.StopTimeout, n.LogPath))
			continue
		}
		if err != nil && !isSignalExit(err, syscall.SIGTERM) && !n.Killed() {
			errs = append(errs, fmt.Errorf("cluster: node %d stopped with %v (log %s)", n.ID, err, n.LogPath))
		}
	}
	return errors.Join(errs...)
}

// isSignalExit reports whether err is a process ended by sig.
func isSignalExit(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}
