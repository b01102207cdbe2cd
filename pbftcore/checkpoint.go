package pbftcore

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"

	"github.com/consensusbench/consensusbench/internal/assert"
)

// ckptRecord collects the CHECKPOINT messages for one sequence number in the window.
type ckptRecord struct {
	seq    uint64
	mask   uint64
	msgs   []Message // per sender, owned copies (signed)
	hasOwn bool
	own    Digest
	// pending: an AsyncCheckpointer App is digesting this checkpoint (table is set).
	pending bool
	table   []byte // this replica's client table at seq (chunk 0 of the state)
	ownMsg  Message
}

func (c *ckptRecord) resetFor(seq uint64) {
	c.seq = seq
	c.mask = 0
	c.hasOwn = false
	c.pending = false
}

// ownedCopy deep-copies a checkpoint message (all its bytes are in Auth).
func ownedCopy(dst *Message, m *Message) {
	auth := append(dst.Auth[:0], m.Auth...)
	*dst = Message{Type: m.Type, From: m.From, To: ToAll, Seq: m.Seq, Digest: m.Digest, Auth: auth}
}

func (nd *Node) ckptFor(seq uint64) *ckptRecord {
	k := nd.cfg.CheckpointInterval
	c := &nd.ckpts[(seq/k)%uint64(len(nd.ckpts))]
	if c.seq != seq {
		c.resetFor(seq)
	}
	return c
}

// stateDigest combines the application's digest with the digest of the core's client table
// (the exactly-once records are part of the replicated state, OSDI '99 §4.3).
func stateDigest(app Digest, table []byte) Digest {
	t := sha256.Sum256(table)
	var buf [64]byte
	copy(buf[:32], app[:])
	copy(buf[32:], t[:])
	return sha256.Sum256(buf[:])
}

// appendClientTable serializes the per-client exactly-once records (timestamps and results
// only), then the allocation table of client-identity claims (claim.go): what every correct
// replica has alike (the view a reply was sent in is not: a request may commit in different
// views at different replicas).
func (nd *Node) appendClientTable(dst []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(nd.clients)))
	for i := range nd.clients {
		c := &nd.clients[i]
		dst = binary.LittleEndian.AppendUint64(dst, c.lastTs)
		dst = appendBytes(dst, c.result)
	}
	return nd.appendClaimTable(dst)
}

// restoreClientTable installs a transferred client table; false if it is malformed.
func (nd *Node) restoreClientTable(b []byte) bool {
	if len(b) < 4 || binary.LittleEndian.Uint32(b) != uint32(len(nd.clients)) {
		return false
	}
	b = b[4:]
	type rec struct {
		ts  uint64
		res []byte
	}
	recs := make([]rec, len(nd.clients))
	for i := range recs {
		if len(b) < 12 {
			return false
		}
		recs[i].ts = binary.LittleEndian.Uint64(b)
		l := int(binary.LittleEndian.Uint32(b[8:]))
		b = b[12:]
		if l > len(b) || l > nd.cfg.MaxResultBytes {
			return false
		}
		recs[i].res = b[:l]
		b = b[l:]
	}
	if !nd.parseClaimTable(b) {
		return false
	}
	nd.restoreClaimTable(b)
	for i, r := range recs {
		c := &nd.clients[i]
		// Whether the transferred state executed a waited claim is not visible here: the
		// wait ends, and the claimant's retransmission starts it again if it is unanswered.
		nd.claimSettled(c)
		nd.stopWaiting(c, r.ts)
		c.lastTs, c.hasReply = r.ts, r.ts > 0
		c.result = append(c.result[:0], r.res...)
		c.queuedTs = max(c.queuedTs, r.ts)
	}
	return true
}

// takeCheckpoint: after executing seq with seq mod K = 0 the replica multicasts a signed
// ⟨CHECKPOINT, n, d, i⟩ (OSDI '99 §4.3).
func (nd *Node) takeCheckpoint(seq uint64) {
	if !nd.inWindow(seq) {
		return
	}
	c := nd.ckptFor(seq)
	c.table = nd.appendClientTable(c.table[:0])
	// A restore digests synchronously: it must know the state it regained before it
	// adopts the stable checkpoints in its log (persist.go).
	if a, ok := nd.app.(AsyncCheckpointer); ok && !nd.restoring {
		c.pending = true
		a.BeginCheckpoint(seq)
		return
	}
	nd.sendOwnCheckpoint(c, nd.app.Checkpoint(seq))
}

