package client

import (
	"context"
	"fmt"
	"time"

	"github.com/consensusbench/consensusbench/clusterspec"
	"github.com/consensusbench/consensusbench/wire"
)

// Client is a cluster client of either protocol, as NewFromSpec returns it. Both
// *RaftClient and *PBFTClient implement it.
type Client interface {
	// Do executes ops as one batch, exactly once, and fills res with one result per op.
	Do(ctx context.Context, ops []wire.Op, res *Results) error
	Close() error
}

var (
	_ Client = (*RaftClient)(nil)
	_ Client = (*PBFTClient)(nil)
)

// SpecOptions holds what a client needs beyond the cluster spec. Zero values take the
// protocol client's defaults.
type SpecOptions struct {
	// ClientID is a Raft client's session ID (0: RandomClientID).
	ClientID uint64
	// FixedClientIDs makes a PBFT client claim exactly [FirstClientID,
	// FirstClientID+Inflight) (below the spec's pbft.max_clients; refused while another live
	// client holds any of them). Without it (the default) the client claims any free range
	// through the replicas' ordered log, so clients started anywhere never overlap
	// (PBFTClient).
	FixedClientIDs bool
	FirstClientID  uint64
	// Lease is a PBFT client's lease on its identities (0: DefaultPBFTLease).
	Lease time.Duration
	// Inflight bounds concurrent Do calls (Raft: MaxInflight; PBFT: its identities, one
	// outstanding request each).
	Inflight       int
	AttemptTimeout time.Duration
	DialTimeout    time.Duration
}

// NewFromSpec returns a client for the cluster spec describes: every node's client address
// and ID, and for PBFT the settings the client must share with the replicas (pbft.key_seed,
// pbft.max_clients, pbft.auth), so that a program reads the same file the replicas start
// from instead of repeating them.
func NewFromSpec(ctx context.Context, spec *clusterspec.ClusterSpec, o SpecOptions) (Client, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("client: cluster spec: %w", err)
	}
	nodes := make([]Node, 0, len(spec.Nodes))
	for _, n := range spec.Nodes {
		nodes = append(nodes, Node{ID: n.ID, Addr: n.ClientAddr})
	}
	switch spec.Protocol {
	case "raft":
		return NewRaft(Config{Nodes: nodes, ClientID: o.ClientID, MaxInflight: o.Inflight,
			AttemptTimeout: o.AttemptTimeout, DialTimeout: o.DialTimeout})
	case "pbft":
		return NewPBFT(ctx, PBFTConfig{Nodes: nodes, KeySeed: spec.PBFT.KeySeed, MaxClients: spec.PBFT.MaxClients,
			SignAll: spec.PBFT.Auth == "sign", FixedClientIDs: o.FixedClientIDs, FirstClientID: o.FirstClientID, Lease: o.Lease, MaxInflight: o.Inflight,
			AttemptTimeout: o.AttemptTimeout, DialTimeout: o.DialTimeout})
	}
	return nil, fmt.Errorf("client: protocol %q: want raft or pbft", spec.Protocol)
}

// NewFromSpecFile reads the cluster spec file at path (docs/CLUSTER.md) and calls
// NewFromSpec.
func NewFromSpecFile(ctx context.Context, path string, o SpecOptions) (Client, error) {
	spec, err := clusterspec.LoadClusterSpec(path)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return NewFromSpec(ctx, spec, o)
}
