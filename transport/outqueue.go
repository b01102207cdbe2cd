package transport

import (
	"sync"

	"github.com/consensusbench/consensusbench/internal/assert"
)

// chunk is one fixed-size piece of an outbound queue. Frames are copied into chunks back to
// back and may span two chunks: the byte stream is what matters, and writev (or gnet's
// Writev) sends the chunks as one write without first joining them.
type chunk struct {
	b []byte
}

// outQueue is a byte-bounded outbound queue for one connection (a peer or a client).
//
// Concurrency: every method is safe for concurrent use; one producer (the driver goroutine)
// pushes and one consumer (the peer's writer goroutine or the client connection's event loop)
// takes and recycles. The bytes counted against max include chunks taken but not yet
// recycled, so the queue never holds more than max bytes of frames plus one chunk of slack,
// whatever the consumer does.
//
// Backpressure has hysteresis: once a push would exceed max, the queue is paused and refuses
// every push until the consumer has drained it below resumeBytes. Without it a queue at the
// edge would flap between paused and not paused on every frame.
type outQueue struct {
	mu          sync.Mutex
	pending     []*chunk // frames not yet taken; the last chunk may be partly filled
	free        []*chunk // recycled chunks, reused before allocating (at most maxFree)
	maxFree     int      // keptFreeBytes in chunks
	queued      int      // bytes pushed and not yet recycled (pending plus in flight)
	pendingLen  int      // bytes in pending
	max         int
	resumeBytes int
	chunkSize   int
	paused      bool
}

// keptFreeBytes bounds the recycled chunks one queue keeps for reuse. A queue's steady
// state needs a few chunks (the frames of one write in flight plus those pushed meanwhile);
// a burst toward its bound (16 MiB for a peer) needs many, and keeping them all would hold
// every queue's largest burst for the process's life: 38 MB at a PBFT primary whose three
// peer queues once filled. Chunks beyond this go to the garbage collector, so only bursts
// larger than it allocate.
const keptFreeBytes = 1 << 20

func newOutQueue(maxBytes, chunkSize int) *outQueue {
	assert.True(maxBytes > 0 && chunkSize > 0, "transport: outQueue limits are positive")
	return &outQueue{max: maxBytes, resumeBytes: maxBytes / 2, chunkSize: chunkSize,
		maxFree: max(2, keptFreeBytes/chunkSize)}
}

// pushResult says what a push did; pausedNow is true only on the push that paused the queue,
// so the caller counts each pause once.
type pushResult struct {
	wasEmpty  bool // the queue had nothing pending: the consumer must be woken
	pausedNow bool
}

// push copies frame to the end of the queue. It returns ErrPeerPaused when the frame does
// not fit now, and ErrFrameTooLarge when it never will; either way nothing is copied.
func (q *outQueue) push(frame []byte) (pushResult, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var r pushResult
	if len(frame) > q.max {
		// Never fits, however empty the queue: refusing it must not pause the queue, or an
		// empty queue would stay paused with nothing to drain.
		return r, ErrFrameTooLarge
	}
	if q.paused {
		return r, ErrPeerPaused
	}
	if q.queued+len(frame) > q.max {
		q.paused = true
		r.pausedNow = true
		return r, ErrPeerPaused
	}
	r.wasEmpty = q.pendingLen == 0
	q.queued += len(frame)
	q.pendingLen += len(frame)
	for len(frame) > 0 {
		var c *chunk
		if n := len(q.pending); n > 0 && len(q.pending[n-1].b) < q.chunkSize {
			c = q.pending[n-1]
		} else {
			c = q.newChunk()
			q.pending = append(q.pending, c)
		}
		room := q.chunkSize - len(c.b)
		k := min(room, len(frame))
		c.b = append(c.b, frame[:k]...)
		frame = frame[k:]
	}
	return r, nil
}

func (q *outQueue) newChunk() *chunk {
	if n := len(q.free); n > 0 {
		c := q.free[n-1]
		q.free[n-1] = nil
		q.free = q.free[:n-1]
		return c
	}
	return &chunk{b: make([]byte, 0, q.chunkSize)}
}

// take moves every pending chunk to the caller: it appends them to taken and their bytes to
// iov, and returns both with the number of bytes taken. The chunks stay counted against max
// until recycle. The caller must not keep iov's slices after recycle.
func (q *outQueue) take(taken []*chunk, iov [][]byte) ([]*chunk, [][]byte, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.pendingLen
	for i, c := range q.pending {
		taken = append(taken, c)
		iov = append(iov, c.b)
		q.pending[i] = nil
	}
	q.pending = q.pending[:0]
	q.pendingLen = 0
	return taken, iov, n
}

// recycle returns chunks from take after their bytes were written (or dropped) and
// uncounts them; it resumes a paused queue once it has drained below resumeBytes. It reports
// whether this call resumed the queue.
func (q *outQueue) recycle(taken []*chunk) (resumed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, c := range taken {
		q.queued -= len(c.b)
		if len(q.free) < q.maxFree {
			c.b = c.b[:0]
			q.free = append(q.free, c)
		}
	}
	assert.True(q.queued >= 0, "transport: outQueue byte count stays non-negative")
	if q.paused && q.queued <= q.resumeBytes {
		q.paused = false
		resumed = true
	}
	return resumed
}

// drop discards every pending frame (the connection is gone for good) and reports how many
// bytes it dropped.
func (q *outQueue) drop() int {
	var taken []*chunk
	taken, _, n := q.take(taken, nil)
	q.recycle(taken)
	return n
}

// state reports the bytes counted against max and whether the queue is paused.
func (q *outQueue) state() (queued int, paused bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued, q.paused
}
