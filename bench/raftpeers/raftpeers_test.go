package raftpeers

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
)

type impl struct {
	name  string
	start func(Options) (Cluster, error)
}

// impls lists the implementations in the order their results are printed.
var impls = []impl{
	{"raftcore", NewRaftcore},
	{"etcd", NewEtcd},
	{"hashicorp", NewHashicorp},
}

// The workload shared by every implementation. benchDepths are the numbers of batches kept in
// flight: 1 is Commit (the cluster settles between batches), more is Propose.
var (
	benchBatches = []int{1, 16, 256}
	benchSizes   = []int{16, 128}
	benchDepths  = []int{1, 8, 32}
)

// benchWarmupEntries are committed before measuring so that logs, queues and pools have grown
// to their steady-state size and a compaction cycle has run (at least a few batches even for
// the largest batch).
const (
	benchWarmupEntries = 2*CompactEvery + CompactRetain
	benchWarmupBatches = 8
)

// BenchmarkCommit measures committed entries per second and allocations per committed entry
// of each implementation under the same workload, with depth batches in flight. One
// iteration commits one batch: ns/op and allocs/op are per batch; entries/s, allocs/entry and
// B/entry are per entry. entries/cpu-s divides the entries by the CPU time of the whole
// process over the timed loop (getrusage: every goroutine, the garbage collector included),
// and cpu-s/s is that CPU time per wall second (how many cores the run kept busy).
//
// With depth > 1 the pipeline is kept full across the timed loop: the batches in flight when
// timing starts come from the warm-up, and the last depth-1 batches complete after it, so
// the figures are steady-state rates.
func BenchmarkCommit(b *testing.B) {
	for _, im := range impls {
		for _, batch := range benchBatches {
			for _, size := range benchSizes {
				for _, depth := range benchDepths {
					b.Run(fmt.Sprintf("impl=%s/batch=%d/size=%d/depth=%d", im.name, batch, size, depth), func(b *testing.B) {
						benchCommit(b, im, batch, size, depth)
					})
				}
			}
		}
	}
}

func benchCommit(b *testing.B, im impl, batchLen, size, depth int) {
	c, err := im.start(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := c.Close(); err != nil {
			b.Error(err)
		}
	}()
	// Every entry shares one payload: the implementations keep payloads by reference, so this
	// measures their cost and not the benchmark's.
	payload := bytes.Repeat([]byte{0xa5}, size)
	batch := make([][]byte, batchLen)
	for i := range batch {
		batch[i] = payload
	}
	commit := func() error {
		if depth == 1 {
			return c.Commit(batch)
		}
		return c.Propose(batch, depth)
	}
	for range max(benchWarmupBatches, benchWarmupEntries/batchLen) {
		if err := commit(); err != nil {
			b.Fatal(err)
		}
	}

	b.ReportAllocs()
	b.SetBytes(int64(batchLen * size))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpuBefore, cpuKnown := processCPU()
	batches := 0
	for b.Loop() {
		if err := commit(); err != nil {
			b.Fatal(err)
		}
		batches++
	}
	cpuAfter, _ := processCPU()
	runtime.ReadMemStats(&after)
	if err := c.Flush(); err != nil {
		b.Fatal(err)
	}
	entries := float64(batches * batchLen)
	b.ReportMetric(entries/b.Elapsed().Seconds(), "entries/s")
	if cpu := (cpuAfter - cpuBefore).Seconds(); cpuKnown && cpu > 0 {
		b.ReportMetric(entries/cpu, "entries/cpu-s")
		b.ReportMetric(cpu/b.Elapsed().Seconds(), "cpu-s/s")
	}
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/entries, "allocs/entry")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/entries, "B/entry")
}

// guardBatches is the proposal pattern of the guard test: every benchmark batch size, twice,
// so that a batch follows one of each size. The test commits it once with Commit and then
// once with Propose at guardDepth.
var guardBatches = []int{1, 16, 256, 1, 16, 256}

// guardDepth is the pipeline depth of the guard test's second pass: deep enough that batches
// of every size are in flight together.
const guardDepth = 4

