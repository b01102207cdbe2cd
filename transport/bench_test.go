package transport

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/consensusbench/consensusbench/wire"
)

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
func BenchmarkPeerOutbound(b *testing.B) {
	for _, impl := range []string{"writev", "gnet"} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("impl=%s/size=%d", impl, size), func(b *testing.B) {
				if impl == "writev" {
					benchOutboundWritev(b, size)
				} else {
					benchOutboundGnet(b, size)
				}
			})
		}
	}
}

func benchOutboundWritev(b *testing.B, size int) {
	fp := newFakePeer(b, 2, false)
	cfg := testConfig(1, 2)
	cfg.ClientListen = ""
	cfg.Peers[0].Addr = fp.addr()
	tr, _ := startTransport(b, cfg)
	waitFor(b, "connected", func() bool { return tr.PeerConnected(2) })
	frame := benchFrame(size)
	b.ReportAllocs()
	b.SetBytes(int64(size))
	start := time.Now()
	frames := 0
	for b.Loop() {
		for tr.Send(2, frame) != nil {
			runtime.Gosched()
		}
		frames++
	}
	want := int64(frames * size)
	waitFor(b, "sink drained", func() bool { return fp.bytesRead.Load() >= want })
	reportRate(b, frames, size, time.Since(start))
}

// sinkClientHandler discards what a gnet client connection receives (the sink's hello).
type sinkClientHandler struct{ gnet.BuiltinEventEngine }

func (sinkClientHandler) OnTraffic(c gnet.Conn) gnet.Action {
	_, _ = c.Discard(-1)
	return gnet.None
}

func benchOutboundGnet(b *testing.B, size int) {
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
	tr, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	cc := tr.addClient(gc)
	hello := helloFrame(testClusterID, 1, wire.ProtocolRaft, ProtocolVersion)
	if _, err := cc.q.push(hello); err != nil {
		b.Fatal(err)
	}
	cc.kick()
	frame := benchFrame(size)
	b.ReportAllocs()
	b.SetBytes(int64(size))
	start := time.Now()
	var sent int64
	frames := 0
	for b.Loop() {
		for sent-fp.bytesRead.Load() > window {
			runtime.Gosched()
		}
		for {
			if _, err := cc.q.push(frame); err == nil {
				break
			} else if !errors.Is(err, ErrPeerPaused) {
				b.Fatal(err)
			}
			runtime.Gosched()
		}
		cc.kick()
		sent += int64(size)
		frames++
	}
	waitFor(b, "sink drained", func() bool { return fp.bytesRead.Load() >= sent })
	reportRate(b, frames, size, time.Since(start))
	if n := tr.Metrics().ClosedSlowClient.Load(); n != 0 {
		b.Fatal("gnet connection was closed as slow")
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
					runtime.Gosched()
				}
				frames++
			}
			waitFor(b, "all frames received", func() bool { return got.Load() >= int64(frames) })
			reportRate(b, frames, size, time.Since(start))
		})
	}
}
