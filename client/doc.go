// Package client is the Go client of a consensusbench cluster.
//
// It owns: connections to replicas' client ports, pipelining (many request batches in flight
// on one connection, written in sequence order by whichever caller holds the write turn),
// exactly-once retries (a batch keeps its client ID and sequence numbers across every
// attempt, so the replicated KV store's sessions apply it at most once), per-call deadlines
// from the caller's context, and the protocol's reply rule:
//
//   - Raft: talk to the leader; a not-leader answer carries a hint, and the client follows it
//     (or tries the next replica when there is none); a broken connection or an attempt that
//     times out is retried on another replica.
//   - PBFT: send to the primary; accept a result once f+1 replicas sent matching replies
//     (2f+1 for read-only requests answered from replica state); on timeout retransmit to
//     every replica, which lets backups detect a faulty primary. Its client identities are
//     claimed through the replicas' ordered log and held by a renewed lease (PBFTClient), so
//     clients never share one.
//
// NewFromSpec and NewFromSpecFile build a client of either protocol from the cluster spec
// the replicas start from (package clusterspec), PBFT's shared settings included.
//
// A write batch that Do gives up on after an attempt reached a replica unanswered
// returns an error wrapping ErrMaybeApplied: its writes may or may not have been applied.
//
// It must not: block one caller on another caller's slow reply (replies are matched by
// sequence number, not by order), grow without bound (MaxInflight bounds calls in flight per
// client), or retry with fresh sequence numbers (that would turn one write into two).
package client
