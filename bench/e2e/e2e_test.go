package e2e

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/consensusbench/consensusbench/client"
	"github.com/consensusbench/consensusbench/server"
	"github.com/consensusbench/consensusbench/storage"
	"github.com/consensusbench/consensusbench/wire"
)

// The load shape. One benchmark iteration is one client batch; ops/s and allocs/op-kv are
// per key-value operation.
const (
	benchClients  = 4  // RaftClients, each with its own connection and client ID
	benchPipeline = 16 // batches in flight per client
	benchBatch    = 64 // ops per batch
	benchKeys     = 1 << 16
	benchKeyLen   = 16
	warmupBatches = 2000 // committed before measuring: pools, queues and the log at steady size
	// Latency histogram range: 1 µs .. 60 s, 3 significant digits (as bench/load records).
	histMin, histMax, histDigits = 1_000, 60_000_000_000, 3
)

// paceRate is the offered rate of the paced (open-loop) sub-benchmarks, in ops/s: half the
// issue's 500k writes/s target, where p99 must stay under 5 ms.
var paceRate = flag.Float64("e2e.rate", 250_000, "ops/s offered by the rate=... sub-benchmarks")

// BenchmarkRaftWrite drives a 3-node in-process Raft cluster with writes.
//
// load=closed keeps benchClients x benchPipeline batches in flight and measures the
// cluster's throughput; latency is from each batch's send. load=paced offers -e2e.rate ops/s
// on a fixed schedule and charges each batch from its intended send time, so p50/p99 there
// are free of coordinated omission (a saturated cluster shows it as growing latency).
//
// Metrics: ops/s, p50-us and p99-us (per batch, HdrHistogram), allocs/op-kv (every
// allocation in the process — client, replicas, transport — per key-value op, steady state).
func BenchmarkRaftWrite(b *testing.B) {
	for _, policy := range []storage.SyncPolicy{storage.SyncNone, storage.SyncAlways} {
		for _, size := range []int{16, 128} {
			for _, paced := range []bool{false, true} {
				load := "closed"
				if paced {
					load = "paced"
				}
				b.Run(fmt.Sprintf("nodes=3/sync=%s/size=%d/load=%s", policy, size, load), func(b *testing.B) {
					benchRaft(b, policy, size, paced)
				})
			}
		}
	}
}

// BenchmarkPBFTWrite is BenchmarkRaftWrite for a 4-replica PBFT cluster (f = 1, MAC
// authenticators): each client holds benchPipeline PBFT client identities, one per request
// in flight (PBFT allows one outstanding request per client, Castro and Liskov §4.1).
func BenchmarkPBFTWrite(b *testing.B) {
	for _, policy := range []storage.SyncPolicy{storage.SyncNone, storage.SyncAlways} {
		for _, size := range []int{16, 128} {
			b.Run(fmt.Sprintf("nodes=4/sync=%s/size=%d/load=closed", policy, size), func(b *testing.B) {
				bench(b, "pbft", 4, policy, size, false)
			})
		}
	}
}

// doer is what both protocols' clients offer.
type doer interface {
	Do(ctx context.Context, ops []wire.Op, res *client.Results) error
	Close() error
}

type worker struct {
	cl   doer
	ops  []wire.Op
	res  client.Results
	hist *hdrhistogram.Histogram
	rng  uint64
}

func benchRaft(b *testing.B, policy storage.SyncPolicy, size int, paced bool) {
	bench(b, "raft", 3, policy, size, paced)
}

