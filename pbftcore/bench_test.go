package pbftcore_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/pbftcore"
)

// BenchmarkAuthenticator measures creating and verifying the MAC authenticator of a
// multicast normal-case message (one HMAC-SHA256 per other replica, OSDI '99 §4.1; TOCS 2002
// §3.2) and, beside it, the ed25519 signature the SignAll mode uses instead.
func BenchmarkAuthenticator(b *testing.B) {
	for _, n := range []int{4, 7, 13} {
		for _, signAll := range []bool{false, true} {
			mode := "mac"
			if signAll {
				mode = "sig"
			}
			kr := pbftcore.NewKeyring([]byte("bench"), n, 1)
			sender := pbftcore.NewAuthenticator(kr.Replica(0), signAll)
			receiver := pbftcore.NewAuthenticator(kr.Replica(1), signAll)
			m := pbftcore.Message{Type: pbftcore.MsgPrepare, From: 0, To: pbftcore.ToAll, View: 3, Seq: 12345}
			m.Digest[0] = 7
			buf := make([]byte, 0, 1024)
			b.Run(fmt.Sprintf("n=%d/mode=%s/op=create", n, mode), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					buf = sender.Seal(&m, buf[:0])
				}
			})
			m.Auth = sender.Seal(&m, nil)
			b.Run(fmt.Sprintf("n=%d/mode=%s/op=verify", n, mode), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if !receiver.Verify(&m) {
						b.Fatal("authenticator does not verify")
					}
				}
			})
		}
	}
}

// benchApp is an allocation-free application (a folded counter per key byte), so the
// cluster benchmark measures the protocol rather than a map.
type benchApp struct {
	state [256]uint64
}

func (a *benchApp) Execute(seq uint64, req *pbftcore.Request, dst []byte) []byte {
	k := byte(0)
	if len(req.Op) > 0 {
		k = req.Op[0]
	}
	a.state[k] += seq
	return binary.LittleEndian.AppendUint64(dst, a.state[k])
}
func (a *benchApp) Read(op []byte, dst []byte) []byte { return append(dst, op...) }
func (a *benchApp) Checkpoint(uint64) pbftcore.Digest {
	var d pbftcore.Digest
	for i, v := range a.state {
		d[i%32] ^= byte(v)
	}
	return d
}
func (a *benchApp) StateChunk(uint64, int, []byte) ([]byte, int, bool) { return nil, 0, false }
func (a *benchApp) StateDigest([][]byte) pbftcore.Digest               { return pbftcore.Digest{} }
func (a *benchApp) Restore(uint64, [][]byte)                           {}
func (a *benchApp) DiscardBelow(uint64)                                {}

// benchCluster is an in-process cluster driven in rounds: every replica's Ready is taken,
// then each replica Steps the messages addressed to it (receivers in parallel on `workers`
// goroutines; a Ready stays valid while its replica Steps, the output goes to the next
// Ready), then every replica Advances. Message order per receiver is fixed, so runs are
// deterministic whatever the scheduling.
type benchCluster struct {
	nodes    []*pbftcore.Node
	rds      []pbftcore.Ready
	has      []bool
	workers  int
	start    []chan struct{}
	done     chan struct{}
	executed int
}

func newBenchCluster(b *testing.B, n, batch, clients, workers int, signAll bool) *benchCluster {
	kr := pbftcore.NewKeyring([]byte("bench"), n, clients)
	c := &benchCluster{rds: make([]pbftcore.Ready, n), has: make([]bool, n), workers: workers,
		done: make(chan struct{}, workers)}
	for i := range n {
		cfg := pbftcore.DefaultConfig(i, n, kr.Replica(i), &benchApp{}, rand.New(rand.NewPCG(1, uint64(i))))
		cfg.MaxBatchRequests = batch
		cfg.MaxPendingRequests = max(cfg.MaxPendingRequests, 2*batch)
		cfg.RequestTimeoutTicks = 1 << 20 // no view changes: nothing ticks
		cfg.SignAll = signAll
		nd, err := pbftcore.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		c.nodes = append(c.nodes, nd)
	}
	for w := range workers {
		ch := make(chan struct{})
		c.start = append(c.start, ch)
		go func() {
			for range ch {
				for j := w; j < n; j += workers {
					c.deliverTo(j)
				}
				c.done <- struct{}{}
			}
		}()
	}
	b.Cleanup(func() {
		for _, ch := range c.start {
			close(ch)
		}
	})
	return c
}

// deliverTo steps replica j through every message of this round addressed to it.
func (c *benchCluster) deliverTo(j int) {
	for i := range c.nodes {
		if !c.has[i] || i == j {
			continue
		}
		msgs := c.rds[i].Messages
		for k := range msgs {
			if m := &msgs[k]; m.To == pbftcore.ToAll || m.To == j {
				_ = c.nodes[j].Step(m)
			}
		}
	}
}

