package transport

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/wire"
)

// Three transports on loopback, every node sending to every other at once: each receiver
// sees each sender's frames exactly once, in order, intact, and attributed to the sender.
func TestClusterExchange(t *testing.T) {
	const n, perPeer = 3, 3000
	trs, _ := startCluster(t, n, nil)
	var wg sync.WaitGroup
	for i, tr := range trs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for seq := range uint64(perPeer) {
				for j := range trs {
					if j == i {
						continue
					}
					buf = seqFrame(buf[:0], wire.TypeAppendEntries, seq, int(seq%700))
					for {
						err := tr.Send(uint64(j+1), buf)
						if err == nil {
							break
						}
						if !errors.Is(err, ErrPeerPaused) {
							t.Errorf("Send: %v", err)
							return
						}
						time.Sleep(time.Millisecond)
					}
				}
			}
		}()
	}
	for i, tr := range trs {
		frames := receive(t, tr, (n-1)*perPeer)
		next := map[uint64]uint64{}
		for _, f := range frames {
			if f.From == 0 || f.From == uint64(i+1) || f.From > n || f.Client != 0 {
				t.Fatalf("node %d: frame attributed to peer %d client %d", i+1, f.From, f.Client)
			}
			seq := checkSeqBody(t, f.Body)
			if seq != next[f.From] {
				t.Fatalf("node %d: from %d got seq %d, want %d", i+1, f.From, seq, next[f.From])
			}
			if f.Type != wire.TypeAppendEntries || f.Flags != uint16(seq) {
				t.Fatalf("node %d: type %v flags %d for seq %d", i+1, f.Type, f.Flags, seq)
			}
			next[f.From]++
		}
	}
	wg.Wait()
	for i, tr := range trs {
		m := tr.Metrics()
		if got := m.FramesIn.Load(); got != (n-1)*perPeer {
			t.Errorf("node %d: FramesIn = %d, want %d", i+1, got, (n-1)*perPeer)
		}
		if m.ClosedBadFrame.Load()+m.ClosedHandshake.Load()+m.ClosedTimeout.Load() != 0 {
			t.Errorf("node %d: connections closed: %+v", i+1, m)
		}
	}
}

