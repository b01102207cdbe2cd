package tracker

import "testing"

func TestInflightsCountBound(t *testing.T) {
	in := NewInflights(3, 1<<20)
	for i := uint64(1); i <= 3; i++ {
		if in.Full() {
			t.Fatalf("full after %d", i-1)
		}
		in.Add(i*10, 1)
	}
	if !in.Full() {
		t.Fatal("want full at 3 messages")
	}
	in.FreeLE(15)
	if in.Full() || in.Count() != 2 {
		t.Fatalf("after FreeLE(15): full=%v count=%d", in.Full(), in.Count())
	}
	// Wrap around the ring.
	in.Add(40, 1)
	in.FreeLE(30)
	if in.Count() != 1 || in.Bytes() != 1 {
		t.Fatalf("count=%d bytes=%d", in.Count(), in.Bytes())
	}
	in.Add(50, 1)
	in.Add(60, 1)
	if !in.Full() {
		t.Fatal("want full after wrap")
	}
	in.FreeLE(1000)
	if in.Count() != 0 || in.Bytes() != 0 {
		t.Fatalf("not empty: %d %d", in.Count(), in.Bytes())
	}
}

func TestInflightsByteBound(t *testing.T) {
	in := NewInflights(100, 1000)
	in.Add(1, 600)
	if in.Full() {
		t.Fatal("600 of 1000 bytes is not full")
	}
	in.Add(2, 600) // one message may cross the bound
	if !in.Full() {
		t.Fatal("1200 bytes must be full")
	}
	in.FreeLE(1)
	if in.Full() || in.Bytes() != 600 {
		t.Fatalf("bytes=%d", in.Bytes())
	}
}

func TestInflightsAddMustIncrease(t *testing.T) {
	in := NewInflights(4, 100)
	in.Add(5, 1)
	defer func() {
		if recover() == nil {
			t.Fatal("want panic on non-increasing index")
		}
	}()
	in.Add(5, 1)
}

func TestInflightsNoAlloc(t *testing.T) {
	in := NewInflights(8, 1<<20)
	i := uint64(0)
	if a := testing.AllocsPerRun(1000, func() {
		i++
		in.Add(i, 10)
		in.FreeLE(i)
	}); a != 0 {
		t.Fatalf("allocs %v", a)
	}
}

// Raft §5.3: after a rejection the leader decrements nextIndex and retries; replicate
// falls back to probe from match+1 (or the follower's hint if larger).
func TestProgressRejections(t *testing.T) {
	p := New(2, false, 11, 4, 1<<20)
	p.Match = 5
	p.BecomeReplicate()
	p.SentEntries(8, 1)
	p.SentEntries(10, 1)
	if p.Next != 11 || p.Inflights.Count() != 2 {
		t.Fatalf("next=%d inflight=%d", p.Next, p.Inflights.Count())
	}
	if p.MaybeDecrTo(4, 3) {
		t.Fatal("rejection at or below match is stale")
	}
	if !p.MaybeDecrTo(8, 7) {
		t.Fatal("rejection above match must count")
	}
	if p.State != StateProbe || p.Next != 7 {
		t.Fatalf("state=%v next=%d", p.State, p.Next)
	}
	// Probe: only a rejection of Next-1 counts.
	p.SentEntries(10, 1)
	if !p.IsPaused() {
		t.Fatal("probe pauses after one message")
	}
	if p.MaybeDecrTo(9, 2) {
		t.Fatal("probe rejection of another index is stale")
	}
	if !p.MaybeDecrTo(6, 2) || p.Next != 6 {
		t.Fatalf("next=%d, want 6 (never below match+1)", p.Next)
	}
	if p.IsPaused() {
		t.Fatal("rejection unpauses the probe")
	}
	if !p.MaybeUpdate(9) || p.Match != 9 || p.Next != 10 {
		t.Fatalf("match=%d next=%d", p.Match, p.Next)
	}
}

func TestProgressSnapshot(t *testing.T) {
	p := New(2, false, 1, 4, 1<<20)
	p.BecomeSnapshot(100)
	if !p.IsPaused() {
		t.Fatal("snapshot state sends no appends")
	}
	p.MaybeUpdate(100)
	p.BecomeProbe()
	if p.Next != 101 || p.State != StateProbe {
		t.Fatalf("next=%d state=%v", p.Next, p.State)
	}
}

func TestProgressReplicateWindow(t *testing.T) {
	p := New(2, false, 1, 2, 1<<20)
	p.BecomeReplicate()
	p.SentEntries(1, 1)
	p.SentEntries(2, 1)
	if !p.IsPaused() {
		t.Fatal("window of 2 is full")
	}
	p.MaybeUpdate(1)
	p.Inflights.FreeLE(1)
	if p.IsPaused() {
		t.Fatal("ack frees the window")
	}
}

// A probe's entries acknowledged only in part are in flight, not resent.
func TestProgressProbeToReplicateKeepsProbe(t *testing.T) {
	p := New(2, false, 5, 4, 1<<20)
	p.Match = 4
	p.SentEntries(11, 70)
	p.MaybeUpdate(6)
	p.BecomeReplicate()
	if p.Next != 12 || p.Inflights.Count() != 1 || p.Inflights.Bytes() != 70 {
		t.Fatalf("next=%d inflight=%d bytes=%d", p.Next, p.Inflights.Count(), p.Inflights.Bytes())
	}
	p.MaybeUpdate(11)
	p.Inflights.FreeLE(11)
	if p.Inflights.Count() != 0 {
		t.Fatal("ack of the probe frees it")
	}
}

func TestInflightsFreeFirstOne(t *testing.T) {
	in := NewInflights(2, 100)
	in.Add(3, 10)
	in.Add(7, 20)
	in.FreeFirstOne()
	if in.Count() != 1 || in.Bytes() != 20 {
		t.Fatalf("count=%d bytes=%d", in.Count(), in.Bytes())
	}
	in.FreeFirstOne()
	in.FreeFirstOne()
	if in.Count() != 0 {
		t.Fatal("not empty")
	}
}
