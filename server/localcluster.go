package server

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/consensusbench/consensusbench/storage"
	"github.com/consensusbench/consensusbench/transport"
)

// LocalCluster is a whole cluster inside one process, every replica on loopback with ports
// picked by the kernel. Tests and the in-process end-to-end benchmarks use it; it goes
// through the same transport, storage and driver as separate processes do.
type LocalCluster struct {
	Spec     *ClusterSpec
	Replicas []Replica // index i is node ID i+1; nil while stopped
	dir      string
	sync     storage.SyncPolicy
	log      *slog.Logger
	tune     func(*transport.Config)
	unsafe   bool
	// secret is the cluster secret the replicas authenticate each other with (random).
	secret []byte
}

// LocalClusterConfig configures StartLocalCluster.
type LocalClusterConfig struct {
	Protocol string // raft or pbft
	Nodes    int
	Dir      string // data directories go under Dir/node-<id>
	Sync     storage.SyncPolicy
	Logger   *slog.Logger
	// Spec, when set, supplies the protocol settings (its nodes and addresses are replaced).
	Spec *ClusterSpec
	// TuneTransport adjusts every replica's transport config (tests shorten timeouts).
	TuneTransport func(*transport.Config)
	// UnsafeAckBeforeCommit breaks the replicas on purpose (see ReplicaConfig).
	UnsafeAckBeforeCommit bool
	// UnauthenticatedPeers turns the peer authentication off (the replicas otherwise share a
	// random cluster secret): for measuring what the authentication costs.
	UnauthenticatedPeers bool
}

// StartLocalCluster starts every replica, then tells each the others' bound addresses.
func StartLocalCluster(cfg LocalClusterConfig) (*LocalCluster, error) {
	spec := LocalClusterSpec(cfg.Protocol, cfg.Nodes, 0)
	if cfg.Spec != nil {
		s := *cfg.Spec
		s.Nodes = spec.Nodes
		spec = &s
	}
	// Placeholder addresses only have to be distinct and well formed: every replica listens
	// on port 0 and learns the others' real addresses below.
	for i := range spec.Nodes {
		spec.Nodes[i].PeerAddr = fmt.Sprintf("127.0.0.1:%d", 1+2*i)
		spec.Nodes[i].ClientAddr = fmt.Sprintf("127.0.0.1:%d", 2+2*i)
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	c := &LocalCluster{Spec: spec, Replicas: make([]Replica, cfg.Nodes), dir: cfg.Dir, sync: cfg.Sync,
		log: cfg.Logger, tune: cfg.TuneTransport, unsafe: cfg.UnsafeAckBeforeCommit}
	if !cfg.UnauthenticatedPeers {
		c.secret = make([]byte, 32)
		if _, err := rand.Read(c.secret); err != nil {
			return nil, err
		}
	}
	for i := range spec.Nodes {
		if err := c.start(i, true); err != nil {
			c.Stop()
			return nil, err
		}
	}
	c.wire()
	return c, nil
}

// start starts replica i; init says its data directory is new (the first start).
func (c *LocalCluster) start(i int, init bool) error {
	id := c.Spec.Nodes[i].ID
	dir := filepath.Join(c.dir, fmt.Sprintf("node-%d", id))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	log := c.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r, err := NewReplica(ReplicaConfig{Spec: c.Spec, ID: id, DataDir: dir, Sync: c.sync,
		PeerListen: "127.0.0.1:0", ClientListen: "127.0.0.1:0", Logger: log.With("node", id),
		TuneTransport: c.tune, UnsafeAckBeforeCommit: c.unsafe, Seed: uint64(i + 1), Init: init, PeerSecret: c.secret})
	if err != nil {
		return err
	}
	if err := r.Start(); err != nil {
		_ = r.Stop()
		return err
	}
	c.Replicas[i] = r
	// Record the bound addresses in the spec so clients (and restarted replicas) find them.
	c.Spec.Nodes[i].PeerAddr = r.PeerAddr()
	c.Spec.Nodes[i].ClientAddr = r.ClientAddr()
	return nil
}

// wire tells every running replica every other replica's peer address.
func (c *LocalCluster) wire() {
	for i, r := range c.Replicas {
		if r == nil {
			continue
		}
		for j, n := range c.Spec.Nodes {
			if j != i {
				_ = r.(peerAddrSetter).SetPeerAddr(n.ID, n.PeerAddr)
			}
		}
	}
}

type peerAddrSetter interface {
	SetPeerAddr(id uint64, addr string) error
}

// StopNode stops replica i (node ID i+1), flushing its WAL.
func (c *LocalCluster) StopNode(i int) error {
	r := c.Replicas[i]
	if r == nil {
		return fmt.Errorf("server: node %d already stopped", i+1)
	}
	c.Replicas[i] = nil
	return r.Stop()
}

// RestartNode starts replica i again from its data directory. It listens on new ports;
// the others are told.
func (c *LocalCluster) RestartNode(i int) error {
	if c.Replicas[i] != nil {
		return fmt.Errorf("server: node %d is running", i+1)
	}
	if err := c.start(i, false); err != nil {
		return err
	}
	c.wire()
	return nil
}

// ClientAddrs returns every node's ID and client address.
func (c *LocalCluster) ClientAddrs() map[uint64]string {
	m := map[uint64]string{}
	for _, n := range c.Spec.Nodes {
		m[n.ID] = n.ClientAddr
	}
	return m
}

// Stop stops every running replica.
func (c *LocalCluster) Stop() error {
	var errs []error
	for i, r := range c.Replicas {
		if r != nil {
			errs = append(errs, r.Stop())
			c.Replicas[i] = nil
		}
	}
	return errors.Join(errs...)
}
