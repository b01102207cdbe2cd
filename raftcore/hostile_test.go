package raftcore

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// hostileCluster is three voters where node 3 is not a core at all: whatever a peer that
// got past authentication could send is injected in its name. Raft does not tolerate
// Byzantine peers, so nothing here checks safety; the core must only never panic on what
// the network hands it (it rejects and counts instead).
type hostileCluster struct {
	nodes map[uint64]*Node
	queue []Message
}

func newHostileCluster(t testing.TB) *hostileCluster {
	c := &hostileCluster{nodes: map[uint64]*Node{}}
	for _, id := range []uint64{1, 2} {
		cfg := DefaultConfig(id, Membership{Voters: []uint64{1, 2, 3}}, rand.New(rand.NewPCG(1, id)))
		cfg.SnapshotThreshold, cfg.SnapshotRetainEntries = 8, 2
		cfg.ReadOnly, cfg.LeaseDriftTicks = ReadLease, 2
		n, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.nodes[id] = n
	}
	return c
}

// drive runs each node's Ready loop, queueing messages between the correct nodes and
// answering snapshot requests.
func (c *hostileCluster) drive() {
	for _, id := range []uint64{1, 2} {
		n := c.nodes[id]
		for n.HasReady() {
			rd := n.Ready()
			for i := range rd.Messages {
				if m := rd.Messages[i]; (m.To == 1 || m.To == 2) && len(c.queue) < 1024 {
					c.queue = append(c.queue, copyMsg(&m))
				}
			}
			if rd.MustPersist() {
				n.AckPersisted(rd.Mark)
			}
			n.Advance()
			if rd.SnapshotRequest > 0 {
				_, _ = n.ReportSnapshot(rd.SnapshotRequest, []byte("state"))
			}
		}
	}
}

func copyMsg(m *Message) Message {
	c := *m
	c.Entries = append([]Entry(nil), m.Entries...)
	for i := range c.Entries {
		c.Entries[i].Data = append([]byte(nil), c.Entries[i].Data...)
	}
	c.SnapData = append([]byte(nil), m.SnapData...)
	return c
}

// terms an attacker likes: small, near the node's, and the top of the range.
var hostileTerms = []uint64{0, 1, 2, 3, 5, 1 << 32, math.MaxUint64 - 1, math.MaxUint64}

// run interprets the fuzz input as a script of ticks, deliveries and injected messages.
// settle delivers every queued message (and what it causes) until the cluster is quiet.
func (c *hostileCluster) settle() {
	c.drive()
	for len(c.queue) > 0 {
		m := c.queue[0]
		c.queue = c.queue[1:]
		_ = c.nodes[m.To].Step(&m)
		c.drive()
	}
}

