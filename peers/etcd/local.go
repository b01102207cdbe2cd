package etcd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/cluster"
	"github.com/consensusbench/consensusbench/bench/nemesis"
	"github.com/consensusbench/consensusbench/server"
)

// Local cluster settings and limits.
const (
	// MemberBin is the member launcher's file name (peers/cmd/etcd-member).
	MemberBin = "etcd-member"
	// memberHelpMarker identifies the launcher in its --help output.
	memberHelpMarker = "runs one etcd member for consensusbench"
	// memberModule is the Go module whose cmd/etcd-member FindMember may build.
	memberModule = "github.com/consensusbench/consensusbench/peers"
	// memberLogLevel is every local member's etcd log level: start-up, elections, slow
	// requests and shutdown, which is what a kept log is for.
	memberLogLevel = "info"
	// buildTimeout bounds building the launcher: etcd's server is a large build, minutes on
	// a small host with a cold build cache.
	buildTimeout = 15 * time.Minute
	// statusTimeout bounds one member's Maintenance Status call (a paused member never
	// answers).
	statusTimeout = time.Second
	// metricsTimeout bounds one scrape of every member's /metrics.
	metricsTimeout = 2 * time.Second
	// metricLeaderChanges is etcd's leader-change counter in /metrics.
	metricLeaderChanges = "etcd_server_leader_changes_seen_total"
)

// memberBinary is the launcher FindMember looks for.
var memberBinary = cluster.Binary{Name: MemberBin, HelpMarker: memberHelpMarker, Module: memberModule,
	Package: "./cmd/etcd-member", Build: buildTimeout, MakeTarget: "make build-peers"}

// FindMember returns the path of the etcd-member launcher (cluster.FindBinary): beside the
// running executable (bin/etcd-member next to bin/loadgen-peers, as `make build-peers` lays
// them out); on PATH, if its --help says it is this launcher; built with go build into
// buildDir when the working directory is inside the peers module (go test). The error lists
// what each step found.
func FindMember(ctx context.Context, buildDir string) (string, error) {
	p, err := cluster.FindBinary(ctx, memberBinary, buildDir)
	if err != nil {
		return "", fmt.Errorf("etcd: %w", err)
	}
	return p, nil
}

// memberArgs is member n's command line: its own addresses and data directory, and every
// member's peer address (the initial cluster, ignored by etcd once the data directory holds
// a member, so restarts reuse the same line).
func memberArgs(spec *server.ClusterSpec, n *cluster.Node) []string {
	var initial []string
	for _, m := range spec.Nodes {
		initial = append(initial, fmt.Sprintf("n%d=http://%s", m.ID, m.PeerAddr))
	}
	return []string{"--name", n.Name(), "--data-dir", n.DataDir, "--peer-addr", n.PeerAddr, "--client-addr", n.ClientAddr,
		"--metrics-addr", n.MetricsAddr, "--initial-cluster", strings.Join(initial, ","), "--log-level", memberLogLevel}
}

func endpoints(c *cluster.Cluster) []string {
	var eps []string
	for _, n := range c.Nodes {
		eps = append(eps, n.ClientAddr)
	}
	return eps
}

// startLocal starts spec.Local etcd members on loopback and returns once a write commits.
func startLocal(ctx context.Context, spec bench.Spec) (bench.Target, error) {
	binDir, err := os.MkdirTemp("", "consensusbench-etcd-bin-*")
	if err != nil {
		return nil, err
	}
	bin, err := FindMember(ctx, binDir)
	if err != nil {
		os.RemoveAll(binDir)
		return nil, err
	}
	c, err := cluster.Start(ctx, cluster.Config{Protocol: "raft", Nodes: spec.Local, Sync: "always", Dir: spec.DataDir,
		NodeBin: bin, Command: memberArgs,
		Ready: func(ctx context.Context, c *cluster.Cluster) error {
			t, err := newTarget(endpoints(c), ReadsLinearizable, nil)
			if err != nil {
				return err
			}
			defer t.Close()
			return t.probe(ctx)
		}})
	if err != nil {
		os.RemoveAll(binDir)
		return nil, err
	}
	t, err := newTarget(endpoints(c), spec.Reads, map[string]string{"sync": "always (etcd fsyncs its WAL before acknowledging)",
		"local": strconv.Itoa(spec.Local)})
	if err != nil {
		_, _ = c.Stop(true)
		os.RemoveAll(binDir)
		return nil, err
	}
	t.version = t.serverVersion(ctx)
	l := &localTarget{Target: t, c: c, binDir: binDir}
	l.members = &members{Procs: c.Nemesis(), c: c}
	return l, nil
}

