package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/consensusbench/consensusbench/bench/cluster"
	"github.com/consensusbench/consensusbench/bench/nemesis"
	"github.com/consensusbench/consensusbench/server"
)

// Ports every node listens on inside its own namespace (each namespace has its own ports,
// so every node uses the same ones).
const (
	PeerPort    = 7100
	ClientPort  = 7200
	MetricsPort = 7300
	// stopWait bounds the wait after SIGTERM before a node is killed.
	stopWait = 5 * time.Second
)

// ClusterSpec returns the cluster spec of n nodes at their namespace addresses.
func ClusterSpec(protocol string, n int) (*server.ClusterSpec, error) {
	spec := server.LocalClusterSpec(protocol, n, 0)
	for i := range spec.Nodes {
		a := nodeAddr(i + 1)
		spec.Nodes[i].PeerAddr = fmt.Sprintf("%s:%d", a, PeerPort)
		spec.Nodes[i].ClientAddr = fmt.Sprintf("%s:%d", a, ClientPort)
	}
	return spec, spec.Validate()
}

// proc is one node process in its namespace.
type proc struct {
	id   int
	args []string
	log  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Nodes runs one node process per namespace and implements nemesis.Cluster: kill -9,
// SIGSTOP/SIGCONT and restarts act on the processes, status and leader transfer go through
// each node's /admin/ endpoints, and partitions take the node's link down.
type Nodes struct {
	nemesis.Procs
	prefix string
	dir    string
	procs  []*proc
}

// StartNodes starts every node of spec (written to dir/cluster.json) in its namespace,
// with data and logs under dir; extra[id] are more flags for node id. It returns once every
// process is started, not serving.
func StartNodes(ctx context.Context, prefix, nodeBin, dir, sync string, spec *server.ClusterSpec, extra map[int][]string) (*Nodes, error) {
	b, err := spec.Marshal()
	if err != nil {
		return nil, err
	}
	specPath := filepath.Join(dir, "cluster.json")
	if err := os.WriteFile(specPath, b, 0o644); err != nil {
		return nil, err
	}
	ns := &Nodes{prefix: prefix, dir: dir}
	// The nodes' admin endpoints listen on namespace addresses, not loopback, so they need a
	// token (cmd/node refuses otherwise); the nemesis sends it.
	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		return nil, err
	}
	ns.Procs.AdminToken = hex.EncodeToString(token)
	tokenPath := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenPath, []byte(ns.Procs.AdminToken), 0o600); err != nil {
		return nil, err
	}
	// The peers talk over namespace addresses, not loopback: they authenticate each other
	// with a cluster secret (cmd/node refuses to start without one).
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	secretPath := filepath.Join(dir, "peer.secret")
	if err := os.WriteFile(secretPath, []byte(hex.EncodeToString(secret)), 0o600); err != nil {
		return nil, err
	}
	for i := range spec.Nodes {
		id := int(spec.Nodes[i].ID)
		data := filepath.Join(dir, fmt.Sprintf("node-%d", id))
		if err := os.MkdirAll(data, 0o755); err != nil {
			return nil, err
		}
		p := &proc{id: id, log: filepath.Join(dir, fmt.Sprintf("node-%d.log", id)),
			args: []string{"netns", "exec", nodeNS(prefix, id), nodeBin, "--cluster", specPath, "--id", strconv.Itoa(id), "--init",
				"--data-dir", data, "--sync", sync, "--metrics-addr", fmt.Sprintf("%s:%d", nodeAddr(id), MetricsPort),
				"--admin-token-file", tokenPath, "--peer-secret-file", secretPath}}
		p.args = append(p.args, extra[id]...)
		ns.procs = append(ns.procs, p)
		ns.Procs.Procs = append(ns.Procs.Procs, nemesis.Proc{ID: uint64(id),
			AdminURL: fmt.Sprintf("http://%s:%d", nodeAddr(id), MetricsPort),
			PID:      p.pid, Kill: p.kill, Start: p.start})
		if err := p.start(ctx); err != nil {
			return nil, errors.Join(err, ns.Stop())
		}
	}
	return ns, nil
}

// start runs `ip netns exec NS node ...`; ip execs the node, so the PID is the node's.
func (p *proc) start(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("netns: node %d is running", p.id)
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("ip", p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("netns: starting node %d: %w", p.id, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	select {
	case <-p.done:
		return 0
	default:
		return p.cmd.Process.Pid
	}
}

// kill sends SIGKILL and reaps the process.
func (p *proc) kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("netns: node %d is not running", p.id)
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT) // a paused node must still die
	_ = p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
	return nil
}

// stop sends SIGTERM (SIGKILL after stopWait) and reaps the process.
func (p *proc) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopWait):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

// Isolate implements nemesis.Cluster by taking the node's link down.
func (n *Nodes) Isolate(ctx context.Context, id uint64) error {
	return SetLink(ctx, n.prefix, int(id), false)
}

// Heal implements nemesis.Cluster by bringing the link back up.
func (n *Nodes) Heal(ctx context.Context, id uint64) error {
	return SetLink(ctx, n.prefix, int(id), true)
}

// Exited names nodes that are down although nobody killed them.
func (n *Nodes) Exited() []int {
	var ids []int
	for _, p := range n.procs {
		p.mu.Lock()
		if p.cmd != nil {
			select {
			case <-p.done:
				ids = append(ids, p.id)
			default:
			}
		}
		p.mu.Unlock()
	}
	return ids
}

// Stop ends every node (links are brought back up first, so nothing is left half-cut) and
// gives back the WAL segments' unwritten preallocation: the run directory keeps the logs and
// data, not 64 MiB of zeros per node.
func (n *Nodes) Stop() error {
	for _, p := range n.procs {
		_ = SetLink(context.Background(), n.prefix, p.id, true)
		p.stop()
	}
	if n.dir != "" {
		cluster.ReleasePreallocation(n.dir)
	}
	return nil
}
