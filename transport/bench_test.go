package transport

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/consensusbench/consensusbench/wire"
)

// waitBriefly is how a benchmark's producer waits for a full queue or window to drain. Not
// runtime.Gosched: a goroutine spinning on Gosched keeps the global run queue non-empty, so
// the scheduler rarely polls the network and the very goroutines that would drain the queue
// (socket readers woken by netpoll) starve; that measured the scheduler, not the transport.
func waitBriefly() { time.Sleep(10 * time.Microsecond) }

// benchSizes are the frame sizes (header included) the brief asks for: small consensus
// messages and 4 KiB batches.
var benchSizes = []int{64, 4096}

// benchFrame returns one whole frame of exactly size bytes.
func benchFrame(size int) []byte {
	return wire.AppendFrame(nil, wire.TypeAppendEntries, 0, make([]byte, size-wire.HeaderSize))
}

// reportRate adds frames/s and MB/s computed over the whole run including the final drain,
// so a sender that only fills buffers is not credited with throughput it did not deliver.
func reportRate(b *testing.B, frames int, size int, elapsed time.Duration) {
	s := elapsed.Seconds()
	b.ReportMetric(float64(frames)/s, "frames/s")
	b.ReportMetric(float64(frames*size)/s/1e6, "MB/s")
}

// BenchmarkPeerOutbound compares the two ways of writing to a peer that the brief asked to
// measure, both fed through the same byte-bounded queue into a loopback sink that reads and
// discards:
//
//   - impl=writev: the Transport's writer goroutine per peer (net.Buffers / writev, woken by
//     a channel when the queue goes from empty to non-empty);
//   - impl=gnet: a gnet client connection written with AsyncWritev, one in flight at a time,
//     with later frames drained by the completion callback on the event loop (the same
//     machinery as client replies). gnet gives no "drained" notification, so this variant
//     is held to a window of unread bytes at the sink instead of blocking on the socket.
//
// mode=stream sends as fast as the path takes frames (throughput); mode=single sends one
// frame and waits until the sink has read it (the cost of getting a lone message out, which
// is what a heartbeat or a lightly loaded append pays).
func BenchmarkPeerOutbound(b *testing.B) {
	for _, mode := range []string{"stream", "single"} {
		for _, impl := range []string{"writev", "gnet"} {
			for _, size := range benchSizes {
				b.Run(fmt.Sprintf("mode=%s/impl=%s/size=%d", mode, impl, size), func(b *testing.B) {
					var out outboundUnderTest
					if impl == "writev" {
						out = setupOutboundWritev(b)
					} else {
						out = setupOutboundGnet(b)
					}
					benchOutbound(b, out, size, mode == "single")
				})
			}
		}
	}
}

// outboundUnderTest is one outbound implementation wired to a sink.
type outboundUnderTest struct {
	send func(frame []byte) bool // false: no room now, try again shortly
	read func() int64            // bytes the sink has read (after the hello)
}

func benchOutbound(b *testing.B, out outboundUnderTest, size int, single bool) {
	frame := benchFrame(size)
	b.ReportAllocs()
	b.SetBytes(int64(size))
	start := time.Now()
	frames := 0
	for b.Loop() {
		for !out.send(frame) {
			waitBriefly()
		}
		frames++
		if single {
			// Spin without yielding: the sink's reader runs on the other CPU.
			want := int64(frames * size)
			for i := 0; out.read() < want; i++ {
				if i%(1<<20) == 0 && time.Since(start) > 10*waitTimeout {
					b.Fatal("sink stopped reading")
				}
			}
		}
	}
	want := int64(frames * size)
	waitFor(b, "sink drained", func() bool { return out.read() >= want })
	reportRate(b, frames, size, time.Since(start))
}

func setupOutboundWritev(b *testing.B) outboundUnderTest {
	fp := newFakePeer(b, 2, false)
	cfg := testConfig(1, 2)
	cfg.ClientListen = ""
	cfg.Peers[0].Addr = fp.addr()
	tr, _ := startTransport(b, cfg)
	waitFor(b, "connected", func() bool { return tr.PeerConnected(2) })
	return outboundUnderTest{
		send: func(f []byte) bool { return tr.Send(2, f) == nil },
		read: fp.bytesRead.Load,
	}
}

// sinkClientHandler discards what a gnet client connection receives (the sink's hello).
type sinkClientHandler struct{ gnet.BuiltinEventEngine }

func (sinkClientHandler) OnTraffic(c gnet.Conn) gnet.Action {
	_, _ = c.Discard(-1)
	return gnet.None
}

