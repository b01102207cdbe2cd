package raftcore

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// A compact randomized harness for the core's own tests (sim/ is the full simulator):
// random ticks, message delivery with drops, duplicates and reordering, delayed
// persistence acknowledgements, crashes that lose unacknowledged writes, partitions,
// proposals, reads, snapshots, membership changes and transfers. It checks election safety
// (Raft §5.2), state machine safety (§5.4.3), read linearizability (thesis §6.4), and that a
// healed cluster commits again.

var chaosSeeds = flag.Int("chaos-seeds", 300, "seeds for TestChaos")

func TestChaos(t *testing.T) {
	for seed := 1; seed <= *chaosSeeds; seed++ {
		if err := runChaos(uint64(seed), 8000); err != nil {
			t.Fatalf("seed %d: %v\nreplay: go test ./raftcore/ -run 'TestChaosSeed' -chaos-seed %d -v", seed, err, seed)
		}
	}
}

var chaosSeed = flag.Uint64("chaos-seed", 0, "single seed for TestChaosSeed")

func TestChaosSeed(t *testing.T) {
	if *chaosSeed == 0 {
		t.Skip("set -chaos-seed")
	}
	if err := runChaos(*chaosSeed, 8000); err != nil {
		t.Fatal(err)
	}
}

type chaos struct {
	rng      *rand.Rand
	cfg      Config
	ids      []uint64
	nodes    map[uint64]*Node
	stores   map[uint64]*memStore
	down     map[uint64]bool
	cut      map[[2]uint64]bool
	net      []Message
	applied  map[uint64]string // index -> term/data applied by anyone
	last     map[uint64]uint64 // per node last applied index
	leaders  map[uint64]uint64 // term -> leader
	readMin  map[uint64]uint64 // read ctx -> max commit when issued
	nextCtx  uint64
	proposed int
	dropPct  int
	trace    []string
}

func (c *chaos) fail(format string, args ...any) error {
	tail := c.trace[max(0, len(c.trace)-40):]
	return fmt.Errorf("%s\nlast events:\n  %s", fmt.Sprintf(format, args...), strings.Join(tail, "\n  "))
}

func (c *chaos) note(format string, args ...any) {
	c.trace = append(c.trace, fmt.Sprintf(format, args...))
}

func runChaos(seed uint64, steps int) error {
	_, err := runChaosC(seed, steps)
	return err
}

func runChaosC(seed uint64, steps int) (c *chaos, err error) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	c = &chaos{rng: rng, nodes: map[uint64]*Node{}, stores: map[uint64]*memStore{}, down: map[uint64]bool{},
		cut: map[[2]uint64]bool{}, applied: map[uint64]string{}, last: map[uint64]uint64{},
		leaders: map[uint64]uint64{}, readMin: map[uint64]uint64{}}
	c.dropPct = rng.IntN(25)
	cfg := DefaultConfig(0, Membership{}, nil)
	cfg.ElectionTick = 10
	cfg.PreVote = rng.IntN(2) == 0
	cfg.CheckQuorum = rng.IntN(2) == 0
	if cfg.CheckQuorum && rng.IntN(2) == 0 {
		cfg.ReadOnly = ReadLease
	}
	cfg.SnapshotThreshold = uint64(10 + rng.IntN(30))
	cfg.SnapshotRetainEntries = uint64(rng.IntN(5))
	cfg.SnapshotChunkBytes = uint64(4 + rng.IntN(40))
	cfg.MaxInflightMsgs = 1 + rng.IntN(8)
	cfg.MaxSizePerMsg = uint64(1 + rng.IntN(64))
	c.cfg = cfg
	voters := []uint64{1, 2, 3}
	if rng.IntN(2) == 0 {
		voters = []uint64{1, 2, 3, 4, 5}
	}
	c.ids = []uint64{1, 2, 3, 4, 5, 6}
	for _, id := range c.ids {
		c.stores[id] = &memStore{}
		nc := cfg
		nc.ID = id
		nc.Membership = Membership{Voters: voters}
		nc.Rand = rand.New(rand.NewPCG(seed, id))
		n, err := New(nc)
		if err != nil {
			return c, err
		}
		c.nodes[id] = n
	}
	defer func() {
		if r := recover(); r != nil {
			err = c.fail("panic: %v", r)
		}
	}()
	for step := 0; step < steps; step++ {
		if err := c.step(step); err != nil {
			return c, err
		}
	}
	return c, c.converge()
}

func (c *chaos) pick() uint64 { return c.ids[c.rng.IntN(len(c.ids))] }

func (c *chaos) leader() *Node {
	var best *Node
	for _, id := range c.ids {
		n := c.nodes[id]
		if !c.down[id] && n.role == Leader && (best == nil || n.term > best.term) {
			best = n
		}
	}
	return best
}

