package raftcore

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// The benchmark cluster snapshots every benchSnapshotThreshold entries and keeps
// benchSnapshotRetain below, so the log (and memory) stays bounded in long runs.
const (
	benchSnapshotThreshold = 1 << 14
	benchSnapshotRetain    = 1 << 10
)

// benchCluster is a 3-node in-memory cluster: messages from a Ready are stepped straight
// into their target before Advance (no copies), persistence is acknowledged at once (the
// core's log is the only store), and snapshots are reported empty when asked for so the
// log stays bounded.
type benchCluster struct {
	nodes     []*Node
	committed uint64 // entries of type EntryNormal applied by the leader
	leader    *Node
}

func newBenchCluster(tb testing.TB, size int) *benchCluster {
	m := Membership{Voters: []uint64{1, 2, 3}}
	c := &benchCluster{}
	for id := uint64(1); id <= 3; id++ {
		cfg := DefaultConfig(id, m, rand.New(rand.NewPCG(1, id)))
		cfg.SnapshotThreshold = benchSnapshotThreshold
		cfg.SnapshotRetainEntries = benchSnapshotRetain
		n, err := New(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		c.nodes = append(c.nodes, n)
	}
	c.nodes[0].Campaign()
	for i := 0; i < 20 && c.nodes[0].role != Leader; i++ {
		c.pump()
	}
	for i := 0; i < 20; i++ {
		c.pump()
	}
	if c.nodes[0].role != Leader {
		tb.Fatal("no leader")
	}
	c.leader = c.nodes[0]
	_ = size
	return c
}

// pump gives every node one Ready.
func (c *benchCluster) pump() {
	for _, n := range c.nodes {
		if !n.HasReady() {
			continue
		}
		rd := n.Ready()
		for i := range rd.Messages {
			m := &rd.Messages[i]
			_ = c.nodes[m.To-1].Step(m)
		}
		if rd.MustPersist() {
			n.AckPersisted(rd.Mark)
		}
		if n == c.leader {
			for i := range rd.CommittedEntries {
				if rd.CommittedEntries[i].Type == EntryNormal {
					c.committed++
				}
			}
		}
		n.Advance()
		if rd.SnapshotRequest > 0 {
			_, _ = n.ReportSnapshot(rd.SnapshotRequest, nil)
		}
	}
}

// BenchmarkCluster measures committed entries per second and allocations per committed
// entry of a pipelined 3-node cluster: each iteration proposes one batch and gives every
// node one Ready.
func BenchmarkCluster(b *testing.B) {
	for _, batch := range []int{1, 16, 256} {
		for _, size := range []int{16, 128} {
			b.Run(fmt.Sprintf("batch=%d/size=%d", batch, size), func(b *testing.B) {
				c := newBenchCluster(b, size)
				payloads := make([][]byte, batch)
				for i := range payloads {
					payloads[i] = make([]byte, size)
				}
				// Warm up buffers to their steady size.
				for i := 0; i < 2000; i++ {
					if _, err := c.leader.Propose(payloads); err != nil {
						b.Fatal(err)
					}
					c.pump()
				}
				start := c.committed
				var ms0, ms1 runtime.MemStats
				runtime.ReadMemStats(&ms0)
				b.SetBytes(int64(batch * size))
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if _, err := c.leader.Propose(payloads); err != nil {
						b.Fatal(err)
					}
					c.pump()
				}
				b.StopTimer()
				runtime.ReadMemStats(&ms1)
				n := c.committed - start
				if n == 0 {
					b.Fatal("nothing committed")
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
				b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(n), "allocs/entry")
			})
		}
	}
}

// BenchmarkProposeReady: a single-voter leader, Propose + Ready + ack + Advance per op.
func BenchmarkProposeReady(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d/size=128", batch), func(b *testing.B) {
			cfg := DefaultConfig(1, Membership{Voters: []uint64{1}}, rand.New(rand.NewPCG(1, 1)))
			cfg.SnapshotThreshold = 1 << 16
			cfg.SnapshotRetainEntries = 1 << 10
			n, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			n.Campaign()
			payloads := make([][]byte, batch)
			for i := range payloads {
				payloads[i] = make([]byte, 128)
			}
			cycle := func() {
				for n.HasReady() {
					rd := n.Ready()
					if rd.MustPersist() {
						n.AckPersisted(rd.Mark)
					}
					n.Advance()
					if rd.SnapshotRequest > 0 {
						_, _ = n.ReportSnapshot(rd.SnapshotRequest, nil)
					}
				}
			}
			cycle()
			b.SetBytes(int64(batch * 128))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := n.Propose(payloads); err != nil {
					b.Fatal(err)
				}
				cycle()
			}
		})
	}
}

// BenchmarkStepApp: a follower handles one MsgApp of 64 entries, persists, acknowledges.
func BenchmarkStepApp(b *testing.B) {
	cfg := DefaultConfig(2, Membership{Voters: []uint64{1, 2, 3}}, rand.New(rand.NewPCG(1, 2)))
	cfg.SnapshotThreshold = 1 << 16
	cfg.SnapshotRetainEntries = 1 << 10
	n, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	const k = 64
	ents := make([]Entry, k)
	data := make([]byte, 128)
	m := Message{Type: MsgApp, From: 1, To: 2, Term: 1}
	var last uint64
	step := func() {
		for i := range ents {
			ents[i] = Entry{Index: last + 1 + uint64(i), Term: 1, Data: data}
		}
		m.Index, m.Entries, m.Commit = last, ents, last
		if last > 0 {
			m.LogTerm = 1
		}
		if err := n.Step(&m); err != nil {
			b.Fatal(err)
		}
		last += k
		for n.HasReady() {
			rd := n.Ready()
			if rd.MustPersist() {
				n.AckPersisted(rd.Mark)
			}
			n.Advance()
			if rd.SnapshotRequest > 0 {
				_, _ = n.ReportSnapshot(rd.SnapshotRequest, nil)
			}
		}
	}
	for i := 0; i < 100; i++ {
		step()
	}
	b.SetBytes(k * 128)
	b.ReportAllocs()
	for b.Loop() {
		step()
	}
}