func setupOutboundGnet(b *testing.B) outboundUnderTest {
	const window = DefaultPeerQueueBytes
	fp := newFakePeer(b, 2, false)
	cli, err := gnet.NewClient(&sinkClientHandler{}, gnet.WithMulticore(true), gnet.WithNumEventLoop(2),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay), gnet.WithLogger(gnetLogger{discardLogger()}))
	if err != nil {
		b.Fatal(err)
	}
	if err := cli.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cli.Stop() })
	gc, err := cli.Dial("tcp", fp.addr())
	if err != nil {
		b.Fatal(err)
	}
	// Reuse the client-reply machinery of a (not started) Transport for the gnet connection.
	cfg := testConfig(1, 2)
	cfg.ClientQueueBytes = 4 * window // never the limit here: the window below is
	cfg.ClientWritesOnLoop = true     // this variant measures gnet's AsyncWritev
	tr, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if n := tr.Metrics().ClosedSlowClient.Load(); n != 0 {
			b.Error("gnet connection was closed as slow")
		}
	})
	cc := tr.addClient(gc)
	hello := helloFrame(testClusterID, 1, wire.ProtocolRaft, ProtocolVersion)
	if _, err := cc.q.push(hello); err != nil {
		b.Fatal(err)
	}
	cc.kick()
	var sent int64
	return outboundUnderTest{
		send: func(f []byte) bool {
			if sent-fp.bytesRead.Load() > window {
				return false
			}
			if _, err := cc.q.push(f); err != nil {
				return false
			}
			cc.kick()
			sent += int64(len(f))
			return true
		},
		read: fp.bytesRead.Load,
	}
}

// BenchmarkInbound measures the receive path alone: a raw TCP sender streams pre-encoded
// frames into a peer connection (after a valid hello) as fast as loopback takes them; each
// iteration is one frame taken from the inbound queue by the benchmark, acting as the driver.
// allocs/op is allocations per received frame.
func BenchmarkInbound(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			cfg := testConfig(1, 2)
			cfg.ClientListen = ""
			tr, _ := startTransport(b, cfg)
			conn, err := net.Dial("tcp", tr.PeerAddr())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(helloFrame(testClusterID, 2, wire.ProtocolRaft, ProtocolVersion)); err != nil {
				b.Fatal(err)
			}
			burst := make([]byte, 0, 256<<10)
			frame := benchFrame(size)
			for len(burst)+size <= cap(burst) {
				burst = append(burst, frame...)
			}
			var stop atomic.Bool
			go func() {
				for !stop.Load() {
					if _, err := conn.Write(burst); err != nil {
						return
					}
				}
			}()
			defer stop.Store(true)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			var cur *Batch
			next := 0
			start := time.Now()
			frames := 0
			for b.Loop() {
				for cur == nil || next == len(cur.Frames) {
					if cur != nil {
						cur.Release()
					}
					cur, next = <-tr.Inbound(), 0
				}
				if len(cur.Frames[next].Body) != size-wire.HeaderSize {
					b.Fatal("bad frame")
				}
				next++
				frames++
			}
			if cur != nil {
				cur.Release()
			}
			reportRate(b, frames, size, time.Since(start))
		})
	}
}

// BenchmarkPeerToPeer is the whole path between two transports on loopback: Send on one,
// writev, gnet OnTraffic and the inbound queue on the other, drained by a goroutine standing
// in for the receiving driver. allocs/op counts both sides per frame.
func BenchmarkPeerToPeer(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			trs, _ := startCluster(b, 2, func(c *Config) { c.ClientListen = "" })
			a, r := trs[0], trs[1]
			waitFor(b, "connected", func() bool { return a.PeerConnected(2) })
			var got atomic.Int64
			done := make(chan struct{})
			defer close(done)
			go func() {
				for {
					select {
					case batch := <-r.Inbound():
						got.Add(int64(len(batch.Frames)))
						batch.Release()
					case <-done:
						return
					}
				}
			}()
			frame := benchFrame(size)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			start := time.Now()
			frames := 0
			for b.Loop() {
				for a.Send(2, frame) != nil {
					waitBriefly()
				}
				frames++
			}
			waitFor(b, "all frames received", func() bool { return got.Load() >= int64(frames) })
			reportRate(b, frames, size, time.Since(start))
		})
	}
}

