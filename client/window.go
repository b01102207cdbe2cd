package client

import (
	"context"
	"sync"
)

// seqWindow hands out a client's write sequence numbers so that the span between the lowest
// one still outstanding and the highest one handed out never reaches MaxOutstandingOps. The
// replicated store remembers exactly that many sequence numbers per client, so however
// retries are reordered by redirects and timeouts, every attempt of every write lands inside
// the store's window and is applied at most once. Bounding the count of outstanding ops is
// not enough: one slow batch would let the others run arbitrarily far ahead of it.
type seqWindow struct {
	mu      sync.Mutex
	next    uint64 // next sequence number to hand out (from 1)
	low     uint64 // lowest sequence number not yet released
	done    [MaxOutstandingOps / 64]uint64
	waiters int
	wake    chan struct{} // closed and replaced when low advances and someone waits
}

func newSeqWindow() *seqWindow {
	return &seqWindow{next: 1, low: 1, wake: make(chan struct{})}
}

// acquire reserves k consecutive sequence numbers, waiting while they would stretch the
// outstanding span beyond MaxOutstandingOps.
func (w *seqWindow) acquire(ctx context.Context, k uint64) (uint64, error) {
	w.mu.Lock()
	for w.next+k-w.low > MaxOutstandingOps {
		ch := w.wake
		w.waiters++
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			w.mu.Lock()
			w.waiters--
			w.mu.Unlock()
			return 0, ctx.Err()
		}
		w.mu.Lock()
		w.waiters--
	}
	first := w.next
	w.next += k
	w.mu.Unlock()
	return first, nil
}

// tryAcquire is acquire without waiting: false when the k numbers would stretch the span.
func (w *seqWindow) tryAcquire(k uint64) (uint64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.next+k-w.low > MaxOutstandingOps {
		return 0, false
	}
	first := w.next
	w.next += k
	return first, true
}

// release marks [first, first+k) finished (answered, or abandoned for good).
func (w *seqWindow) release(first, k uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for s := first; s < first+k; s++ {
		b := s % MaxOutstandingOps
		w.done[b/64] |= 1 << (b % 64)
	}
	moved := false
	for w.low < w.next {
		b := w.low % MaxOutstandingOps
		if w.done[b/64]&(1<<(b%64)) == 0 {
			break
		}
		w.done[b/64] &^= 1 << (b % 64)
		w.low++
		moved = true
	}
	if moved && w.waiters > 0 {
		close(w.wake)
		w.wake = make(chan struct{})
	}
}
