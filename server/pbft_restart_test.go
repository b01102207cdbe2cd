package server

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/client"
	"github.com/consensusbench/consensusbench/storage"
	"github.com/consensusbench/consensusbench/wire"
)

// pbftWriteToCheckpoint writes keys prefix0.. one request (one batch, one sequence number)
// at a time, at least n of them, and goes on until the last write's sequence number is a
// checkpoint that every running replica reports stable. It returns the keys written (all
// acknowledged) and the checkpoint.
func pbftWriteToCheckpoint(t *testing.T, c *LocalCluster, cl interface{ Primary() uint64 }, do func(ops ...wire.Op), prefix string, n int) (map[string]string, uint64) {
	t.Helper()
	k := c.Spec.PBFT.CheckpointInterval
	written := map[string]string{}
	for i := 0; ; i++ {
		key, val := fmt.Sprintf("%s%d", prefix, i), fmt.Sprintf("v%d", i)
		do(put(key, val))
		written[key] = val
		h := pbftReplica(c, int(cl.Primary()-1)).LastExecuted()
		if i+1 < n || h%k != 0 {
			continue
		}
		deadline := time.Now().Add(5 * time.Second)
		for _, r := range c.Replicas {
			for r != nil && r.(*PBFTReplica).StableCheckpoint() < h {
				if time.Now().After(deadline) {
					t.Fatalf("checkpoint %d not stable at every replica", h)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		return written, h
	}
}

// pbftSettled waits until every replica has executed the same sequence number, unchanged
// for pbftSettledFor, and returns it: a client's Close orders more requests (the release of
// its identities, pbftcore/claim.go) above the writes, and the primary may cut them into
// more than one batch (FlushIdle), so all replicas can agree for a moment with a batch
// still on its way.
const pbftSettledFor = 100 * time.Millisecond

func pbftSettled(t *testing.T, c *LocalCluster) uint64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	last, since := uint64(0), time.Now()
	for {
		top, same := pbftReplica(c, 0).LastExecuted(), true
		for i := range c.Replicas {
			same = same && pbftReplica(c, i).LastExecuted() == top
		}
		switch {
		case !same || top != last:
			last, since = top, time.Now()
		case time.Since(since) >= pbftSettledFor:
			return last
		}
		if time.Now().After(deadline) {
			t.Fatal("replicas did not settle on one executed sequence number")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pbftValues runs ops through cl and returns the value each one read.
func pbftValues(t *testing.T, cl *client.PBFTClient, ops ...wire.Op) [][]byte {
	t.Helper()
	var vals [][]byte
	for _, o := range pdo(t, cl, ops...).Ops {
		vals = append(vals, o.Value)
	}
	return vals
}

// pbftReadBack reads every key back through cl, a few per request (a reply holds at most
// PBFTMaxResultBytes).
func pbftReadBack(t *testing.T, cl *client.PBFTClient, written map[string]string) {
	t.Helper()
	var keys []string
	for k := range written {
		keys = append(keys, k)
	}
	const perRead = 16
	for len(keys) > 0 {
		n := min(perRead, len(keys))
		var ops []wire.Op
		for _, k := range keys[:n] {
			ops = append(ops, get(k))
		}
		vals := pbftValues(t, cl, ops...)
		for i, k := range keys[:n] {
			if string(vals[i]) != written[k] {
				t.Fatalf("key %s = %q after restart, acknowledged %q", k, vals[i], written[k])
			}
		}
		keys = keys[n:]
	}
}

// pbftWaitCaughtUp writes through do until replica i has executed up to the others' stable
// checkpoint: ongoing work makes the others retransmit their checkpoints to a laggard.
func pbftWaitCaughtUp(t *testing.T, c *LocalCluster, i int, do func(ops ...wire.Op)) {
	t.Helper()
	target := pbftReplica(c, 0).StableCheckpoint()
	deadline := time.Now().Add(10 * time.Second)
	for n := 0; pbftReplica(c, i).LastExecuted() < target; n++ {
		do(put("tick", fmt.Sprint(n)))
		if time.Now().After(deadline) {
			t.Fatalf("restarted replica executed %d, stable checkpoint of the others is %d", pbftReplica(c, i).LastExecuted(), target)
		}
	}
}

// PBFT §4.3 (OSDI '99; TOCS 2002 §4.3, §5): every replica crashes at once (more than f) and
// restarts from the stable checkpoint it persisted (snapshot with the 2f+1 signed proof and
// the client table): each one resumes at the checkpoint without state transfer, every
// acknowledged write (all at or below the checkpoint) reads back, and the cluster orders
// new writes.
func TestPBFTClusterAllReplicasRestartFromCheckpoint(t *testing.T) {
	c := startPBFTCluster(t, storage.SyncAlways)
	cl := pbftClient(t, c, 0, 1)
	written, h := pbftWriteToCheckpoint(t, c, cl, func(ops ...wire.Op) { pdo(t, cl, ops...) }, "k", 2*int(c.Spec.PBFT.CheckpointInterval)+3)
	_ = cl.Close()
	last := pbftSettled(t, c) // h, and the release of cl's identities
	stopAll(t, c)
	for i := range c.Replicas {
		if err := c.RestartNode(i); err != nil {
			t.Fatal(err)
		}
		// Restored from its own disk before it talks to anyone.
		if r := pbftReplica(c, i); r.LastExecuted() != last || r.StableCheckpoint() != h {
			t.Fatalf("replica %d restarted at executed=%d stable=%d, want the checkpoint %d and its log up to %d", i, r.LastExecuted(), r.StableCheckpoint(), h, last)
		}
	}
	cl2 := pbftClient(t, c, 0, 2) // the same identities: their exactly-once records survived
	pbftReadBack(t, cl2, written)
	pdo(t, cl2, put("after", "1"))
	if v := pbftValues(t, cl2, get("after"), get("k0")); string(v[0]) != "1" || string(v[1]) != "v0" {
		t.Fatalf("after restart: after=%q k0=%q", v[0], v[1])
	}
}

// PBFT §4.3: one replica restarts alone from its persisted checkpoint while the others
// moved several checkpoints ahead; it resumes at its own checkpoint, catches up (state
// transfer to the newer certified checkpoint, then execution), and is then needed for
// every quorum.
func TestPBFTClusterReplicaRestartsFromCheckpointAndCatchesUp(t *testing.T) {
	c := startPBFTCluster(t, storage.SyncAlways)
	cl := pbftClient(t, c, 0, 4)
	do := func(ops ...wire.Op) { pdo(t, cl, ops...) }
	early, h0 := pbftWriteToCheckpoint(t, c, cl, do, "early", int(c.Spec.PBFT.CheckpointInterval))
	if err := c.StopNode(3); err != nil {
		t.Fatal(err)
	}
	later, _ := pbftWriteToCheckpoint(t, c, cl, do, "k", 3*int(c.Spec.PBFT.CheckpointInterval))
	if err := c.RestartNode(3); err != nil {
		t.Fatal(err)
	}
	if r := pbftReplica(c, 3); r.LastExecuted() != h0 {
		t.Fatalf("restarted replica at executed=%d, want its checkpoint %d", r.LastExecuted(), h0)
	}
	pbftWaitCaughtUp(t, c, 3, do)
	// Without replica index 2 every quorum of 2f+1 = 3 needs the restarted replica.
	if err := c.StopNode(2); err != nil {
		t.Fatal(err)
	}
	cl2 := pbftClient(t, c, 8, 2) // the restarted replica listens on a new port
	pdo(t, cl2, put("after", "1"))
	for k, v := range later {
		early[k] = v
	}
	early["after"] = "1"
	pbftReadBack(t, cl2, early)
}

// Durable protocol state (pbftlog.go, pbftcore/persist.go): every replica stops at once
// with acknowledged writes above its last stable checkpoint; each restarts from its
// checkpoint plus its logged records, re-executes what it committed before talking to
// anyone, and every acknowledged write reads back (before the log, the writes above the
// checkpoint were lost).
func TestPBFTClusterAllReplicasRestartFromTheirLogs(t *testing.T) {
	c := startPBFTCluster(t, storage.SyncAlways)
	cl := pbftClient(t, c, 0, 1)
	k := int(c.Spec.PBFT.CheckpointInterval)
	written := map[string]string{}
	for i := range 2*k + k/2 { // one request per batch: past two checkpoints, then half way
		key, val := fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)
		pdo(t, cl, put(key, val))
		written[key] = val
	}
	_ = cl.Close()
	pbftSettled(t, c) // the release of cl's identities, before the snapshot of what executed
	var executed []uint64
	for i := range c.Replicas {
		executed = append(executed, pbftReplica(c, i).LastExecuted())
		if err := c.StopNode(i); err != nil {
			t.Fatal(err)
		}
	}
	above := false
	for i := range c.Replicas {
		if err := c.RestartNode(i); err != nil {
			t.Fatal(err)
		}
		r := pbftReplica(c, i)
		if r.LastExecuted() != executed[i] {
			t.Fatalf("replica %d re-executed its log to %d, had executed %d", i, r.LastExecuted(), executed[i])
		}
		above = above || r.LastExecuted() > r.StableCheckpoint()
	}
	if !above {
		t.Fatal("no replica had executed above its stable checkpoint: the test exercises nothing")
	}
	cl2 := pbftClient(t, c, 0, 2)
	pbftReadBack(t, cl2, written)
	pdo(t, cl2, put("after", "1"))
}

// snapshotIndexOnDisk is the checkpoint of replica i's newest snapshot file (0: none).
func snapshotIndexOnDisk(c *LocalCluster, i int) uint64 {
	s, _, err := storage.OpenLatestSnapshot(nil, filepath.Join(c.dir, fmt.Sprintf("node-%d", i+1), "snap"))
	if err != nil {
		return 0
	}
	defer s.Close()
	return s.Index
}

// Snapshot files follow the WAL's volume (pbft.snapshot_threshold_bytes), not every stable
// checkpoint: with a threshold no run reaches, each replica writes the first stable
// checkpoint's file only, and after every replica stops at once each one replays its WAL
// across the later checkpoints back to where it was, with every acknowledged write intact.
// With a threshold of a few checkpoints' records, files come every few checkpoints.
func TestPBFTSnapshotFilesFollowWALVolume(t *testing.T) {
	for _, tc := range []struct {
		name      string
		threshold uint64
	}{{"never", 1 << 40}, {"every few checkpoints", 4 << 10}} {
		t.Run(tc.name, func(t *testing.T) {
			spec := pbftTestSpec()
			spec.PBFT.SnapshotThresholdBytes = tc.threshold
			c := startPBFTClusterSpec(t, storage.SyncAlways, false, spec)
			cl := pbftClient(t, c, 0, 1)
			k := int(spec.PBFT.CheckpointInterval)
			written, h := pbftWriteToCheckpoint(t, c, cl, func(ops ...wire.Op) { pdo(t, cl, ops...) }, "k", 8*k)
			_ = cl.Close()
			checkpoints := h / uint64(k)
			for i := range c.Replicas {
				r := pbftReplica(c, i)
				// The newest file may still be on its way to disk: wait for it.
				deadline := time.Now().Add(5 * time.Second)
				for {
					files, newest := r.m.snapshots.Value(), snapshotIndexOnDisk(c, i)
					var bad string
					switch {
					case tc.threshold == 1<<40 && (files != 1 || newest != uint64(k)):
						bad = fmt.Sprintf("wrote %d snapshot files, newest at %d; want only the first stable checkpoint's (%d)", files, newest, k)
					case tc.threshold != 1<<40 && (files < 2 || files >= checkpoints):
						bad = fmt.Sprintf("wrote %d snapshot files over %d stable checkpoints; want a file every few", files, checkpoints)
					}
					if bad == "" {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("replica %d %s", i, bad)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			last := pbftSettled(t, c) // h, and the release of cl's identities
			stopAll(t, c)
			for i := range c.Replicas {
				if err := c.RestartNode(i); err != nil {
					t.Fatal(err)
				}
				if r := pbftReplica(c, i); r.LastExecuted() != last || r.StableCheckpoint() != h {
					t.Fatalf("replica %d restarted at executed=%d stable=%d, want stable %d and executed %d from its snapshot and WAL", i, r.LastExecuted(), r.StableCheckpoint(), h, last)
				}
			}
			cl2 := pbftClient(t, c, 0, 2)
			pbftReadBack(t, cl2, written)
			pdo(t, cl2, put("after", "1"))
		})
	}
}

// A checkpoint reached by state transfer is written to disk at once, whatever the WAL's
// volume: its batches are in no log of this replica, so a restart could not re-execute its
// way there. A backup cut off long enough for the others to discard the log it misses
// catches up by state transfer and then holds that checkpoint in a file.
func TestPBFTTransferredCheckpointIsWrittenToDisk(t *testing.T) {
	spec := pbftTestSpec()
	spec.PBFT.SnapshotThresholdBytes = 1 << 40
	c := startPBFTClusterSpec(t, storage.SyncNone, false, spec)
	cl := pbftClient(t, c, 0, 1)
	do := func(ops ...wire.Op) { pdo(t, cl, ops...) }
	k := int(spec.PBFT.CheckpointInterval)
	_, h0 := pbftWriteToCheckpoint(t, c, cl, do, "early", k)
	lag := pbftReplica(c, 3)
	lag.SetPartition([]uint64{1, 2, 3})
	for i := range 6 * k { // past the window (L = 4K) beyond the laggard's checkpoint
		do(put(fmt.Sprint("k", i), "v"))
	}
	lag.SetPartition(nil)
	pbftWaitCaughtUp(t, c, 3, do)
	deadline := time.Now().Add(5 * time.Second)
	for snapshotIndexOnDisk(c, 3) <= h0 {
		if time.Now().After(deadline) {
			t.Fatalf("newest snapshot file of the caught-up replica is at %d, its stable checkpoint %d (it was at %d before the transfer)",
				snapshotIndexOnDisk(c, 3), lag.StableCheckpoint(), h0)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The allocation of client identities (pbftcore/claim.go) is replicated, checkpointed state:
// after every replica restarts at once from its snapshot file and WAL (the claim itself long
// compacted out of the WAL), a live client's range is still refused to another claimant and
// left out of automatic grants.
func TestPBFTClaimedIdentitiesSurviveRestart(t *testing.T) {
	spec := pbftTestSpec()
	spec.PBFT.SnapshotThresholdBytes = 4 << 10 // snapshot files every few checkpoints, WAL compacted behind them
	c := startPBFTClusterSpec(t, storage.SyncAlways, false, spec)
	holder := pbftClient(t, c, 4, 4)
	k := int(spec.PBFT.CheckpointInterval)
	pbftWriteToCheckpoint(t, c, holder, func(ops ...wire.Op) { pdo(t, holder, ops...) }, "k", 8*k)
	deadline := time.Now().Add(5 * time.Second)
	for i := range c.Replicas {
		for snapshotIndexOnDisk(c, i) <= uint64(k) {
			if time.Now().After(deadline) {
				t.Fatalf("replica %d wrote no snapshot file past the first checkpoint", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	stopAll(t, c)
	for i := range c.Replicas {
		if err := c.RestartNode(i); err != nil {
			t.Fatal(err)
		}
	}
	nodes := clientNodes(c)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := client.PBFTConfig{Nodes: nodes, KeySeed: spec.PBFT.KeySeed, MaxClients: spec.PBFT.MaxClients, FixedClientIDs: true,
		FirstClientID: 6, MaxInflight: 4, AttemptTimeout: 300 * time.Millisecond, DialTimeout: time.Second}
	if other, err := client.NewPBFT(ctx, cfg); err == nil {
		other.Close()
		t.Fatal("after the restart, identities [6, 10) were granted although the live holder of [4, 8) never released them")
	} else if !strings.Contains(err.Error(), "another live client") {
		t.Fatalf("overlapping claim after restart: %v", err)
	}
	cfg.FixedClientIDs, cfg.FirstClientID = false, 0
	auto, err := client.NewPBFT(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer auto.Close()
	if f := auto.FirstClientID(); f < 8 && f+4 > 4 {
		t.Fatalf("automatic range [%d, %d) overlaps the holder's [4, 8)", f, f+4)
	}
	pdo(t, auto, put("after-restart", "1"))
}
