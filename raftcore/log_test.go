package raftcore

import (
	"bytes"
	"fmt"
	"testing"
)

func logEntries(l *entryLog) []Entry {
	if l.lastIndex() < l.firstIndex() {
		return nil
	}
	out, _ := l.appendTo(nil, l.firstIndex(), l.lastIndex(), ^uint64(0), 1<<30)
	return out
}

func checkLog(t *testing.T, l *entryLog, first uint64, want []string, terms []uint64) {
	t.Helper()
	if l.firstIndex() != first || l.lastIndex() != first+uint64(len(want))-1 {
		t.Fatalf("bounds [%d,%d], want [%d,%d]", l.firstIndex(), l.lastIndex(), first, first+uint64(len(want))-1)
	}
	for i, e := range logEntries(l) {
		if e.Index != first+uint64(i) || string(e.Data) != want[i] || e.Term != terms[i] {
			t.Fatalf("entry %d = %d/%d %q, want %d/%d %q", i, e.Term, e.Index, e.Data, terms[i], first+uint64(i), want[i])
		}
	}
}

func TestLogAppendTruncateCompact(t *testing.T) {
	l := newEntryLog(0, 0)
	for i := 1; i <= 5; i++ {
		l.append(1, EntryNormal, []byte(fmt.Sprintf("e%d", i)))
	}
	checkLog(t, l, 1, []string{"e1", "e2", "e3", "e4", "e5"}, []uint64{1, 1, 1, 1, 1})
	// Raft §5.3: a conflicting suffix is removed and replaced.
	l.truncateFrom(4)
	l.append(2, EntryNormal, []byte("x4"))
	checkLog(t, l, 1, []string{"e1", "e2", "e3", "x4"}, []uint64{1, 1, 1, 2})
	if tt, ok := l.term(4); !ok || tt != 2 {
		t.Fatalf("term(4) = %d %v", tt, ok)
	}
	// Raft §7: compaction keeps the term of the last compacted entry for consistency checks.
	l.compactTo(2)
	checkLog(t, l, 3, []string{"e3", "x4"}, []uint64{1, 2})
	if tt, ok := l.term(2); !ok || tt != 1 {
		t.Fatalf("term at the compaction point = %d %v", tt, ok)
	}
	if _, ok := l.term(1); ok {
		t.Fatal("compacted entry must not be available")
	}
	if _, ok := l.term(5); ok {
		t.Fatal("entry beyond the log must not be available")
	}
	l.reset(10, 3)
	if l.firstIndex() != 11 || l.lastIndex() != 10 || l.lastTerm() != 3 {
		t.Fatalf("after reset: %v", l)
	}
	l.append(3, EntryNoop, nil)
	checkLog(t, l, 11, []string{""}, []uint64{3})
}

// The header ring grows by doubling and wraps; payloads spill over many blocks, including
// payloads larger than a block.
func TestLogRingAndBlocks(t *testing.T) {
	l := newEntryLog(0, 0)
	var want []string
	var terms []uint64
	big := bytes.Repeat([]byte("B"), logBlockBytes+10)
	first := uint64(1)
	for i := 1; i <= 5000; i++ {
		d := fmt.Sprintf("payload-%d-%s", i, bytes.Repeat([]byte("p"), i%300))
		if i%1000 == 0 {
			d = string(big)
		}
		l.append(uint64(1+i/1000), EntryNormal, []byte(d))
		want = append(want, d)
		terms = append(terms, uint64(1+i/1000))
		if i%700 == 0 {
			c := uint64(i - 100)
			l.compactTo(c)
			want, terms = want[c-first+1:], terms[c-first+1:]
			first = c + 1
			l.releaseFreed()
		}
	}
	checkLog(t, l, first, want, terms)
	if got := l.rangeBytes(first, first+1); got != uint64(len(want[0])+len(want[1])) {
		t.Fatalf("rangeBytes = %d", got)
	}
	if len(l.blocks) > 2+(5000-int(first)+1)*400/logBlockBytes+5 {
		t.Fatalf("compaction did not free blocks: %d blocks for %d entries", len(l.blocks), l.lastIndex()-first+1)
	}
}

