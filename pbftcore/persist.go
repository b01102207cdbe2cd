package pbftcore

import "fmt"

// Durable protocol state (the replica's log).
//
// The papers keep a replica's log in memory: a replica that restarts has forgotten what it
// pre-prepared, prepared and committed, and counts as one of the f faulty replicas until it
// has caught up; when more than f restart at once (a power cut) requests that completed
// above the last stable checkpoint can be lost. A driver that wants neither persists the
// records the core emits in Ready.Persist before it sends that Ready's messages (the same
// contract as Raft's "persist before you send"):
//
//   - RecPrePrepared: this replica accepted ⟨PRE-PREPARE, v, n, d⟩ (as primary: assigned
//     n to d), with the batch when it holds it. Logged before the PREPARE (or PRE-PREPARE)
//     goes out, so a restarted replica never accepts a second digest for (v, n).
//   - RecPrepared: prepared(d, v, n) holds here. Logged before the COMMIT goes out, so that
//     2f+1 replicas durably remember the certificate of any request that commits: the P
//     sets of any later view change still carry it, whoever restarted meanwhile.
//   - RecCommitted: committed-local(d, v, n). Logged before the replies go out, so a
//     restarted replica re-executes everything it answered without waiting for anyone.
//   - RecStable: checkpoint n (digest d, Proof: the 2f+1 signed CHECKPOINTs) became stable
//     here, whether or not this replica holds its state. Logged so that a restart never
//     moves the low watermark back below a checkpoint the replica acted on (records above
//     the old window would otherwise be unusable); a restart without the state fetches it.
//   - RecView: this replica moved to view v (Active false: it sent VIEW-CHANGE for v; true:
//     it accepted NEW-VIEW for v). Logged before the VIEW-CHANGE goes out, so a restarted
//     replica never goes back to a view it abandoned; logged again with every new stable
//     checkpoint, so a driver may drop every record before the latest view record whose
//     sequence number is at or below the checkpoint.
//
// Config.Log hands the records logged since the stable checkpoint Config.Start (or since the
// replica first started) back to New, in log order; records at or below the checkpoint are
// ignored. The restarted replica rebuilds its slots, P and Q sets and view from them,
// re-executes the committed prefix, and takes part in the protocol as a correct replica.

// RecordKind names a durable protocol record.
type RecordKind uint8

// Record kinds.
const (
	RecPrePrepared RecordKind = iota + 1
	RecPrepared
	RecCommitted
	RecView
	RecStable
)

var recordKindNames = [...]string{"?", "PrePrepared", "Prepared", "Committed", "View", "Stable"}

func (k RecordKind) String() string {
	if int(k) < len(recordKindNames) {
		return recordKindNames[k]
	}
	return fmt.Sprintf("RecordKind(%d)", uint8(k))
}

// Record is one durable protocol record (Ready.Persist, Config.Log). Requests is the batch of
// a RecPrePrepared record when the replica holds it (nil when a NEW-VIEW named it by digest
// and it is still being fetched; a later record carries it); Active is RecView's; Proof is
// RecStable's (CHECKPOINT messages for Seq and Digest).
type Record struct {
	Kind     RecordKind
	View     uint64
	Seq      uint64
	Digest   Digest
	Active   bool
	Requests []Request
	Proof    []Message
}

// CloneRecords deep-copies records so the copies own their bytes (a driver keeps what it
// logged; Ready's records alias core memory until Advance).
func CloneRecords(recs []Record) []Record {
	out := make([]Record, len(recs))
	for i, r := range recs {
		r.Requests = cloneRequests(r.Requests)
		r.Proof = cloneMessages(r.Proof)
		out[i] = r
	}
	return out
}

// logRecord queues a record for Ready.Persist; its requests are copied into the output
// arena (the slot may be reused before Advance).
func (nd *Node) logRecord(r Record) {
	if nd.restoring {
		return
	}
	if r.Requests != nil {
		r.Requests = nd.arenaRequests(r.Requests)
	}
	nd.persist = append(nd.persist, r)
}