// A client sends a pipelined burst of requests in one write; the driver answers each with
// SendClient and flushes once; the client reads every reply, in order.
func TestClientRequestReply(t *testing.T) {
	tr, _ := startTransport(t, testConfig(1))
	conn, err := net.Dial("tcp", tr.ClientAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const reqs = 500
	var burst []byte
	for seq := range uint64(reqs) {
		burst = seqFrame(burst, wire.TypeClientRequest, seq, 16+int(seq%100))
	}
	if _, err := conn.Write(burst); err != nil {
		t.Fatal(err)
	}
	frames := receive(t, tr, reqs)
	var reply []byte
	for i, f := range frames {
		if f.Client == 0 || f.From != 0 || f.Client != frames[0].Client {
			t.Fatalf("request %d: client %d from %d", i, f.Client, f.From)
		}
		if seq := checkSeqBody(t, f.Body); seq != uint64(i) {
			t.Fatalf("request %d has seq %d", i, seq)
		}
		reply = seqFrame(reply[:0], wire.TypeClientReply, uint64(i), 32)
		if err := tr.SendClient(f.Client, reply); err != nil {
			t.Fatalf("SendClient: %v", err)
		}
	}
	tr.FlushClients()
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	r := wire.NewReader(conn, 0)
	for i := range reqs {
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if f.Type != wire.TypeClientReply || checkSeqBody(t, f.Body) != uint64(i) {
			t.Fatalf("reply %d: type %v", i, f.Type)
		}
	}
	if err := tr.SendClient(ClientID(1<<40), reply); !errors.Is(err, ErrClientGone) {
		t.Fatalf("SendClient to unknown client: %v, want ErrClientGone", err)
	}
}

// A peer that restarts (same address, new process state) is reconnected to, and frames sent
// after the restart reach it.
func TestReconnectAfterPeerRestart(t *testing.T) {
	a, _ := startTransport(t, testConfig(1, 2))
	bCfg := testConfig(2, 1)
	b, _ := startTransport(t, bCfg)
	if err := a.SetPeerAddr(2, b.PeerAddr()); err != nil {
		t.Fatal(err)
	}
	frame := seqFrame(nil, wire.TypeAppendEntries, 1, 64)
	if err := a.Send(2, frame); err != nil {
		t.Fatal(err)
	}
	receive(t, b, 1)
	addr := b.PeerAddr()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "A to notice B is gone", func() bool { return !a.PeerConnected(2) })

	bCfg.PeerListen = addr
	b2, _ := startTransport(t, bCfg)
	// Frames queued while B was away are delivered too; keep sending until one arrives so the
	// test does not depend on how fast the loss was noticed.
	got := make(chan struct{})
	go func() {
		defer close(got)
		for {
			select {
			case batch := <-b2.Inbound():
				ok := len(batch.Frames) > 0 && checkSeqBody(t, batch.Frames[0].Body) >= 2
				batch.Release()
				if ok {
					return
				}
			case <-time.After(waitTimeout):
				t.Error("restarted peer received nothing")
				return
			}
		}
	}()
	for seq := uint64(2); ; seq++ {
		select {
		case <-got:
			if n := a.Metrics().PeerConnects.Load(); n < 2 {
				t.Fatalf("PeerConnects = %d, want >= 2", n)
			}
			// The restarted node reaches us too (A accepts its new inbound connection).
			if err := b2.SetPeerAddr(1, a.PeerAddr()); err != nil {
				t.Fatal(err)
			}
			if err := b2.Send(1, seqFrame(nil, wire.TypeAppendEntriesReply, 77, 16)); err != nil {
				t.Fatal(err)
			}
			for {
				f := receive(t, a, 1)[0]
				if f.From == 2 && f.Type == wire.TypeAppendEntriesReply && checkSeqBody(t, f.Body) == 77 {
					return
				}
			}
		case <-time.After(5 * time.Millisecond):
			_ = a.Send(2, seqFrame(frame[:0], wire.TypeAppendEntries, seq, 64))
		}
	}
}

// Hellos that do not match are refused by the acceptor, which logs why; a dialer that
// reaches the wrong node refuses it too. Nothing is delivered on a refused connection.
func TestHelloMismatchRefused(t *testing.T) {
	tr, logs := startTransport(t, testConfig(1, 2, 3))
	cases := []struct {
		name   string
		hello  []byte
		reason string
	}{
		{"cluster", helloFrame(99, 2, wire.ProtocolRaft, ProtocolVersion), "cluster ID mismatch"},
		{"protocol", helloFrame(testClusterID, 2, wire.ProtocolPBFT, ProtocolVersion), "consensus protocol mismatch"},
		{"version", helloFrame(testClusterID, 2, wire.ProtocolRaft, ProtocolVersion+1), "protocol version mismatch"},
		{"unknown-node", helloFrame(testClusterID, 9, wire.ProtocolRaft, ProtocolVersion), "not a configured peer"},
		{"self", helloFrame(testClusterID, 1, wire.ProtocolRaft, ProtocolVersion), "is our own"},
		{"not-a-hello", seqFrame(nil, wire.TypeAppendEntries, 1, 16), "want PeerHello"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", tr.PeerAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// The hello and a frame behind it: the frame must not be delivered.
			msg := append(bytes.Clone(tc.hello), seqFrame(nil, wire.TypeAppendEntries, 5, 16)...)
			if _, err := conn.Write(msg); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, conn)
			waitFor(t, "refusal counted", func() bool { return tr.Metrics().ClosedHandshake.Load() == uint64(i+1) })
			if n := logs.count("refusing peer connection", tc.reason); n != 1 {
				t.Fatalf("%d log records for %q, want 1:\n%s", n, tc.reason, logs.dump())
			}
		})
	}
	if n := tr.Metrics().FramesIn.Load(); n != 0 {
		t.Fatalf("FramesIn = %d after refused hellos", n)
	}

	// Dialer side: node 1 is told that node 2 lives at node 3's address. Node 3 accepts node
	// 1 (a configured peer) but answers as node 3, so node 1 refuses the connection.
	c3, _ := startTransport(t, testConfig(3, 1))
	if err := tr.SetPeerAddr(2, c3.PeerAddr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dialer refusal logged", func() bool { return logs.count("peer refused", "peer=2", "dialled 2") > 0 })
	if tr.PeerConnected(2) {
		t.Fatal("connected to the wrong node")
	}
}