// BenchmarkClientReplies is the reply path to one client connection: SendClient per reply,
// FlushClients every perflush replies (one driver iteration; 1 is the one-op-per-request
// shape, where a flush carries one reply), a raw TCP client reading and discarding. Like a
// real pipelined client, the reader bounds the replies outstanding (clientWindow bytes), well
// inside ClientQueueBytes. path=direct is the transport as it runs (the driver writes on
// the socket); path=loop hands every flush to the event loop through AsyncWritev, as the
// transport did before. cpu-ns/op is the whole process's CPU time (getrusage) per reply,
// reader and event loops included.
func BenchmarkClientReplies(b *testing.B) {
	const clientWindow = 1 << 20
	for _, perFlush := range []int{1, 64} {
		for _, path := range []string{"direct", "loop"} {
			for _, size := range benchSizes {
				b.Run(fmt.Sprintf("perflush=%d/path=%s/size=%d", perFlush, path, size), func(b *testing.B) {
					benchClientReplies(b, perFlush, path == "loop", size, clientWindow)
				})
			}
		}
	}
}

func benchClientReplies(b *testing.B, perFlush int, onLoop bool, size int, clientWindow int64) {
	cfg := testConfig(1)
	cfg.ClientWritesOnLoop = onLoop
	tr, _ := startTransport(b, cfg)
	conn, err := net.Dial("tcp", tr.ClientAddr())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(seqFrame(nil, wire.TypeClientRequest, 1, 16)); err != nil {
		b.Fatal(err)
	}
	id := receive(b, tr, 1)[0].Client
	var read atomic.Int64
	go func() {
		buf := make([]byte, 256<<10)
		for {
			n, err := conn.Read(buf)
			read.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	reply := wire.AppendFrame(nil, wire.TypeClientReply, 0, make([]byte, size-wire.HeaderSize))
	b.ReportAllocs()
	b.SetBytes(int64(size))
	cpu0 := processCPU()
	start := time.Now()
	frames := 0
	for b.Loop() {
		for int64(frames*size)-read.Load() > clientWindow {
			tr.FlushClients()
			waitBriefly()
		}
		for {
			err := tr.SendClient(id, reply)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrClientBusy) {
				b.Fatal(err)
			}
			tr.FlushClients()
			waitBriefly()
		}
		if frames++; frames%perFlush == 0 {
			tr.FlushClients()
		}
	}
	tr.FlushClients()
	want := int64(frames * size)
	waitFor(b, "client read everything", func() bool { return read.Load() >= want })
	reportRate(b, frames, size, time.Since(start))
	b.ReportMetric(float64(processCPU()-cpu0)/float64(frames), "cpu-ns/op")
}

// processCPU is the process's user plus system CPU time so far, in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkPeerRoundTrip is one frame to a peer and one back, through two transports with a
// goroutine on each side acting as the driver: the latency floor a replication round trip
// (append, then its reply) pays in the transport. ns/op is the round-trip time.
func BenchmarkPeerRoundTrip(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			trs, _ := startCluster(b, 2, func(c *Config) { c.ClientListen = "" })
			a, r := trs[0], trs[1]
			waitFor(b, "connected", func() bool { return a.PeerConnected(2) && r.PeerConnected(1) })
			frame := benchFrame(size)
			done := make(chan struct{})
			defer close(done)
			go func() { // the peer's driver: echo every frame
				for {
					select {
					case batch := <-r.Inbound():
						for range batch.Frames {
							for r.Send(1, frame) != nil {
								waitBriefly()
							}
						}
						batch.Release()
					case <-done:
						return
					}
				}
			}()
			b.ReportAllocs()
			pending := 0
			for b.Loop() {
				for a.Send(2, frame) != nil {
					waitBriefly()
				}
				pending++
				for pending > 0 {
					batch := <-a.Inbound()
					pending -= len(batch.Frames)
					batch.Release()
				}
			}
		})
	}
}

// BenchmarkPeerHandshake is one outbound peer connection to a live transport: dial, hello
// exchange and, with auth=secret, the challenge-response (two HMACs a side, one more frame
// each way), then close. Authentication costs this once per connection; frames after the
// handshake take the same path either way (BenchmarkPeerToPeer).
func BenchmarkPeerHandshake(b *testing.B) {
	for _, auth := range []string{"none", "secret"} {
		b.Run("auth="+auth, func(b *testing.B) {
			tweak := func(c *Config) { c.ClientListen = "" }
			if auth == "secret" {
				tweak = func(c *Config) { c.ClientListen, c.PeerSecret = "", testSecret }
			}
			c1 := testConfig(1, 2)
			c2 := testConfig(2, 1)
			tweak(&c1)
			tweak(&c2)
			a, _ := startTransport(b, c1)
			acc, _ := startTransport(b, c2)
			p := a.peers[2]
			b.ReportAllocs()
			for b.Loop() {
				conn, err := p.connect(acc.PeerAddr())
				if err != nil {
					b.Fatal(err)
				}
				p.closeConn()
				_ = conn
			}
		})
	}
}
