package client

import (
	"context"
	"testing"
	"time"
)

// The window bounds the span from the lowest outstanding sequence number to the highest
// handed out, not just their count: one slow batch holds everyone back (kv's session window
// must cover every attempt of every outstanding write).
func TestSeqWindowBoundsTheSpan(t *testing.T) {
	w := newSeqWindow()
	ctx := context.Background()
	slow, err := w.acquire(ctx, 1)
	if err != nil || slow != 1 {
		t.Fatalf("first = %d, %v", slow, err)
	}
	// Many later batches come and go while the slow one stays outstanding.
	for i := 0; i < 10; i++ {
		f, err := w.acquire(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		w.release(f, 100)
		if w.next-1-slow >= MaxOutstandingOps {
			t.Fatalf("span %d reached the window", w.next-1-slow)
		}
		if f+100 > slow+MaxOutstandingOps {
			// The eleventh batch would stretch the span: it must wait (tested below).
			t.Fatalf("handed out %d..%d past the window starting at %d", f, f+99, slow)
		}
		if i == 9 {
			break
		}
	}
	// 1 + 10*100 = 1001 numbers handed out; 100 more would make the span 1101 > 1024.
	timeout, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := w.acquire(timeout, 100); err == nil {
		t.Fatal("acquire stretched the span beyond the window")
	}
	got := make(chan uint64, 1)
	go func() {
		f, _ := w.acquire(ctx, 100)
		got <- f
	}()
	time.Sleep(20 * time.Millisecond)
	w.release(slow, 1) // the slow batch finishes: the waiter proceeds
	select {
	case f := <-got:
		if f != 1002 {
			t.Fatalf("waiter got %d, want 1002", f)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("waiter not woken when the low end advanced")
	}
}

func TestSeqWindowOutOfOrderRelease(t *testing.T) {
	w := newSeqWindow()
	ctx := context.Background()
	a, _ := w.acquire(ctx, 10)
	b, _ := w.acquire(ctx, 10)
	w.release(b, 10)
	if w.low != 1 {
		t.Fatalf("low moved to %d past an outstanding batch", w.low)
	}
	w.release(a, 10)
	if w.low != 21 {
		t.Fatalf("low = %d, want 21", w.low)
	}
}
