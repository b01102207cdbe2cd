package transport

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/wire"
)

func TestOutQueueCoalescesAndSpansChunks(t *testing.T) {
	q := newOutQueue(1<<20, 100)
	var want []byte
	for i := range 50 {
		f := bytes.Repeat([]byte{byte(i)}, 1+i*7) // sizes that straddle chunk boundaries
		if _, err := q.push(f); err != nil {
			t.Fatal(err)
		}
		want = append(want, f...)
	}
	taken, iov, n := q.take(nil, nil)
	if n != len(want) {
		t.Fatalf("took %d bytes, want %d", n, len(want))
	}
	if got := bytes.Join(iov, nil); !bytes.Equal(got, want) {
		t.Fatal("taken bytes differ from pushed frames")
	}
	for _, c := range iov[:len(iov)-1] {
		if len(c) != 100 {
			t.Fatalf("inner chunk of %d bytes, want full chunks of 100", len(c))
		}
	}
	if queued, _ := q.state(); queued != n {
		t.Fatalf("in-flight bytes not counted: queued %d", queued)
	}
	q.recycle(taken)
	if queued, _ := q.state(); queued != 0 {
		t.Fatalf("queued %d after recycle", queued)
	}
	if _, _, n := q.take(nil, nil); n != 0 {
		t.Fatalf("second take got %d bytes", n)
	}
}

func TestOutQueuePauseHysteresis(t *testing.T) {
	q := newOutQueue(1000, 64)
	f := make([]byte, 300)
	for i := range 3 {
		if r, err := q.push(f); err != nil || r.wasEmpty != (i == 0) {
			t.Fatalf("push %d: %v, wasEmpty %v", i, err, r.wasEmpty)
		}
	}
	r, err := q.push(f)
	if !errors.Is(err, ErrPeerPaused) || !r.pausedNow {
		t.Fatalf("push beyond bound: %v pausedNow %v", err, r.pausedNow)
	}
	// Even a frame that would fit is refused while paused.
	if r, err := q.push(make([]byte, 10)); !errors.Is(err, ErrPeerPaused) || r.pausedNow {
		t.Fatalf("push while paused: %v pausedNow %v", err, r.pausedNow)
	}
	taken, _, _ := q.take(nil, nil)
	if !q.recycle(taken) {
		t.Fatal("draining to empty did not resume")
	}
	// A frame larger than the whole bound is refused without pausing an empty queue.
	if _, err := q.push(make([]byte, 1001)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized push: %v", err)
	}
	if _, paused := q.state(); paused {
		t.Fatal("an oversized frame paused an empty queue")
	}
	if _, err := q.push(f); err != nil {
		t.Fatalf("push after resume: %v", err)
	}
}

// Steady-state Send and the writer's take/recycle cycle allocate nothing.
func TestOutQueueSteadyStateAllocs(t *testing.T) {
	q := newOutQueue(1<<20, 4096)
	f := make([]byte, 300)
	var taken []*chunk
	var iov [][]byte
	cycle := func() {
		for range 40 {
			if _, err := q.push(f); err != nil {
				t.Fatal(err)
			}
		}
		taken, iov, _ = q.take(taken[:0], iov[:0])
		q.recycle(taken)
	}
	cycle() // warm up: chunks and slices reach their working size
	if a := testing.AllocsPerRun(100, cycle); a != 0 {
		t.Fatalf("%.1f allocs per push/take/recycle cycle, want 0", a)
	}
}

// Frames queued before the peer is reachable are sent in one write once it is.
func TestQueuedFramesGoOutInOneWrite(t *testing.T) {
	a, _ := startTransport(t, testConfig(1, 2))
	b, _ := startTransport(t, testConfig(2, 1))
	const frames = 1000
	var buf []byte
	for seq := range uint64(frames) {
		buf = seqFrame(buf[:0], wire.TypeRequestVote, seq, 32)
		if err := a.Send(2, buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.SetPeerAddr(2, b.PeerAddr()); err != nil {
		t.Fatal(err)
	}
	got := receive(t, b, frames)
	for i, f := range got {
		if checkSeqBody(t, f.Body) != uint64(i) {
			t.Fatalf("frame %d out of order", i)
		}
	}
	if w := a.Metrics().PeerWrites.Load(); w != 1 {
		t.Fatalf("%d frames took %d writes, want 1", frames, w)
	}
}

func TestConfigValidate(t *testing.T) {
	good := testConfig(1, 2)
	cases := []struct {
		name string
		edit func(*Config)
	}{
		{"node-id-zero", func(c *Config) { c.NodeID = 0 }},
		{"no-protocol", func(c *Config) { c.Protocol = 0 }},
		{"no-listen", func(c *Config) { c.PeerListen = "" }},
		{"peer-id-zero", func(c *Config) { c.Peers = append(c.Peers, Peer{ID: 0}) }},
		{"peer-twice", func(c *Config) { c.Peers = append(c.Peers, Peer{ID: 2}) }},
		{"frame-limit", func(c *Config) { c.MaxFrameBytes = 3 }},
		{"queue-below-frame", func(c *Config) { c.MaxFrameBytes = 1 << 20; c.PeerQueueBytes = 1 << 19 }},
		{"backoff", func(c *Config) { c.ReconnectMin = time.Second; c.ReconnectMax = time.Millisecond }},
		{"client-type", func(c *Config) { c.ClientFrameTypes = []wire.Type{wire.TypePeerHello} }},
	}
	if _, err := New(good); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			c.Peers = append([]Peer(nil), good.Peers...)
			tc.edit(&c)
			if _, err := New(c); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// A burst toward the bound does not stay allocated: the queue keeps at most keptFreeBytes of
// recycled chunks once it drains.
func TestOutQueueKeepsBoundedFreeChunks(t *testing.T) {
	const chunk = 4096
	q := newOutQueue(8*keptFreeBytes, chunk)
	f := make([]byte, 1000)
	for {
		if _, err := q.push(f); err != nil {
			break
		}
	}
	taken, _, n := q.take(nil, nil)
	if n < 4*keptFreeBytes {
		t.Fatalf("burst of %d bytes, want one well past keptFreeBytes", n)
	}
	q.recycle(taken)
	if got := len(q.free) * chunk; got > keptFreeBytes {
		t.Fatalf("%d bytes of free chunks kept after the burst drained, want at most %d", got, keptFreeBytes)
	}
	if len(q.free) == 0 {
		t.Fatal("no chunk kept for reuse")
	}
}