func (c *hostileCluster) run(data []byte) {
	next := func() uint64 {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return uint64(b)
	}
	word := func() uint64 {
		if len(data) < 8 {
			return next()
		}
		v := binary.LittleEndian.Uint64(data)
		data = data[8:]
		return v
	}
	num := func() uint64 { // small numbers mostly, sometimes anything
		switch k := next(); {
		case k < 200:
			return k % 40
		case k < 240:
			return hostileTerms[k%uint64(len(hostileTerms))]
		default:
			return word()
		}
	}
	for steps := 0; len(data) > 0 && steps < 2000; steps++ {
		switch next() % 4 {
		case 0:
			for _, id := range []uint64{1, 2} {
				c.nodes[id].Tick()
			}
		case 1:
			if len(c.queue) > 0 {
				m := c.queue[0]
				c.queue = c.queue[1:]
				_ = c.nodes[m.To].Step(&m)
			}
		case 2:
			if id := 1 + next()%2; next()%2 == 0 {
				_, _ = c.nodes[id].Propose([][]byte{[]byte("op")})
			} else {
				_ = c.nodes[id].ReadIndex(num())
			}
		default:
			m := Message{Type: MessageType(next() % 16), From: 3, To: 1 + next()%2, Term: num(), LogTerm: num(),
				Index: num(), Commit: num(), Reject: next()%2 == 0, RejectHint: num(), ConflictTerm: num(),
				Context: num(), Transfer: next()%4 == 0}
			if next()%3 == 0 {
				m.From = next() % 5 // a peer claiming another ID, or none
			}
			for k := next() % 4; k > 0; k-- {
				e := Entry{Index: num(), Term: num(), Type: EntryType(next() % 4)}
				e.Data = make([]byte, next()%8)
				if e.Type == EntryConfChange && next()%2 == 0 {
					e.Data = ConfChange{Type: ConfChangeType(next() % 4), NodeID: next() % 5}.Encode(nil)
				}
				m.Entries = append(m.Entries, e)
			}
			if m.Type == MsgSnap {
				m.Snapshot = SnapshotMeta{Index: num(), Term: num(), Membership: Membership{Voters: []uint64{1, 2, 3}}}
				m.SnapOffset, m.SnapDone, m.SnapData = num(), next()%2 == 0, []byte("snap")
				if next()%3 == 0 {
					m.Snapshot.Membership = Membership{Voters: []uint64{next() % 5}}
				}
			}
			if m.Type == MsgSnapResp {
				m.Snapshot = SnapshotMeta{Index: num(), Term: num()}
				m.SnapOffset, m.SnapDone = num(), next()%2 == 0
			}
			_ = c.nodes[m.To].Step(&m)
		}
		c.drive()
	}
}

// FuzzHostilePeer: a 3-node raftcore cluster with one authenticated-but-arbitrary peer never
// panics, whatever that peer sends (issue: a forged AppendEntries conflicting with a
// committed index, a term at the top of the range, and more, each took a node down).
func FuzzHostilePeer(f *testing.F) {
	f.Add([]byte{})
	// Elect node 1 with node 2's vote, commit entries, then conflict with them.
	elect := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}
	f.Add(append(append([]byte{}, elect...), 2, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
		3, 1, 1, 5, 0, 1, 1, 3, 1, 0, 0, 0, 0, 1, 1, 3, 2, 0))
	f.Add(append(append([]byte{}, elect...), 3, 1, 1, 239, 0, 0, 0, 0, 0, 0, 0, 0, 0))
	f.Add(append(append([]byte{}, elect...), 3, 3, 0, 239, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newHostileCluster(t)
		c.run(data)
	})
}

// electedPair returns the hostile cluster with node 1 leading term 1 and a few entries
// committed on nodes 1 and 2.
func electedPair(t *testing.T) *hostileCluster {
	t.Helper()
	c := newHostileCluster(t)
	// Under lease reads a node sits out one election timeout after it starts before voting.
	for range DefaultConfig(1, Membership{}, nil).ElectionTick {
		c.nodes[2].Tick()
	}
	c.nodes[1].Campaign()
	for i := 0; i < 50 && c.nodes[1].Role() != Leader; i++ {
		c.settle()
	}
	for i := 0; i < 3; i++ {
		if _, err := c.nodes[1].Propose([][]byte{[]byte("x")}); err != nil {
			t.Fatal(err)
		}
		c.settle()
	}
	if c.nodes[1].Role() != Leader || c.nodes[2].Committed() < 3 {
		t.Fatalf("setup: node 1 %v, node 2 committed %d", c.nodes[1].Role(), c.nodes[2].Committed())
	}
	return c
}

