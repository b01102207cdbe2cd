package server

import "fmt"

// Replica is a running replica of either protocol.
type Replica interface {
	// Start starts the transport and the driver goroutine.
	Start() error
	// Stop stops the driver, flushes the WAL and closes the transport (idempotent).
	Stop() error
	// Done is closed when the driver stops (Stop or a fatal error); Err says why.
	Done() <-chan struct{}
	Err() error
	Metrics() *Metrics
	PeerAddr() string
	ClientAddr() string
}

// NewReplica builds the replica for the spec's protocol.
func NewReplica(cfg ReplicaConfig) (Replica, error) {
	if cfg.Spec == nil {
		return nil, fmt.Errorf("server: bad replica config: Spec is required")
	}
	switch cfg.Spec.Protocol {
	case "raft":
		return NewRaftReplica(cfg)
	case "pbft":
		return NewPBFTReplica(cfg)
	}
	return nil, fmt.Errorf("server: protocol %q not supported", cfg.Spec.Protocol)
}