func bench(b *testing.B, protocol string, n int, policy storage.SyncPolicy, size int, paced bool) {
	c, err := server.StartLocalCluster(server.LocalClusterConfig{Protocol: protocol, Nodes: n, Dir: b.TempDir(), Sync: policy})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Stop()
	var nodes []client.Node
	for _, n := range c.Spec.Nodes {
		nodes = append(nodes, client.Node{ID: n.ID, Addr: n.ClientAddr})
	}
	keys := make([][]byte, benchKeys)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%0*d", benchKeyLen-4, i)
	}
	value := make([]byte, size)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	var clients []doer
	for i := range benchClients {
		var cl doer
		if protocol == "pbft" {
			cl, err = client.NewPBFT(context.Background(), client.PBFTConfig{Nodes: nodes,
				FixedClientIDs: true, FirstClientID: uint64(i * benchPipeline), MaxInflight: benchPipeline})
		} else {
			cl, err = client.NewRaft(client.Config{Nodes: nodes})
		}
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		// One write alone first: the client finds the leader and the replicated store opens
		// its session before the pipeline starts. Without it, the pipelined batches that a
		// follower redirected are retried in any order, and those more than
		// kv.SessionWindow sequence numbers ahead of a new session are refused.
		var res client.Results
		if err := cl.Do(context.Background(), []wire.Op{{Kind: wire.OpPut, Key: keys[0], Value: value}}, &res); err != nil {
			b.Fatal(err)
		}
		clients = append(clients, cl)
	}
	workers := make([]*worker, benchClients*benchPipeline)
	for i := range workers {
		w := &worker{cl: clients[i%benchClients], ops: make([]wire.Op, benchBatch),
			hist: hdrhistogram.New(histMin, histMax, histDigits), rng: uint64(i)*0x9e3779b97f4a7c15 + 1}
		for j := range w.ops {
			w.ops[j] = wire.Op{Kind: wire.OpPut, Value: value}
		}
		workers[i] = w
	}

	// Each token is one batch; its value is the intended send time (paced) or zero (closed:
	// the worker times from its own send).
	tokens := make(chan time.Time, len(workers))
	var done atomic.Int64
	var failed atomic.Pointer[error]
	var recording atomic.Bool
	var wg sync.WaitGroup
	ctx := context.Background()
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for intended := range tokens {
				for j := range w.ops {
					w.rng ^= w.rng << 13
					w.rng ^= w.rng >> 7
					w.rng ^= w.rng << 17
					w.ops[j].Key = keys[w.rng%benchKeys]
				}
				start := time.Now()
				if intended.IsZero() {
					intended = start
				}
				// No per-call deadline: its context and timer would add allocations that
				// are the benchmark's, not the system's. The client's attempt timeout
				// bounds each try, and the test binary's -timeout bounds a hang.
				err := w.cl.Do(ctx, w.ops, &w.res)
				if err == nil {
					for _, r := range w.res.Ops {
						if r.Status != wire.StatusOK {
							err = fmt.Errorf("op status %v %q", r.Status, r.Value)
							break
						}
					}
				}
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					continue
				}
				if recording.Load() {
					_ = w.hist.RecordValue(int64(time.Since(intended)))
					done.Add(1)
				}
			}
		}()
	}
	for range warmupBatches {
		tokens <- time.Time{}
	}
	// Let the warm-up drain before measuring.
	for len(tokens) > 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if err := failed.Load(); err != nil {
		b.Fatalf("warm-up: %v", *err)
	}

	interval := time.Duration(float64(time.Second) * benchBatch / *paceRate)
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	recording.Store(true)
	b.ReportAllocs()
	b.SetBytes(int64(benchBatch * (benchKeyLen + size)))
	var sent int64
	began := time.Now()
	for b.Loop() {
		if paced {
			next := began.Add(time.Duration(sent) * interval)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			tokens <- next
		} else {
			tokens <- time.Time{}
		}
		sent++
	}
	completed := done.Load()
	recording.Store(false)
	runtime.ReadMemStats(&ms1)
	close(tokens)
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	total := hdrhistogram.New(histMin, histMax, histDigits)
	for _, w := range workers {
		total.Merge(w.hist)
	}
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(completed*benchBatch)/secs, "ops/s")
	b.ReportMetric(float64(total.ValueAtQuantile(50))/1e3, "p50-us")
	b.ReportMetric(float64(total.ValueAtQuantile(99))/1e3, "p99-us")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(sent*benchBatch), "allocs/op-kv")
	if paced {
		b.ReportMetric(*paceRate, "offered-ops/s")
	}
}
