package sim

import "math/rand/v2"

// NodeID names a network endpoint. Replicas are 1..Hosts(); workload clients are
// ClientIDBase+i. Protocol cores may use the same numbering for their own member IDs.
type NodeID uint64

// ClientIDBase is the NodeID of workload client 0; client i is ClientIDBase+i.
const ClientIDBase NodeID = 1 << 20

// IsClient reports whether id names a workload client endpoint.
func (id NodeID) IsClient() bool { return id >= ClientIDBase }

// Protocol is what a consensus protocol supplies to the simulator: an adapter around its core.
// One Protocol value serves one run; a Factory builds it. Every method runs on the
// simulator's single goroutine.
//
// Lifecycle: Factory(c) draws the protocol's own parameters from c.ProtoRand(); the cluster
// creates Hosts() hosts and calls StartReplica(h, false) for each; it then runs events in time
// order, calling Check after every event. On a crash the cluster calls Crashed(id) and forgets
// the Replica; on restart it calls StartReplica(h, true), which rebuilds the replica from
// h.Disk().Image (the only state that survives). Nemesis runs in the safety phase at times
// drawn from the seed; Heal runs once when the faults stop; Final runs at the end.
type Protocol interface {
	// Describe returns the protocol's drawn parameters on one line, printed with the seed.
	Describe() string
	// Hosts is the number of replica hosts (fixed for the run; membership inside the protocol
	// may use a subset of them, the rest idle as spares).
	Hosts() int
	// MaxDown is how many hosts the fault schedule may have crashed at once.
	MaxDown() int
	// StartReplica creates the replica that runs on h: fresh (restart=false) or recovering from
	// h.Disk().Image after a crash.
	StartReplica(h *Host, restart bool) Replica
	// Crashed tells the protocol that host id crashed: its Replica is gone, its pending disk
	// writes were lost (or, where the run draws torn crashes, a prefix of them landed without
	// being acknowledged).
	Crashed(id NodeID)
	// NewClient creates workload client h.ID()-ClientIDBase. The client turns ops into
	// messages to replicas and reports outputs with h.Complete.
	NewClient(h *ClientHost) Client
	// Check verifies the protocol's safety invariants after every event; a non-nil error fails
	// the run. It must be cheap (incremental): it runs hundreds of thousands of times per run.
	Check() error
	// Nemesis performs one protocol-level fault or reconfiguration (a membership change, a
	// leader transfer, a Byzantine behaviour switching on, ...) chosen with rng, and returns
	// a description for the trace ("" when it did nothing).
	Nemesis(rng *rand.Rand) string
	// Heal is called once when the safety phase ends: the network is healed and every host
	// restarted. The protocol stops any misbehaviour that would prevent liveness.
	Heal()
	// Final runs the protocol's end-of-run checks, right after the last op completed; a
	// protocol that implements Quiescer first gets a quiet period (network healed, every host
	// up) until Converged reports true or QuiesceTicksMax ticks pass.
	Final() error
}

// LivenessGracer is an optional Protocol interface. LivenessGrace, called once right after
// Heal, returns how many ticks the protocol's own timers may legitimately hold back progress
// after the faults stop (PBFT's view-change timer doubles with every view change that
// failed during the faults); the liveness window after the heal grows by that much.
type LivenessGracer interface {
	LivenessGrace() int
}

// Factory builds the Protocol for one run.
type Factory func(c *Cluster) Protocol

// Replica is one node of the protocol running on a Host. The replica drives its core fully
// inside each call: it steps the core, sends messages with Host.Send, starts disk writes with
// Host.Disk().Write, applies committed ops to its KV and hands Ready back, until the core has
// nothing more to do.
//
// Process stalls (Cluster.Stall): while a host is stalled its replica is not called at all;
// messages to it queue, its disk acknowledgements wait, and its clock's ticks pass unseen.
// On resume the simulator hands it everything in an adversarial order: the queued messages
// (clients' first), then the disk acknowledgements, and only then one Tick per missed tick.
// A replica whose core measures time (a lease, above all) must therefore read the host's
// clock (Host.Ticks) and catch its core up before it acts on any input, as a real driver
// reads the monotonic clock, rather than count Tick calls.
type Replica interface {
	// Tick is called at each tick of the host's clock (late, after a stall; see above).
	Tick()
	// Deliver hands the replica one message from the network. msg is whatever the sender
	// passed to Send; the network may deliver it late, twice, or not at all. The receiver must
	// not mutate msg (a duplicate shares it).
	Deliver(from NodeID, msg any)
}

// Client is the protocol-specific client library one workload client uses. At most one op is
// outstanding per client. When the workload gives up on an op (it timed out) it starts the
// next one; the client forgets the old one then.
type Client interface {
	// Start begins op.
	Start(op Op)
	// Deliver hands the client one message from a replica.
	Deliver(from NodeID, msg any)
	// Tick advances the client's clock (for retransmission).
	Tick()
}

// StateDumper is optionally implemented by a Protocol: its StateDump is printed with a
// failure (every replica's role, term, log bounds, ...).
type StateDumper interface {
	StateDump() string
}

// Counter is one named count a protocol reports about a run (leaders elected, snapshots
// installed, ...), summed over a campaign to show which paths the fault mix exercised.
type Counter struct {
	Name string
	N    int
}

// CounterReporter is optionally implemented by a Protocol. It must return the same names
// in the same order on every run.
type CounterReporter interface {
	Counters() []Counter
}

// Quiescer is optionally implemented by a Protocol: once the workload is done the run ends as
// soon as Converged returns true (checked every tick), or after QuiesceTicksMax ticks; Final
// then reports a cluster that did not converge.
type Quiescer interface {
	Converged() bool
}