// CheckpointDigest hands in the digest an AsyncCheckpointer App computed for the checkpoint
// it began at seq. The replica then multicasts its CHECKPOINT; if the checkpoint became
// stable meanwhile on 2f+1 others' messages, the digest is checked against the certified one
// and the stable checkpoint is reported (Ready.Stable) now that the App holds its state. A
// digest for a checkpoint no longer pending (below the window, or handed in already) is
// ignored.
func (nd *Node) CheckpointDigest(seq uint64, app Digest) {
	if seq == nd.h && nd.stableOwnPending {
		// Stable on others' messages while this replica digested it. The record in the
		// checkpoint ring may be reused for h+L by now, so the table was kept aside.
		nd.stableOwnPending = false
		if d := stateDigest(app, nd.stableTable); d != nd.stableDigest {
			assert.Failf("pbftcore: replica %d's checkpoint %d digest differs from the 2f+1 certified one (nondeterministic App?)", nd.id, seq)
		}
		nd.reportStable()
		return
	}
	k := nd.cfg.CheckpointInterval
	if seq <= nd.h || seq%k != 0 {
		return
	}
	c := &nd.ckpts[(seq/k)%uint64(len(nd.ckpts))]
	if c.seq != seq || !c.pending {
		return
	}
	c.pending = false
	nd.sendOwnCheckpoint(c, app)
}

// sendOwnCheckpoint records this replica's digest of checkpoint c (the App's digest app
// combined with the client table) and multicasts its CHECKPOINT.
func (nd *Node) sendOwnCheckpoint(c *ckptRecord, app Digest) {
	seq := c.seq
	d := stateDigest(app, c.table)
	c.hasOwn, c.own = true, d
	m := Message{Type: MsgCheckpoint, From: nd.id, To: ToAll, Seq: seq, Digest: d}
	m.Auth = nd.auth.Seal(&m, c.ownMsg.Auth[:0])
	c.ownMsg = m
	c.msgs[nd.id] = Message{}
	ownedCopy(&c.msgs[nd.id], &m)
	c.mask |= 1 << nd.id
	out := m
	out.Auth = nd.arenaBytes(m.Auth)
	nd.msgs = append(nd.msgs, out)
	nd.checkStable(c)
}

// ownCheckpoint returns this replica's latest checkpoint message above h, or its stable one.
func (nd *Node) ownCheckpoint() *Message {
	k := nd.cfg.CheckpointInterval
	for seq := (nd.lastExec / k) * k; seq > nd.h; seq -= k {
		if c := nd.ckptFor(seq); c.hasOwn {
			return &c.ownMsg
		}
	}
	return nd.ownStableCheckpoint()
}

func (nd *Node) ownStableCheckpoint() *Message {
	for i := range nd.stableProof {
		if nd.stableProof[i].From == nd.id {
			return &nd.stableProof[i]
		}
	}
	return nil
}

// stepCheckpoint: OSDI '99 §4.3. Checkpoints above the window are remembered per sender
// (latest only): 2f+1 of them matching prove a stable checkpoint this replica fell behind.
func (nd *Node) stepCheckpoint(m *Message) error {
	k := nd.cfg.CheckpointInterval
	if m.Seq == 0 || m.Seq%k != 0 {
		return ErrMalformed
	}
	if m.Seq <= nd.h {
		return ErrStale
	}
	if !nd.inWindow(m.Seq) {
		if m.Seq > nd.farCkpt[m.From].Seq {
			ownedCopy(&nd.farCkpt[m.From], m)
			nd.checkFarStable()
		}
		return nil
	}
	c := nd.ckptFor(m.Seq)
	bit := uint64(1) << m.From
	if c.mask&bit != 0 {
		return nil
	}
	c.mask |= bit
	ownedCopy(&c.msgs[m.From], m)
	nd.checkStable(c)
	return nil
}

// checkStable makes c's checkpoint stable once 2f+1 distinct replicas sent the same digest.
func (nd *Node) checkStable(c *ckptRecord) {
	for mask := c.mask; mask != 0; mask &= mask - 1 {
		d := c.msgs[bits.TrailingZeros64(mask)].Digest
		var proof uint64
		for m2 := c.mask; m2 != 0; m2 &= m2 - 1 {
			i := bits.TrailingZeros64(m2)
			if c.msgs[i].Digest == d {
				proof |= 1 << i
			}
		}
		if bits.OnesCount64(proof) >= nd.quorum() {
			nd.makeStable(c.seq, d, c.msgs, proof)
			return
		}
	}
}

