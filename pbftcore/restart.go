package pbftcore

import "fmt"

// Restart from a durable stable checkpoint (OSDI '99 §4.3; TOCS 2002 §4.3 and §5).
//
// The paper's replicas keep their protocol state in memory and a recovering replica fetches
// the state from others (TOCS 2002 §5, proactive recovery). That needs 2f+1 replicas that
// still hold the certified checkpoint: when more than f restart at once (a power cut), no
// one does. So the driver may persist each stable checkpoint the core reports in
// Ready.Stable (sequence number, digest, the 2f+1 signed CHECKPOINTs that prove it, and the
// core's client table) together with the App's state at that sequence number, and restart
// the core from it with Config.Start. The proof is transferable (signatures), so the
// restarted replica can serve it to others (state transfer, VIEW-CHANGE's C set) exactly as
// if it had just completed a state transfer to Seq.
//
// With the checkpoint alone nothing above Seq survives: the restarted replica has no log, no
// prepared certificates and no view-change state, and like any replica that loses its memory
// it counts as one of the f faulty replicas until it has caught up (it may, for example,
// re-propose a sequence number of its old view as primary). A driver that also logs the
// records of Ready.Persist hands them back in Config.Log (persist.go), and the replica then
// restarts as a correct one.

// StartState is a durable stable checkpoint to start from (Config.Start).
type StartState struct {
	Seq  uint64 // the checkpoint's sequence number (a multiple of K, > 0)
	View uint64 // the view to start in
	// ViewActive says NEW-VIEW for View had been accepted; false starts the replica changing to
	// View (it re-sends its VIEW-CHANGE), which is also the safe reading of a record without it.
	ViewActive bool
	// Digest is the certified checkpoint digest: the App digest at Seq combined with the
	// digest of ClientTable.
	Digest Digest
	// Proof holds 2f+1 or more CHECKPOINTs for (Seq, Digest) signed by distinct replicas.
	Proof []Message
	// ClientTable is the core's exactly-once table at Seq (StableCheckpoint.ClientTable).
	ClientTable []byte
}

// StableCheckpoint is a new stable checkpoint this replica holds the state of, reported in
// Ready.Stable so the driver can persist it with the App's state at Seq (App.StateChunk
// serves that state until a later checkpoint becomes stable). A restart from it passes the
// same fields back as a StartState.
type StableCheckpoint struct {
	Seq         uint64
	View        uint64 // the view when it became stable here
	ViewActive  bool   // whether View was active then (false: changing to it)
	Digest      Digest
	Proof       []Message // owned by the receiver: never changed by the core
	ClientTable []byte    // aliases core memory until Advance
}

// start installs cfg.Start. The App must already hold the state at Start.Seq: its digest
// is checked against the certified one, and App.Checkpoint records the state so that this
// replica can serve it by state transfer.
func (nd *Node) start(s *StartState) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: Start: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if s.Seq == 0 {
		return bad("Seq is 0")
	}
	d, ok := nd.validCheckpointProof(s.Seq, s.Proof)
	if !ok || d != s.Digest {
		return bad("proof for checkpoint %d is not 2f+1 valid signed CHECKPOINTs for its digest", s.Seq)
	}
	if len(s.ClientTable) > nd.maxChunkBytes() || !nd.restoreClientTable(s.ClientTable) {
		return bad("client table malformed or for another number of clients")
	}
	if got := stateDigest(nd.app.Checkpoint(s.Seq), s.ClientTable); got != s.Digest {
		return bad("App state and client table do not match the checkpoint digest at %d", s.Seq)
	}
	nd.stableProof = make([]Message, len(s.Proof))
	for i := range s.Proof {
		ownedCopy(&nd.stableProof[i], &s.Proof[i])
	}
	nd.h, nd.stableDigest = s.Seq, s.Digest
	nd.stableTable = append([]byte(nil), s.ClientTable...)
	nd.lastExec, nd.nextSeq, nd.maxPrepared = s.Seq, s.Seq, s.Seq
	nd.view, nd.viewActive = s.View, s.ViewActive
	// Before the crash this replica may have executed (and answered reads from) anything up
	// to the high watermark h+L. Until it has executed past that again, its state may be
	// older than what it already told clients, so it refuses read-only requests (clients
	// then order them), rather than count as one more faulty replica on the read path.
	nd.readFloor = s.Seq + nd.cfg.WindowSize
	return nil
}

// armRestoredViewChange starts the view-change timer of a replica restored in the middle of
// a view change. The VIEW-CHANGEs it had collected for its view are gone with the crash, and
// the replicas that have since entered that view no longer retransmit theirs, so it might
// never again see the 2f+1 that start its timer (OSDI '99 §4.5.2): it would wait forever
// for a NEW-VIEW whose primary may have moved on to a later view. Starting the timer at once
// only decides when it gives up on this view; it changes nothing else.
func (nd *Node) armRestoredViewChange() {
	if !nd.viewActive {
		nd.vc.timerStarted, nd.vc.timer = true, nd.timeout()
	}
}

// reportStable queues Ready.Stable for the stable checkpoint h, whose client table this
// replica holds (it executed to h or transferred the state at h). A later one replaces an
// earlier one not yet handed out: only the newest needs persisting.
func (nd *Node) reportStable() {
	nd.logRecord(Record{Kind: RecView, View: nd.view, Active: nd.viewActive})
	nd.stable = &StableCheckpoint{Seq: nd.h, View: nd.view, ViewActive: nd.viewActive, Digest: nd.stableDigest, Proof: nd.stableProof,
		ClientTable: nd.arenaBytes(nd.stableTable)}
}
