package raftpeers

import (
	"errors"
	"fmt"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// etcd/raft settings, taken from what etcd server itself runs with so that the baseline is
// the library as its main user configures it.
const (
	etcdElectionTick    = 10
	etcdHeartbeatTick   = 1
	etcdMaxSizePerMsg   = 1 << 20 // etcd server: maxSizePerMsg
	etcdMaxInflightMsgs = 512     // etcd server: 4096 / 8
	etcdMaxUncommitted  = 1 << 30 // bounds proposals held before commit; never reached here
)

// etcdDriveRoundsMax bounds one drive loop (Ready handling plus one delivery of every queued
// message per round). A batch settles in a handful of rounds; hitting the bound means the
// cluster is livelocked, which must fail loudly rather than spin.
const etcdDriveRoundsMax = 1 << 12

type etcdNode struct {
	id           uint64
	rn           *raft.RawNode
	storage      *raft.MemoryStorage
	appliedIndex uint64
	appliedCount uint64
	record       bool
	applied      [][]byte
}

type etcdCluster struct {
	nodes  [ClusterSize]*etcdNode
	leader *etcdNode
	// props is reused for every batch: raft copies the Entry structs into its unstable log
	// (log_unstable.go truncateAndAppend, append case), so the slice is free after Step.
	props []raftpb.Entry
	// outbox collects the messages of one round of Ready handling; inbox is the round being
	// delivered. They swap each round so that steady state does not allocate queues.
	outbox, inbox []raftpb.Message
	compactedTo   uint64
	// inflight holds, oldest first, the leader's applied count at which each batch given to
	// Propose is applied; proposedEnd is that of the newest.
	inflight    ring[uint64]
	proposedEnd uint64
}

// NewEtcd starts a 3-node go.etcd.io/raft/v3 v3.6.0 cluster of RawNodes over MemoryStorage
// and elects node 1.
//
// It is driven deterministically on the caller's goroutine: a batch is one MsgProp carrying
// all of its entries (the batched form of RawNode.Propose; etcd/raft does not coalesce
// separate proposals itself), then rounds of {for each node with a Ready: append entries and
// hard state to MemoryStorage, queue the messages, apply the committed entries, Advance} and
// {deliver every queued message with Step} until no node has a Ready and no message is
// queued. Time does not advance while measuring (no Tick), so no heartbeats are sent.
//
// Pipelined (Propose), each batch is its own MsgProp stepped into the leader between rounds,
// as etcd server's raft loop hands the leader every proposal that arrived since its last
// Ready: the driver runs one round at a time while depth batches are in flight and proposes
// as soon as the leader applied the oldest, without waiting for the cluster to settle.
// Proposals stepped between two rounds leave in the leader's next Ready together.
func NewEtcd(opts Options) (Cluster, error) {
	c := &etcdCluster{}
	voters := make([]uint64, ClusterSize)
	for i := range voters {
		voters[i] = uint64(i + 1)
	}
	for i := range c.nodes {
		storage := raft.NewMemoryStorage()
		// Start every node from the same snapshot that names the voters, the way etcd/raft's
		// own tests build a fresh cluster, instead of replaying configuration entries.
		snap := raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{
			ConfState: raftpb.ConfState{Voters: voters},
			Index:     1,
			Term:      1,
		}}
		if err := storage.ApplySnapshot(snap); err != nil {
			return nil, fmt.Errorf("raftpeers: etcd storage: %w", err)
		}
		rn, err := raft.NewRawNode(&raft.Config{
			ID:                        voters[i],
			ElectionTick:              etcdElectionTick,
			HeartbeatTick:             etcdHeartbeatTick,
			Storage:                   storage,
			MaxSizePerMsg:             etcdMaxSizePerMsg,
			MaxInflightMsgs:           etcdMaxInflightMsgs,
			MaxUncommittedEntriesSize: etcdMaxUncommitted,
			Logger:                    discardLogger{},
		})
		if err != nil {
			return nil, fmt.Errorf("raftpeers: etcd node %d: %w", voters[i], err)
		}
		c.nodes[i] = &etcdNode{id: voters[i], rn: rn, storage: storage, appliedIndex: snap.Metadata.Index, record: opts.Record}
	}
	c.compactedTo = 1
	if err := c.nodes[0].rn.Campaign(); err != nil {
		return nil, fmt.Errorf("raftpeers: etcd campaign: %w", err)
	}
	if err := c.drive(); err != nil {
		return nil, err
	}
	if st := c.nodes[0].rn.BasicStatus(); st.RaftState != raft.StateLeader {
		return nil, fmt.Errorf("raftpeers: etcd node 1 is %v after campaigning, want leader", st.RaftState)
	}
	c.leader = c.nodes[0]
	return c, nil
}

