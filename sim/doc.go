// Package sim is a deterministic, single-goroutine cluster simulator for the protocol cores
// (raftcore, pbftcore). It owns a seeded simulated clock, network and per-host disk, a fault
// schedule drawn from the seed, a KV client workload, and the checkers: the protocol's own
// safety invariants after every event, linearizability of the client history (porcupine) at
// the end, and liveness once the faults heal.
//
// A run: the seed draws the parameters (Params and the protocol's own), which are printed
// first. A safety phase injects faults at random ticks: symmetric partitions, asymmetric
// cuts, isolated hosts, network heals, crashes (pending disk writes lost, or a random prefix
// landed unacknowledged), restarts from the durable image, disk stalls, and protocol
// nemeses (for Raft: membership changes and leadership transfers), on a network that delays,
// reorders, drops and duplicates messages. Then everything heals; ops started after the heal
// must complete within a bounded number of ticks, every pending op must finish, the cluster
// must converge (protocols that implement Quiescer), and the history must be linearizable.
//
// One seed replays a whole run exactly: all randomness comes from math/rand/v2 PCG streams
// derived from the seed, nothing reads the wall clock, no map is iterated where order could
// change an outcome, and no goroutine affects the run (porcupine's checker runs its own, but
// its verdict does not depend on them).
//
// A protocol plugs in through the Protocol, Replica and Client interfaces (protocol.go;
// docs/SIM.md is the guide). raft.go is the Raft adapter and its checkers
// (election safety, log matching, leader completeness, state machine safety, convergence).
// Test flags: -seeds=N, -seedstart=S, -seed=S (replay), -simtrace, -keepgoing.
//
// The package must not be needed by production code; it is a test harness.
package sim