// localTarget is the client Target plus the member processes it drives. It reports their
// CPU time, leader changes and data directory, drives faults, and keeps the member logs
// when the run failed.
type localTarget struct {
	*Target
	c       *cluster.Cluster
	members *members
	binDir  string
	failed  bool
	kept    string
}

// NodeCPUSeconds implements bench.CPUReporter (from /proc/<pid>/stat, as for our nodes).
func (l *localTarget) NodeCPUSeconds() (map[string]float64, error) { return l.c.NodeCPUSeconds() }

// DataDir implements bench.DataDirReporter: the run directory holding every member's data.
func (l *localTarget) DataDir() string { return l.c.Dir }

// Failed marks the run as failed: Close then keeps the member logs.
func (l *localTarget) Failed() { l.failed = true }

// Kept names the directory holding the member logs after Close ("" when removed).
func (l *localTarget) Kept() string { return l.kept }

// Close stops the members (SIGTERM, bounded wait, SIGKILL) and removes the run directory
// unless the run failed or a member misbehaved.
func (l *localTarget) Close() error {
	err := errors.Join(l.Target.Close(), l.members.close())
	kept, serr := l.c.Stop(l.failed)
	l.kept = kept
	return errors.Join(err, serr, os.RemoveAll(l.binDir))
}

// NodeEvents implements bench.EventReporter with etcd's leader-change counter from each
// running member's /metrics (etcd exports no election counter).
func (l *localTarget) NodeEvents() (map[string]map[string]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), metricsTimeout)
	defer cancel()
	out := map[string]map[string]int64{}
	var errs []error
	for _, n := range l.c.Nodes {
		if done, _ := n.Exited(); done {
			continue
		}
		v, err := scrapeCounter(ctx, "http://"+n.MetricsAddr+"/metrics", metricLeaderChanges)
		if err != nil {
			errs = append(errs, fmt.Errorf("etcd: member %s: %w", n.Name(), err))
			continue
		}
		out[n.Name()] = map[string]int64{"leader_changes": v}
	}
	return out, errors.Join(errs...)
}

// scrapeCounter reads one unlabelled counter from a Prometheus text page (0 when absent).
func scrapeCounter(ctx context.Context, url, name string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || k != name {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q: %w", url, sc.Text(), err)
		}
		return int64(f), nil
	}
	return 0, sc.Err()
}

// Nemesis returns the members as fault injection drives them (loadgen's faultTarget).
func (l *localTarget) Nemesis() nemesis.Cluster { return l.members }

// ReadBack returns a fresh client Target (linearizable reads) once the restarted members
// commit a write again: the durability check reads every acknowledged write back through it.
func (l *localTarget) ReadBack(ctx context.Context) (bench.Target, error) {
	t, err := newTarget(endpoints(l.c), ReadsLinearizable, nil)
	if err != nil {
		return nil, err
	}
	if err := t.probeOrClose(ctx); err != nil {
		return nil, fmt.Errorf("etcd: the restarted cluster did not commit a write: %w", err)
	}
	return t, nil
}

// members is a local etcd cluster as bench/nemesis drives it: processes killed, restarted,
// paused and resumed by bench/cluster, the leader found through each member's Maintenance
// Status, leadership moved with MoveLeader. etcd has no way to drop one peer's traffic, so
// partitions are unsupported (loadgen refuses them before the run: System.NoFaults).
type members struct {
	*nemesis.Procs
	c *cluster.Cluster

	mu    sync.Mutex
	admin *clientv3.Client  // for Status and MemberList; created on first use
	ids   map[uint64]uint64 // etcd member ID -> node ID
}

