package transport

import (
	"sync"

	"github.com/consensusbench/consensusbench/internal/assert"
	"github.com/consensusbench/consensusbench/wire"
)

// ClientID names one inbound client connection for the life of the Transport. IDs are never
// reused, so a reply addressed to a closed connection cannot reach a newer one.
type ClientID uint64

// Frame is one inbound frame handed to the driver.
type Frame struct {
	// From is the sending peer's node ID, or 0 when the frame came from a client.
	From uint64
	// Client identifies the client connection (reply with SendClient), or 0 for peer frames.
	Client ClientID
	Type   wire.Type
	Flags  uint16
	// Body aliases the Batch's buffer: valid until Batch.Release. Copy what must outlive it.
	Body []byte
}

// Batch is the unit of the inbound queue: every whole frame one connection delivered in one
// read, copied out of gnet's buffers into one pooled buffer.
//
// Concurrency: a Batch received from Inbound belongs to the receiver alone. Its frames'
// bodies stay valid until Release, which returns the buffers to a pool; after Release the
// Batch and every Body taken from it must not be used.
type Batch struct {
	Frames []Frame
	data   []byte
}

// Release returns the batch to the pool.
func (b *Batch) Release() {
	for i := range b.Frames {
		b.Frames[i] = Frame{}
	}
	b.Frames = b.Frames[:0]
	b.data = b.data[:0]
	// Do not let one huge frame pin a huge buffer in the pool forever.
	if cap(b.data) > maxPooledBatchBytes {
		b.data = nil
	}
	batchPool.Put(b)
}

// maxPooledBatchBytes is the largest buffer a pooled Batch keeps: batches of ordinary traffic
// (at most a read buffer's worth of frames) are reused; one that held a big snapshot chunk is
// let go.
const maxPooledBatchBytes = 1 << 20

var batchPool = sync.Pool{New: func() any { return new(Batch) }}

func getBatch(dataBytes int) *Batch {
	b := batchPool.Get().(*Batch)
	if cap(b.data) < dataBytes {
		b.data = make([]byte, 0, max(dataBytes, DefaultReadBufferBytes))
	}
	return b
}

// add copies f's body into the batch's buffer. The caller sized the buffer for every body
// of this batch in getBatch, so the append never reallocates and earlier bodies stay valid.
func (b *Batch) add(from uint64, client ClientID, f wire.Frame) {
	start := len(b.data)
	if start+len(f.Body) > cap(b.data) {
		assert.Failf("transport: batch buffer of %d bytes too small for %d more", cap(b.data), len(f.Body))
	}
	b.data = append(b.data, f.Body...)
	b.Frames = append(b.Frames, Frame{From: from, Client: client, Type: f.Type, Flags: f.Flags, Body: b.data[start:len(b.data):len(b.data)]})
}
