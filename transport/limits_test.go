package transport

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/wire"
)

func dialTB(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// stillOpen reports whether the other side has not closed conn within d.
func stillOpen(conn net.Conn, d time.Duration) bool {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	_, err := conn.Read(b[:])
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// A flood of idle client connections fills MaxClientConns, yet peers still connect and
// exchange frames: the caps are separate (the flood used to keep a restarted follower from
// its leader).
func TestClientFloodDoesNotKeepPeersOut(t *testing.T) {
	trs, _ := startCluster(t, 2, func(c *Config) { c.MaxClientConns = 8 })
	a, b := trs[0], trs[1]
	for range 8 {
		dialTB(t, b.ClientAddr())
	}
	waitFor(t, "client slots full", func() bool { return b.Metrics().ClientConns.Load() == 8 })
	expectClosed(t, dialTB(t, b.ClientAddr()))
	if n := b.Metrics().ClosedOverLimit.Load(); n != 1 {
		t.Fatalf("ClosedOverLimit = %d, want 1", n)
	}
	waitFor(t, "peers connected", func() bool { return a.PeerConnected(2) && b.PeerConnected(1) })
	if err := a.Send(2, seqFrame(nil, wire.TypeAppendEntries, 4, 64)); err != nil {
		t.Fatal(err)
	}
	if got := checkSeqBody(t, receive(t, b, 1)[0].Body); got != 4 {
		t.Fatalf("got seq %d", got)
	}
}

// One remote host cannot take more than MaxClientConnsPerHost client slots.
func TestMaxClientConnsPerHost(t *testing.T) {
	cfg := testConfig(1)
	cfg.MaxClientConnsPerHost = 2
	tr, logs := startTransport(t, cfg)
	dialTB(t, tr.ClientAddr())
	dialTB(t, tr.ClientAddr())
	waitFor(t, "two open", func() bool { return tr.Metrics().ClientConns.Load() == 2 })
	expectClosed(t, dialTB(t, tr.ClientAddr()))
	if logs.count("MaxClientConnsPerHost") != 1 {
		t.Fatalf("refusal not logged:\n%s", logs.dump())
	}
}

// Connections to the peer port that never finish a hello fill MaxPendingPeerConns; each new
// one evicts the oldest, so a real peer still gets in.
func TestPendingPeerFloodCannotKeepAPeerOut(t *testing.T) {
	cfg := testConfig(1, 2)
	cfg.MaxPendingPeerConns = 4
	cfg.HandshakeTimeout = time.Minute // the flood is not cleared by the timeout
	tr, _ := startTransport(t, cfg)
	var flood []net.Conn
	for i := range 10 {
		flood = append(flood, dialTB(t, tr.PeerAddr()))
		// One at a time: with two event loops, connections dialled back to back may be
		// accepted out of dial order, and "oldest" means the oldest accepted.
		waitFor(t, "accepted", func() bool {
			m := tr.Metrics()
			return m.PendingPeers.Load()+int64(m.ClosedOverLimit.Load()) == int64(i+1)
		})
	}
	waitFor(t, "oldest evicted", func() bool { return tr.Metrics().ClosedOverLimit.Load() == 6 })
	if n := tr.Metrics().PendingPeers.Load(); n != 4 {
		t.Fatalf("PendingPeers = %d, want 4", n)
	}
	expectClosed(t, flood[0])
	if !stillOpen(flood[9], 50*time.Millisecond) {
		t.Fatal("the newest pending connection was closed")
	}
	c2 := testConfig(2, 1)
	p2, _ := startTransport(t, c2)
	if err := p2.SetPeerAddr(1, tr.PeerAddr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "peer 2 connected", func() bool { return p2.PeerConnected(1) })
	if err := p2.Send(1, seqFrame(nil, wire.TypeAppendEntriesReply, 3, 32)); err != nil {
		t.Fatal(err)
	}
	if got := checkSeqBody(t, receive(t, tr, 1)[0].Body); got != 3 {
		t.Fatalf("got seq %d", got)
	}
}

// Established inbound peer connections beyond MaxPeerConns are refused at the end of their
// handshake.
func TestMaxPeerConns(t *testing.T) {
	cfg := testConfig(1, 2)
	cfg.MaxPeerConns = 2
	tr, logs := startTransport(t, cfg)
	hello := helloFrame(testClusterID, 2, wire.ProtocolRaft, ProtocolVersion)
	for range 2 {
		c := dialTB(t, tr.PeerAddr())
		if _, err := c.Write(hello); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two established", func() bool { return tr.Metrics().PeerConns.Load() == 2 })
	c := dialTB(t, tr.PeerAddr())
	if _, err := c.Write(hello); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c)
	if logs.count("refusing peer connection", "MaxPeerConns") != 1 {
		t.Fatalf("refusal not logged:\n%s", logs.dump())
	}
}

// Connections that send nothing for ClientIdleTimeout or PeerIdleTimeout are closed and
// counted; a connection that keeps sending stays.
func TestIdleConnectionsClosed(t *testing.T) {
	cfg := testConfig(1, 2)
	cfg.ClientIdleTimeout = 150 * time.Millisecond
	cfg.PeerIdleTimeout = 150 * time.Millisecond
	tr, _ := startTransport(t, cfg)
	idle := dialTB(t, tr.ClientAddr())
	busy := dialTB(t, tr.ClientAddr())
	peer := dialTB(t, tr.PeerAddr())
	if _, err := peer.Write(helloFrame(testClusterID, 2, wire.ProtocolRaft, ProtocolVersion)); err != nil {
		t.Fatal(err)
	}
	stop := time.After(600 * time.Millisecond)
	tick := time.NewTicker(30 * time.Millisecond)
	defer tick.Stop()
	go func() {
		for range 100 {
			<-tick.C
			if _, err := busy.Write(seqFrame(nil, wire.TypeClientRequest, 1, 16)); err != nil {
				return
			}
		}
	}()
	expectClosed(t, idle)
	expectClosed(t, peer)
	<-stop
	if !stillOpen(busy, 10*time.Millisecond) {
		t.Fatal("a client that keeps sending was closed")
	}
	if n := tr.Metrics().ClosedIdle.Load(); n != 2 {
		t.Fatalf("ClosedIdle = %d, want 2", n)
	}
}

// A client connection that only receives (a PBFT client hears every backup's replies but
// sends to the primary alone) is in use: replies flushed to it keep it open past
// ClientIdleTimeout. Before, every backup closed such connections after the timeout and the
// client's next requests lost their replies, a 2 s stall every 2 minutes.
func TestReceivingClientIsNotIdle(t *testing.T) {
	cfg := testConfig(1, 2)
	cfg.ClientIdleTimeout = 150 * time.Millisecond
	tr, _ := startTransport(t, cfg)
	listener := dialTB(t, tr.ClientAddr())
	if _, err := listener.Write(seqFrame(nil, wire.TypeClientRequest, 1, 16)); err != nil { // once, to be known
		t.Fatal(err)
	}
	id := receive(t, tr, 1)[0].Client
	go func() { // drain the replies
		var b [4096]byte
		for {
			if _, err := listener.Read(b[:]); err != nil {
				return
			}
		}
	}()
	reply := seqFrame(nil, wire.TypeClientReply, 1, 16)
	for range 20 { // 600 ms of replies every 30 ms, four idle timeouts
		if err := tr.SendClient(id, reply); err != nil {
			t.Fatalf("SendClient after %d idle timeouts: %v", tr.Metrics().ClosedIdle.Load(), err)
		}
		tr.FlushClients()
		time.Sleep(30 * time.Millisecond)
	}
	if n := tr.Metrics().ClosedIdle.Load(); n != 0 {
		t.Fatalf("a client receiving replies was closed as idle (ClosedIdle = %d)", n)
	}
}

// partialFrame is the header of a client frame announcing body bytes, and half its body.
func partialFrame(body int) []byte {
	f := wire.AppendFrame(nil, wire.TypeClientRequest, 0, make([]byte, body))
	return f[:wire.HeaderSize+body/2]
}

// Client frames beyond MaxClientFrameBytes close their connection; unfinished frames share
// PartialFrameBudget, so the connection whose frame would exceed it is closed, and what
// closed connections held is returned to the budget.
func TestClientFrameLimitAndPartialBudget(t *testing.T) {
	const limit = 1 << 20
	cfg := testConfig(1)
	cfg.MaxClientFrameBytes = limit
	cfg.PartialFrameBudget = 2*limit + limit/2
	cfg.PartialFrameTimeout = time.Minute
	tr, _ := startTransport(t, cfg)

	over := dialTB(t, tr.ClientAddr())
	hdr := wire.AppendFrame(nil, wire.TypeClientRequest, 0, nil)
	binary.LittleEndian.PutUint32(hdr[8:], limit) // body alone past the frame limit
	_, _ = over.Write(hdr)
	expectClosed(t, over)
	if n := tr.Metrics().ClosedBadFrame.Load(); n != 1 {
		t.Fatalf("ClosedBadFrame = %d, want 1", n)
	}

	body := limit - 2*wire.HeaderSize
	var held []net.Conn
	for i := range 2 {
		c := dialTB(t, tr.ClientAddr())
		if _, err := c.Write(partialFrame(body)); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		waitFor(t, "reserved", func() bool { return tr.Metrics().PartialBytes.Load() == int64(i+1)*int64(body+wire.HeaderSize) })
	}
	third := dialTB(t, tr.ClientAddr())
	_, _ = third.Write(partialFrame(body))
	expectClosed(t, third)
	if n := tr.Metrics().ClosedOverBudget.Load(); n != 1 {
		t.Fatalf("ClosedOverBudget = %d, want 1", n)
	}
	if got, budget := tr.Metrics().PartialBytes.Load(), int64(cfg.PartialFrameBudget); got > budget {
		t.Fatalf("PartialBytes %d over the budget %d", got, budget)
	}
	// A small frame still fits and is delivered.
	small := dialTB(t, tr.ClientAddr())
	if _, err := small.Write(seqFrame(nil, wire.TypeClientRequest, 8, 64)); err != nil {
		t.Fatal(err)
	}
	if got := checkSeqBody(t, receive(t, tr, 1)[0].Body); got != 8 {
		t.Fatalf("got seq %d", got)
	}
	for _, c := range held {
		c.Close()
	}
	waitFor(t, "budget returned", func() bool { return tr.Metrics().PartialBytes.Load() == 0 })
	waitFor(t, "buffers reclaimed", func() bool { return tr.Metrics().Reclaims.Load() >= 1 })
}

// Before its handshake completes a peer connection may send only hello-sized frames: a
// header announcing a large frame closes it at once, before any body is buffered.
func TestPeerFrameLimitBeforeHandshake(t *testing.T) {
	tr, _ := startTransport(t, testConfig(1, 2))
	c := dialTB(t, tr.PeerAddr())
	hdr := wire.AppendFrame(nil, wire.TypeAppendEntries, 0, nil)
	binary.LittleEndian.PutUint32(hdr[8:], 1<<20)
	_, _ = c.Write(hdr)
	expectClosed(t, c)
	if n := tr.Metrics().ClosedBadFrame.Load(); n != 1 {
		t.Fatalf("ClosedBadFrame = %d, want 1", n)
	}
}
