package server

import (
	"bytes"
	"crypto/sha256"
	"sync"

	"github.com/consensusbench/consensusbench/kv"
	"github.com/consensusbench/consensusbench/pbftcore"
	"github.com/consensusbench/consensusbench/wire"
)

// PBFT request and result encoding. A PBFT request's operation is the body of a
// wire.ClientRequest (ClientID = the PBFT client, FirstSeq = the request timestamp, Ops =
// the KV operations); its result is the body of a wire.ClientReply with the same ClientID
// and FirstSeq and one OpResult per op (LeaderHint, View and Replica zero, so that every
// correct replica produces identical bytes and the client can match f+1 of them).

// Limits of the PBFT application.
const (
	// PBFTMaxOpBytes bounds one request's encoded operations (pbftcore.Config.MaxOpBytes).
	PBFTMaxOpBytes = 64 << 10
	// PBFTMaxResultBytes bounds one request's encoded results (pbftcore.Config.MaxResultBytes).
	// pbftcore ships its client table (one cached result per client, and 24 bytes of
	// identity allocation each) as one state chunk, so PBFTMaxClients * PBFTMaxResultBytes
	// and the rest must fit a frame: 1024 * 8 KiB = 8 MiB, plus about 40 KiB, < 16 MiB.
	PBFTMaxResultBytes = 8 << 10
	// PBFTDefaultMaxClients is the number of client identities when the spec names none.
	PBFTDefaultMaxClients = 1024
	// PBFTMaxClients bounds max_clients (see PBFTMaxResultBytes).
	PBFTMaxClients = 1024
	// pbftStateChunkBytes is the size of one state-transfer chunk of the KV snapshot.
	pbftStateChunkBytes = 1 << 20
	// pbftMaxHeldCheckpoints bounds the serialized checkpoints the app keeps (pbftcore keeps
	// at most L/K + 1 alive; DiscardBelow trims them).
	pbftMaxHeldCheckpoints = 64
	// pbftSpareCheckpointBuffers bounds the discarded checkpoint buffers kept for reuse.
	pbftSpareCheckpointBuffers = 2
	// PBFTDefaultSnapshotBytes is pbft.snapshot_threshold_bytes when the spec names none:
	// the protocol records logged between two snapshot files, which bounds the WAL a
	// restart replays (the same default as Raft's snapshot_threshold_bytes).
	PBFTDefaultSnapshotBytes = 64 << 20
)

// errTooLarge is the result value when an op's results exceed PBFTMaxResultBytes.
var errTooLarge = []byte("result exceeds PBFTMaxResultBytes")

// kvApp is pbftcore.App over the KV store. It is deterministic: results depend only on the
// store and the request, and checkpoints are the store's deterministic snapshot stream
// (equal state, equal bytes) with the store's digest. The core's client table gives
// exactly-once execution, so ops are applied without KV sessions (ClientID 0).
type kvApp struct {
	kv    *kv.Store
	snaps map[uint64]appSnapshot // serialized store at checkpoint seq
	// spare holds buffers of discarded checkpoints for reuse: a checkpoint serializes the
	// whole store, and allocating that anew every K batches dominated the garbage.
	spare [][]byte
	// writing: checkpoints whose buffers the background snapshot writer is reading; once
	// discarded they go to the garbage collector, never to spare.
	writing map[uint64]bool
	// spareStore is a store copy a finished checkpoint handed back, which the next one's
	// CloneInto overwrites: a fresh copy of the whole store every K batches was tens of
	// megabytes of new memory for the kernel to zero and the collector to sweep.
	spareStore *kv.Store
	// discarded: DiscardBelow's highest argument; a checkpoint below it that finishes
	// later (asyncKVApp) is not kept.
	discarded uint64
	// restored: Restore installed a transferred state since takeRestored last looked.
	restored bool

	req   wire.ClientRequest
	reply wire.ClientReply
	vals  []byte
	offs  []int
	ops   [kv.BatchPrefetch]kv.Op
	res   [kv.BatchPrefetch]kv.Result
}

// appSnapshot is the store serialized at one checkpoint, with the store's digest.
type appSnapshot struct {
	data   []byte
	digest pbftcore.Digest
}

func newKVApp(store *kv.Store) *kvApp {
	return &kvApp{kv: store, snaps: make(map[uint64]appSnapshot), writing: make(map[uint64]bool)}
}