// Hostile or broken input on a connection closes that connection only; it is logged once and
// counted; the transport keeps serving a well-behaved peer and client afterwards.
func TestHostileConnectionsClosed(t *testing.T) {
	const maxFrame = 64 << 10
	trs, logs := startCluster(t, 2, func(c *Config) {
		c.MaxFrameBytes = maxFrame
		c.PeerQueueBytes = 1 << 20
		c.HandshakeTimeout = 300 * time.Millisecond
		c.PartialFrameTimeout = 300 * time.Millisecond
	})
	tr := trs[0]
	m := tr.Metrics()
	waitFor(t, "peers connected", func() bool { return tr.PeerConnected(2) && trs[1].PeerConnected(1) })

	oversized := wire.AppendFrame(nil, wire.TypeClientRequest, 0, nil)
	oversized[8], oversized[9], oversized[10] = 0, 0, 1 // body length 64 KiB: frame > MaxFrameBytes
	corrupt := seqFrame(nil, wire.TypeClientRequest, 3, 100)
	corrupt[len(corrupt)-1] ^= 0xff
	unknown := seqFrame(nil, wire.TypeClientRequest, 3, 100)
	unknown[5] = 0xee
	peerTypeOnClientPort := seqFrame(nil, wire.TypeAppendEntries, 3, 100)

	type counter struct {
		name string
		get  func() uint64
	}
	badFrame := counter{"ClosedBadFrame", m.ClosedBadFrame.Load}
	handshake := counter{"ClosedHandshake", m.ClosedHandshake.Load}
	timeout := counter{"ClosedTimeout", m.ClosedTimeout.Load}
	cases := []struct {
		name    string
		port    string
		send    []byte
		trickle bool // send one byte of send every 50 ms, never completing it
		counter counter
		log     string
	}{
		{"garbage", "client", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false, badFrame, "bad magic"},
		{"garbage-peer-port", "peer", []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, false, badFrame, "bad magic"},
		{"oversized-length", "client", oversized[:wire.HeaderSize], false, badFrame, "larger than MaxFrameBytes"},
		{"corrupt-crc", "client", corrupt, false, badFrame, "CRC32C mismatch"},
		{"unknown-type", "client", unknown, false, badFrame, "unknown message type"},
		{"peer-type-on-client-port", "client", peerTypeOnClientPort, false, badFrame, "not allowed on this connection"},
		{"wrong-cluster-id", "peer", helloFrame(12345, 2, wire.ProtocolRaft, ProtocolVersion), false, handshake, "cluster ID mismatch"},
		{"slowloris-header", "client", corrupt[:wire.HeaderSize-1], true, timeout, "PartialFrameTimeout"},
		{"slowloris-body", "client", corrupt[:wire.HeaderSize+50], true, timeout, "PartialFrameTimeout"},
		{"silent-peer", "peer", nil, false, timeout, "HandshakeTimeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.counter.get()
			logsBefore := logs[0].count(tc.log)
			addr := tr.ClientAddr()
			if tc.port == "peer" {
				addr = tr.PeerAddr()
			}
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if tc.trickle {
				go func() {
					for i := range tc.send {
						if _, err := conn.Write(tc.send[i : i+1]); err != nil {
							return
						}
						time.Sleep(50 * time.Millisecond)
					}
				}()
			} else if len(tc.send) > 0 {
				if _, err := conn.Write(tc.send); err != nil {
					t.Fatal(err)
				}
			}
			expectClosed(t, conn)
			waitFor(t, tc.counter.name, func() bool { return tc.counter.get() == before+1 })
			if got := logs[0].count(tc.log) - logsBefore; got != 1 {
				t.Fatalf("%d log records mention %q, want 1:\n%s", got, tc.log, logs[0].dump())
			}
		})
	}
	// The well-behaved peer and a new client are still served.
	if err := trs[1].Send(1, seqFrame(nil, wire.TypeAppendEntries, 42, 64)); err != nil {
		t.Fatal(err)
	}
	if f := receive(t, tr, 1)[0]; f.From != 2 || checkSeqBody(t, f.Body) != 42 {
		t.Fatalf("after hostile connections: got frame from %d", f.From)
	}
	if !tr.PeerConnected(2) || !trs[1].PeerConnected(1) {
		t.Fatal("peer connections were disturbed")
	}
	conn, err := net.Dial("tcp", tr.ClientAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(seqFrame(nil, wire.TypeClientRequest, 7, 16)); err != nil {
		t.Fatal(err)
	}
	if f := receive(t, tr, 1)[0]; f.Client == 0 || checkSeqBody(t, f.Body) != 7 {
		t.Fatal("client request after hostile connections not delivered")
	}
}