// restore rebuilds the replica's protocol state from records logged after its stable
// checkpoint (New, with Config.Log): the low watermark, slots with their batches and P and Q
// entries, the view, and the committed prefix, which it re-executes.
func (nd *Node) restore(log []Record) error {
	nd.restoring = true
	defer func() { nd.restoring = false }()
	view, active := nd.view, nd.viewActive
	// committed: per sequence number, the digest committed-local in some view. That is final
	// whatever view the replica restarts in, so it is re-executed even when its slot's
	// per-view state is of an older view.
	committed := map[uint64]Digest{}
	maxCommitted := nd.lastExec
	for i := range log {
		r := &log[i]
		switch r.Kind {
		case RecView:
			if r.View >= view { // views only move forward in a log: the last record holds
				view, active = r.View, r.Active
			}
			continue
		case RecStable:
			if r.Seq <= nd.h {
				continue
			}
			if d, ok := nd.validCheckpointProof(r.Seq, r.Proof); !ok || d != r.Digest {
				return fmt.Errorf("%w: Log: record %d: stable checkpoint %d without a valid proof", ErrInvalidConfig, i, r.Seq)
			}
			var mask uint64
			for k := range r.Proof {
				mask |= 1 << k
			}
			// The record may be ahead of the durable state: a driver writes the checkpoint's
			// snapshot after logging this record, and a crash can lose the snapshot. Execute
			// what the log committed first, so the replica regains that state itself instead
			// of asking for it; after a power cut of every replica nobody else may hold it.
			// A slot a later view re-pre-prepared lost its committed mark in the replay so
			// far (resetView below); what it committed is final, so it is marked again
			// first, as the end of the restore does for every slot.
			for seq, d := range committed {
				if s := nd.existingSlot(seq); s != nil && seq > nd.lastExec && !s.committed && (!s.hasPP || s.digest == d) {
					s.markCommitted(d)
				}
			}
			nd.executeCommitted()
			nd.makeStable(r.Seq, r.Digest, r.Proof, mask) // starts the state transfer if still behind
			continue
		case RecPrePrepared, RecPrepared, RecCommitted:
		default:
			return fmt.Errorf("%w: Log: record %d has unknown kind %d", ErrInvalidConfig, i, r.Kind)
		}
		if r.Seq <= nd.h {
			continue // at or below the checkpoint
		}
		if !nd.inWindow(r.Seq) {
			// Above the window: the checkpoint that admitted it is missing from the log.
			return fmt.Errorf("%w: Log: record %d for %d is above the window (%d, %d]", ErrInvalidConfig, i, r.Seq, nd.h, nd.h+nd.cfg.WindowSize)
		}
		s := nd.slotFor(r.Seq)
		if s.hasPP && r.View > s.view {
			s.resetView() // a later view's instance: the earlier view's votes do not carry over
		}
		switch r.Kind {
		case RecPrePrepared:
			if err := nd.restorePrePrepared(s, r); err != nil {
				return fmt.Errorf("%w: Log: record %d: %v", ErrInvalidConfig, i, err)
			}
		case RecPrepared:
			if !s.hasPP || s.view != r.View || s.digest != r.Digest {
				return fmt.Errorf("%w: Log: record %d: prepared %d in view %d without its pre-prepare", ErrInvalidConfig, i, r.Seq, r.View)
			}
			if s.unvouched {
				// Prepared here, so it had vouched: its PREPARE went out first (checkPrepared).
				s.unvouched = false
				s.vote(false, nd.id, s.digest)
			}
			s.prepared, s.sentCommit = true, true
			s.hasP, s.pView, s.pDigest, s.pBuf = true, s.view, s.digest, s.cur
			s.vote(true, nd.id, s.digest)
			nd.maxPrepared = max(nd.maxPrepared, s.seq)
		case RecCommitted:
			if !s.prepared || s.view != r.View || s.digest != r.Digest {
				return fmt.Errorf("%w: Log: record %d: committed %d in view %d without being prepared", ErrInvalidConfig, i, r.Seq, r.View)
			}
			s.committed = true
			committed[r.Seq] = r.Digest
			maxCommitted = max(maxCommitted, s.seq)
		}
	}
	// Per-view state holds for the view the replica ends in only; P and Q stay, and so does
	// what was committed in an older view (final in any view).
	for i := range nd.log {
		s := &nd.log[i]
		if !nd.inWindow(s.seq) {
			continue // unused, or below the checkpoint
		}
		if s.view != view {
			s.resetView()
		}
		d, ok := committed[s.seq]
		if !ok {
			continue
		}
		if s.hasPP && s.digest != d {
			return fmt.Errorf("%w: Log: %d committed with one digest and pre-prepared with another in view %d", ErrInvalidConfig, s.seq, s.view)
		}
		s.markCommitted(d)
	}
	nd.view, nd.viewActive = view, active
	if nd.stable != nil {
		// A stable checkpoint adopted during the replay was reported with the view the
		// replica started in; the snapshot must record the view it ends in.
		nd.stable.View, nd.stable.ViewActive = view, active
	}
	nd.lostNewView = active && view > 0 && nd.isPrimary()
	if nd.isPrimary() && active {
		for i := range nd.log {
			if s := &nd.log[i]; s.seq > nd.h && s.hasPP && s.view == view {
				nd.nextSeq = max(nd.nextSeq, s.seq)
			}
		}
	}
	nd.executeCommitted()
	// Everything answered before the crash was committed and logged first: reads wait until
	// this replica has executed that far again (a batch may still have to be fetched).
	nd.readFloor = maxCommitted
	if !nd.cfg.LogSynced {
		nd.readFloor = max(maxCommitted, nd.h+nd.cfg.WindowSize)
	}
	return nil
}

