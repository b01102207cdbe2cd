// Package pbftcore implements Practical Byzantine Fault Tolerance (Castro and Liskov,
// OSDI '99 §4; TOCS 2002 §4) as a pure, deterministic state machine with the same shape as
// raftcore: New(Config), Tick(), Step(msg), Propose(request), Ready(), Advance().
//
// It owns the protocol: the normal case (pre-prepare, prepare, commit, in-order execution,
// replies), request batching at the primary bounded by the watermark window, MAC
// authenticators (HMAC-SHA256 with HKDF-derived pairwise session keys) and ed25519
// signatures for the transferable proofs (CHECKPOINT, VIEW-CHANGE, NEW-VIEW) or for every
// message in SignAll mode, checkpoints and garbage collection, the view change with the TOCS
// decision procedure for the new view's O set, state transfer against a 2f+1-certified
// digest, the read-only optimization, and the client's reply rule (Client).
//
// It must not do I/O, start goroutines, read the clock or use a global RNG: time arrives as
// Tick, randomness and every key arrive in Config, and the application state is reached only
// through the App interface, called synchronously from Step/Tick.
package pbftcore
