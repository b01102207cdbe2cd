// Package pbftcore implements Practical Byzantine Fault Tolerance (Castro and Liskov,
// OSDI '99 §4; TOCS 2002 §4) as a pure, deterministic state machine with the same shape as
// raftcore: New(Config), Tick(), Step(msg), Propose(request), Ready(), Advance().
//
// It owns the protocol: the normal case (pre-prepare, prepare, commit, in-order execution,
// replies), request batching at the primary bounded by the watermark window (full batches
// at once, partial ones by FlushIdle when nothing is in flight or at the flush tick), MAC
// authenticators (HMAC-SHA256 with HKDF-derived pairwise session keys) and ed25519
// signatures for the transferable proofs (CHECKPOINT, VIEW-CHANGE, NEW-VIEW) or for every
// message in SignAll mode, checkpoints and garbage collection, the view change, state
// transfer against a 2f+1-certified digest, the read-only optimization, and the client's
// reply rule (Client).
//
// It must not do I/O, start goroutines, read the clock or use a global RNG: time arrives as
// Tick, randomness and every key arrive in Config, and the application state is reached only
// through the App interface, called synchronously from Step/Tick (an AsyncCheckpointer App
// digests checkpoints elsewhere and the driver hands the digests in with CheckpointDigest,
// so the core still sees them as inputs, in an order the driver chooses). The core does no I/O, so
// it keeps no durable state itself: it reports each new stable checkpoint in Ready.Stable
// (proof, client table) for the driver to persist with the App's state, and its protocol
// records in Ready.Persist for the driver to log before it sends that Ready's messages;
// Config.Start and Config.Log restart a replica from them (restart.go, persist.go) as a
// correct replica. Without them a restarted replica starts empty and catches up by view join
// and state transfer, counting as one of the f faulty replicas meanwhile.
//
// Choices where the papers leave room, and why:
//   - Prepares are MAC-authenticated, so they cannot serve as transferable proofs. The
//     VIEW-CHANGE therefore follows TOCS 2002 §4.5: it is signed and carries P (per sequence
//     number the latest view in which a batch prepared here) and Q (pre-prepared digests),
//     both as digests (§5.2): a replica that lacks a batch the NEW-VIEW chose fetches it
//     from the others and checks it against the digest (fetch.go), so a view change's size
//     is bounded by n and L alone; the new primary and every backup run the same decision
//     procedure over the 2f+1 (or more) VIEW-CHANGEs in NEW-VIEW (rules A1/A2 choose a
//     prepared batch, rule B a null request). The checkpoint part of a VIEW-CHANGE is the
//     OSDI '99 certificate of 2f+1 signed CHECKPOINTs.
//   - Lost messages are recovered by re-sending one's own messages for unfinished work
//     every RetransmitTicks (the primary's PRE-PREPARE, which carries the batch, only to the
//     backups whose PREPARE it lacks), by answering a repeated PREPARE/COMMIT for an executed
//     sequence number with this replica's votes for it, by sending the stable checkpoint to a
//     replica working below it, and by joining a view once f+1 replicas are seen in it (the
//     primary of that view re-sends NEW-VIEW). Castro's thesis uses STATUS messages instead.
//   - A read-only request is answered only while no prepared request is unexecuted here:
//     with that rule 2f+1 matching replies include a replica that executed every completed
//     write, so reads stay linearizable without tentative execution. Otherwise the replica
//     sends an authenticated refused reply, and the client orders the read as soon as f+1
//     replicas refused (2f+1 matching answers can no longer come) instead of on its timeout.
//   - A client's authenticator vector can be right for some replicas and wrong for others (a
//     faulty client spoils one MAC). A backup that cannot authenticate a request in a
//     PRE-PREPARE whose batch matches its digest still accepts it, but sends its PREPARE
//     only after f other backups prepared it: the primary and those f are f+1 replicas, one
//     of them correct, that authenticated the request. Refusing the PRE-PREPARE instead
//     leaves that backup behind and, with f other replicas faulty, stops the cluster. A
//     request the primary forged gathers no correct PREPARE, so it cannot prepare. After a
//     restart the request is checked again (the log does not say whether the PREPARE went
//     out). UnverifiedBatches counts these PRE-PREPAREs.
//   - A replica keeps the latest request each client retransmitted to it and that it could
//     not order (a backup, or a primary changing view) until it executes. On entering a
//     view the primary orders these and the backups relay theirs to it, so a request sent
//     to a crashed primary completes one view change after the client's first
//     retransmission to every replica. The papers have a backup relay the request when it
//     arrives, to a primary that may be the one that failed; without keeping it, the new
//     primary had nothing to order, the request waited for the client's next
//     retransmission, and the request timer, running on in the new view, cost a second
//     view change meanwhile. Requests in the NEW-VIEW's O set are not ordered again.
//   - The client table (per-client last timestamp and result) is part of the checkpointed
//     state (chunk 0 of a state transfer), so exactly-once survives state transfer.
//   - The papers assume each client has its own principal. Clients here claim ranges of
//     principals through the ordered log (claim.go): a request with Timestamp 0 is a claim,
//     executed by the core against an allocation table kept in the client table, with leases
//     that expire by a clock carried in the claims and per-grant timestamp spans that fence
//     out a holder whose lease expired.
package pbftcore