// Each attack an authenticated-but-faulty peer made against running nodes is refused and
// counted, and changes nothing: an append that contradicts a committed entry (it took the
// follower down), terms at the top of the range (they wrapped and took nodes down). A vote
// with the transfer flag from far ahead (it deposed a healthy leader) is no transfer: it is
// ignored like any vote while the leader is heard, and deposes no one.
func TestHostilePeerMessagesAreRefused(t *testing.T) {
	c := electedPair(t)
	f := c.nodes[2]
	commit, last, term := f.Committed(), f.LastIndex(), f.Term()
	attacks := []Message{
		{Type: MsgApp, From: 3, To: 2, Term: term, Index: 0, LogTerm: 0, Commit: commit,
			Entries: []Entry{{Index: 1, Term: term + 0, Data: []byte("forged")}, {Index: 2, Term: term, Data: []byte("forged")}}},
		{Type: MsgApp, From: 3, To: 2, Term: term + 1, Index: 1, LogTerm: 1,
			Entries: []Entry{{Index: 2, Term: term + 1, Data: []byte("rewrite")}}, Commit: 2},
		{Type: MsgApp, From: 3, To: 2, Term: math.MaxUint64, Index: last, LogTerm: term},
		{Type: MsgHeartbeat, From: 3, To: 2, Term: math.MaxUint64 - 1},
		{Type: MsgVote, From: 3, To: 1, Term: 1 << 40, Index: 1 << 40, LogTerm: 1 << 39, Transfer: true},
		{Type: MsgApp, From: 3, To: 2, Term: term, Index: last, LogTerm: term,
			Entries: []Entry{{Index: last + 5, Term: term}}},
	}
	for i, m := range attacks {
		err := c.nodes[m.To].Step(&m)
		c.drive()
		if i == 0 {
			// Entry 1 carries the committed term but other bytes: only a checksum of the log
			// could tell, and Raft does not keep one. The follower treats it as a match.
			continue
		}
		if m.Type == MsgVote {
			if err != nil {
				t.Errorf("attack %d (far-ahead transfer vote): Step = %v, want it ignored", i, err)
			}
			continue
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("attack %d (%v term %d): Step = %v, want ErrMalformed", i, m.Type, m.Term, err)
		}
	}
	if got := f.RejectedMessages() + c.nodes[1].RejectedMessages(); got < uint64(len(attacks)-2) {
		t.Errorf("%d malformed messages counted, want %d", got, len(attacks)-2)
	}
	if f.Committed() < commit || f.Term() != term || f.LastIndex() < last {
		t.Errorf("follower changed: commit %d->%d term %d->%d last %d->%d", commit, f.Committed(), term, f.Term(), last, f.LastIndex())
	}
	if c.nodes[1].Role() != Leader || c.nodes[1].Term() != term {
		t.Errorf("the leader was deposed: %v term %d", c.nodes[1].Role(), c.nodes[1].Term())
	}
}

// A leader of an older term may have held an entry other than the one committed later at
// that index: its append arriving late is stale, not malformed (the simulator found the
// check refusing it), and the follower answers it with its term.
func TestStaleLeaderAppendIsNotMalformed(t *testing.T) {
	c := electedPair(t)
	f := c.nodes[2]
	last, term := f.LastIndex(), f.Term()
	// A leader of term+1 appends and commits last+1.
	newer := Message{Type: MsgApp, From: 3, To: 2, Term: term + 1, Index: last, LogTerm: term,
		Entries: []Entry{{Index: last + 1, Term: term + 1, Data: []byte("new")}}, Commit: last + 1}
	if err := f.Step(&newer); err != nil {
		t.Fatalf("append of the newer leader: %v", err)
	}
	c.drive()
	if f.Committed() != last+1 {
		t.Fatalf("setup: committed %d, want %d", f.Committed(), last+1)
	}
	c.queue = c.queue[:0]
	// The old leader's append of another entry at last+1, delayed until now.
	stale := Message{Type: MsgApp, From: 1, To: 2, Term: term, Index: last, LogTerm: term,
		Entries: []Entry{{Index: last + 1, Term: term, Data: []byte("old")}}, Commit: last}
	if err := f.Step(&stale); err != nil {
		t.Fatalf("stale append: Step = %v, want it answered as stale", err)
	}
	c.drive()
	if f.RejectedMessages() != 0 || f.Committed() != last+1 || f.Term() != term+1 {
		t.Errorf("rejected %d, commit %d, term %d", f.RejectedMessages(), f.Committed(), f.Term())
	}
	answered := false
	for _, m := range c.queue {
		answered = answered || (m.To == 1 && m.Type == MsgAppResp && m.Term == term+1)
	}
	if !answered {
		t.Errorf("the stale leader was not told the newer term: %v", c.queue)
	}
}