func (c *etcdCluster) Commit(batch [][]byte) error {
	if c.inflight.len() > 0 {
		return fmt.Errorf("raftpeers: etcd Commit with %d batches in flight", c.inflight.len())
	}
	want := c.leader.appliedCount + uint64(len(batch))
	if err := c.propose(batch); err != nil {
		return err
	}
	if err := c.drive(); err != nil {
		return err
	}
	if c.leader.appliedCount != want {
		return fmt.Errorf("%w: etcd applied %d, want %d", errNotApplied, c.leader.appliedCount, want)
	}
	c.maybeCompact()
	return nil
}

// propose steps batch into the leader as one MsgProp.
func (c *etcdCluster) propose(batch [][]byte) error {
	c.props = c.props[:0]
	for _, p := range batch {
		c.props = append(c.props, raftpb.Entry{Type: raftpb.EntryNormal, Data: p})
	}
	err := c.leader.rn.Step(raftpb.Message{Type: raftpb.MsgProp, From: c.leader.id, Entries: c.props})
	clear(c.props) // drop the payload references; raft holds its own copies of the structs
	if err != nil {
		return fmt.Errorf("raftpeers: etcd propose: %w", err)
	}
	return nil
}

func (c *etcdCluster) Propose(batch [][]byte, depth int) error {
	if err := checkDepth(depth); err != nil {
		return err
	}
	for rounds := 0; c.inflight.len() >= depth; rounds++ {
		if rounds == etcdDriveRoundsMax {
			return fmt.Errorf("raftpeers: etcd applied no batch in %d rounds", etcdDriveRoundsMax)
		}
		progressed, err := c.round()
		if err != nil {
			return err
		}
		retired := false
		for c.inflight.len() > 0 && c.inflight.peek() <= c.leader.appliedCount {
			c.inflight.pop()
			retired = true
		}
		if retired {
			c.maybeCompact()
		}
		if !progressed && c.inflight.len() > 0 {
			return fmt.Errorf("%w: etcd, %d batches", errStalled, c.inflight.len())
		}
	}
	if c.inflight.len() == 0 {
		c.proposedEnd = c.leader.appliedCount
	}
	if err := c.propose(batch); err != nil {
		return err
	}
	c.proposedEnd += uint64(len(batch))
	c.inflight.push(c.proposedEnd)
	return nil
}

func (c *etcdCluster) Flush() error {
	if c.inflight.len() == 0 {
		return nil
	}
	if err := c.drive(); err != nil {
		return err
	}
	if c.leader.appliedCount != c.proposedEnd {
		return fmt.Errorf("%w: etcd applied %d, want %d", errNotApplied, c.leader.appliedCount, c.proposedEnd)
	}
	for c.inflight.len() > 0 {
		c.inflight.pop()
	}
	c.maybeCompact()
	return nil
}

// drive runs Ready/deliver rounds until the cluster is quiescent.
func (c *etcdCluster) drive() error {
	for range etcdDriveRoundsMax {
		progressed, err := c.round()
		if err != nil || !progressed {
			return err
		}
	}
	return fmt.Errorf("raftpeers: etcd cluster still busy after %d rounds", etcdDriveRoundsMax)
}

// round handles the Ready of every node that has one, then delivers every message queued,
// and reports whether there was anything to do.
func (c *etcdCluster) round() (progressed bool, err error) {
	for _, n := range c.nodes {
		if !n.rn.HasReady() {
			continue
		}
		progressed = true
		if err := c.handleReady(n); err != nil {
			return true, err
		}
	}
	if len(c.outbox) == 0 {
		return progressed, nil
	}
	c.inbox, c.outbox = c.outbox, c.inbox[:0]
	for i := range c.inbox {
		m := &c.inbox[i]
		if m.To < 1 || m.To > ClusterSize {
			return true, fmt.Errorf("raftpeers: etcd message to unknown node %d", m.To)
		}
		// Errors here are benign protocol outcomes (for example a stale response) that
		// etcd server also ignores when stepping peer messages.
		_ = c.nodes[m.To-1].rn.Step(*m)
	}
	clear(c.inbox) // drop references to entries so compacted logs can be collected
	return true, nil
}

