// Package adapter plugs the consensusbench clients into the load generator: it implements
// bench.Target and bench.Session over client.RaftClient and client.PBFTClient, mapping bench
// reads and writes to wire gets and puts.
//
// Each Session owns one client: for Raft with its own random client ID (so the replicated
// store's exactly-once sessions never confuse two workers), for PBFT with its own range of
// client identities (one per request in flight, as PBFT allows one outstanding request per
// client). The driver's concurrent Do calls on a Session are pipelined by that client. A batch
// counts as failed unless every op in it came back OK or (for reads) NotFound.
//
// It must not: contain protocol logic (leader discovery, retries and reply matching are the
// client's), allocate per op in steady state, or keep a worker's key and value bytes after
// Do returns.
package adapter