func (m *members) client() (*clientv3.Client, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.admin == nil {
		c, err := clientv3.New(clientv3.Config{Endpoints: endpoints(m.c), DialTimeout: dialTimeout, Logger: zap.NewNop()})
		if err != nil {
			return nil, err
		}
		m.admin = c
	}
	return m.admin, nil
}

func (m *members) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.admin == nil {
		return nil
	}
	err := m.admin.Close()
	m.admin = nil
	return err
}

// nodeOf maps an etcd member ID to the node ID (member "n3" is node 3; 0 for member 0, no
// leader). Member IDs survive restarts (they live in the data directory), so the list is
// fetched once, and again only for an ID it lacks.
func (m *members) nodeOf(ctx context.Context, member uint64) (uint64, error) {
	m.mu.Lock()
	id, ok := m.ids[member]
	m.mu.Unlock()
	if ok || member == 0 {
		return id, nil
	}
	if err := m.list(ctx); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ids[member], nil
}

// memberOf maps a node ID to its etcd member ID.
func (m *members) memberOf(ctx context.Context, id uint64) (uint64, error) {
	if err := m.list(ctx); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for member, n := range m.ids {
		if n == id {
			return member, nil
		}
	}
	return 0, fmt.Errorf("etcd: no member for node %d", id)
}

// list reads the member list into ids.
func (m *members) list(ctx context.Context) error {
	c, err := m.client()
	if err != nil {
		return err
	}
	resp, err := c.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("etcd: member list: %w", err)
	}
	ids := map[uint64]uint64{}
	for _, mb := range resp.Members {
		if n, err := strconv.ParseUint(strings.TrimPrefix(mb.Name, "n"), 10, 64); err == nil {
			ids[mb.ID] = n
		}
	}
	m.mu.Lock()
	m.ids = ids
	m.mu.Unlock()
	return nil
}

func (m *members) node(id uint64) (*cluster.Node, error) {
	for _, n := range m.c.Nodes {
		if n.ID == id {
			return n, nil
		}
	}
	return nil, fmt.Errorf("etcd: no node %d", id)
}

// Status implements nemesis.Cluster through etcd's Maintenance Status on member id.
func (m *members) Status(ctx context.Context, id uint64) (server.ReplicaStatus, error) {
	st := server.ReplicaStatus{ID: id, Protocol: "raft", Sync: "always", Reads: ReadsLinearizable, PeerAuth: "none"}
	n, err := m.node(id)
	if err != nil {
		return st, err
	}
	c, err := m.client()
	if err != nil {
		return st, err
	}
	sctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	resp, err := c.Status(sctx, n.ClientAddr)
	if err != nil {
		return st, fmt.Errorf("etcd: member n%d status: %w", id, err)
	}
	leader, err := m.nodeOf(sctx, resp.Leader)
	if err != nil {
		return st, err
	}
	st.Leader, st.Term, st.Applied = leader, resp.RaftTerm, resp.RaftAppliedIndex
	st.Role = "follower"
	if resp.Leader != 0 && resp.Leader == resp.Header.GetMemberId() {
		st.Role = "leader"
	}
	return st, nil
}

// Isolate implements nemesis.Cluster: unsupported (etcd cannot drop a peer's traffic).
func (m *members) Isolate(context.Context, uint64) error { return nemesis.ErrUnsupported }

// Heal implements nemesis.Cluster: unsupported, as Isolate.
func (m *members) Heal(context.Context, uint64) error { return nemesis.ErrUnsupported }

// TransferLeader implements nemesis.Cluster with MoveLeader sent to the leader itself.
func (m *members) TransferLeader(ctx context.Context, from, to uint64) error {
	n, err := m.node(from)
	if err != nil {
		return err
	}
	target, err := m.memberOf(ctx, to)
	if err != nil {
		return err
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{n.ClientAddr}, DialTimeout: dialTimeout, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.MoveLeader(ctx, target); err != nil {
		return fmt.Errorf("etcd: moving leadership from n%d to n%d: %w", from, to, err)
	}
	return nil
}
