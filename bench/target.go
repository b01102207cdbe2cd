package bench

import (
	"context"
	"fmt"
	"time"
)

// OpKind says what an Op does to the replicated key-value store.
type OpKind uint8

// The operations a workload issues.
const (
	OpRead OpKind = iota + 1
	OpWrite
)

// String names the kind as it appears in result files and histories.
func (k OpKind) String() string {
	switch k {
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// Op is one key-value operation. The worker that issues it owns every byte slice: Key and
// Value are valid only until Session.Do returns, and a Session that needs them later must copy
// them. For reads the Session writes the value it read into Out (appending to Out[:0], so the
// worker's buffer is reused) and sets Found; writes leave both alone.
type Op struct {
	Kind  OpKind
	Key   []byte
	Value []byte

	Out   []byte
	Found bool
}

// Target is the system under test as the load generator sees it: something that hands out
// client sessions. A real adapter wraps the cluster client (one connection pool per Target).
//
// Open and Close are called from the driver's goroutine, never concurrently with each other.
type Target interface {
	// Open returns the session one load worker uses for the whole run. worker numbers run
	// from 0 to Clients-1; adapters may use them to spread sessions over replicas.
	Open(ctx context.Context, worker int) (Session, error)
	// Close releases everything the Target holds. Sessions are closed before it.
	Close() error
}

// Session submits batches of operations for one load worker.
//
// Concurrency: Do is called by up to Pipeline goroutines at once (the worker's pipeline
// depth); a Session that talks over one connection pipelines them on it. Close is called once,
// after every Do has returned.
type Session interface {
	// Do executes ops as one client batch and returns when every op is acknowledged, or with
	// an error when any failed or ctx ended. The driver counts a failed batch as len(ops)
	// errors and records no latency for it. Do must not retain ops after it returns.
	Do(ctx context.Context, ops []Op) error
	Close() error
}

// AsyncSession is a Session that can also submit a batch without waiting for it. The
// closed-loop driver uses it where a Session offers it: each lane's next batch starts from
// its previous batch's completion, on whatever goroutine completed it, so a run of many
// clients does not wake a goroutine per request (on a small host the load generator's
// wake-ups compete with the cluster for the same cores).
type AsyncSession interface {
	Session
	// Start submits ops as one batch, as Do does with a context that ends after the
	// session's request timeout, and returns at once. done is called exactly once with what
	// Do would have returned, never inside Start, on a goroutine that must not be held: done
	// must not block (it may call Start again). ops belong to the batch until done is called.
	// The driver closes the session once every done was called, or once its drain ended
	// with batches still in flight: Close must then make their done calls come soon.
	Start(ops []Op, done func(error))
}

// Opener builds a Target from the cluster description a user gave on the command line.
// cmd/loadgen takes one; the cluster client package provides the real one.
type Opener func(ctx context.Context, spec Spec) (Target, error)

// Spec describes the cluster to benchmark, as given by flags. It is recorded in the result.
type Spec struct {
	// System is what runs the cluster: SystemOurs (consensusbench's own nodes; "" in results
	// written before the field existed) or a registered peer System's name ("etcd"), with
	// the peer's release in SystemVersion.
	System        string `json:"system,omitempty"`
	SystemVersion string `json:"system_version,omitempty"`

	Protocol    string   `json:"protocol"`               // "raft" or "pbft"
	Targets     []string `json:"targets,omitempty"`      // host:port of every replica
	ClusterFile string   `json:"cluster_file,omitempty"` // a cluster spec file instead of Targets
	Local       int      `json:"local,omitempty"`        // spawn this many local nodes (0: none)
	Sync        string   `json:"sync,omitempty"`         // "always" or "none" for local clusters
	DataDir     string   `json:"data_dir,omitempty"`     // where local nodes keep their data
	// AttemptTimeout bounds one client attempt at one replica before it tries another (0: the
	// client's default). Short attempts make clients leave a stalled leader sooner.
	AttemptTimeout time.Duration `json:"attempt_timeout,omitempty"`

	// The rest is the cluster's resolved configuration, which loadgen fills in once the
	// cluster is open (defaults spelled out; read from the nodes' /admin/status when it cannot
	// see them) so that a result's identity does not depend on how flags were spelled. Sync
	// above is resolved the same way ("unknown" when nothing could tell).
	Nodes     int    `json:"nodes,omitempty"`
	Reads     string `json:"reads,omitempty"`     // Raft: "safe" or "lease"; etcd: "safe" (linearizable) or "serializable"
	Byzantine string `json:"byzantine,omitempty"` // PBFT: "none" or the misbehaviour and its nodes
}

// SyncUnknown is a resolved Spec.Sync when no node could say.
const SyncUnknown = "unknown"

// AttemptTimeoutMax bounds Spec.AttemptTimeout.
const AttemptTimeoutMax = time.Minute

// Protocols lists the protocols a Spec may name.
var Protocols = []string{"raft", "pbft"}

// Validate rejects a Spec that names no cluster or an unknown protocol.
func (s Spec) Validate() error {
	known := false
	for _, p := range Protocols {
		known = known || s.Protocol == p
	}
	if !known {
		return fmt.Errorf("unknown protocol %q (want raft or pbft)", s.Protocol)
	}
	given := 0
	if len(s.Targets) > 0 {
		given++
	}
	if s.ClusterFile != "" {
		given++
	}
	if s.Local > 0 {
		given++
	}
	if given != 1 {
		return fmt.Errorf("name the cluster exactly once: --targets, --cluster or --local (got %d)", given)
	}
	if s.Sync != "" && s.Sync != "always" && s.Sync != "none" && s.Sync != SyncUnknown {
		return fmt.Errorf("unknown sync mode %q (want always or none)", s.Sync)
	}
	if s.AttemptTimeout < 0 || s.AttemptTimeout > AttemptTimeoutMax {
		return fmt.Errorf("attempt timeout %v: want 0 (the client's default) up to %v", s.AttemptTimeout, AttemptTimeoutMax)
	}
	return nil
}

// Optional interfaces a Target may implement; cmd/loadgen checks for them with a type
// assertion and records what they report in the result.

// Describer reports the cluster's configuration for the result file: nodes, f, batch limits
// and the like, as key-value strings ("nodes": "3").
type Describer interface {
	Describe() map[string]string
}

// CPUReporter reports each node's cumulative CPU time in seconds (user + system), for
// clusters whose processes the Target can see (local ones). loadgen samples it at the start
// and end of the measured window and records the difference and ops per core-second.
type CPUReporter interface {
	NodeCPUSeconds() (map[string]float64, error)
}

// EventReporter reports each node's counters of events that disturb a run ("elections",
// "leader_changes", "view_changes"), cumulative since the node started, for clusters whose
// nodes' metrics the Target can reach. loadgen samples it at the start and end of the
// measured window and records the difference (report.ClusterEvents), so a run says how
// many leader changes its figures include.
type EventReporter interface {
	NodeEvents() (map[string]map[string]int64, error)
}

// DataDirReporter reports where the cluster's nodes keep their data, so a durable run can
// measure that disk's fdatasync latency just before it starts.
type DataDirReporter interface {
	DataDir() string
}