func (nd *Node) checkFarStable() {
	for i := range nd.farCkpt {
		a := &nd.farCkpt[i]
		if a.Type != MsgCheckpoint || a.Seq <= nd.h+nd.cfg.WindowSize {
			continue
		}
		var proof uint64
		for j := range nd.farCkpt {
			b := &nd.farCkpt[j]
			if b.Type == MsgCheckpoint && b.Seq == a.Seq && b.Digest == a.Digest {
				proof |= 1 << j
			}
		}
		if bits.OnesCount64(proof) >= nd.quorum() {
			nd.makeStable(a.Seq, a.Digest, nd.farCkpt, proof)
			return
		}
	}
}

// makeStable moves the low watermark to seq, keeps the 2f+1 proof, garbage-collects the log
// and checkpoints below it (OSDI '99 §4.3), and starts state transfer if this replica has
// not executed up to seq.
func (nd *Node) makeStable(seq uint64, d Digest, msgs []Message, proof uint64) {
	if seq <= nd.h {
		return
	}
	var table []byte
	ownPending := false
	if seq <= nd.h+nd.cfg.WindowSize {
		c := nd.ckptFor(seq)
		if c.hasOwn {
			if c.own != d {
				assert.Failf("pbftcore: replica %d's checkpoint %d digest differs from the 2f+1 certified one (nondeterministic App?)", nd.id, seq)
			}
			table = append(nd.stableTable[:0], c.table...)
		} else if c.pending {
			ownPending, table = true, append(nd.stableTable[:0], c.table...)
		}
	}
	newProof := make([]Message, 0, bits.OnesCount64(proof))
	for mask := proof; mask != 0; mask &= mask - 1 {
		var cp Message
		ownedCopy(&cp, &msgs[bits.TrailingZeros64(mask)])
		newProof = append(newProof, cp)
	}
	nd.h, nd.stableDigest, nd.stableProof = seq, d, newProof
	// Logged whether or not this replica holds the state: a restart must not move h back
	// below a checkpoint it acted on (persist.go).
	nd.logRecord(Record{Kind: RecStable, Seq: seq, Digest: d, Proof: newProof})
	// stableTable is nil when the state comes by transfer; while the digest is pending it
	// waits there for CheckpointDigest, and the state is not served.
	nd.stableTable, nd.stableOwnPending = table, ownPending
	if table != nil && !ownPending {
		nd.reportStable()
	} else {
		// A report of an earlier stable checkpoint not yet handed out is obsolete: its state
		// is discarded below (possible when several become stable in one step, as in a
		// restore from a log).
		nd.stable = nil
	}
	nd.nextSeq = max(nd.nextSeq, seq)
	nd.maxPrepared = max(nd.maxPrepared, seq)
	nd.app.DiscardBelow(seq)
	for i := range nd.farCkpt {
		if nd.farCkpt[i].Seq <= seq {
			nd.farCkpt[i] = Message{}
		}
	}
	if nd.lastExec < seq {
		nd.startStateTransfer()
	}
	nd.maybeCutBatches(false)
}

// installStable adopts a stable checkpoint proven by a signed certificate carried in a
// NEW-VIEW's view-change message.
func (nd *Node) installStable(seq uint64, d Digest, proof []Message) {
	if seq <= nd.h {
		return
	}
	var mask uint64
	for i := range proof {
		mask |= 1 << i
	}
	nd.makeStable(seq, d, proof, mask)
}

// validCheckpointProof checks a certificate of 2f+1 signed CHECKPOINTs from distinct
// replicas for (seq, d).
func (nd *Node) validCheckpointProof(seq uint64, proof []Message) (Digest, bool) {
	if seq == 0 {
		return Digest{}, len(proof) == 0
	}
	if seq%nd.cfg.CheckpointInterval != 0 || len(proof) < nd.quorum() || len(proof) > nd.n {
		return Digest{}, false
	}
	d := proof[0].Digest
	var seen uint64
	for i := range proof {
		p := &proof[i]
		if p.Type != MsgCheckpoint || p.Seq != seq || p.Digest != d || p.From < 0 || p.From >= nd.n ||
			seen&(1<<p.From) != 0 || !nd.auth.verifySigned(p) {
			return Digest{}, false
		}
		seen |= 1 << p.From
	}
	return d, true
}

// ---- state transfer (OSDI '99 §4.3; TOCS 2002 §5.3.2) ----

type stateTransfer struct {
	active bool
	seq    uint64
	digest Digest
	source int
	chunks [][]byte
	total  int
	bytes  int // received so far, bounded by Config.MaxStateBytes
	// progressed: a chunk arrived since the last retransmission tick.
	progressed bool
}

