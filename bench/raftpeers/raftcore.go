package raftpeers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/consensusbench/consensusbench/raftcore"
)

// raftcoreSeed seeds each node's election RNG (mixed with its ID) so runs are repeatable.
const raftcoreSeed = 0x5eed

// raftcoreDriveRoundsMax bounds one drive loop (one Ready of every node that has one per
// round). A batch settles in a handful of rounds; hitting the bound means a livelock.
const raftcoreDriveRoundsMax = 1 << 12

// raftcoreConvergeTicksMax bounds the leader ticks Converge spends waiting for followers to
// learn the commit index; a few heartbeat intervals suffice.
const raftcoreConvergeTicksMax = 64

// memWALBytes is the size of each node's in-memory write-ahead log. Persisting copies every
// record into it, as a WAL write would; when full it starts over, as a WAL drops segments
// that a snapshot covers. The core keeps its own log, so nothing reads the records back.
const memWALBytes = 1 << 20

// memWALRecordHeader is index, term, type and payload length of one record.
const memWALRecordHeader = 8 + 8 + 1 + 4

type raftcoreNode struct {
	id           uint64
	node         *raftcore.Node
	wal          memWAL
	appliedIndex uint64
	appliedCount uint64
	record       bool
	applied      [][]byte
}

type raftcoreCluster struct {
	nodes  [ClusterSize]*raftcoreNode
	leader *raftcoreNode
	// inflight holds, oldest first, the leader's applied count at which each batch given to
	// Propose is applied; proposedEnd is that of the newest.
	inflight    ring[uint64]
	proposedEnd uint64
}

// NewRaftcore starts a 3-node cluster of this project's raftcore.Nodes with DefaultConfig
// (PreVote and CheckQuorum on) except for the snapshot cadence (CompactEvery, CompactRetain)
// and elects node 1.
//
// It is driven deterministically on the caller's goroutine, following
// docs/RAFTCORE.md: a batch is one Propose call, then rounds of {for each node with a
// Ready: Step every message into its destination at once (the leader's appends leave before
// its own persistence, thesis §10.2.1; Step copies what it keeps), copy Entries and HardState
// into the node's in-memory WAL, AckPersisted, apply the committed entries, Advance} until no
// node has a Ready. Snapshot requests are answered with the applied count, so the core
// compacts its log in long runs. Time does not advance while measuring (no Tick).
//
// Pipelined (Propose), each batch is one Propose call made between rounds, as the
// project's server proposes the client batches that arrived while it handled Readies: the
// driver runs one round at a time while depth batches are in flight and proposes as soon
// as the leader applied the oldest, without waiting for the cluster to settle. Proposals
// made between two rounds leave in the leader's next Ready together.
func NewRaftcore(opts Options) (Cluster, error) {
	c := &raftcoreCluster{}
	voters := make([]uint64, ClusterSize)
	for i := range voters {
		voters[i] = uint64(i + 1)
	}
	for i := range c.nodes {
		id := voters[i]
		cfg := raftcore.DefaultConfig(id, raftcore.Membership{Voters: voters}, rand.New(rand.NewPCG(raftcoreSeed, id)))
		cfg.SnapshotThreshold = CompactEvery
		cfg.SnapshotRetainEntries = CompactRetain
		n, err := raftcore.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("raftpeers: raftcore node %d: %w", id, err)
		}
		c.nodes[i] = &raftcoreNode{id: id, node: n, wal: newMemWAL(), record: opts.Record}
	}
	c.nodes[0].node.Campaign()
	if err := c.drive(); err != nil {
		return nil, err
	}
	if role := c.nodes[0].node.Role(); role != raftcore.Leader {
		return nil, fmt.Errorf("raftpeers: raftcore node 1 is %v after campaigning, want leader", role)
	}
	c.leader = c.nodes[0]
	return c, nil
}

func (c *raftcoreCluster) Commit(batch [][]byte) error {
	if c.inflight.len() > 0 {
		return fmt.Errorf("raftpeers: raftcore Commit with %d batches in flight", c.inflight.len())
	}
	want := c.leader.appliedCount + uint64(len(batch))
	if _, err := c.leader.node.Propose(batch); err != nil {
		return fmt.Errorf("raftpeers: raftcore propose: %w", err)
	}
	if err := c.drive(); err != nil {
		return err
	}
	if c.leader.appliedCount != want {
		return fmt.Errorf("%w: raftcore applied %d, want %d", errNotApplied, c.leader.appliedCount, want)
	}
	return nil
}

func (c *raftcoreCluster) Propose(batch [][]byte, depth int) error {
	if err := checkDepth(depth); err != nil {
		return err
	}
	for rounds := 0; c.inflight.len() >= depth; rounds++ {
		if rounds == raftcoreDriveRoundsMax {
			return fmt.Errorf("raftpeers: raftcore applied no batch in %d rounds", raftcoreDriveRoundsMax)
		}
		progressed, err := c.round()
		if err != nil {
			return err
		}
		for c.inflight.len() > 0 && c.inflight.peek() <= c.leader.appliedCount {
			c.inflight.pop()
		}
		if !progressed && c.inflight.len() > 0 {
			return fmt.Errorf("%w: raftcore, %d batches", errStalled, c.inflight.len())
		}
	}
	if c.inflight.len() == 0 {
		c.proposedEnd = c.leader.appliedCount
	}
	if _, err := c.leader.node.Propose(batch); err != nil {
		return fmt.Errorf("raftpeers: raftcore propose: %w", err)
	}
	c.proposedEnd += uint64(len(batch))
	c.inflight.push(c.proposedEnd)
	return nil
}

