package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/kv"
	"github.com/consensusbench/consensusbench/storage"
)

// writeDisk lays out a replica's data directory: WAL entries with the given terms (index
// i+1 has terms[i]) and, when snapIndex > 0, a snapshot (snapIndex, snapTerm).
func writeDisk(t *testing.T, dir string, terms []uint64, snapIndex, snapTerm uint64) {
	t.Helper()
	w, _, err := storage.Open(filepath.Join(dir, "wal"), storage.Options{Sync: storage.SyncAlways})
	if err != nil {
		t.Fatal(err)
	}
	var ents []storage.Entry
	for i, term := range terms {
		ents = append(ents, storage.Entry{Index: uint64(i + 1), Term: term, Type: 2})
	}
	seq, err := w.Append(ents, storage.HardState{Term: terms[len(terms)-1], Vote: 1, Commit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WaitDurable(seq); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if snapIndex == 0 {
		return
	}
	s, _ := kv.New(kv.Config{NoDigest: true})
	var body bytes.Buffer
	if _, err := s.Snapshot(&body); err != nil {
		t.Fatal(err)
	}
	meta, _ := json.Marshal(snapMeta{Voters: []uint64{1, 2, 3}})
	if _, err := storage.WriteSnapshot(nil, filepath.Join(dir, "snap"), storage.SnapshotMeta{Index: snapIndex, Term: snapTerm, Meta: meta},
		func(wr io.Writer) error { _, err := wr.Write(body.Bytes()); return err }); err != nil {
		t.Fatal(err)
	}
}

func restartReplica(t *testing.T, dir string) *RaftReplica {
	t.Helper()
	spec := LocalClusterSpec("raft", 3, 7100)
	r, err := NewRaftReplica(ReplicaConfig{Spec: spec, ID: 1, DataDir: dir, PeerListen: "127.0.0.1:0", ClientListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Cleanup(func() { _ = r.Stop() })
	return r
}

// Raft §7: a follower that installs a snapshot whose last entry does not match its log
// discards the whole log. If it crashed after the snapshot was durable but before the WAL
// reset was, the restart must discard the stale suffix too (here: a deposed leader's term-2
// branch under a term-3 snapshot at index 5), not feed it to the core.
func TestRaftRestoreDropsSupersededSuffix(t *testing.T) {
	dir := t.TempDir()
	writeDisk(t, dir, []uint64{1, 1, 1, 2, 2, 2, 2, 2, 2, 2}, 5, 3)
	r := restartReplica(t, dir)
	st := r.node.Status()
	if st.LastIndex != 5 || st.HardState.Term < 3 || st.Applied != 5 {
		t.Fatalf("after restore: last %d, hs %+v, applied %d; want the log to end at the snapshot (5, term 3)",
			st.LastIndex, st.HardState, st.Applied)
	}
	if st.HardState.Vote != 0 {
		t.Fatalf("vote %d kept from an older term than %d", st.HardState.Vote, st.HardState.Term)
	}
}

// When the WAL holds the snapshot's last entry with the snapshot's term, its suffix
// continues the snapshot and is kept (the normal case after a local snapshot).
func TestRaftRestoreKeepsContinuingSuffix(t *testing.T) {
	dir := t.TempDir()
	writeDisk(t, dir, []uint64{1, 1, 1, 2, 2, 2, 2, 2, 2, 2}, 5, 2)
	r := restartReplica(t, dir)
	if st := r.node.Status(); st.LastIndex != 10 || st.Applied != 5 {
		t.Fatalf("after restore: last %d, applied %d; want the log to run to 10 after the snapshot at 5", st.LastIndex, st.Applied)
	}
}

// A replica whose Start fails (its port is taken) must still stop, so that cmd/node exits
// with the error instead of hanging.
func TestRaftStopAfterFailedStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	spec := LocalClusterSpec("raft", 3, 7100)
	r, err := NewRaftReplica(ReplicaConfig{Spec: spec, ID: 1, DataDir: t.TempDir(), Init: true, PeerListen: ln.Addr().String(), ClientListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err == nil {
		t.Fatal("Start on a taken port succeeded")
	}
	done := make(chan struct{})
	go func() { _ = r.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop after a failed Start hangs")
	}
}

// Two replicas can never share a data directory (they would interleave WAL writes): the
// second is refused with a message naming the directory, and the lock goes with Stop.
func TestDataDirectoryIsLocked(t *testing.T) {
	dir := t.TempDir()
	spec := LocalClusterSpec("raft", 3, 7100)
	cfg := ReplicaConfig{Spec: spec, ID: 1, DataDir: dir, Init: true, PeerListen: "127.0.0.1:0", ClientListen: "127.0.0.1:0"}
	r, err := NewRaftReplica(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewRaftReplica(cfg); err == nil || !strings.Contains(err.Error(), "in use by another replica") {
		t.Fatalf("second replica on %s: %v", dir, err)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	r2, err := NewRaftReplica(cfg)
	if err != nil {
		t.Fatalf("reopen after Stop: %v", err)
	}
	_ = r2.Stop()
}

// A data directory knows whose it is: a node refuses another node's copied directory, one
// of another cluster or protocol, and an empty directory unless it is new (--init): a voter
// whose data was wiped has forgotten its votes and could vote twice in one term.
func TestDataDirectoryIdentity(t *testing.T) {
	for _, protocol := range []string{"raft", "pbft"} {
		dir := t.TempDir()
		spec := LocalClusterSpec(protocol, 4, 7100)
		cfg := ReplicaConfig{Spec: spec, ID: 1, DataDir: dir, PeerListen: "127.0.0.1:0", ClientListen: "127.0.0.1:0"}
		if _, err := NewReplica(cfg); err == nil || !strings.Contains(err.Error(), "holds no state") {
			t.Fatalf("%s: an empty directory without Init: %v", protocol, err)
		}
		cfg.Init = true
		r, err := NewReplica(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Stop(); err != nil {
			t.Fatal(err)
		}
		cfg.Init = false // a restart
		r, err = NewReplica(cfg)
		if err != nil {
			t.Fatalf("%s: restart on its own directory: %v", protocol, err)
		}
		_ = r.Stop()

		other := cfg
		other.ID = 2 // node 2 started on node 1's copied directory
		if _, err := NewReplica(other); err == nil || !strings.Contains(err.Error(), "belongs to node 1") {
			t.Fatalf("%s: another node's directory: %v", protocol, err)
		}
		foreign := *spec
		foreign.ClusterID = spec.ClusterID + 1
		other = cfg
		other.Spec = &foreign
		if _, err := NewReplica(other); err == nil || !strings.Contains(err.Error(), "belongs to node 1") {
			t.Fatalf("%s: another cluster's directory: %v", protocol, err)
		}
	}
}
