package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Addressing and limits.
const (
	// Subnet is the benchmarking range every address comes from (RFC 2544 §C.2.2).
	Subnet = "198.18.0.0/15"
	// prefixLen is Subnet's prefix length, used on every interface.
	prefixLen = 15
	// MaxNodes bounds the namespaces one Net creates (node addresses are 198.18.0.1..N).
	MaxNodes = 100
	// clientAddr is the load generator namespace's address.
	clientAddr = "198.18.1.1"
	// cmdTimeout bounds one ip or tc command.
	cmdTimeout = 10 * time.Second
	// tbfLatency is how long tbf may queue a packet before dropping it, and tbfBurst its
	// bucket size: a 1gbit link needs a bucket of at least rate/HZ (about 125 KB at HZ=1000).
	tbfLatency = "50ms"
	tbfBurst   = "1mb"
)

// Config describes the emulated network.
type Config struct {
	// Nodes is the number of node namespaces.
	Nodes int
	// Rate, when not empty, limits every link in both directions with tc tbf (for example
	// "1gbit" or "10gbit").
	Rate string
	// Prefix names everything (default "cb<pid>"); at most 8 characters, so interface names
	// fit Linux's 15.
	Prefix string
}

// Net is a created network. Its names are derived from Prefix, so a process that did not
// create it (the load generator re-executed inside the client namespace) can address it.
type Net struct {
	cfg     Config
	created []string // namespaces, in creation order
}

// Names for a prefix: the bridge's namespace, a node's namespace, the client's namespace,
// and the hub-side end of node i's link.
func hubNS(p string) string            { return p + "-hub" }
func nodeNS(p string, id int) string   { return fmt.Sprintf("%s-n%d", p, id) }
func clientNS(p string) string         { return p + "-c" }
func hubLink(p string, id int) string  { return fmt.Sprintf("%sn%d", p, id) }
func clientLink(p string) string       { return p + "c" }
func nodeAddr(id int) string           { return fmt.Sprintf("198.18.0.%d", id) }
func defaultPrefix() string            { return "cb" + strconv.Itoa(os.Getpid()) }
func linkName(p string, id int) string { return hubLink(p, id) }

// Check reports why this machine cannot run namespaces (not root, no ip), or nil.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("netns: needs root (network namespaces, veth links, tc)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("netns: needs iproute2's ip on PATH")
	}
	return nil
}

// Create builds the network. On error everything created so far is removed.
func Create(ctx context.Context, cfg Config) (*Net, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	if cfg.Nodes < 1 || cfg.Nodes > MaxNodes {
		return nil, fmt.Errorf("netns: %d nodes outside [1, %d]", cfg.Nodes, MaxNodes)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = defaultPrefix()
	}
	if len(cfg.Prefix) > 8 {
		return nil, fmt.Errorf("netns: prefix %q longer than 8 characters", cfg.Prefix)
	}
	if cfg.Rate != "" {
		if _, err := exec.LookPath("tc"); err != nil {
			return nil, errors.New("netns: --rate needs iproute2's tc on PATH")
		}
	}
	n := &Net{cfg: cfg}
	if err := n.create(ctx); err != nil {
		return nil, errors.Join(err, n.Teardown())
	}
	return n, nil
}

func (n *Net) create(ctx context.Context) error {
	p := n.cfg.Prefix
	hub := hubNS(p)
	if err := n.addNS(ctx, hub); err != nil {
		return err
	}
	if err := run(ctx, "ip", "-n", hub, "link", "add", "br0", "type", "bridge"); err != nil {
		return err
	}
	if err := run(ctx, "ip", "-n", hub, "link", "set", "br0", "up"); err != nil {
		return err
	}
	attach := func(ns, hubEnd, addr string) error {
		if err := n.addNS(ctx, ns); err != nil {
			return err
		}
		steps := [][]string{
			{"ip", "-n", hub, "link", "add", hubEnd, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"ip", "-n", hub, "link", "set", hubEnd, "master", "br0", "up"},
			{"ip", "-n", ns, "addr", "add", fmt.Sprintf("%s/%d", addr, prefixLen), "dev", "eth0"},
			{"ip", "-n", ns, "link", "set", "eth0", "up"},
			{"ip", "-n", ns, "link", "set", "lo", "up"},
		}
		if n.cfg.Rate != "" {
			steps = append(steps,
				[]string{"tc", "-n", ns, "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", n.cfg.Rate, "burst", tbfBurst, "latency", tbfLatency},
				[]string{"tc", "-n", hub, "qdisc", "add", "dev", hubEnd, "root", "tbf", "rate", n.cfg.Rate, "burst", tbfBurst, "latency", tbfLatency})
		}
		for _, s := range steps {
			if err := run(ctx, s[0], s[1:]...); err != nil {
				return err
			}
		}
		return nil
	}
	for i := 1; i <= n.cfg.Nodes; i++ {
		if err := attach(nodeNS(p, i), hubLink(p, i), nodeAddr(i)); err != nil {
			return err
		}
	}
	return attach(clientNS(p), clientLink(p), clientAddr)
}

func (n *Net) addNS(ctx context.Context, name string) error {
	if err := run(ctx, "ip", "netns", "add", name); err != nil {
		return err
	}
	n.created = append(n.created, name)
	return nil
}

// Prefix returns the names' prefix.
func (n *Net) Prefix() string { return n.cfg.Prefix }

// Teardown kills every process left in the namespaces this Net created (they can only be
// ours) and deletes the namespaces; deleting them removes their links and the bridge.
func (n *Net) Teardown() error {
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 3*cmdTimeout)
	defer cancel()
	for _, ns := range n.created {
		killAll(ctx, ns)
	}
	for i := len(n.created) - 1; i >= 0; i-- {
		if err := run(ctx, "ip", "netns", "del", n.created[i]); err != nil {
			errs = append(errs, err)
		}
	}
	n.created = nil
	return errors.Join(errs...)
}

// killAll SIGKILLs the processes in namespace ns and waits briefly for them to go.
func killAll(ctx context.Context, ns string) {
	out, err := output(ctx, "ip", "netns", "pids", ns)
	if err != nil {
		return
	}
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for range 50 {
		if out, err := output(ctx, "ip", "netns", "pids", ns); err != nil || strings.TrimSpace(out) == "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SetLink takes node id's link down (a partition: nothing reaches it or leaves it) or up.
// It works from any namespace: ip -n addresses the hub by name.
func SetLink(ctx context.Context, prefix string, id int, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return run(ctx, "ip", "-n", hubNS(prefix), "link", "set", "dev", linkName(prefix, id), state)
}

func run(ctx context.Context, name string, args ...string) error {
	_, err := output(ctx, name, args...)
	return err
}

func output(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("netns: %s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