// TestClustersReplicate guards the benchmarks against measuring nothing: each driver commits
// distinct payloads through its cluster, one batch at a time and then pipelined, and every
// node must apply exactly the proposed entries, in proposal order. Raft §5.3 (log matching)
// and the State Machine Safety property (§5.4.3): no two nodes apply different entries at an
// index.
func TestClustersReplicate(t *testing.T) {
	for _, im := range impls {
		t.Run("impl="+im.name, func(t *testing.T) {
			c, err := im.start(Options{Record: true})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := c.Close(); err != nil {
					t.Error(err)
				}
			}()
			var proposed [][]byte
			next := func(n int) [][]byte {
				batch := make([][]byte, n)
				for i := range batch {
					batch[i] = guardPayload(len(proposed), 16+len(proposed)%113)
					proposed = append(proposed, batch[i])
				}
				return batch
			}
			for _, n := range guardBatches {
				if err := c.Commit(next(n)); err != nil {
					t.Fatalf("Commit after %d entries: %v", len(proposed)-n, err)
				}
			}
			for _, n := range guardBatches {
				if err := c.Propose(next(n), guardDepth); err != nil {
					t.Fatalf("Propose after %d entries: %v", len(proposed)-n, err)
				}
			}
			applied, err := c.Converge()
			if err != nil {
				t.Fatal(err)
			}
			if len(applied) != ClusterSize {
				t.Fatalf("Converge returned %d nodes, want %d", len(applied), ClusterSize)
			}
			for node, log := range applied {
				if len(log) != len(proposed) {
					t.Fatalf("node %d applied %d entries, want %d", node+1, len(log), len(proposed))
				}
				for i := range log {
					if !bytes.Equal(log[i], proposed[i]) {
						t.Fatalf("node %d entry %d = %x, want %x", node+1, i, log[i], proposed[i])
					}
				}
			}
		})
	}
}

// guardPayload is a size-byte payload (size >= 8) that names its sequence number, so a
// reordered, lost or duplicated entry shows up in the comparison.
func guardPayload(seq, size int) []byte {
	p := make([]byte, size)
	binary.BigEndian.PutUint64(p, uint64(seq))
	for i := 8; i < size; i++ {
		p[i] = byte(seq + i)
	}
	return p
}

// TestRingFIFO checks the pipelined drivers' queue across growth and wrap-around.
func TestRingFIFO(t *testing.T) {
	var r ring[int]
	pushed, popped := 0, 0
	for round := range 50 {
		for range round % 7 {
			r.push(pushed)
			pushed++
		}
		for range round % 5 {
			if r.len() == 0 {
				break
			}
			if got := r.pop(); got != popped {
				t.Fatalf("pop = %d, want %d", got, popped)
			}
			popped++
		}
		if r.len() != pushed-popped {
			t.Fatalf("len = %d, want %d", r.len(), pushed-popped)
		}
	}
}

// BenchmarkHashicorpWriters checks that the hashicorp driver's pipelining (one goroutine
// keeping depth batches of futures, writers=futures, which is what BenchmarkCommit runs)
// does not handicap the library against the other way its users keep Applys in flight:
// depth goroutines, each calling Apply and waiting on its future (writers=goroutines). Both
// commit 16-byte entries one per Apply on one cluster per depth, which the b.N rounds share.
func BenchmarkHashicorpWriters(b *testing.B) {
	payload := bytes.Repeat([]byte{0xa5}, 16)
	batch := [][]byte{payload}
	for _, depth := range []int{8, 32} {
		var c *hashicorpCluster
		for _, writers := range []string{"futures", "goroutines"} {
			b.Run(fmt.Sprintf("writers=%s/depth=%d", writers, depth), func(b *testing.B) {
				if c == nil {
					cl, err := NewHashicorp(Options{})
					if err != nil {
						b.Fatal(err)
					}
					c = cl.(*hashicorpCluster)
					for range benchWarmupEntries {
						if err := c.Propose(batch, depth); err != nil {
							b.Fatal(err)
						}
					}
				}
				if err := c.Flush(); err != nil {
					b.Fatal(err)
				}
				leader := c.rafts[c.leader]
				b.ReportAllocs()
				cpuBefore, cpuKnown := processCPU()
				b.ResetTimer()
				switch writers {
				case "futures":
					for range b.N {
						if err := c.Propose(batch, depth); err != nil {
							b.Fatal(err)
						}
					}
					if err := c.Flush(); err != nil {
						b.Fatal(err)
					}
				case "goroutines":
					var left atomic.Int64
					left.Store(int64(b.N))
					errs := make(chan error, depth)
					for range depth {
						go func() {
							var err error
							for left.Add(-1) >= 0 {
								if e := leader.Apply(payload, 0).Error(); e != nil && err == nil {
									err = e
								}
							}
							errs <- err
						}()
					}
					for range depth {
						if err := <-errs; err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StopTimer()
				cpuAfter, _ := processCPU()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
				if cpu := (cpuAfter - cpuBefore).Seconds(); cpuKnown && cpu > 0 {
					b.ReportMetric(float64(b.N)/cpu, "entries/cpu-s")
				}
			})
		}
		if c != nil {
			if err := c.Close(); err != nil {
				b.Error(err)
			}
		}
	}
}
