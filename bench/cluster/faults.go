package cluster

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/consensusbench/consensusbench/bench/nemesis"
)

// process returns the node's current process.
func (n *Node) process() *os.Process {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd.Process
}

func (c *Cluster) node(id uint64) (*Node, error) {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n, nil
		}
	}
	return nil, fmt.Errorf("cluster: no node %d", id)
}

func (c *Cluster) stopped() bool {
	select {
	case <-c.stopping:
		return true
	default:
		return false
	}
}

// Kill ends node id with SIGKILL (no chance to flush: what a crash or kill -9 does) and
// waits until it is reaped. The node then counts as killed on purpose, not as a failure.
func (c *Cluster) Kill(id uint64) error {
	c.faultMu.Lock()
	defer c.faultMu.Unlock()
	n, err := c.node(id)
	if err != nil {
		return err
	}
	if c.stopped() {
		return fmt.Errorf("cluster: stopping")
	}
	if done, _ := n.Exited(); done {
		return fmt.Errorf("cluster: node %d is not running", id)
	}
	n.mu.Lock()
	n.killed = true
	p, exited := n.cmd.Process, n.exited
	n.mu.Unlock()
	_ = p.Signal(syscall.SIGCONT) // harmless unless paused
	if err := p.Kill(); err != nil {
		return fmt.Errorf("cluster: killing node %d: %w", id, err)
	}
	<-exited
	return nil
}

// Restart starts a killed node again with the same flags, data directory and ports; its log
// continues the old one.
func (c *Cluster) Restart(_ context.Context, id uint64) error {
	c.faultMu.Lock()
	defer c.faultMu.Unlock()
	n, err := c.node(id)
	if err != nil {
		return err
	}
	if c.stopped() {
		return fmt.Errorf("cluster: stopping")
	}
	if done, _ := n.Exited(); !done {
		return fmt.Errorf("cluster: node %d is running", id)
	}
	if err := n.launch(c.cfg.NodeBin, os.O_APPEND); err != nil {
		return err
	}
	n.mu.Lock()
	n.killed = false
	n.mu.Unlock()
	return nil
}

// Nemesis returns the cluster as fault injection drives it: SIGKILL, restart, SIGSTOP and
// SIGCONT on the processes; status, partitions and leader transfer through each node's
// /admin/ endpoints on its MetricsAddr (on one host, partitions drop traffic in the
// transport).
func (c *Cluster) Nemesis() *nemesis.Procs {
	p := &nemesis.Procs{}
	for _, n := range c.Nodes {
		p.Procs = append(p.Procs, nemesis.Proc{ID: n.ID, AdminURL: "http://" + n.MetricsAddr,
			PID: func() int {
				if done, _ := n.Exited(); done {
					return 0
				}
				return n.PID()
			},
			Kill:  func() error { return c.Kill(n.ID) },
			Start: func(ctx context.Context) error { return c.Restart(ctx, n.ID) },
		})
	}
	return p
}
