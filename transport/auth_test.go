package transport

import (
	"bytes"
	"net"
	"testing"

	"github.com/consensusbench/consensusbench/wire"
)

var testSecret = []byte("a cluster secret of 32 bytes....")

// Peers holding the same secret authenticate each other and exchange frames both ways.
func TestPeersWithSecretConnect(t *testing.T) {
	trs, logs := startCluster(t, 2, func(c *Config) { c.PeerSecret = testSecret })
	waitFor(t, "both connected", func() bool { return trs[0].PeerConnected(2) && trs[1].PeerConnected(1) })
	if err := trs[0].Send(2, seqFrame(nil, wire.TypeAppendEntries, 1, 64)); err != nil {
		t.Fatal(err)
	}
	if err := trs[1].Send(1, seqFrame(nil, wire.TypeAppendEntriesReply, 2, 64)); err != nil {
		t.Fatal(err)
	}
	if got := checkSeqBody(t, receive(t, trs[1], 1)[0].Body); got != 1 {
		t.Fatalf("node 2 got seq %d", got)
	}
	if got := checkSeqBody(t, receive(t, trs[0], 1)[0].Body); got != 2 {
		t.Fatalf("node 1 got seq %d", got)
	}
	for i, l := range logs {
		if n := l.count("inbound peer connection accepted", "authenticated=true"); n == 0 {
			t.Fatalf("node %d logged no authenticated peer:\n%s", i+1, l.dump())
		}
	}
}

// A peer with another secret, or none, never connects either way; each side says why.
func TestPeerSecretMismatchRefused(t *testing.T) {
	cases := []struct {
		name, s1, s2 string
		dialerLogs   bool   // whose log says why: node 1's (the dialer) or node 2's
		reason       string // what it says
	}{
		{"other-secret", string(testSecret), "another secret of 32 bytes......", true, "does not hold this cluster's secret"},
		{"dialer-without", "", string(testSecret), false, "requires the cluster secret"},
		{"acceptor-without", string(testSecret), "", false, "this node has none"},
	}
	secret := func(s string) []byte {
		if s == "" {
			return nil
		}
		return []byte(s)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c1 := testConfig(1, 2)
			c1.PeerSecret = secret(tc.s1)
			c2 := testConfig(2) // node 2 does not dial: only node 1's dial is exercised
			c2.Peers = []Peer{{ID: 1}}
			c2.PeerSecret = secret(tc.s2)
			a, alogs := startTransport(t, c1)
			b, blogs := startTransport(t, c2)
			if err := a.SetPeerAddr(2, b.PeerAddr()); err != nil {
				t.Fatal(err)
			}
			logs, msg := blogs, "refusing peer connection"
			if tc.dialerLogs {
				logs, msg = alogs, "peer refused"
			}
			// A dialer without the secret is refused when it sends its first frame.
			waitFor(t, "the refusal logged", func() bool {
				_ = a.Send(2, seqFrame(nil, wire.TypeAppendEntries, 1, 16))
				return logs.count(msg, tc.reason) > 0
			})
			// (A dialer without the secret cannot tell until the acceptor refuses its first
			// frame: its handshake looks complete.)
			if tc.name != "dialer-without" {
				waitFor(t, "failed dials", func() bool { return a.Metrics().PeerDialErrors.Load() >= 2 })
				if a.PeerConnected(2) {
					t.Fatal("connected without a shared secret")
				}
			}
			// Nothing node 1 sent reached node 2.
			if n := b.Metrics().FramesIn.Load(); n != 0 {
				t.Fatalf("node 2 received %d frames", n)
			}
		})
	}
}

// The attacks of someone who can reach the peer port but lacks the secret: a bare hello
// claiming a member's ID followed by protocol frames, a handshake with a made-up proof, and
// the replay of a real dialer's recorded handshake. Each is refused and delivers nothing.
func TestForgedPeerHandshakesRefused(t *testing.T) {
	cfg := testConfig(1, 2)
	cfg.PeerSecret = testSecret
	tr, logs := startTransport(t, cfg)
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", tr.PeerAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	hello := helloFrame(testClusterID, 2, wire.ProtocolRaft, ProtocolVersion)
	data := seqFrame(nil, wire.TypeAppendEntries, 9, 32)

	bare := dial()
	_, _ = bare.Write(append(bytes.Clone(hello), data...))
	expectClosed(t, bare)

	forged := dial()
	msg := wire.AppendMessageFrame(bytes.Clone(hello), 0, &wire.PeerAuth{Nonce: [16]byte{1}})
	_, _ = forged.Write(msg)
	// Read the acceptor's answer (hello + PeerAuth), then send a made-up proof and data.
	r := wire.NewReader(forged, helloMaxFrameBytes)
	if f, err := r.ReadFrame(); err != nil || f.Type != wire.TypePeerHello {
		t.Fatalf("no hello answer: %v %v", f.Type, err)
	}
	if f, err := r.ReadFrame(); err != nil || f.Type != wire.TypePeerAuth {
		t.Fatalf("no PeerAuth answer: %v %v", f.Type, err)
	}
	_, _ = forged.Write(append(wire.AppendMessageFrame(nil, 0, &wire.PeerAuth{Proof: [32]byte{7}}), data...))
	expectClosed(t, forged)

	// Record what a real dialer (node 2, with the secret) sends, then replay it.
	rec, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	recorded := make(chan []byte, 1)
	go func() {
		c, err := rec.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		// Relay to the real node 1, recording node 2's bytes.
		up, err := net.Dial("tcp", tr.PeerAddr())
		if err != nil {
			return
		}
		defer up.Close()
		go func() { _, _ = copyAll(c, up) }()
		var all []byte
		buf := make([]byte, 4096)
		for len(all) < len(hello)+2*(wire.HeaderSize+48) {
			n, err := c.Read(buf)
			if err != nil {
				break
			}
			all = append(all, buf[:n]...)
			_, _ = up.Write(buf[:n])
		}
		recorded <- all
		_, _ = copyAll(up, c) // keep relaying: node 2 stays connected
	}()
	c2 := testConfig(2, 1)
	c2.PeerSecret = testSecret
	n2, _ := startTransport(t, c2)
	if err := n2.SetPeerAddr(1, rec.Addr().String()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node 2 connected through the recorder", func() bool { return n2.PeerConnected(1) })
	replay := dial()
	_, _ = replay.Write(append(<-recorded, data...))
	expectClosed(t, replay)

	waitFor(t, "refusals counted", func() bool { return tr.Metrics().ClosedHandshake.Load() == 3 })
	if n := logs.count("refusing peer connection", "requires the cluster secret"); n != 1 {
		t.Fatalf("bare hello: %d log records:\n%s", n, logs.dump())
	}
	if n := logs.count("refusing peer connection", "does not hold this cluster's secret"); n != 2 {
		t.Fatalf("forged and replayed proofs: %d log records:\n%s", n, logs.dump())
	}
	if n := tr.Metrics().FramesIn.Load(); n != 0 {
		t.Fatalf("FramesIn = %d: a frame got through", n)
	}
}

func copyAll(dst, src net.Conn) (int64, error) {
	buf := make([]byte, 4096)
	var n int64
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err != nil {
			return n, err
		}
	}
}

// A secret shorter than PeerSecretMinBytes is a configuration error.
func TestShortPeerSecretRefused(t *testing.T) {
	cfg := testConfig(1, 2)
	cfg.PeerSecret = []byte("short")
	if _, err := New(cfg); err == nil || !bytes.Contains([]byte(err.Error()), []byte("PeerSecret")) {
		t.Fatalf("New = %v, want an error naming PeerSecret", err)
	}
}
