package raftpeers

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
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

// The workload shared by every implementation.
var (
	benchBatches = []int{1, 16, 256}
	benchSizes   = []int{16, 128}
)

// benchWarmupEntries are committed before measuring so that logs, queues and pools have grown
// to their steady-state size and a compaction cycle has run (at least a few batches even for
// the largest batch).
const (
	benchWarmupEntries = 2*CompactEvery + CompactRetain
	benchWarmupBatches = 8
)

// BenchmarkCommit measures committed entries per second and allocations per committed entry
// of each implementation under the same workload. One iteration commits one batch: ns/op and
// allocs/op are per batch, entries/s, allocs/entry and B/entry per entry.
func BenchmarkCommit(b *testing.B) {
	for _, im := range impls {
		for _, batch := range benchBatches {
			for _, size := range benchSizes {
				b.Run(fmt.Sprintf("impl=%s/batch=%d/size=%d", im.name, batch, size), func(b *testing.B) {
					benchCommit(b, im, batch, size)
				})
			}
		}
	}
}

func benchCommit(b *testing.B, im impl, batchLen, size int) {
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
	for range max(benchWarmupBatches, benchWarmupEntries/batchLen) {
		if err := c.Commit(batch); err != nil {
			b.Fatal(err)
		}
	}

	b.ReportAllocs()
	b.SetBytes(int64(batchLen * size))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	batches := 0
	for b.Loop() {
		if err := c.Commit(batch); err != nil {
			b.Fatal(err)
		}
		batches++
	}
	runtime.ReadMemStats(&after)
	entries := float64(batches * batchLen)
	b.ReportMetric(entries/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/entries, "allocs/entry")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/entries, "B/entry")
}

// guardBatches is the proposal pattern of the guard test: every benchmark batch size, twice,
// so that a batch follows one of each size.
var guardBatches = []int{1, 16, 256, 1, 16, 256}

// TestClustersReplicate guards the benchmarks against measuring nothing: each driver commits
// distinct payloads through its cluster, and every node must apply exactly the proposed
// entries, in proposal order. Raft §5.3 (log matching) and the State Machine Safety property
// (§5.4.3): no two nodes apply different entries at an index.
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
			for _, n := range guardBatches {
				batch := make([][]byte, n)
				for i := range batch {
					batch[i] = guardPayload(len(proposed), 16+len(proposed)%113)
					proposed = append(proposed, batch[i])
				}
				if err := c.Commit(batch); err != nil {
					t.Fatalf("after %d entries: %v", len(proposed)-n, err)
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
