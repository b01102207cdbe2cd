// Package adapter plugs the consensusbench clients into the load generator: it implements
// bench.Target and bench.Session over client.RaftClient (and over the PBFT client once that
// exists), mapping bench reads and writes to wire gets and puts.
//
// Each Session owns one client with its own random client ID (so the replicated store's
// exactly-once sessions never confuse two workers) and one connection per replica it talks
// to; the driver's concurrent Do calls on a Session are pipelined on that connection. A batch
// counts as failed unless every op in it came back OK or (for reads) NotFound.
//
// It must not: contain protocol logic (leader discovery, retries and reply matching are the
// client's), allocate per op in steady state, or keep a worker's key and value bytes after
// Do returns.
package adapter
