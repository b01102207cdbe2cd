// Package sim is a deterministic, single-goroutine cluster simulator for the protocol cores
// (raftcore, pbftcore). It owns a seeded simulated clock, network and per-node disk, a fault
// schedule drawn from the seed, a KV client workload, and the checkers: the protocol's own
// safety invariants after every event, linearizability of the client history (porcupine) at
// the end, and liveness once the faults heal.
//
// One seed replays a whole run exactly: all randomness comes from math/rand/v2 PCG streams
// derived from the seed, nothing reads the wall clock, no map is iterated where order could
// change an outcome, and no goroutine affects the run (porcupine's checker runs its own, but
// its verdict does not depend on them).
//
// A protocol plugs in through the Protocol, Replica and Client interfaces (see protocol.go and
// /work/main/.coord/sim-api.md). The package must not be needed by production code; it is a
// test harness.
package sim
