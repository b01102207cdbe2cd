package pbftcore_test

import "testing"

// PBFT §4.2 (OSDI '99): request, pre-prepare, prepare, commit, in-order execution, reply;
// the client accepts f+1 matching replies; a retransmitted executed request gets the cached
// reply (exactly-once, §4.1).
func TestTranscriptNormalCase(t *testing.T) { runTranscript(t, "normal_case.txt") }

// PBFT §4.2 and §5.1.4 (OSDI '99): batching at the primary, full batches at once, partial
// ones on the tick flush.
func TestTranscriptBatching(t *testing.T) { runTranscript(t, "batching.txt") }

func TestTranscriptFlushIdle(t *testing.T) { runTranscript(t, "flush_idle.txt") }

// PBFT §4.3 (OSDI '99): checkpoints, stable with 2f+1 signed CHECKPOINTs, watermarks and
// garbage collection.
func TestTranscriptCheckpointGC(t *testing.T) { runTranscript(t, "checkpoint_gc.txt") }

// PBFT §4.4 (OSDI '99), TOCS 2002 §4.5: a request prepared in view 0 survives the view change
// and executes in view 1 at its sequence number.
func TestTranscriptViewChange(t *testing.T) { runTranscript(t, "view_change.txt") }

// PBFT §4.4 (OSDI '99): NEW-VIEW fills gaps with null requests.
func TestTranscriptNewViewNull(t *testing.T) { runTranscript(t, "new_view_null.txt") }

// PBFT §4.3 (OSDI '99), TOCS 2002 §5.3.2: state transfer to a replica behind the stable
// checkpoint, verified against the 2f+1-certified digest.
func TestTranscriptStateTransfer(t *testing.T) { runTranscript(t, "state_transfer.txt") }

// PBFT §5.1.3 (OSDI '99): read-only requests need 2f+1 matching replies, else are retried as
// ordered requests.
func TestTranscriptReadOnly(t *testing.T) { runTranscript(t, "read_only.txt") }

// PBFT §4.1-§4.4 (OSDI '99), TOCS 2002 §4.5: every Byzantine behaviour the simulator injects is rejected
// and the correct replicas keep agreement and progress.
func TestTranscriptByzantine(t *testing.T) { runTranscript(t, "byzantine.txt") }

// PBFT §4.3 (OSDI '99; TOCS 2002 §4.3, §5): replicas restart from their persisted stable
// checkpoints (Config.Start), all at once and one alone, and keep agreement and their state.
func TestTranscriptRestart(t *testing.T) { runTranscript(t, "restart.txt") }

// TOCS 2002 §5.2: view changes carry digests; a replica missing a batch the NEW-VIEW chose
// fetches it and checks it against the digest, rejecting a faulty replica's forgery.
func TestTranscriptFetchBatch(t *testing.T) { runTranscript(t, "fetch_batch.txt") }

// Durable protocol state: a replica that logs its pre-prepared, prepared and committed
// records and its view before sending restarts as a correct replica; a restart of all
// replicas at once loses no answered request (the papers keep this state in memory: OSDI
// '99 §4.3 and TOCS 2002 §5 recover it from others instead).
func TestTranscriptRestartLog(t *testing.T) { runTranscript(t, "restart_log.txt") }

// TOCS 2002 §5.2 with the rule that a replica PREPAREs only a batch it holds: a NEW-VIEW that
// chooses (by rules A1/A2) a digest whose batch no running replica holds cannot get it
// prepared, so a later view change chooses a null request (rule B) and the cluster moves on,
// instead of committing a batch nobody can execute.
func TestTranscriptUnheldDigest(t *testing.T) { runTranscript(t, "unheld_digest.txt") }

// Durable protocol state: a checkpoint that became stable while the replica lacked its state
// (state transfer pending) is logged (RecStable), so a restart does not move the low
// watermark back and drop the records above the old window; the restarted replica resumes
// the state transfer and never PREPAREs a second digest for a (view, n) it prepared.
func TestTranscriptRestoreAboveWindow(t *testing.T) { runTranscript(t, "restore_window.txt") }

// Durable protocol state: what a replica committed in an older view is final and is
// re-executed on restart, whatever view the replica restarts in.
func TestTranscriptCommittedOlderView(t *testing.T) { runTranscript(t, "committed_older_view.txt") }