// A peer that stops reading fills its queue: Send reports ErrPeerPaused (counted once per
// pause) instead of buffering more, the queue stays within its bound, and once the peer
// reads again the queue drains and Send works again.
func TestBackpressurePeerPaused(t *testing.T) {
	const queueBytes, frameBytes = 256 << 10, 1 << 10
	fp := newFakePeer(t, 2, true)
	cfg := testConfig(1, 2)
	cfg.MaxFrameBytes = 64 << 10
	cfg.PeerQueueBytes = queueBytes
	cfg.ChunkBytes = 16 << 10
	cfg.Peers[0].Addr = fp.addr()
	tr, _ := startTransport(t, cfg)
	waitFor(t, "connected", func() bool { return tr.PeerConnected(2) })

	// Kernel socket buffers absorb some megabytes before the queue fills; bound the attempt.
	const maxSends = (64 << 20) / frameBytes
	frame := seqFrame(nil, wire.TypeAppendEntries, 0, frameBytes-wire.HeaderSize)
	paused := false
	for i := 0; i < maxSends && !paused; i++ {
		switch err := tr.Send(2, frame); {
		case errors.Is(err, ErrPeerPaused):
			paused = true
		case err != nil:
			t.Fatal(err)
		case i%64 == 0:
			time.Sleep(time.Millisecond) // let the writer push into the socket
		}
	}
	if !paused {
		t.Fatalf("no ErrPeerPaused after %d frames to a peer that does not read", maxSends)
	}
	if !tr.PeerPaused(2) {
		t.Fatal("PeerPaused(2) = false after ErrPeerPaused")
	}
	if q := tr.PeerQueueBytes(2); q > queueBytes {
		t.Fatalf("queue holds %d bytes, bound %d", q, queueBytes)
	}
	for range 100 {
		if err := tr.Send(2, frame); !errors.Is(err, ErrPeerPaused) {
			t.Fatalf("Send while paused: %v", err)
		}
	}
	if n := tr.Metrics().PeerPaused.Load(); n != 1 {
		t.Fatalf("PeerPaused counter = %d, want 1 (one pause)", n)
	}
	fp.resume()
	waitFor(t, "queue drained", func() bool { return !tr.PeerPaused(2) && tr.PeerQueueBytes(2) == 0 })
	if err := tr.Send(2, frame); err != nil {
		t.Fatalf("Send after resume: %v", err)
	}
	if n := tr.Metrics().PeerResumed.Load(); n != 1 {
		t.Fatalf("PeerResumed = %d, want 1", n)
	}
}

