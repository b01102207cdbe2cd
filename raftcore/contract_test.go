package raftcore

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

func newTestNode(t *testing.T, id uint64, voters ...uint64) *Node {
	t.Helper()
	n, err := New(DefaultConfig(id, Membership{Voters: voters}, rand.New(rand.NewPCG(7, id))))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// takeReady returns one Ready's messages (copied) and whether it carries persistence work.
func takeReady(n *Node) ([]Message, Ready) {
	if !n.HasReady() {
		return nil, Ready{}
	}
	rd := n.Ready()
	msgs := append([]Message(nil), rd.Messages...)
	n.Advance()
	return msgs, rd
}

func hasType(msgs []Message, typ MessageType) bool {
	for _, m := range msgs {
		if m.Type == typ {
			return true
		}
	}
	return false
}

// Raft Figure 2 ("persistent state ... updated on stable storage before responding to
// RPCs"): a vote leaves only after the HardState recording it is durable.
func TestVoteHeldUntilPersisted(t *testing.T) {
	n := newTestNode(t, 2, 1, 2, 3)
	if err := n.Step(&Message{Type: MsgVote, From: 1, To: 2, Term: 1}); err != nil {
		t.Fatal(err)
	}
	msgs, rd := takeReady(n)
	if hasType(msgs, MsgVoteResp) {
		t.Fatal("vote sent before its HardState was durable")
	}
	if !rd.HasHardState || rd.HardState.Vote != 1 || !rd.MustSync || !rd.MustPersist() {
		t.Fatalf("Ready must carry the vote to persist: %+v", rd.HardState)
	}
	if n.HasReady() {
		t.Fatal("nothing may leave before the acknowledgement")
	}
	n.AckPersisted(rd.Mark)
	msgs, _ = takeReady(n)
	if !hasType(msgs, MsgVoteResp) {
		t.Fatal("vote not released after AckPersisted")
	}
}

// Thesis §10.2.1: the leader sends AppendEntries before its own write is durable, but
// counts itself toward the commit quorum only once it is.
func TestLeaderSendsBeforeOwnFsync(t *testing.T) {
	cfg := DefaultConfig(1, Membership{Voters: []uint64{1, 2, 3}}, rand.New(rand.NewPCG(7, 1)))
	cfg.PreVote = false
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Campaign()
	_, rd := takeReady(n)
	n.AckPersisted(rd.Mark)
	takeReady(n) // vote requests
	for _, from := range []uint64{2, 3} {
		if err := n.Step(&Message{Type: MsgVoteResp, From: from, To: 1, Term: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if n.Role() != Leader {
		t.Fatal("not leader")
	}
	if _, err := n.Propose([][]byte{[]byte("x")}); err != nil {
		t.Fatal(err)
	}
	msgs, rd := takeReady(n)
	if !hasType(msgs, MsgApp) || len(rd.Entries) != 2 {
		t.Fatalf("appends must leave with the entries to persist: %d msgs, %d entries", len(msgs), len(rd.Entries))
	}
	// Follower 2 acknowledges everything; the leader's own write is not durable yet, so
	// only 1 of 3 voters counts: nothing commits.
	if err := n.Step(&Message{Type: MsgAppResp, From: 2, To: 1, Term: 1, Index: 2}); err != nil {
		t.Fatal(err)
	}
	if n.commit != 0 {
		t.Fatalf("committed %d without a durable majority", n.commit)
	}
	n.AckPersisted(rd.Mark)
	if n.commit != 2 {
		t.Fatalf("commit = %d after the leader's write is durable, want 2", n.commit)
	}
}

// A follower acknowledges appended entries only once they are durable, and several appends
// queued before a Ready produce one acknowledgement.
func TestFollowerAckCoalescedAfterPersist(t *testing.T) {
	n := newTestNode(t, 2, 1, 2, 3)
	for i := uint64(0); i < 3; i++ {
		m := Message{Type: MsgApp, From: 1, To: 2, Term: 1, Index: i, Entries: []Entry{{Index: i + 1, Term: 1, Data: []byte("e")}}}
		if i > 0 {
			m.LogTerm = 1
		}
		if err := n.Step(&m); err != nil {
			t.Fatal(err)
		}
	}
	msgs, rd := takeReady(n)
	if hasType(msgs, MsgAppResp) {
		t.Fatal("acknowledged entries that are not durable")
	}
	if len(rd.Entries) != 3 {
		t.Fatalf("entries to persist: %d", len(rd.Entries))
	}
	n.AckPersisted(rd.Mark)
	msgs, _ = takeReady(n)
	k := 0
	for _, m := range msgs {
		if m.Type == MsgAppResp {
			k++
			if m.Index != 3 {
				t.Fatalf("ack index %d, want 3", m.Index)
			}
		}
	}
	if k != 1 {
		t.Fatalf("%d acknowledgements, want 1", k)
	}
}

func TestConfigValidateNamesEveryBadField(t *testing.T) {
	cfg := Config{ReadOnly: ReadLease, LeaseDriftTicks: -1}
	_, err := New(cfg)
	if err == nil {
		t.Fatal("zero config accepted")
	}
	for _, field := range []string{"ID", "HeartbeatTick", "ElectionTick", "Rand", "ReadLease requires CheckQuorum",
		"LeaseDriftTicks", "MaxInflightMsgs", "MaxInflightBytes", "MaxSizePerMsg", "MaxEntriesPerMsg",
		"MaxBatchEntries", "MaxBatchBytes", "MaxApplyBytes", "SnapshotChunkBytes", "MaxSnapshotBytes", "Membership"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
	good := DefaultConfig(1, Membership{Voters: []uint64{1, 2, 2}}, rand.New(rand.NewPCG(1, 1)))
	if _, err := New(good); err == nil || !strings.Contains(err.Error(), "repeated") {
		t.Fatalf("repeated member accepted: %v", err)
	}
}

func TestNotLeaderHint(t *testing.T) {
	n := newTestNode(t, 2, 1, 2, 3)
	if err := n.Step(&Message{Type: MsgHeartbeat, From: 1, To: 2, Term: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := n.Propose([][]byte{[]byte("x")})
	var nl *NotLeaderError
	if !errors.Is(err, ErrNotLeader) || !errors.As(err, &nl) || nl.Leader != 1 {
		t.Fatalf("want NotLeaderError{1}, got %v", err)
	}
}

// Thesis §6.4: a single-voter leader confirms reads by itself.
func TestSingleVoterRead(t *testing.T) {
	n := newTestNode(t, 1, 1)
	n.Campaign()
	for i := 0; i < 5 && n.HasReady(); i++ {
		_, rd := takeReady(n)
		if rd.MustPersist() {
			n.AckPersisted(rd.Mark)
		}
	}
	if n.Role() != Leader || n.commit != 1 {
		t.Fatalf("role %v commit %d", n.Role(), n.commit)
	}
	if err := n.ReadIndex(42); err != nil {
		t.Fatal(err)
	}
	var got []ReadState
	for i := 0; i < 5 && n.HasReady(); i++ {
		rd := n.Ready()
		got = append(got, rd.ReadStates...)
		n.Advance()
	}
	if len(got) != 1 || got[0].Context != 42 || got[0].Index != 1 {
		t.Fatalf("read states %v", got)
	}
}

// A crash between a Ready's snapshot write and its HardState write leaves Commit below the
// snapshot: the node restarts anyway (the commit index is volatile state, Raft Figure 2).
func TestRestartCommitBelowSnapshot(t *testing.T) {
	cfg := DefaultConfig(2, Membership{}, rand.New(rand.NewPCG(1, 2)))
	cfg.HardState = HardState{Term: 3, Vote: 1, Commit: 4}
	cfg.Snapshot = Snapshot{Meta: SnapshotMeta{Index: 10, Term: 3, Membership: Membership{Voters: []uint64{1, 2, 3}}}}
	cfg.Entries = []Entry{{Index: 11, Term: 3}, {Index: 12, Term: 3}}
	cfg.Applied = 10
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st := n.Status(); st.HardState.Commit != 10 || st.LastIndex != 12 || len(st.Membership.Voters) != 3 {
		t.Fatalf("status %+v", st)
	}
	cfg.Applied = 13
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "Applied") {
		t.Fatalf("Applied beyond the log accepted: %v", err)
	}
}

// Raft §7 and the Ready contract's rule 2: an installed snapshot whose last entry the
// follower's log does not hold replaces the whole log, entries above its index included
// (they belong to a superseded branch), and only then is a Snapshot handed out. One whose
// last entry the log holds keeps the log and hands out no Snapshot.
func TestInstalledSnapshotReplacesTheWholeLog(t *testing.T) {
	start := func() *Node {
		cfg := DefaultConfig(2, Membership{Voters: []uint64{1, 2, 3}}, rand.New(rand.NewPCG(7, 2)))
		cfg.HardState = HardState{Term: 3}
		for i, term := range []uint64{1, 1, 2, 2, 2} { // indices 1..5; 3..5 from a leader of term 2
			cfg.Entries = append(cfg.Entries, Entry{Index: uint64(i + 1), Term: term, Data: []byte("e")})
		}
		n, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	install := func(n *Node, index, term uint64) Ready {
		t.Helper()
		err := n.Step(&Message{Type: MsgSnap, From: 1, To: 2, Term: 4, SnapData: []byte("state"), SnapDone: true,
			Snapshot: SnapshotMeta{Index: index, Term: term, Membership: Membership{Voters: []uint64{1, 2, 3}}}})
		if err != nil {
			t.Fatal(err)
		}
		_, rd := takeReady(n)
		return rd
	}

	n := start()
	rd := install(n, 4, 3) // the log holds index 4 with term 2: a different branch
	if rd.Snapshot.IsEmpty() || rd.Snapshot.Meta.Index != 4 || len(rd.Entries) != 0 {
		t.Fatalf("a snapshot over a conflicting log must be handed out alone: snapshot %+v, %d entries", rd.Snapshot.Meta, len(rd.Entries))
	}
	if n.LastIndex() != 4 || n.Committed() != 4 {
		t.Fatalf("after the install the log must end at the snapshot: last %d, commit %d", n.LastIndex(), n.Committed())
	}
	if st := n.Status(); st.FirstIndex != 5 {
		t.Fatalf("entry 5 of the superseded branch survived the install: first index %d", st.FirstIndex)
	}

	n = start()
	rd = install(n, 4, 2) // the log holds index 4 with term 2: keep it, commit up to 4
	if !rd.Snapshot.IsEmpty() {
		t.Fatalf("a snapshot the log already covers must not be handed out: %+v", rd.Snapshot.Meta)
	}
	if n.LastIndex() != 5 || n.Committed() != 4 {
		t.Fatalf("the log must be kept and committed to 4: last %d, commit %d", n.LastIndex(), n.Committed())
	}
}

// Propose returns the index it assigned; the getters do not allocate; SnapshotMetaAt gives
// the membership at the index, not a later uncommitted change.
func TestProposeIndexAndCheapGetters(t *testing.T) {
	cfg := DefaultConfig(1, Membership{Voters: []uint64{1}}, rand.New(rand.NewPCG(7, 1)))
	cfg.PreVote = false
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Campaign()
	drain := func() {
		for n.HasReady() {
			rd := n.Ready()
			if rd.MustPersist() {
				n.AckPersisted(rd.Mark)
			}
			n.Advance()
		}
	}
	drain()
	if n.Role() != Leader || n.Term() != 1 {
		t.Fatalf("single voter did not lead term 1: %v term %d", n.Role(), n.Term())
	}
	first, err := n.Propose([][]byte{[]byte("a"), []byte("b")})
	if err != nil || first != n.LastIndex()-1 {
		t.Fatalf("Propose = %d, %v; log ends at %d", first, err, n.LastIndex())
	}
	drain()
	if n.Committed() != first+1 {
		t.Fatalf("commit %d, want %d", n.Committed(), first+1)
	}
	applied := n.Committed()
	idx, err := n.ProposeConfChange(ConfChange{Type: AddLearner, NodeID: 4})
	if err != nil || idx != n.LastIndex() {
		t.Fatalf("ProposeConfChange = %d, %v; log ends at %d", idx, err, n.LastIndex())
	}
	meta, err := n.SnapshotMetaAt(applied)
	if err != nil || meta.Index != applied || meta.Term != 1 || len(meta.Membership.Learners) != 0 {
		t.Fatalf("SnapshotMetaAt(%d) = %+v, %v: want term 1 and no learner (the change is at %d)", applied, meta, err, idx)
	}
	if _, err := n.SnapshotMetaAt(n.LastIndex()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("SnapshotMetaAt beyond applied: %v, want ErrUnavailable", err)
	}
	got, err := n.ReportSnapshot(applied, []byte("s"))
	if err != nil || got.Index != meta.Index || got.Term != meta.Term {
		t.Fatalf("ReportSnapshot = %+v, %v; want %+v", got, err, meta)
	}
	if a := testing.AllocsPerRun(100, func() { _, _, _ = n.Term(), n.Committed(), n.LastIndex(); _, _ = n.SnapshotMetaAt(applied + 1) }); a != 0 {
		t.Fatalf("getters allocate %.1f times", a)
	}
}

// A grant of this node's own candidacy that arrives after its election timed out (it fell
// back to pre-candidate, still in that term) wins the election: the voter granted exactly
// one candidate in the term. Without this, replies slower than the election timeout keep a
// PreVote cluster leaderless (etcd/raft drops such grants).
func TestLateVoteGrantStillWins(t *testing.T) {
	n := newTestNode(t, 1, 1, 2, 3) // PreVote on
	drain := func() []Message {
		var out []Message
		for n.HasReady() {
			rd := n.Ready()
			out = append(out, rd.Messages...)
			if rd.MustPersist() {
				n.AckPersisted(rd.Mark)
			}
			n.Advance()
		}
		return out
	}
	n.Campaign()
	drain()
	if err := n.Step(&Message{Type: MsgPreVoteResp, From: 2, To: 1, Term: 1}); err != nil {
		t.Fatal(err)
	}
	if !hasType(drain(), MsgVote) || n.Role() != Candidate || n.Term() != 1 {
		t.Fatalf("not a candidate of term 1 asking for votes: %v term %d", n.Role(), n.Term())
	}
	for i := 0; i < 2*DefaultConfig(1, Membership{}, nil).ElectionTick && n.Role() == Candidate; i++ {
		n.Tick()
	}
	drain()
	if n.Role() != PreCandidate || n.Term() != 1 {
		t.Fatalf("after its election timed out: %v term %d, want a pre-candidate in term 1", n.Role(), n.Term())
	}
	if err := n.Step(&Message{Type: MsgVoteResp, From: 3, To: 1, Term: 1, Reject: true}); err != nil {
		t.Fatal(err)
	}
	if n.Role() != PreCandidate {
		t.Fatalf("a late rejection changed the role to %v", n.Role())
	}
	if err := n.Step(&Message{Type: MsgVoteResp, From: 2, To: 1, Term: 1}); err != nil {
		t.Fatal(err)
	}
	drain()
	if n.Role() != Leader || n.Term() != 1 {
		t.Fatalf("the late grant did not win term 1: %v term %d", n.Role(), n.Term())
	}
}

// The log between snapshots and the entries kept below one are bounded in bytes as well as
// in entries: a snapshot is asked for once SnapshotThresholdBytes of payload were applied,
// and compaction keeps at most SnapshotRetainBytes below it.
func TestSnapshotBoundsInBytes(t *testing.T) {
	cfg := DefaultConfig(1, Membership{Voters: []uint64{1}}, rand.New(rand.NewPCG(7, 1)))
	cfg.PreVote = false
	cfg.SnapshotThreshold, cfg.SnapshotThresholdBytes = 1<<30, 1000
	cfg.SnapshotRetainEntries, cfg.SnapshotRetainBytes = 100, 250
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Campaign()
	var asked uint64
	drain := func() {
		for n.HasReady() {
			rd := n.Ready()
			if rd.MustPersist() {
				n.AckPersisted(rd.Mark)
			}
			if rd.SnapshotRequest > 0 {
				asked = rd.SnapshotRequest
			}
			n.Advance()
		}
	}
	drain()
	payload := make([]byte, 100)
	for i := 0; i < 30 && asked == 0; i++ {
		if _, err := n.Propose([][]byte{payload}); err != nil {
			t.Fatal(err)
		}
		drain()
	}
	// Index 1 is the leader's empty entry; ten 100-byte entries reach 1000 bytes at index 11.
	if asked != 11 {
		t.Fatalf("snapshot asked at index %d, want 11 (1000 bytes applied)", asked)
	}
	if _, err := n.ReportSnapshot(asked, []byte("state")); err != nil {
		t.Fatal(err)
	}
	// 250 bytes keep two 100-byte entries below the snapshot: 10 and 11.
	if n.FirstIndex() != 10 {
		t.Fatalf("after the snapshot the log starts at %d, want 10 (SnapshotRetainBytes 250)", n.FirstIndex())
	}
}