// handleReady does what the Ready contract asks of a synchronous (non-async-storage) user:
// persist, then send, then apply, then Advance. In memory the order costs nothing.
func (c *etcdCluster) handleReady(n *etcdNode) error {
	rd := n.rn.Ready()
	if !raft.IsEmptySnap(rd.Snapshot) {
		return errors.New("raftpeers: etcd node received a snapshot; the driver never compacts past a follower")
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		if err := n.storage.SetHardState(rd.HardState); err != nil {
			return fmt.Errorf("raftpeers: etcd hard state: %w", err)
		}
	}
	if err := n.storage.Append(rd.Entries); err != nil {
		return fmt.Errorf("raftpeers: etcd append: %w", err)
	}
	c.outbox = append(c.outbox, rd.Messages...)
	for i := range rd.CommittedEntries {
		e := &rd.CommittedEntries[i]
		if e.Index != n.appliedIndex+1 {
			return fmt.Errorf("raftpeers: etcd node %d applies index %d after %d", n.id, e.Index, n.appliedIndex)
		}
		n.appliedIndex = e.Index
		switch {
		case e.Type != raftpb.EntryNormal:
			return fmt.Errorf("raftpeers: etcd node %d: unexpected %v entry", n.id, e.Type)
		case len(e.Data) == 0:
			// The empty entry a new leader appends in its term (Raft §5.4.2); not a proposal.
		default:
			n.appliedCount++
			if n.record {
				n.applied = append(n.applied, append([]byte(nil), e.Data...))
			}
		}
	}
	n.rn.Advance(rd)
	return nil
}

// maybeCompact compacts every node's storage up to what all nodes have applied, so the leader
// never needs a compacted entry to catch a follower up (no snapshot transfer in this driver).
func (c *etcdCluster) maybeCompact() {
	applied := c.nodes[0].appliedIndex
	for _, n := range c.nodes[1:] {
		applied = min(applied, n.appliedIndex)
	}
	if applied < c.compactedTo+CompactEvery+CompactRetain {
		return
	}
	to := applied - CompactRetain
	for _, n := range c.nodes {
		// MemoryStorage.Compact fails only for an index at or below its offset, which
		// compactedTo rules out.
		if err := n.storage.Compact(to); err != nil {
			panic(fmt.Sprintf("raftpeers: etcd compact to %d: %v", to, err))
		}
	}
	c.compactedTo = to
}

func (c *etcdCluster) Converge() ([][][]byte, error) {
	if err := c.Flush(); err != nil {
		return nil, err
	}
	// The drive loop runs to quiescence, so followers have applied everything already.
	out := make([][][]byte, ClusterSize)
	for i, n := range c.nodes {
		if n.appliedCount != c.leader.appliedCount {
			return nil, fmt.Errorf("raftpeers: etcd node %d applied %d entries, leader %d", n.id, n.appliedCount, c.leader.appliedCount)
		}
		out[i] = n.applied
	}
	return out, nil
}

func (c *etcdCluster) Close() error { return nil }

// discardLogger silences etcd/raft without formatting the messages it drops; Fatal and Panic
// still stop the run.
type discardLogger struct{}

func (discardLogger) Debug(...any)            {}
func (discardLogger) Debugf(string, ...any)   {}
func (discardLogger) Error(...any)            {}
func (discardLogger) Errorf(string, ...any)   {}
func (discardLogger) Info(...any)             {}
func (discardLogger) Infof(string, ...any)    {}
func (discardLogger) Warning(...any)          {}
func (discardLogger) Warningf(string, ...any) {}
func (discardLogger) Fatal(v ...any)          { panic(fmt.Sprint(v...)) }
func (discardLogger) Fatalf(f string, v ...any) {
	panic(fmt.Sprintf(f, v...))
}
func (discardLogger) Panic(v ...any) { panic(fmt.Sprint(v...)) }
func (discardLogger) Panicf(f string, v ...any) {
	panic(fmt.Sprintf(f, v...))
}