func (nd *Node) startStateTransfer() {
	st := &nd.st
	st.active, st.seq, st.digest = true, nd.h, nd.stableDigest
	st.chunks = st.chunks[:0]
	st.total, st.bytes = 0, 0
	nd.pickSource()
	nd.requestChunk()
}

// pickSource chooses a replica from the stable certificate, at random (seeded).
func (nd *Node) pickSource() {
	var cands []int
	for i := range nd.stableProof {
		if f := nd.stableProof[i].From; f != nd.id {
			cands = append(cands, f)
		}
	}
	if len(cands) == 0 {
		return
	}
	nd.st.source = cands[nd.cfg.Rand.IntN(len(cands))]
}

func (nd *Node) requestChunk() {
	st := &nd.st
	nd.send(Message{Type: MsgFetchState, To: st.source, Seq: st.seq, Chunk: uint32(len(st.chunks))})
}

// stepFetchState serves a chunk of this replica's stable checkpoint.
func (nd *Node) stepFetchState(m *Message) error {
	if m.Seq != nd.h || nd.h == 0 || nd.st.active || nd.stableTable == nil || nd.stableOwnPending {
		return ErrStale
	}
	out := Message{Type: MsgStateChunk, To: m.From, Seq: nd.h, Digest: nd.stableDigest, Chunk: m.Chunk}
	if m.Chunk == 0 {
		_, appChunks, ok := nd.app.StateChunk(nd.h, 0, nil)
		if !ok {
			return ErrStale
		}
		out.Chunks = uint32(1 + appChunks)
		out.Data = nd.arenaBytes(nd.stableTable)
	} else {
		start := len(nd.arena)
		var ok bool
		var appChunks int
		nd.arena, appChunks, ok = nd.app.StateChunk(nd.h, int(m.Chunk-1), nd.arena)
		if !ok {
			nd.arena = nd.arena[:start]
			return ErrStale
		}
		out.Chunks = uint32(1 + appChunks)
		out.Data = nd.arena[start:len(nd.arena):len(nd.arena)]
	}
	nd.send(out)
	return nil
}

// stepStateChunk collects chunks in order; when complete, the state is checked against the
// digest certified by 2f+1 replicas before it is installed, so a faulty source cannot plant
// a state (it is only asked again elsewhere).
func (nd *Node) stepStateChunk(m *Message) error {
	st := &nd.st
	if !st.active || m.Seq != st.seq || m.From != st.source {
		return ErrStale
	}
	if m.Chunks == 0 || m.Chunks > MaxStateChunks || int(m.Chunk) != len(st.chunks) ||
		(st.total != 0 && int(m.Chunks) != st.total) || len(m.Data) > nd.maxChunkBytes() {
		return ErrMalformed
	}
	if st.bytes+len(m.Data) > nd.cfg.MaxStateBytes {
		// A state larger than any this replica accepts: a faulty source padding its
		// chunks (the digest is only checked once all have arrived). Try another source.
		st.chunks = st.chunks[:0]
		st.total, st.bytes = 0, 0
		nd.pickSource()
		nd.requestChunk()
		return ErrBadState
	}
	st.total = int(m.Chunks)
	st.bytes += len(m.Data)
	st.progressed = true
	st.chunks = append(st.chunks, append([]byte(nil), m.Data...))
	if len(st.chunks) < st.total {
		nd.requestChunk()
		return nil
	}
	got := stateDigest(nd.app.StateDigest(st.chunks[1:]), st.chunks[0])
	if got != st.digest || !nd.validTable(st.chunks[0]) {
		// Wrong state: try another source.
		st.chunks = st.chunks[:0]
		st.total, st.bytes = 0, 0
		nd.pickSource()
		nd.requestChunk()
		return ErrBadState
	}
	nd.restoreClientTable(st.chunks[0])
	nd.app.Restore(st.seq, st.chunks[1:])
	nd.stableTable = append(nd.stableTable[:0], st.chunks[0]...)
	nd.lastExec = st.seq
	nd.maxPrepared = max(nd.maxPrepared, st.seq)
	st.active = false
	st.chunks = st.chunks[:0]
	if st.seq == nd.h {
		nd.reportStable()
	}
	nd.executeCommitted()
	return nil
}

func (nd *Node) validTable(b []byte) bool {
	return len(b) >= 4 && binary.LittleEndian.Uint32(b) == uint32(len(nd.clients))
}

// maxChunkBytes bounds a STATE-CHUNK: an application chunk, or the client table (chunk 0).
func (nd *Node) maxChunkBytes() int {
	return max(nd.cfg.MaxStateChunkBytes, 4+len(nd.clients)*(12+nd.cfg.MaxResultBytes)+nd.claimTableBytes())
}
