package raftpeers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	hraft "github.com/hashicorp/raft"
)

// hashicorp/raft timeouts. With the defaults (1 s heartbeat and election timeouts, 500 ms
// leader lease) the leader lost its lease mid-benchmark on this shared 2-core machine at load
// 12, which aborts the run. A 2 s lease rides out such scheduling stalls; the price is a
// slower first election (2-4 s per cluster), which is not measured.
const (
	hashicorpHeartbeatTimeout   = 2 * time.Second
	hashicorpElectionTimeout    = 2 * time.Second
	hashicorpLeaderLeaseTimeout = 2 * time.Second
)

// hashicorpMaxAppendEntries replaces the default 64 so that the largest benchmark batch (256)
// fits one group commit and one AppendEntries. With 64, a 256-entry batch leaves entries behind
// whenever the replicator's trigger coalesces, and they wait for CommitTimeout (50-100 ms):
// measured here 27k instead of 190k entries/s. The library allows up to 1024.
const hashicorpMaxAppendEntries = 256

// hashicorpSnapshotInterval is how often hashicorp/raft checks whether SnapshotThreshold
// entries accumulated. Its default (120 s) would leave the log uncompacted for a whole
// benchmark, unlike the other drivers.
const hashicorpSnapshotInterval = time.Second

// Bounds on waiting for the background goroutines of hashicorp/raft, which this driver does
// not control: a leader must emerge and followers must catch up within these, or the run fails.
const (
	hashicorpLeaderWaitMax   = 20 * time.Second
	hashicorpConvergeWaitMax = 20 * time.Second
	hashicorpPollInterval    = 5 * time.Millisecond
)

type hashicorpCluster struct {
	rafts      [ClusterSize]*hraft.Raft
	fsms       [ClusterSize]*countingFSM
	transports [ClusterSize]*hraft.InmemTransport
	leader     int
	// futures is reused for every batch; it holds one Apply future per entry in flight.
	futures []hraft.ApplyFuture
	// pending holds the futures of the entries given to Propose, oldest first, and
	// pendingBatches the length of each batch among them; proposedEnd is the leader FSM's
	// count once all of them are applied.
	pending        ring[hraft.ApplyFuture]
	pendingBatches ring[int]
	proposedEnd    uint64
}