func (c *benchCluster) drive() {
	for {
		any := false
		for i, nd := range c.nodes {
			c.has[i] = nd.HasReady()
			if c.has[i] {
				any = true
				c.rds[i] = nd.Ready()
				if i == 0 {
					c.executed += len(c.rds[i].Executed)
				}
			}
		}
		if !any {
			return
		}
		if c.workers == 1 {
			for j := range c.nodes {
				c.deliverTo(j)
			}
		} else {
			for _, ch := range c.start {
				ch <- struct{}{}
			}
			for range c.workers {
				<-c.done
			}
		}
		for i, nd := range c.nodes {
			if c.has[i] {
				nd.Advance()
			}
		}
	}
}

// requestPool pre-builds authenticated client requests (the clients' cost is not part of
// the replicas' throughput); it is refilled with the timer stopped.
type requestPool struct {
	clients []*pbftcore.Client
	msgs    []pbftcore.Message
	next    int
}

func newRequestPool(b *testing.B, n, clients int, signAll bool) *requestPool {
	kr := pbftcore.NewKeyring([]byte("bench"), n, clients)
	p := &requestPool{}
	for c := range clients {
		cl, err := pbftcore.NewClient(pbftcore.ClientConfig{ID: uint64(c), N: n, Keys: kr.Client(uint64(c)), SignAll: signAll})
		if err != nil {
			b.Fatal(err)
		}
		p.clients = append(p.clients, cl)
	}
	return p
}

func (p *requestPool) refill(count int) {
	p.msgs = p.msgs[:0]
	p.next = 0
	op := make([]byte, 16)
	for i := range count {
		cl := p.clients[i%len(p.clients)]
		op[0] = byte(i)
		if err := cl.Invoke(op, false); err != nil {
			panic(err)
		}
		rd := cl.Ready()
		m := pbftcore.CloneMessage(&rd.Messages[0])
		m.To = 0
		p.msgs = append(p.msgs, m)
		cl.Advance()
		cl.Abandon()
	}
}

// BenchmarkCluster runs a 4-replica cluster (f = 1): the primary batches requests (OSDI '99
// §5.1.4), all replicas order, execute and reply (replies are MACed, the client's side is not
// measured, nor is building the clients' requests). One op is one batch. req/s is requests
// executed per wall-clock second; req/cpu-s per CPU-second of the process (this machine is
// shared, and CPU time survives contention); allocs/req are steady-state allocations. MAC and
// signature modes run side by side; workers is how many goroutines step the replicas.
func BenchmarkCluster(b *testing.B) {
	const n, clients, poolBatches = 4, 64, 64
	for _, workers := range []int{1, 2} {
		for _, batch := range []int{1, 64, 512} {
			for _, signAll := range []bool{false, true} {
				mode := "mac"
				if signAll {
					mode = "sig"
				}
				b.Run(fmt.Sprintf("mode=%s/batch=%d/workers=%d", mode, batch, workers), func(b *testing.B) {
					benchCluster1(b, n, clients, batch, workers, max(batch*poolBatches, 4096), signAll)
				})
			}
		}
	}
}

func benchCluster1(b *testing.B, n, clients, batch, workers, poolSize int, signAll bool) {
	c := newBenchCluster(b, n, batch, clients, workers, signAll)
	pool := newRequestPool(b, n, clients, signAll)
	pool.refill(poolSize)
	// Warm up (MAC mode; signatures are too slow for it): the first pass over the watermark
	// window sizes every slot's buffers; steady state starts after L + K batches.
	if !signAll {
		for range pbftcore.DefaultCheckpointInterval * 3 {
			if pool.next+batch > len(pool.msgs) {
				pool.refill(poolSize)
			}
			for range batch {
				_ = c.nodes[0].Step(&pool.msgs[pool.next])
				pool.next++
			}
			c.drive()
		}
		c.executed = 0
	}
	// Allocations and CPU time are counted over the timed part only (refills excluded).
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs, start := uint64(0), ms.Mallocs
	cpu, cpuStart := time.Duration(0), processCPU()
	b.ReportAllocs()
	requests := 0
	for b.Loop() {
		if pool.next+batch > len(pool.msgs) {
			b.StopTimer()
			runtime.ReadMemStats(&ms)
			mallocs += ms.Mallocs - start
			cpu += processCPU() - cpuStart
			pool.refill(poolSize)
			runtime.ReadMemStats(&ms)
			start = ms.Mallocs
			cpuStart = processCPU()
			b.StartTimer()
		}
		for range batch {
			_ = c.nodes[0].Step(&pool.msgs[pool.next])
			pool.next++
		}
		c.drive()
		requests += batch
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms)
	mallocs += ms.Mallocs - start
	cpu += processCPU() - cpuStart
	if c.executed != requests {
		b.Fatalf("executed %d of %d requests", c.executed, requests)
	}
	b.ReportMetric(float64(requests)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(requests)/cpu.Seconds(), "req/cpu-s")
	b.ReportMetric(float64(mallocs)/float64(requests), "allocs/req")
}

// processCPU is the user+system CPU time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