// Raft §5.3 fast backtracking: the follower hints the last index whose term is <= the
// leader's term at the rejected index.
func TestLogFindConflictByTerm(t *testing.T) {
	l := newEntryLog(0, 0)
	for _, tm := range []uint64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6} {
		l.append(tm, EntryNormal, nil)
	}
	cases := []struct{ i, t, want uint64 }{
		{10, 6, 10}, {10, 5, 7}, {10, 4, 5}, {10, 3, 3}, {10, 0, 0}, {20, 6, 10}, {6, 4, 5},
	}
	for _, c := range cases {
		if got := l.findConflictByTerm(c.i, c.t); got != c.want {
			t.Errorf("findConflictByTerm(%d, %d) = %d, want %d", c.i, c.t, got, c.want)
		}
	}
	l.compactTo(4)
	if got := l.findConflictByTerm(3, 1); got != 3 {
		t.Errorf("compacted index: got %d, want 3", got)
	}
	if got := l.findConflictByTerm(10, 3); got != 4 {
		t.Errorf("nothing held qualifies: got %d, want the compaction point 4", got)
	}
}

func TestLogAppendToLimits(t *testing.T) {
	l := newEntryLog(0, 0)
	for i := 0; i < 10; i++ {
		l.append(1, EntryNormal, make([]byte, 100))
	}
	got, n := l.appendTo(nil, 1, 10, 250, 100)
	if len(got) != 2 || n != 200 {
		t.Fatalf("byte limit: %d entries %d bytes", len(got), n)
	}
	got, _ = l.appendTo(nil, 1, 10, 50, 100)
	if len(got) != 1 {
		t.Fatal("at least one entry even over the byte limit")
	}
	got, _ = l.appendTo(nil, 1, 10, 1<<20, 3)
	if len(got) != 3 {
		t.Fatal("entry count limit")
	}
}

// Truncated payloads stay readable until released: a Ready may still alias them.
func TestLogTruncatedBytesNotOverwritten(t *testing.T) {
	l := newEntryLog(0, 0)
	l.append(1, EntryNormal, []byte("aaaa"))
	l.append(1, EntryNormal, []byte("bbbb"))
	held := l.entry(2).Data
	l.truncateFrom(2)
	l.append(2, EntryNormal, []byte("cccc"))
	if string(held) != "bbbb" {
		t.Fatalf("truncated payload overwritten: %q", held)
	}
}

func TestLogSteadyStateNoAlloc(t *testing.T) {
	l := newEntryLog(0, 0)
	data := make([]byte, 128)
	dst := make([]Entry, 0, 64)
	for i := 0; i < 200000; i++ { // warm up: ring and block pool reach their steady size
		l.append(1, EntryNormal, data)
		if l.lastIndex()%4096 == 0 {
			l.compactTo(l.lastIndex() - 1024)
			l.releaseFreed()
		}
	}
	allocs := testing.AllocsPerRun(10000, func() {
		l.append(1, EntryNormal, data)
		dst, _ = l.appendTo(dst[:0], l.lastIndex(), l.lastIndex(), 1<<20, 64)
		if l.lastIndex()%4096 == 0 {
			l.compactTo(l.lastIndex() - 1024)
			l.releaseFreed()
		}
	})
	if allocs > 0.01 {
		t.Fatalf("%v allocs per append in steady state", allocs)
	}
}

func BenchmarkLogAppend(b *testing.B) {
	for _, size := range []int{16, 128} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			l := newEntryLog(0, 0)
			data := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				l.append(1, EntryNormal, data)
				if l.lastIndex()%4096 == 0 {
					l.compactTo(l.lastIndex() - 1024)
					l.releaseFreed()
				}
			}
		})
	}
}