func (c *chaos) step(step int) error {
	r := c.rng.IntN(1000)
	switch {
	case r < 250:
		id := c.pick()
		if !c.down[id] {
			c.nodes[id].Tick()
		}
	case r < 550:
		if len(c.net) > 0 {
			i := c.rng.IntN(min(len(c.net), 4)) // mostly in order, some reordering
			m := c.net[i]
			switch x := c.rng.IntN(100); {
			case x < c.dropPct: // drop
				c.net = append(c.net[:i], c.net[i+1:]...)
			case x < c.dropPct+3: // duplicate: deliver, keep
				c.deliver(m)
			default:
				c.net = append(c.net[:i], c.net[i+1:]...)
				c.deliver(m)
			}
		}
	case r < 800:
		id := c.pick()
		if err := c.processReady(id, c.rng.IntN(10) < 7); err != nil {
			return err
		}
	case r < 850:
		id := c.pick()
		if !c.down[id] {
			ackAll(c.nodes[id], c.stores[id])
		}
	case r < 920:
		if l := c.leader(); l != nil {
			k := 1 + c.rng.IntN(4)
			var batch [][]byte
			for i := 0; i < k; i++ {
				c.proposed++
				batch = append(batch, []byte(fmt.Sprintf("p%d", c.proposed)))
			}
			_, _ = l.Propose(batch)
		}
	case r < 945:
		id := c.pick()
		if !c.down[id] {
			c.nextCtx++
			c.readMin[c.nextCtx] = c.maxCommit()
			_ = c.nodes[id].ReadIndex(c.nextCtx)
		}
	case r < 955:
		if c.rng.IntN(2) == 0 {
			c.cut = map[[2]uint64]bool{}
			c.note("heal")
		} else {
			a := c.pick()
			for _, b := range c.ids {
				if b != a {
					c.cut[[2]uint64{a, b}] = true
					if c.rng.IntN(3) > 0 {
						c.cut[[2]uint64{b, a}] = true
					}
				}
			}
			c.note("isolate %d", a)
		}
	case r < 962:
		id := c.pick()
		if c.down[id] {
			c.restart(id)
		} else if c.countDown() < 2 {
			c.down[id] = true
			c.note("crash %d", id)
		}
	case r < 972:
		if l := c.leader(); l != nil {
			id := c.pick()
			typ := []ConfChangeType{AddVoter, AddLearner, RemoveNode}[c.rng.IntN(3)]
			if typ == RemoveNode && len(l.voters) <= 1 {
				typ = AddVoter
			}
			if typ == AddVoter && len(l.voters) >= 5 {
				typ = RemoveNode
			}
			_, err := l.ProposeConfChange(ConfChange{Type: typ, NodeID: id})
			c.note("conf %d %v %d: %v", l.id, typ, id, err)
		}
	case r < 978:
		if l := c.leader(); l != nil {
			to := c.pick()
			err := l.TransferLeader(to)
			c.note("transfer %d->%d: %v", l.id, to, err)
		}
	}
	// Election safety (Raft §5.2): at most one leader per term.
	for _, id := range c.ids {
		n := c.nodes[id]
		if n.role == Leader {
			if l, ok := c.leaders[n.term]; ok && l != id {
				return c.fail("two leaders in term %d: %d and %d", n.term, l, id)
			}
			c.leaders[n.term] = id
		}
	}
	return nil
}

func (c *chaos) countDown() int {
	k := 0
	for _, d := range c.down {
		if d {
			k++
		}
	}
	return k
}

func (c *chaos) maxCommit() uint64 {
	var m uint64
	for _, id := range c.ids {
		m = max(m, c.nodes[id].commit)
	}
	return m
}

func (c *chaos) deliver(m Message) {
	if c.down[m.To] || c.cut[[2]uint64{m.From, m.To}] {
		return
	}
	mm := m
	_ = c.nodes[m.To].Step(&mm)
}

func ackAll(n *Node, st *memStore) {
	for i := range st.pending {
		st.write(&st.pending[i])
	}
	if len(st.marks) > 0 {
		n.AckPersisted(st.marks[len(st.marks)-1])
	}
	st.pending, st.marks = nil, nil
}

func (c *chaos) restart(id uint64) {
	st := c.stores[id]
	st.pending, st.marks = nil, nil
	old := c.nodes[id]
	nc := c.cfg
	nc.ID = id
	nc.Rand = rand.New(rand.NewPCG(uint64(len(c.trace)), id))
	nc.Membership = old.cfg.Membership
	nc.HardState = st.hs
	nc.Snapshot = st.snap
	nc.Entries = st.ents
	nc.Applied = st.snap.Meta.Index
	n, err := New(nc)
	if err != nil {
		panic(fmt.Sprintf("restart %d: %v", id, err))
	}
	c.nodes[id] = n
	c.last[id] = st.snap.Meta.Index
	delete(c.down, id)
	c.note("restart %d hs=%+v snap=%d ents=%d", id, st.hs, st.snap.Meta.Index, len(st.ents))
}

