package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/wire"
)

// testClusterID is the cluster every test transport belongs to unless a test says otherwise.
const testClusterID = 7

// waitTimeout bounds every wait in these tests; reaching it is a failure, not a measurement.
const waitTimeout = 10 * time.Second

// logCapture is an slog handler that keeps every record's message and attributes, so tests
// can check what was logged and how often.
type logCapture struct {
	mu   sync.Mutex
	recs []string
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	var sb strings.Builder
	sb.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		sb.WriteString(" " + a.String())
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, sb.String())
	l.mu.Unlock()
	return nil
}
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCapture) WithGroup(string) slog.Handler      { return l }

// count returns how many records contain every one of parts.
func (l *logCapture) count(parts ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
next:
	for _, r := range l.recs {
		for _, p := range parts {
			if !strings.Contains(r, p) {
				continue next
			}
		}
		n++
	}
	return n
}

func (l *logCapture) dump() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.recs, "\n")
}

func testConfig(id uint64, peerIDs ...uint64) Config {
	cfg := Config{
		ClusterID:           testClusterID,
		NodeID:              id,
		Protocol:            wire.ProtocolRaft,
		PeerListen:          "127.0.0.1:0",
		ClientListen:        "127.0.0.1:0",
		EventLoops:          2,
		HandshakeTimeout:    2 * time.Second,
		PartialFrameTimeout: 2 * time.Second,
		// A dial that lands on a listener being shut down waits DialTimeout for a hello
		// that never comes; keep that short so restart tests do not sit it out.
		DialTimeout:  500 * time.Millisecond,
		ReconnectMin: 5 * time.Millisecond,
		ReconnectMax: 50 * time.Millisecond,
	}
	for _, p := range peerIDs {
		cfg.Peers = append(cfg.Peers, Peer{ID: p})
	}
	return cfg
}

// startTransport builds and starts a transport with a captured log; Close runs at cleanup.
func startTransport(t testing.TB, cfg Config) (*Transport, *logCapture) {
	t.Helper()
	logs := &logCapture{}
	cfg.Logger = slog.New(logs)
	tr, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := tr.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tr, logs
}