// NewHashicorp starts a 3-node github.com/hashicorp/raft v1.8.0 cluster over connected
// InmemTransports, InmemStores and InmemSnapshotStores with a trivial FSM, and waits for a
// leader.
//
// A batch is pipelined: every entry is handed to Raft.Apply without waiting, then the batch
// waits on all of the futures (a future resolves once the leader's FSM applied its entry).
// Departures from DefaultConfig, each in the library's favour or for equal conditions:
// BatchApplyCh is on, so the leader loop group-commits up to MaxAppendEntries queued Applys
// into one log write and one AppendEntries (the library's throughput mode); MaxAppendEntries
// is hashicorpMaxAppendEntries; the snapshot settings follow CompactEvery and CompactRetain.
// Apply gets no enqueue timeout, which would cost a timer per entry. The timeouts are longer
// than the defaults (see hashicorpLeaderLeaseTimeout) so that a loaded machine does not
// depose the leader mid-run.
//
// Pipelined (Propose), the caller keeps the futures of up to depth batches: a new batch's
// entries go to Raft.Apply once the oldest batch's futures all resolved, the way a user with
// many concurrent writers keeps that many Applys outstanding (the library serializes them
// through one channel either way), but without a goroutine per writer, which would charge
// the baseline for scheduling that is not the library's. BatchApplyCh then group-commits
// whatever Applys queued up while the leader loop was busy.
func NewHashicorp(opts Options) (Cluster, error) {
	c := &hashicorpCluster{leader: -1}
	var servers []hraft.Server
	for i := range c.transports {
		addr, trans := hraft.NewInmemTransport("")
		c.transports[i] = trans
		servers = append(servers, hraft.Server{
			Suffrage: hraft.Voter,
			ID:       hraft.ServerID(fmt.Sprintf("node%d", i+1)),
			Address:  addr,
		})
	}
	for i, a := range c.transports {
		for j, b := range c.transports {
			if i != j {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
	for i := range c.rafts {
		conf := hraft.DefaultConfig()
		conf.LocalID = servers[i].ID
		conf.HeartbeatTimeout = hashicorpHeartbeatTimeout
		conf.ElectionTimeout = hashicorpElectionTimeout
		conf.LeaderLeaseTimeout = hashicorpLeaderLeaseTimeout
		conf.BatchApplyCh = true
		conf.MaxAppendEntries = hashicorpMaxAppendEntries
		conf.SnapshotThreshold = CompactEvery
		conf.TrailingLogs = CompactRetain
		conf.SnapshotInterval = hashicorpSnapshotInterval
		conf.LogOutput = io.Discard
		conf.LogLevel = "off"
		logs := hraft.NewInmemStore()
		snaps := hraft.NewInmemSnapshotStore()
		err := hraft.BootstrapCluster(conf, logs, logs, snaps, c.transports[i], hraft.Configuration{Servers: servers})
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("raftpeers: hashicorp bootstrap node %d: %w", i+1, err)
		}
		c.fsms[i] = &countingFSM{record: opts.Record}
		r, err := hraft.NewRaft(conf, c.fsms[i], logs, logs, snaps, c.transports[i])
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("raftpeers: hashicorp node %d: %w", i+1, err)
		}
		c.rafts[i] = r
	}
	deadline := time.Now().Add(hashicorpLeaderWaitMax)
	for c.leader < 0 {
		for i, r := range c.rafts {
			if r.State() == hraft.Leader {
				c.leader = i
			}
		}
		if c.leader >= 0 {
			break
		}
		if time.Now().After(deadline) {
			c.Close()
			return nil, fmt.Errorf("raftpeers: hashicorp elected no leader within %v", hashicorpLeaderWaitMax)
		}
		time.Sleep(hashicorpPollInterval)
	}
	// A new leader commits a no-op of its term first; wait for it so that measurement starts
	// in steady state.
	if err := c.rafts[c.leader].Barrier(0).Error(); err != nil {
		c.Close()
		return nil, fmt.Errorf("raftpeers: hashicorp barrier: %w", err)
	}
	return c, nil
}

func (c *hashicorpCluster) Commit(batch [][]byte) error {
	if c.pendingBatches.len() > 0 {
		return fmt.Errorf("raftpeers: hashicorp Commit with %d batches in flight", c.pendingBatches.len())
	}
	leader, fsm := c.rafts[c.leader], c.fsms[c.leader]
	want := fsm.count.Load() + uint64(len(batch))
	for _, p := range batch {
		c.futures = append(c.futures, leader.Apply(p, 0))
	}
	var err error
	for _, f := range c.futures {
		if e := f.Error(); e != nil && err == nil {
			err = fmt.Errorf("raftpeers: hashicorp apply: %w", e)
		}
	}
	clear(c.futures)
	c.futures = c.futures[:0]
	if err != nil {
		return err
	}
	// Only this goroutine proposes, so once every future resolved the count is exact.
	if got := fsm.count.Load(); got != want {
		return fmt.Errorf("%w: hashicorp applied %d, want %d", errNotApplied, got, want)
	}
	return nil
}

func (c *hashicorpCluster) Propose(batch [][]byte, depth int) error {
	if err := checkDepth(depth); err != nil {
		return err
	}
	for c.pendingBatches.len() >= depth {
		if err := c.retireOldest(); err != nil {
			return err
		}
	}
	leader := c.rafts[c.leader]
	if c.pendingBatches.len() == 0 {
		// Only this goroutine proposes, so with nothing in flight the count is exact.
		c.proposedEnd = c.fsms[c.leader].count.Load()
	}
	for _, p := range batch {
		c.pending.push(leader.Apply(p, 0))
	}
	c.pendingBatches.push(len(batch))
	c.proposedEnd += uint64(len(batch))
	return nil
}

// retireOldest waits until the leader applied every entry of the oldest batch in flight.
func (c *hashicorpCluster) retireOldest() error {
	var err error
	for range c.pendingBatches.pop() {
		if e := c.pending.pop().Error(); e != nil && err == nil {
			err = fmt.Errorf("raftpeers: hashicorp apply: %w", e)
		}
	}
	return err
}

func (c *hashicorpCluster) Flush() error {
	if c.pendingBatches.len() == 0 {
		return nil
	}
	var err error
	for c.pendingBatches.len() > 0 {
		if e := c.retireOldest(); e != nil && err == nil {
			err = e
		}
	}
	if err != nil {
		return err
	}
	if got := c.fsms[c.leader].count.Load(); got != c.proposedEnd {
		return fmt.Errorf("%w: hashicorp applied %d, want %d", errNotApplied, got, c.proposedEnd)
	}
	return nil
}

func (c *hashicorpCluster) Converge() ([][][]byte, error) {
	if err := c.Flush(); err != nil {
		return nil, err
	}
	want := c.fsms[c.leader].count.Load()
	deadline := time.Now().Add(hashicorpConvergeWaitMax)
	for {
		caughtUp := true
		for _, f := range c.fsms {
			caughtUp = caughtUp && f.count.Load() >= want
		}
		if caughtUp {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("raftpeers: hashicorp followers did not apply %d entries within %v", want, hashicorpConvergeWaitMax)
		}
		time.Sleep(hashicorpPollInterval)
	}
	out := make([][][]byte, ClusterSize)
	for i, f := range c.fsms {
		f.mu.Lock()
		out[i] = f.applied
		f.mu.Unlock()
	}
	return out, nil
}

func (c *hashicorpCluster) Close() error {
	var errs []error
	for _, r := range c.rafts {
		if r != nil {
			errs = append(errs, r.Shutdown().Error())
		}
	}
	for _, t := range c.transports {
		if t != nil {
			errs = append(errs, t.Close())
		}
	}
	return errors.Join(errs...)
}

// countingFSM is the trivial state machine: it counts applied commands and, when recording,
// keeps a copy of each. Its snapshot is the count.
type countingFSM struct {
	count  atomic.Uint64
	record bool
	// mu guards applied: Apply runs on the library's FSM goroutine, Converge reads from the
	// test's goroutine.
	mu      sync.Mutex
	applied [][]byte
}

func (f *countingFSM) Apply(l *hraft.Log) any {
	if f.record {
		f.mu.Lock()
		f.applied = append(f.applied, append([]byte(nil), l.Data...))
		f.mu.Unlock()
	}
	f.count.Add(1)
	return nil
}

func (f *countingFSM) Snapshot() (hraft.FSMSnapshot, error) {
	return countSnapshot(f.count.Load()), nil
}

func (f *countingFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if f.record {
		// A recorded apply sequence cannot be rebuilt from a count; the guard test commits
		// too few entries for the library to snapshot, so this means the run went wrong.
		return errors.New("raftpeers: recording FSM cannot restore a snapshot")
	}
	var buf [8]byte
	if _, err := io.ReadFull(rc, buf[:]); err != nil {
		return fmt.Errorf("raftpeers: hashicorp snapshot: %w", err)
	}
	f.count.Store(binary.BigEndian.Uint64(buf[:]))
	return nil
}

type countSnapshot uint64

func (s countSnapshot) Persist(sink hraft.SnapshotSink) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(s))
	if _, err := sink.Write(buf[:]); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (countSnapshot) Release() {}