func (c *chaos) processReady(id uint64, ack bool) error {
	n := c.nodes[id]
	if c.down[id] || !n.HasReady() {
		return nil
	}
	rd := n.Ready()
	st := c.stores[id]
	for _, m := range rd.Messages {
		c.net = append(c.net, deepCopyMsg(m))
	}
	if rd.MustPersist() {
		cp := rd
		cp.Entries = nil
		for _, e := range rd.Entries {
			e.Data = slices.Clone(e.Data)
			cp.Entries = append(cp.Entries, e)
		}
		cp.Snapshot = Snapshot{Meta: cloneMeta(rd.Snapshot.Meta), Data: slices.Clone(rd.Snapshot.Data)}
		st.pending = append(st.pending, cp)
		st.marks = append(st.marks, rd.Mark)
	}
	if !rd.Snapshot.IsEmpty() {
		if rd.Snapshot.Meta.Index < c.last[id] {
			return c.fail("node %d: snapshot %d below applied %d", id, rd.Snapshot.Meta.Index, c.last[id])
		}
		c.last[id] = rd.Snapshot.Meta.Index
		c.note("%d installs snapshot %d", id, rd.Snapshot.Meta.Index)
	}
	for _, e := range rd.CommittedEntries {
		if e.Index != c.last[id]+1 {
			return c.fail("node %d applies %d after %d", id, e.Index, c.last[id])
		}
		c.last[id] = e.Index
		v := fmt.Sprintf("%d/%q/%d", e.Term, e.Data, e.Type)
		if prev, ok := c.applied[e.Index]; ok && prev != v {
			return c.fail("state machine safety: index %d applied as %s and %s (node %d)", e.Index, prev, v, id)
		}
		c.applied[e.Index] = v
	}
	for _, rs := range rd.ReadStates {
		if want := c.readMin[rs.Context]; rs.Index < want {
			return c.fail("read %d on node %d at index %d, but %d was committed before it was issued", rs.Context, id, rs.Index, want)
		}
	}
	if rd.HasSoftState {
		c.note("%d: lead=%d role=%v term=%d", id, rd.Lead, rd.Role, n.term)
	}
	if ack {
		ackAll(n, st)
	}
	n.Advance()
	if rd.SnapshotRequest > 0 {
		_, _ = n.ReportSnapshot(rd.SnapshotRequest, []byte(fmt.Sprintf("s%d", rd.SnapshotRequest)))
	}
	return nil
}

// converge heals everything and requires a new proposal to commit and apply on every live
// voter within a bounded number of ticks.
func (c *chaos) converge() error {
	c.cut = map[[2]uint64]bool{}
	for _, id := range c.ids {
		if c.down[id] {
			c.restart(id)
		}
	}
	c.note("converge")
	proposed := false
	var target, proposeTerm uint64
	for round := 0; round < 400; round++ {
		for _, id := range c.ids {
			c.nodes[id].Tick()
		}
		for k := 0; k < 20; k++ {
			for _, id := range c.ids {
				if err := c.processReady(id, true); err != nil {
					return err
				}
			}
			net := c.net
			c.net = nil
			for _, m := range net {
				c.deliver(m)
			}
		}
		if l := c.leader(); l != nil {
			// First, without new proposals, everything the leader holds must commit: lost
			// acknowledgements must not strand entries until the next proposal.
			if !proposed && l.commit < l.log.lastIndex() {
				if round < 200 {
					continue
				}
				return c.fail("leader %d stranded entries %d..%d without new proposals: %+v", l.id, l.commit+1, l.log.lastIndex(), l.status())
			}
			if !proposed || l.term != proposeTerm {
				// (Re)propose under the current leader: a deposed leader's entry may be lost.
				if idx, err := l.Propose([][]byte{[]byte("final")}); err == nil {
					if idx != l.log.lastIndex() || l.Term() != l.term {
						return c.fail("Propose returned index %d, log ends at %d", idx, l.log.lastIndex())
					}
					proposed = true
					target = idx
					proposeTerm = l.term
				}
				continue
			}
			done := true
			for _, id := range l.voters {
				if c.last[id] < target {
					done = false
				}
			}
			if done {
				return nil
			}
			if round > 200 && round%50 == 0 {
				c.note("waiting: leader %d target %d %v", l.id, target, l.status())
			}
		}
	}
	var st []string
	for _, id := range c.ids {
		n := c.nodes[id]
		st = append(st, fmt.Sprintf("%d:%v t%d lead%d commit%d applied%d last%d voters%v", id, n.role, n.term, n.lead, n.commit, c.last[id], n.log.lastIndex(), n.voters))
	}
	return c.fail("no convergence after healing: %s", strings.Join(st, "; "))
}
