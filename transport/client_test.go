package transport

import (
	"errors"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/wire"
)

// Replies after a connection's first flush are written by the driver itself, one writev per
// flush, and arrive whole and in order.
func TestClientRepliesWrittenDirectly(t *testing.T) {
	tr, _ := startTransport(t, testConfig(1))
	conn, id := dialClient(t, tr)
	r := wire.NewReader(conn, 0)
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	const flushes, perFlush = 200, 3
	var reply []byte
	seq := uint64(0)
	for range flushes {
		for range perFlush {
			reply = seqFrame(reply[:0], wire.TypeClientReply, seq, 40+int(seq%300))
			if err := tr.SendClient(id, reply); err != nil {
				t.Fatal(err)
			}
			seq++
		}
		tr.FlushClients()
		for k := range perFlush { // a client waiting on its replies, as a closed-loop one does
			f, err := r.ReadFrame()
			if err != nil {
				t.Fatalf("reply %d: %v", seq-perFlush+uint64(k), err)
			}
			if got := checkSeqBody(t, f.Body); got != seq-perFlush+uint64(k) {
				t.Fatalf("reply %d arrived as %d", seq-perFlush+uint64(k), got)
			}
		}
	}
	m := tr.Metrics()
	direct, async := m.ClientDirectWrites.Load(), m.ClientAsyncWrites.Load()
	// The first flush goes through the event loop (the handshake answer may sit in gnet's
	// buffer). Its callback re-enables direct writes, and may run after the client has read
	// the reply and the next flushes came: those ride on the callback's own write (counted
	// as neither), so allow a few.
	if async > 3 || direct < flushes-5 {
		t.Fatalf("%d direct and %d event-loop writes for %d flushes to a reading client, want all but the first few direct", direct, async, flushes)
	}
}

// A client that stops reading fills its socket: the rest of a direct write, and later
// flushes, go through the event loop and keep their order; once the client drains
// everything, the driver writes directly again.
func TestClientRepliesKeepOrderAcrossAFullSocket(t *testing.T) {
	cfg := testConfig(1)
	cfg.ClientQueueBytes = 64 << 20
	tr, _ := startTransport(t, cfg)
	conn, id := dialClient(t, tr)
	var reply []byte
	seq := uint64(0)
	send := func(size int) {
		t.Helper()
		reply = seqFrame(reply[:0], wire.TypeClientReply, seq, size)
		for {
			err := tr.SendClient(id, reply)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrClientBusy) {
				t.Fatal(err)
			}
			tr.FlushClients()
			time.Sleep(50 * time.Microsecond)
		}
		seq++
	}
	// One small flush first, so the connection is in direct mode before the socket fills.
	send(64)
	tr.FlushClients()
	waitFor(t, "the first flush's callback", func() bool { cc := tr.client(id); cc.mu.Lock(); defer cc.mu.Unlock(); return cc.direct })
	// 24 MiB without reading: far beyond loopback's socket buffers.
	for range 1536 {
		send(16<<10 - 7 + int(seq%13))
		tr.FlushClients()
	}
	if tr.Metrics().ClientAsyncWrites.Load() < 2 {
		t.Fatal("a full socket never sent a write through the event loop")
	}
	rd := wire.NewReader(conn, 0)
	readSeq := uint64(0)
	readAll := func(upTo uint64) {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
		for readSeq < upTo {
			f, err := rd.ReadFrame()
			if err != nil {
				t.Fatalf("reply %d: %v", readSeq, err)
			}
			if got := checkSeqBody(t, f.Body); got != readSeq {
				t.Fatalf("reply %d arrived as %d", readSeq, got)
			}
			readSeq++
		}
	}
	readAll(seq)
	// Drained: the next flush's callback finds gnet's buffer empty, and flushes after it
	// are direct again. The callback runs on the event loop after its write, so the client
	// may read a reply before it has run: give it time, not a fixed number of flushes.
	before := tr.Metrics().ClientDirectWrites.Load()
	deadline := time.Now().Add(waitTimeout)
	for tr.Metrics().ClientDirectWrites.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("after the client drained its replies, no flush was written directly")
		}
		send(100)
		tr.FlushClients()
		readAll(seq)
		time.Sleep(time.Millisecond)
	}
	if n := tr.Metrics().ClosedSlowClient.Load(); n != 0 {
		t.Fatalf("%d connections closed as slow under a 64 MiB limit", n)
	}
}
