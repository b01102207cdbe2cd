package server

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/consensusbench/consensusbench/transport"
	"github.com/consensusbench/consensusbench/wire"
)

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

// ReplicaStatus is what a replica reports about itself to operators and to the load
// generator's fault injection (which must find the leader to kill or partition it).
type ReplicaStatus struct {
	ID       uint64 `json:"id"`
	Protocol string `json:"protocol"`
	// Role is "leader", "follower", "candidate", "pre-candidate" (Raft) or "primary",
	// "backup" (PBFT).
	Role string `json:"role"`
	// Leader is the Raft leader or the PBFT primary's node ID as this replica knows it (0:
	// none known).
	Leader uint64 `json:"leader"`
	// Term is the Raft term or the PBFT view.
	Term    uint64 `json:"term"`
	Applied uint64 `json:"applied"`
	// Partitioned lists the peers whose traffic is being dropped by fault injection.
	Partitioned []uint64 `json:"partitioned,omitempty"`
	// Sync is the WAL policy ("always" or "none"); Reads the Raft read mode ("safe" or
	// "lease"); Byzantine the PBFT replica's misbehaviour ("none" when honest). A load
	// generator records them in a result's identity.
	Sync      string `json:"sync"`
	Reads     string `json:"reads,omitempty"`
	Byzantine string `json:"byzantine,omitempty"`
	// PeerAuth is "secret" when peers prove a cluster secret at the hello, else "none".
	PeerAuth string `json:"peer_auth"`
	// Incarnation names the node process (cmd/node fills it: its PID and start time), so a
	// fault injector that crashed a node through /admin/crash can tell the process its
	// supervisor started from the one it crashed. Empty where no process is behind it.
	Incarnation string `json:"incarnation,omitempty"`
}

// MaxAdminPause bounds a node's POST /admin/pause?for=D (cmd/node): the node stops for D
// and resumes by itself, and a typo must not freeze a member for hours. Fault schedules
// that pause a cluster's node through its admin endpoint are held to it.
const MaxAdminPause = time.Minute

func peerAuthName(secret []byte) string {
	if secret != nil {
		return "secret"
	}
	return "none"
}

// Admin is implemented by replicas that support the operator endpoints and fault injection
// (cmd/node serves them under /admin/ on --metrics-addr).
type Admin interface {
	// Status is safe to call from any goroutine.
	Status() ReplicaStatus
	// SetPartition drops all traffic to and from the given peers (empty heals); see
	// transport.SetPartition.
	SetPartition(peers []uint64)
}

// LeaderTransferer is implemented by replicas whose protocol has a leader to hand over.
type LeaderTransferer interface {
	// TransferLeader asks the leader to hand leadership to `to` (Raft thesis §3.10). It
	// fails on a replica that is not the leader.
	TransferLeader(to uint64) error
}

// newTransport builds a replica's transport from its config: the spec's addresses (or the
// overrides), every other node as a peer, then protocol-specific settings (tune) and the
// test hook (ReplicaConfig.TuneTransport).
func newTransport(cfg *ReplicaConfig, proto wire.Protocol, log *slog.Logger, tune func(*transport.Config)) (*transport.Transport, error) {
	self, _ := cfg.Spec.Node(cfg.ID)
	tc := transport.Config{
		ClusterID:    cfg.Spec.ClusterID,
		NodeID:       cfg.ID,
		Protocol:     proto,
		PeerListen:   self.PeerAddr,
		ClientListen: self.ClientAddr,
		EventLoops:   cfg.EventLoops,
		PeerSecret:   cfg.PeerSecret,
		Logger:       log,
	}
	if cfg.PeerListen != "" {
		tc.PeerListen = cfg.PeerListen
	}
	if cfg.ClientListen != "" {
		tc.ClientListen = cfg.ClientListen
	}
	for _, n := range cfg.Spec.Nodes {
		if n.ID != cfg.ID {
			tc.Peers = append(tc.Peers, transport.Peer{ID: n.ID, Addr: n.PeerAddr})
		}
	}
	if tune != nil {
		tune(&tc)
	}
	if cfg.TuneTransport != nil {
		cfg.TuneTransport(&tc)
	}
	return transport.New(tc)
}