// A client that never reads its replies is closed once its replies exceed ClientQueueBytes,
// instead of buffering without bound.
func TestSlowClientClosed(t *testing.T) {
	cfg := testConfig(1)
	cfg.ClientQueueBytes = 256 << 10
	tr, _ := startTransport(t, cfg)
	conn, id := dialClient(t, tr)
	reply := seqFrame(nil, wire.TypeClientReply, 1, 16<<10)
	deadline := time.Now().Add(waitTimeout)
	for tr.Metrics().ClosedSlowClient.Load() == 0 {
		err := tr.SendClient(id, reply)
		tr.FlushClients()
		if errors.Is(err, ErrClientGone) {
			break
		}
		if err != nil && !errors.Is(err, ErrClientBusy) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("a client that does not read was never closed")
		}
		time.Sleep(100 * time.Microsecond)
	}
	waitFor(t, "slow client counted", func() bool { return tr.Metrics().ClosedSlowClient.Load() == 1 })
	expectClosed(t, conn)
}

// Frames far larger than gnet's read buffer arrive over many reads and are reassembled;
// small frames around them keep their order.
func TestLargeFramesReassembled(t *testing.T) {
	trs, _ := startCluster(t, 2, func(c *Config) { c.ClientListen = "" })
	sizes := []int{10, 1 << 20, 100, 3 << 20, 70 << 10, 64 << 10, 5, 2<<20 + 7}
	var buf []byte
	for seq, size := range sizes {
		buf = seqFrame(buf[:0], wire.TypeInstallSnapshot, uint64(seq), size)
		if err := trs[0].Send(2, buf); err != nil {
			t.Fatal(err)
		}
	}
	for seq, f := range receive(t, trs[1], len(sizes)) {
		if got := checkSeqBody(t, f.Body); got != uint64(seq) || len(f.Body) != max(sizes[seq], 8) {
			t.Fatalf("frame %d: seq %d, %d bytes, want %d", seq, got, len(f.Body), sizes[seq])
		}
	}
}

// A client stream cut into pieces of random size (written one by one, so reads end at
// arbitrary points inside headers and bodies) is reassembled exactly.
func TestRandomlySplitStream(t *testing.T) {
	tr, _ := startTransport(t, testConfig(1))
	conn, err := net.Dial("tcp", tr.ClientAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const frames = 300
	var stream []byte
	for seq := range uint64(frames) {
		stream = seqFrame(stream, wire.TypeClientRequest, seq, int(seq*37%500))
	}
	rng := rand.New(rand.NewPCG(1, 2)) // fixed seed: the same cuts every run
	go func() {
		for rest := stream; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(40))
			if _, err := conn.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
			if rng.IntN(8) == 0 {
				time.Sleep(100 * time.Microsecond) // let some pieces arrive on their own
			}
		}
	}()
	for i, f := range receive(t, tr, frames) {
		if checkSeqBody(t, f.Body) != uint64(i) || len(f.Body) != max(i*37%500, 8) {
			t.Fatalf("frame %d reassembled wrongly (%d bytes)", i, len(f.Body))
		}
	}
	if n := tr.Metrics().ClosedBadFrame.Load() + tr.Metrics().ClosedTimeout.Load(); n != 0 {
		t.Fatalf("%d connections closed", n)
	}
}