func (c *raftcoreCluster) Flush() error {
	if c.inflight.len() == 0 {
		return nil
	}
	if err := c.drive(); err != nil {
		return err
	}
	if c.leader.appliedCount != c.proposedEnd {
		return fmt.Errorf("%w: raftcore applied %d, want %d", errNotApplied, c.leader.appliedCount, c.proposedEnd)
	}
	for c.inflight.len() > 0 {
		c.inflight.pop()
	}
	return nil
}

// drive handles Readies until the cluster is quiescent.
func (c *raftcoreCluster) drive() error {
	for range raftcoreDriveRoundsMax {
		progressed, err := c.round()
		if err != nil || !progressed {
			return err
		}
	}
	return fmt.Errorf("raftpeers: raftcore cluster still busy after %d rounds", raftcoreDriveRoundsMax)
}

// round handles the Ready of every node that has one, in node order, and reports whether
// any had.
func (c *raftcoreCluster) round() (progressed bool, err error) {
	for _, n := range c.nodes {
		if !n.node.HasReady() {
			continue
		}
		progressed = true
		if err := c.handleReady(n); err != nil {
			return true, err
		}
	}
	return progressed, nil
}

func (c *raftcoreCluster) handleReady(n *raftcoreNode) error {
	rd := n.node.Ready()
	// 1. Send: messages alias n's memory until Advance; Step copies what the receiver keeps.
	for i := range rd.Messages {
		m := &rd.Messages[i]
		if m.To < 1 || m.To > ClusterSize {
			return fmt.Errorf("raftpeers: raftcore message to unknown node %d", m.To)
		}
		if err := c.nodes[m.To-1].node.Step(m); err != nil {
			return fmt.Errorf("raftpeers: raftcore node %d step %v: %w", m.To, m.Type, err)
		}
	}
	// 2. Persist in Ready order, then acknowledge: the storage is synchronous.
	if !rd.Snapshot.IsEmpty() {
		return errors.New("raftpeers: raftcore node received a snapshot; followers never lag that far here")
	}
	for i := range rd.Entries {
		n.wal.append(&rd.Entries[i])
	}
	if rd.HasHardState {
		n.wal.hardState = rd.HardState
	}
	if rd.MustPersist() {
		n.node.AckPersisted(rd.Mark)
	}
	// 3. Apply.
	for i := range rd.CommittedEntries {
		e := &rd.CommittedEntries[i]
		if e.Index != n.appliedIndex+1 {
			return fmt.Errorf("raftpeers: raftcore node %d applies index %d after %d", n.id, e.Index, n.appliedIndex)
		}
		n.appliedIndex = e.Index
		switch e.Type {
		case raftcore.EntryNormal:
			n.appliedCount++
			if n.record {
				n.applied = append(n.applied, append([]byte(nil), e.Data...))
			}
		case raftcore.EntryNoop:
			// The entry a new leader appends to commit its term (Raft §5.4.2); not a proposal.
		default:
			return fmt.Errorf("raftpeers: raftcore node %d: unexpected entry type %d", n.id, e.Type)
		}
	}
	n.node.Advance()
	// 5. Snapshot: the trivial state machine's state is its applied count. It is reported
	// after Advance, which is when the core counts the entries as applied (reporting before
	// fails with ErrUnavailable). The core keeps the bytes, so each snapshot gets its own
	// (one small allocation per SnapshotThreshold entries).
	if rd.SnapshotRequest > 0 {
		data := binary.BigEndian.AppendUint64(nil, n.appliedCount)
		if _, err := n.node.ReportSnapshot(rd.SnapshotRequest, data); err != nil {
			return fmt.Errorf("raftpeers: raftcore node %d snapshot at %d: %w", n.id, rd.SnapshotRequest, err)
		}
	}
	return nil
}

func (c *raftcoreCluster) Converge() ([][][]byte, error) {
	if err := c.Flush(); err != nil {
		return nil, err
	}
	// Followers learn the commit index from the next append or heartbeat; with no further
	// proposals that is a heartbeat, so tick the leader (only the leader: ticking followers
	// could start elections) until they have applied what it applied.
	for range raftcoreConvergeTicksMax {
		if c.converged() {
			break
		}
		c.leader.node.Tick()
		if err := c.drive(); err != nil {
			return nil, err
		}
	}
	out := make([][][]byte, ClusterSize)
	for i, n := range c.nodes {
		if n.appliedCount != c.leader.appliedCount {
			return nil, fmt.Errorf("raftpeers: raftcore node %d applied %d entries, leader %d", n.id, n.appliedCount, c.leader.appliedCount)
		}
		out[i] = n.applied
	}
	return out, nil
}

func (c *raftcoreCluster) converged() bool {
	for _, n := range c.nodes {
		if n.appliedCount != c.leader.appliedCount {
			return false
		}
	}
	return true
}

func (c *raftcoreCluster) Close() error { return nil }

// memWAL is an in-memory stand-in for a write-ahead log: records are encoded into one
// preallocated buffer, which starts over when full.
type memWAL struct {
	buf       []byte
	hardState raftcore.HardState
}

func newMemWAL() memWAL { return memWAL{buf: make([]byte, 0, memWALBytes)} }

func (w *memWAL) append(e *raftcore.Entry) {
	need := memWALRecordHeader + len(e.Data)
	if need > cap(w.buf) {
		panic(fmt.Sprintf("raftpeers: entry of %d bytes exceeds the in-memory WAL", len(e.Data)))
	}
	if len(w.buf)+need > cap(w.buf) {
		w.buf = w.buf[:0]
	}
	w.buf = binary.LittleEndian.AppendUint64(w.buf, e.Index)
	w.buf = binary.LittleEndian.AppendUint64(w.buf, e.Term)
	w.buf = append(w.buf, byte(e.Type))
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(e.Data)))
	w.buf = append(w.buf, e.Data...)
}