// Execute implements pbftcore.App.
func (a *kvApp) Execute(seq uint64, req *pbftcore.Request, dst []byte) []byte {
	if err := wire.DecodeClientRequest(req.Op, &a.req); err != nil || len(a.req.Ops) == 0 {
		return a.errorResult(req, dst)
	}
	a.begin(req)
	// Apply kv.BatchPrefetch ops per call, so the store overlaps their cache misses. A CAS
	// mismatch result carries the current value, as the wire contract replies; results
	// alias the store until the next call, so they are copied after each.
	for base := 0; base < len(a.req.Ops); base += len(a.ops) {
		n := min(len(a.ops), len(a.req.Ops)-base)
		for i := range n {
			o := &a.req.Ops[base+i]
			a.ops[i] = kv.Op{Kind: kvKind(o.Kind), Key: o.Key, Value: o.Value, Expected: o.Expected}
		}
		a.kv.ApplyBatch(seq, a.ops[:n], a.res[:n])
		for i := range n {
			a.add(wireStatus(a.res[i].Status), a.res[i].Value)
		}
	}
	clear(a.ops[:]) // drop the references into the request
	clear(a.res[:]) // and into the store
	return a.finish(req, dst)
}

// Read implements pbftcore.App: the read-only path serves gets only.
func (a *kvApp) Read(op []byte, dst []byte) []byte {
	r := pbftcore.Request{}
	if err := wire.DecodeClientRequest(op, &a.req); err != nil || len(a.req.Ops) == 0 {
		return a.errorResult(&r, dst)
	}
	r.Client, r.Timestamp = a.req.ClientID, a.req.FirstSeq
	a.begin(&r)
	for i := range a.req.Ops {
		o := &a.req.Ops[i]
		if o.Kind != wire.OpGet {
			a.add(wire.StatusError, nil)
			continue
		}
		res := a.kv.Get(o.Key)
		a.add(wireStatus(res.Status), res.Value)
	}
	return a.finish(&r, dst)
}

func (a *kvApp) begin(req *pbftcore.Request) {
	a.reply = wire.ClientReply{ClientID: req.Client, FirstSeq: req.Timestamp, Results: a.reply.Results[:0]}
	a.vals, a.offs = a.vals[:0], a.offs[:0]
}

// add records one result, copying the value (it aliases the store until its next change).
func (a *kvApp) add(st wire.Status, v []byte) {
	a.reply.Results = append(a.reply.Results, wire.OpResult{Status: st})
	a.offs = append(a.offs, len(a.vals))
	a.vals = append(a.vals, v...)
}

func (a *kvApp) finish(req *pbftcore.Request, dst []byte) []byte {
	for i := range a.reply.Results {
		end := len(a.vals)
		if i+1 < len(a.offs) {
			end = a.offs[i+1]
		}
		if v := a.vals[a.offs[i]:end]; len(v) > 0 {
			a.reply.Results[i].Value = v
		}
	}
	if a.reply.Size() > PBFTMaxResultBytes {
		// Deterministic on every replica: the same results are too large everywhere. One
		// error result, not one per op: a request with enough ops would make even the
		// per-op errors exceed the limit (and the core asserts results fit).
		a.reply.Results = append(a.reply.Results[:0], wire.OpResult{Status: wire.StatusError, Value: errTooLarge})
	}
	return wire.AppendClientReply(dst, &a.reply)
}

func (a *kvApp) errorResult(req *pbftcore.Request, dst []byte) []byte {
	a.begin(req)
	a.add(wire.StatusError, []byte("malformed operation"))
	return a.finish(req, dst)
}

// Checkpoint implements pbftcore.App: the store's snapshot stream is kept for state
// transfer until DiscardBelow.
func (a *kvApp) Checkpoint(seq uint64) pbftcore.Digest {
	snap := serializeCheckpoint(a.kv, a.takeSpare())
	a.install(seq, snap)
	return snap.digest
}

func (a *kvApp) takeSpare() []byte {
	var spare []byte
	if n := len(a.spare); n > 0 {
		spare, a.spare = a.spare[n-1], a.spare[:n-1]
	}
	return spare
}

// serializeCheckpoint writes store's snapshot stream into buf's memory and digests it.
func serializeCheckpoint(store *kv.Store, buf []byte) appSnapshot {
	b := bytes.NewBuffer(buf[:0])
	if _, err := store.Snapshot(b); err != nil {
		panic("server: kv snapshot to memory failed: " + err.Error())
	}
	return appSnapshot{data: b.Bytes(), digest: stateDigest(b.Bytes())}
}