// startCluster starts n fully connected transports with IDs 1..n, adjusting each config
// with tweak (may be nil), and tells each the others' addresses.
func startCluster(t testing.TB, n int, tweak func(*Config)) ([]*Transport, []*logCapture) {
	t.Helper()
	trs := make([]*Transport, n)
	logs := make([]*logCapture, n)
	for i := range trs {
		id := uint64(i + 1)
		var peers []uint64
		for j := 1; j <= n; j++ {
			if uint64(j) != id {
				peers = append(peers, uint64(j))
			}
		}
		cfg := testConfig(id, peers...)
		if tweak != nil {
			tweak(&cfg)
		}
		trs[i], logs[i] = startTransport(t, cfg)
	}
	for i, a := range trs {
		for j, b := range trs {
			if i != j {
				if err := a.SetPeerAddr(uint64(j+1), b.PeerAddr()); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return trs, logs
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// ownedFrame is a Frame whose body has been copied out of its batch.
type ownedFrame struct {
	Frame
}

// receive takes n frames from tr's inbound queue, copying them out of their batches.
func receive(t testing.TB, tr *Transport, n int) []ownedFrame {
	t.Helper()
	var out []ownedFrame
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for len(out) < n {
		select {
		case b := <-tr.Inbound():
			for _, f := range b.Frames {
				f.Body = bytes.Clone(f.Body)
				out = append(out, ownedFrame{f})
			}
			b.Release()
		case <-timer.C:
			t.Fatalf("received %d of %d frames", len(out), n)
		}
	}
	if len(out) != n {
		t.Fatalf("received %d frames, want exactly %d", len(out), n)
	}
	return out
}

// seqFrame builds a frame of type ty whose body starts with seq and is padded to size bytes.
func seqFrame(dst []byte, ty wire.Type, seq uint64, size int) []byte {
	body := make([]byte, max(size, 8))
	binary.LittleEndian.PutUint64(body, seq)
	for i := 8; i < len(body); i++ {
		body[i] = byte(seq + uint64(i))
	}
	return wire.AppendFrame(dst, ty, uint16(seq), body)
}

// checkSeqBody verifies a body made by seqFrame and returns its sequence number.
func checkSeqBody(t testing.TB, body []byte) uint64 {
	t.Helper()
	if len(body) < 8 {
		t.Fatalf("body of %d bytes", len(body))
	}
	seq := binary.LittleEndian.Uint64(body)
	for i := 8; i < len(body); i++ {
		if body[i] != byte(seq+uint64(i)) {
			t.Fatalf("frame %d: body byte %d corrupted", seq, i)
		}
	}
	return seq
}

// helloFrame builds a PeerHello frame.
func helloFrame(cluster, node uint64, proto wire.Protocol, version uint16) []byte {
	h := wire.PeerHello{ClusterID: cluster, NodeID: node, Protocol: proto, ProtocolVersion: version}
	return wire.AppendMessageFrame(nil, 0, &h)
}

// expectClosed reads from conn until the other side closes it; a read timeout fails.
func expectClosed(t testing.TB, conn net.Conn) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	buf := make([]byte, 4096)
	for {
		_, err := conn.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %v", waitTimeout)
		}
		return // EOF or reset: closed by the transport
	}
}

// fakePeer is a bare TCP acceptor that answers hellos as node id and then either discards
// what it reads or stops reading (to test backpressure). It stands in for a remote node in
// tests and benchmarks where the receiving side must not be a Transport.
type fakePeer struct {
	ln        net.Listener
	id        uint64
	stall     chan struct{} // closed: resume reading
	stalling  bool
	bytesRead atomic.Int64 // bytes read after the hello
	mu        sync.Mutex
	conns     []net.Conn
}

func newFakePeer(t testing.TB, id uint64, stalling bool) *fakePeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fp := &fakePeer{ln: ln, id: id, stall: make(chan struct{}), stalling: stalling}
	go fp.accept()
	t.Cleanup(fp.close)
	return fp
}

func (fp *fakePeer) addr() string { return fp.ln.Addr().String() }

func (fp *fakePeer) close() {
	fp.ln.Close()
	fp.mu.Lock()
	defer fp.mu.Unlock()
	for _, c := range fp.conns {
		c.Close()
	}
}

func (fp *fakePeer) resume() { close(fp.stall) }

func (fp *fakePeer) accept() {
	for {
		c, err := fp.ln.Accept()
		if err != nil {
			return
		}
		fp.mu.Lock()
		fp.conns = append(fp.conns, c)
		fp.mu.Unlock()
		go fp.serve(c)
	}
}

func (fp *fakePeer) serve(c net.Conn) {
	// Read exactly the hello (no read-ahead), so that every later byte is counted.
	var hdr [wire.HeaderSize]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		c.Close()
		return
	}
	wh, err := wire.ParseHeader(hdr[:], 0)
	if err != nil || wh.Type != wire.TypePeerHello || wh.BodyLen > 1024 {
		c.Close()
		return
	}
	body := make([]byte, wh.BodyLen)
	var h wire.PeerHello
	if _, err := io.ReadFull(c, body); err != nil || wire.DecodePeerHello(body, &h) != nil {
		c.Close()
		return
	}
	if _, err := c.Write(helloFrame(h.ClusterID, fp.id, h.Protocol, h.ProtocolVersion)); err != nil {
		return
	}
	if fp.stalling {
		<-fp.stall
	}
	buf := make([]byte, 256<<10)
	for {
		n, err := c.Read(buf)
		fp.bytesRead.Add(int64(n))
		if err != nil {
			if err != io.EOF {
				c.Close()
			}
			return
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// dialClient connects a raw client to tr, sends one request and returns the connection (closed
// at the test's end) and the ID the transport gave it.
func dialClient(t testing.TB, tr *Transport) (net.Conn, ClientID) {
	t.Helper()
	conn, err := net.Dial("tcp", tr.ClientAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write(seqFrame(nil, wire.TypeClientRequest, 1, 16)); err != nil {
		t.Fatal(err)
	}
	return conn, receive(t, tr, 1)[0].Client
}
