package nemesis

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/consensusbench/consensusbench/server"
)

// InProcess adapts a server.LocalCluster (every replica in this process) to Cluster, for
// tests. It is weaker than a process cluster in two ways, both documented in docs/FAULTS.md:
// Kill stops the replica (its WAL is flushed, as the driver stops), so it is not kill -9;
// Pause is unsupported (one goroutine group cannot be SIGSTOPped). A restarted replica listens
// on new ports; OnRestart, when set, learns the cluster's new client addresses.
type InProcess struct {
	C         *server.LocalCluster
	OnRestart func(addrs map[uint64]string)
	mu        sync.Mutex
}

func (p *InProcess) idx(id uint64) (int, error) {
	for i, n := range p.C.Spec.Nodes {
		if n.ID == id {
			return i, nil
		}
	}
	return 0, fmt.Errorf("nemesis: no node %d", id)
}

func (p *InProcess) replica(id uint64) (server.Replica, error) {
	i, err := p.idx(id)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.C.Replicas[i]
	if r == nil {
		return nil, fmt.Errorf("nemesis: node %d is down", id)
	}
	return r, nil
}

// Nodes implements Cluster.
func (p *InProcess) Nodes() []uint64 {
	ids := make([]uint64, len(p.C.Spec.Nodes))
	for i, n := range p.C.Spec.Nodes {
		ids[i] = n.ID
	}
	return ids
}

// Running implements Cluster.
func (p *InProcess) Running(id uint64) bool {
	_, err := p.replica(id)
	return err == nil
}

// Status implements Cluster.
func (p *InProcess) Status(_ context.Context, id uint64) (server.ReplicaStatus, error) {
	r, err := p.replica(id)
	if err != nil {
		return server.ReplicaStatus{}, err
	}
	a, ok := r.(server.Admin)
	if !ok {
		return server.ReplicaStatus{}, fmt.Errorf("nemesis: node %d has no admin interface: %w", id, ErrUnsupported)
	}
	return a.Status(), nil
}

// Kill implements Cluster by stopping the replica.
func (p *InProcess) Kill(_ context.Context, id uint64) error {
	i, err := p.idx(id)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.C.StopNode(i)
}

// Restart implements Cluster.
func (p *InProcess) Restart(_ context.Context, id uint64) error {
	i, err := p.idx(id)
	if err != nil {
		return err
	}
	p.mu.Lock()
	err = p.C.RestartNode(i)
	p.mu.Unlock()
	if err == nil && p.OnRestart != nil {
		p.OnRestart(p.C.ClientAddrs())
	}
	return err
}

// Pause implements Cluster: unsupported in one process.
func (p *InProcess) Pause(context.Context, uint64) error {
	return fmt.Errorf("pause needs node processes (SIGSTOP): %w", ErrUnsupported)
}

// Resume implements Cluster: unsupported in one process.
func (p *InProcess) Resume(context.Context, uint64) error { return p.Pause(context.Background(), 0) }

// Isolate implements Cluster with the transports' injected partitions: node id drops all
// traffic with every peer, and every peer drops traffic with id.
func (p *InProcess) Isolate(ctx context.Context, id uint64) error { return p.partition(id, true) }

// Heal implements Cluster.
func (p *InProcess) Heal(ctx context.Context, id uint64) error { return p.partition(id, false) }

func (p *InProcess) partition(id uint64, cut bool) error {
	var errs []error
	var others []uint64
	for _, o := range p.Nodes() {
		if o != id {
			others = append(others, o)
		}
	}
	set := func(node uint64, peers []uint64) {
		r, err := p.replica(node)
		if err != nil {
			return // a node that is down has no traffic to drop
		}
		a, ok := r.(server.Admin)
		if !ok {
			errs = append(errs, fmt.Errorf("nemesis: node %d has no admin interface: %w", node, ErrUnsupported))
			return
		}
		if !cut {
			peers = nil
		}
		a.SetPartition(peers)
	}
	set(id, others)
	for _, o := range others {
		set(o, []uint64{id})
	}
	return errors.Join(errs...)
}

// TransferLeader implements Cluster.
func (p *InProcess) TransferLeader(_ context.Context, from, to uint64) error {
	r, err := p.replica(from)
	if err != nil {
		return err
	}
	lt, ok := r.(server.LeaderTransferer)
	if !ok {
		return fmt.Errorf("nemesis: node %d cannot transfer leadership: %w", from, ErrUnsupported)
	}
	return lt.TransferLeader(to)
}