// restorePrePrepared replays a RecPrePrepared record into s.
func (nd *Node) restorePrePrepared(s *slot, r *Record) error {
	switch {
	case r.Requests == nil && r.Digest != nullDigest:
		// Named by a NEW-VIEW's digest; the batch, if it came, is in a later record.
		if s.findBuf(r.Digest) < 0 {
			nd.acceptDigest(s, r.View, r.Digest)
		} else {
			nd.acceptPrePrepare(s, r.View, r.Digest, nil, nil)
		}
	case s.missing && s.hasPP && s.view == r.View && s.digest == r.Digest:
		// The fetched batch of a digest-only pre-prepare: into the buffer the slot (and its P
		// entry, if it prepared meanwhile) points at, as fillBatch put it.
		if err := nd.checkHeldBatch(r.Requests, r.Digest); err != nil {
			return fmt.Errorf("batch for %d: %w", r.Seq, err)
		}
		b := &s.bufs[s.cur] // the digest's own Q entry (acceptDigest)
		b.set(r.Requests, nd.reqDigests)
		b.batch, b.valid = r.Digest, true
		s.missing = false
	default:
		if err := nd.checkHeldBatch(r.Requests, r.Digest); err != nil {
			return fmt.Errorf("batch for %d: %w", r.Seq, err)
		}
		// A backup that could not authenticate a request held its PREPARE back until f
		// other backups prepared (stepPrePrepare): the log does not say whether that
		// happened, so the request is checked again and, if it still fails here, the slot
		// waits for those prepares again rather than vouching for the batch blind.
		unvouched := false
		if nd.id != nd.primaryOf(r.View) {
			for i := range r.Requests {
				if !nd.auth.verifyRequest(&r.Requests[i], &nd.reqDigests[i]) {
					unvouched = true
					break
				}
			}
		}
		nd.acceptPrePrepare(s, r.View, r.Digest, r.Requests, nd.reqDigests)
		if unvouched {
			s.unvouched = true
			return nil
		}
	}
	if nd.id != nd.primaryOf(r.View) && !s.missing {
		s.vote(false, nd.id, s.digest) // its PREPARE went out after this record (held batches only)
	}
	return nil
}

// markCommitted marks s committed-local with digest d, as a restore found it in the log (in
// some view: final in any). Its batch is the one of d's Q entry, held or, if the log has it
// by digest only, fetched like a NEW-VIEW's batch into that entry's buffer.
func (s *slot) markCommitted(d Digest) {
	i := s.entryOf(d)
	if i < 0 {
		// Not reached: a committed digest was pre-prepared here, and later views pre-prepare
		// only that digest at this number, so its entry is never evicted.
		i = s.takeEntry(s.view, d)
	}
	s.digest, s.committed = d, true
	s.cur, s.missing = i, !s.bufs[i].valid
}