// Client connections beyond MaxClientConns are closed at once; the others are unaffected, and a
// slot freed by a close is usable again.
func TestMaxClientConns(t *testing.T) {
	cfg := testConfig(1)
	cfg.MaxClientConns = 2
	tr, _ := startTransport(t, cfg)
	dial := func() net.Conn {
		c, err := net.Dial("tcp", tr.ClientAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c1, c2 := dial(), dial()
	waitFor(t, "two connections open", func() bool { return tr.Metrics().InboundOpen.Load() == 2 })
	c3 := dial()
	expectClosed(t, c3)
	if n := tr.Metrics().ClosedOverLimit.Load(); n != 1 {
		t.Fatalf("ClosedOverLimit = %d, want 1", n)
	}
	for i, c := range []net.Conn{c1, c2} {
		if _, err := c.Write(seqFrame(nil, wire.TypeClientRequest, uint64(i), 16)); err != nil {
			t.Fatal(err)
		}
	}
	receive(t, tr, 2)
	c1.Close()
	waitFor(t, "slot freed", func() bool { return tr.Metrics().InboundOpen.Load() == 1 })
	c4 := dial()
	if _, err := c4.Write(seqFrame(nil, wire.TypeClientRequest, 9, 16)); err != nil {
		t.Fatal(err)
	}
	if f := receive(t, tr, 1)[0]; checkSeqBody(t, f.Body) != 9 {
		t.Fatal("new connection after a freed slot not served")
	}
}

// Replies beyond ClientQueueBytes within one driver iteration are refused with ErrClientBusy;
// the connection stays open and the queued replies are delivered on FlushClients.
func TestClientBusyKeepsConnection(t *testing.T) {
	cfg := testConfig(1)
	cfg.ClientQueueBytes = 64 << 10
	tr, _ := startTransport(t, cfg)
	conn, id := dialClient(t, tr)
	var reply []byte
	queued := 0
	for ; ; queued++ {
		reply = seqFrame(reply[:0], wire.TypeClientReply, uint64(queued), 1000)
		err := tr.SendClient(id, reply)
		if errors.Is(err, ErrClientBusy) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if want := cfg.ClientQueueBytes / len(reply); queued != want {
		t.Fatalf("queued %d replies before ErrClientBusy, want %d", queued, want)
	}
	tr.FlushClients()
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	r := wire.NewReader(conn, 0)
	for i := range queued {
		f, err := r.ReadFrame()
		if err != nil || checkSeqBody(t, f.Body) != uint64(i) {
			t.Fatalf("reply %d: %v", i, err)
		}
	}
	if m := tr.Metrics(); m.ClientBusy.Load() != 1 || m.ClosedSlowClient.Load() != 0 {
		t.Fatalf("ClientBusy %d ClosedSlowClient %d", m.ClientBusy.Load(), m.ClosedSlowClient.Load())
	}
}

// A driver that stops draining fills the inbound queue; the event loop then waits (TCP
// pushes back on the sender) instead of buffering more, and once the driver drains again
// every frame arrives, in order. Close does not hang on a loop that is waiting.
func TestInboundQueueFullStallsReading(t *testing.T) {
	trs, _ := startCluster(t, 2, func(c *Config) {
		c.ClientListen = ""
		c.InboundQueueBatches = 4
	})
	a, r := trs[0], trs[1]
	const frames = 20000
	go func() {
		var buf []byte
		for seq := range uint64(frames) {
			buf = seqFrame(buf[:0], wire.TypeAppendEntries, seq, 200)
			for a.Send(2, buf) != nil {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	waitFor(t, "inbound queue full", func() bool {
		return r.InboundQueueDepth() == 4 && r.Metrics().InboundStalls.Load() > 0
	})
	for i, f := range receive(t, r, frames) {
		if checkSeqBody(t, f.Body) != uint64(i) {
			t.Fatalf("frame %d out of order after stalls", i)
		}
	}
	// Fill the queue again and close while the loop waits on it.
	for seq := range uint64(100) {
		_ = a.Send(2, seqFrame(nil, wire.TypeAppendEntries, seq, 60<<10))
	}
	waitFor(t, "inbound queue full again", func() bool { return r.InboundQueueDepth() == 4 })
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// A listen port already taken fails Start with the address and the cause, for either port.
func TestStartNamesATakenPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	for _, c := range []struct{ which, peer, client string }{
		{"peer", taken, "127.0.0.1:0"},
		{"client", "127.0.0.1:0", taken},
	} {
		cfg := testConfig(1)
		cfg.PeerListen, cfg.ClientListen = c.peer, c.client
		tr, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = tr.Start()
		if err == nil {
			tr.Close()
			t.Fatalf("%s port %s in use: Start succeeded", c.which, taken)
		}
		if want := c.which + " listen address " + taken; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "in use") {
			t.Errorf("%s port in use: %v, want it to name %q and the cause", c.which, err, want)
		}
	}
}