// A stable-checkpoint snapshot records whether its view was active: a replica that lost the
// log's tail restarts changing to that view (re-sending its VIEW-CHANGE), not active in a
// view whose NEW-VIEW it never accepted.
func TestTranscriptSnapshotViewActive(t *testing.T) { runTranscript(t, "snapshot_view.txt") }

// Durable protocol state: a logged stable checkpoint whose snapshot was lost in the crash is
// regained by re-executing the log's committed batches, not by a state transfer that, after
// a power cut of every replica, nobody could serve.
func TestTranscriptSnapshotLost(t *testing.T) { runTranscript(t, "snapshot_lost.txt") }

// Durable protocol state: a replica that caught up by state transfer and lost its snapshots
// restarts from its log, regains what it executed, and fetches the rest again; a restore
// that adopts several stable checkpoints reports only one whose state the App holds.
func TestTranscriptSnapshotLostTransfer(t *testing.T) {
	runTranscript(t, "snapshot_lost_transfer.txt")
}

// OSDI '99 §4.3 with checkpoint digests computed off the driver (AsyncCheckpointer): the
// CHECKPOINT waits for the digest, and a replica whose digest comes after its checkpoint
// became stable reports it then.
func TestTranscriptAsyncCheckpoint(t *testing.T) { runTranscript(t, "async_checkpoint.txt") }

// Durable protocol state: a restore that adopts a logged stable checkpoint whose snapshot was
// lost counts what it committed in an older view as final before it re-executes (the slot was
// re-pre-prepared by a later view in the log).
func TestTranscriptSnapshotLostViewChange(t *testing.T) {
	runTranscript(t, "snapshot_lost_view_change.txt")
}

// OSDI '99 §4.3 with late digests: a checkpoint that became stable on others' messages is
// reported when this replica's digest arrives, even after its checkpoint-ring slot was reused.
func TestTranscriptAsyncCheckpointLate(t *testing.T) { runTranscript(t, "async_checkpoint_late.txt") }

// TOCS 2002 §4.5 (rule A2) and §5.2: a faulty primary sends a real batch to one correct
// replica only, which overwrites it when the next view assigns that number to another batch;
// the faulty replica then claims the hidden batch prepared. A replica lists a batch in Q only
// while it holds it, so the NEW-VIEW that chooses it can always get it from a correct replica.
func TestTranscriptHiddenBatch(t *testing.T) { runTranscript(t, "hidden_batch.txt") }

// hidden_batch.txt at n=7 with f=2 faulty replicas.
func TestTranscriptHiddenBatchN7(t *testing.T) { runTranscript(t, "hidden_batch_n7.txt") }

// TOCS 2002 §4.5 (rule A2): the batch prepared at one correct replica stays listed in Q by the
// others that pre-prepared it after a later view assigned that number to another batch, so a
// faulty replica's claim (P for a forged batch) cannot leave the number undecided for good.
func TestTranscriptQKeepsBatch(t *testing.T) { runTranscript(t, "q_keeps_batch.txt") }

// A replica restarted while changing views starts its view-change timer at once: the
// VIEW-CHANGEs it had collected are gone (OSDI '99 §4.5.2 liveness).
func TestTranscriptRestartLostViewChanges(t *testing.T) {
	runTranscript(t, "restart_lost_view_changes.txt")
}

// A replica active in a view answers a laggard's VIEW-CHANGE for that view with its own, so
// the laggard can start its timer (OSDI '99 §4.5.2 liveness).
func TestTranscriptLostViewChangeShared(t *testing.T) {
	runTranscript(t, "lost_view_change_shared.txt")
}

// A client's MAC wrong for one backup only does not leave that backup behind.
func TestTranscriptSpoiledMAC(t *testing.T) { runTranscript(t, "spoiled_mac.txt") }

// OSDI '99 §4.1 and §4.4: after the primary fails, the client's one retransmission to every
// replica is enough: the new primary orders the requests it received as a backup as soon as
// it enters the view, instead of waiting for the client's next retransmission (which cost a
// whole client timeout and, in between, a second view change).
func TestTranscriptFailoverRetransmission(t *testing.T) {
	runTranscript(t, "failover_retransmission.txt")
}

// The primary re-sends a batch only to the backups that lack it, a period after it sent it.
func TestTranscriptRetransmitTargeted(t *testing.T) { runTranscript(t, "retransmit_targeted.txt") }