// install keeps snap as checkpoint seq's state, unless seq was discarded meanwhile.
func (a *kvApp) install(seq uint64, snap appSnapshot) bool {
	if seq < a.discarded {
		if len(a.spare) < pbftSpareCheckpointBuffers {
			a.spare = append(a.spare, snap.data)
		}
		return false
	}
	if len(a.snaps) >= pbftMaxHeldCheckpoints {
		panic("server: pbft app holds more checkpoints than pbftMaxHeldCheckpoints (DiscardBelow not called?)")
	}
	a.snaps[seq] = snap
	return true
}

// asyncKVApp is the replica's kvApp as a pbftcore.AsyncCheckpointer: a checkpoint clones
// the store on the driver (a copy of its memory) and serializes and digests the clone on
// another goroutine, which sends the result to done; the driver installs it and hands the
// digest to the core (PBFTReplica.run, case ckptDone). The driver thus stalls for the copy
// only, not for the sort, the serialization and the SHA-256 of the whole store.
type asyncKVApp struct {
	*kvApp
	done chan<- checkpointResult
	stop <-chan struct{}
	wg   *sync.WaitGroup
}

type checkpointResult struct {
	seq  uint64
	snap appSnapshot
	// store is the copy the checkpoint was serialized from, for the next one to reuse.
	store *kv.Store
}

func (a asyncKVApp) BeginCheckpoint(seq uint64) {
	clone, buf := a.kv.CloneInto(a.spareStore), a.takeSpare()
	a.spareStore = nil
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		res := checkpointResult{seq: seq, snap: serializeCheckpoint(clone, buf), store: clone}
		select {
		case a.done <- res:
		case <-a.stop: // the driver is gone
		}
	}()
}

// stateDigest is the checkpoint digest: SHA-256 over the store's serialized state, which is
// deterministic (equal states give equal bytes) and covers everything a restore installs,
// the applied index included. The store's incremental AdHash digest is not used here: a
// sum of hashes modulo 2^256 admits generalized-birthday collisions (Wagner, CRYPTO 2002),
// so a Byzantine state-transfer source could craft a different state with the certified
// digest; a collision-resistant hash of the bytes cannot be forged that way.
func stateDigest(chunks ...[]byte) pbftcore.Digest {
	h := sha256.New()
	h.Write([]byte("consensusbench/pbft/state/v1"))
	for _, c := range chunks {
		h.Write(c)
	}
	var d pbftcore.Digest
	h.Sum(d[:0])
	return d
}

// snapshot returns the serialized store at checkpoint seq (for the replica's disk copy).
func (a *kvApp) snapshot(seq uint64) (appSnapshot, bool) {
	s, ok := a.snaps[seq]
	return s, ok
}

// StateChunk implements pbftcore.App.
func (a *kvApp) StateChunk(seq uint64, i int, dst []byte) ([]byte, int, bool) {
	snap, ok := a.snaps[seq]
	if !ok {
		return dst, 0, false
	}
	s := snap.data
	chunks := max(1, (len(s)+pbftStateChunkBytes-1)/pbftStateChunkBytes)
	if i < 0 || i >= chunks {
		return dst, chunks, false
	}
	end := min(len(s), (i+1)*pbftStateChunkBytes)
	return append(dst, s[i*pbftStateChunkBytes:end]...), chunks, true
}

// StateDigest implements pbftcore.App: the digest of a transferred state, computed over its
// bytes before anything is restored (so a Byzantine source's malformed state is rejected by
// the digest comparison and never parsed).
func (a *kvApp) StateDigest(chunks [][]byte) pbftcore.Digest { return stateDigest(chunks...) }

// Restore implements pbftcore.App. The core calls it only after StateDigest matched the
// certified digest, so the restore cannot fail on a correct state.
func (a *kvApp) Restore(seq uint64, chunks [][]byte) {
	s := bytes.Join(chunks, nil)
	if err := a.kv.Restore(bytes.NewReader(s)); err != nil {
		panic("server: restoring a state whose digest verified failed: " + err.Error())
	}
	a.snaps[seq] = appSnapshot{data: s, digest: stateDigest(s)}
	a.restored = true
}

// takeRestored reports whether a state was restored since its last call.
func (a *kvApp) takeRestored() bool {
	r := a.restored
	a.restored = false
	return r
}

// DiscardBelow implements pbftcore.App.
func (a *kvApp) DiscardBelow(seq uint64) {
	a.discarded = max(a.discarded, seq)
	for s, snap := range a.snaps {
		if s < seq {
			delete(a.snaps, s)
			if !a.writing[s] && len(a.spare) < pbftSpareCheckpointBuffers {
				a.spare = append(a.spare, snap.data)
			}
		}
	}
}
