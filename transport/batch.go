package transport

import (
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
	pool   *batchPool
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
	b.pool.put(b)
}

// maxPooledBatchBytes is the largest buffer a pooled Batch keeps: batches of ordinary traffic
// (at most a read buffer's worth of frames) are reused; one that held a big snapshot chunk is
// let go.
const maxPooledBatchBytes = 1 << 20

// batchPool is a bounded free list of batches. Not a sync.Pool: that one is emptied at every
// GC, and refilling it costs a 64 KiB allocation per batch after each collection, which at
// hundreds of thousands of frames a second keeps the collector busy. The list is bounded
// (batches beyond it are left to the GC), so it never holds more than it was sized for.
// Safe for concurrent use (event loops get, the driver puts).
type batchPool struct {
	free chan *Batch
}

func newBatchPool(size int) *batchPool { return &batchPool{free: make(chan *Batch, size)} }

func (p *batchPool) put(b *Batch) {
	select {
	case p.free <- b:
	default:
	}
}

// minBatchBytes is the buffer a new Batch starts with: one read buffer's worth of frames.
const minBatchBytes = DefaultReadBufferBytes

func (p *batchPool) get() *Batch {
	var b *Batch
	select {
	case b = <-p.free:
	default:
		b = &Batch{pool: p}
	}
	if b.data == nil {
		b.data = make([]byte, 0, minBatchBytes)
	}
	return b
}

// add copies f's body to the end of the batch's buffer. The buffer may move while frames
// are added (a big frame grows it), so Body slices are only provisional until seal.
func (b *Batch) add(from uint64, client ClientID, f wire.Frame) {
	b.data = append(b.data, f.Body...)
	end := len(b.data)
	b.Frames = append(b.Frames, Frame{From: from, Client: client, Type: f.Type, Flags: f.Flags, Body: b.data[end-len(f.Body) : end : end]})
}

// seal points every Body at the buffer's final location. Bodies were appended back to back
// in frame order, so each one's offset is the sum of the lengths before it.
func (b *Batch) seal() {
	off := 0
	for i := range b.Frames {
		n := len(b.Frames[i].Body)
		b.Frames[i].Body = b.data[off : off+n : off+n]
		off += n
	}
	if off != len(b.data) {
		assert.Failf("transport: batch bodies cover %d of %d bytes", off, len(b.data))
	}
}
