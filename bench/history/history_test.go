package history

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/load"
)

// memKV is an in-memory Target. With stale set, reads are served from a copy taken before
// the latest writes (a follower read without ReadIndex), which is not linearizable; with
// forget set, it acknowledges every write but keeps none after Crash (acknowledging before
// the write is durable).
type memKV struct {
	mu     sync.Mutex
	m      map[string][]byte
	old    map[string][]byte
	writes int
	stale  bool
	forget bool
}

func newMem() *memKV { return &memKV{m: map[string][]byte{}, old: map[string][]byte{}} }

func (t *memKV) Open(context.Context, int) (bench.Session, error) { return t, nil }
func (t *memKV) Close() error                                     { return nil }

func (t *memKV) Do(_ context.Context, ops []bench.Op) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range ops {
		o := &ops[i]
		if o.Kind == bench.OpWrite {
			t.m[string(o.Key)] = append([]byte(nil), o.Value...)
			if t.writes++; t.writes%10 == 0 && !t.forget {
				t.old = map[string][]byte{}
				for k, v := range t.m {
					t.old[k] = v
				}
			}
			continue
		}
		src := t.m
		if t.stale {
			src = t.old
		}
		v, ok := src[string(o.Key)]
		o.Found, o.Out = ok, append(o.Out[:0], v...)
	}
	return nil
}

// crash loses the writes not in the last snapshot when forget is set.
func (t *memKV) crash() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.forget {
		t.m = map[string][]byte{}
	}
}

// drive runs a sequential mix of writes and reads over a few keys through two sessions.
func drive(t *testing.T, tg bench.Target, n int) {
	t.Helper()
	ctx := context.Background()
	s1, err := tg.Open(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := tg.Open(ctx, 1)
	val := []byte("v") // shorter than a tag: the recorder widens it
	for i := range n {
		k := []byte(fmt.Sprintf("k%d", i%4))
		s := s1
		if i%2 == 1 {
			s = s2
		}
		ops := []bench.Op{{Kind: bench.OpWrite, Key: k, Value: val}, {Kind: bench.OpRead, Key: k}}
		if err := s.Do(ctx, ops); err != nil {
			t.Fatal(err)
		}
		if !ops[1].Found {
			t.Fatalf("read after write in the same batch found nothing")
		}
	}
}

func TestLinearizableHistoryPasses(t *testing.T) {
	r := New(Config{})
	mem := newMem()
	drive(t, r.Wrap(mem), 200)
	v, err := r.CheckLinearizable(0, "")
	if err != nil || !v.OK || v.Checked != 400 {
		t.Fatalf("verdict %+v, %v; want OK with 400 ops", v, err)
	}
	if !strings.Contains(v.Detail, "every op") {
		t.Errorf("detail %q should say every op was kept", v.Detail)
	}
}

func TestStaleReadsFailAndWriteVisualization(t *testing.T) {
	r := New(Config{})
	mem := newMem()
	tg := r.Wrap(mem)
	drive(t, tg, 20)
	mem.stale = true
	ctx := context.Background()
	s, _ := tg.Open(ctx, 2)
	for i := range 20 {
		k := []byte(fmt.Sprintf("k%d", i%4))
		// A write then, in a later batch, a read of the same key: a stale read misses it.
		if err := s.Do(ctx, []bench.Op{{Kind: bench.OpWrite, Key: k, Value: []byte("value-123")}}); err != nil {
			t.Fatal(err)
		}
		if err := s.Do(ctx, []bench.Op{{Kind: bench.OpRead, Key: k}}); err != nil {
			t.Fatal(err)
		}
	}
	viz := filepath.Join(t.TempDir(), "viz", "history.html")
	v, err := r.CheckLinearizable(0, viz)
	if err != nil {
		t.Fatal(err)
	}
	if v.OK || v.Failed == 0 || !strings.Contains(v.Detail, "NOT linearizable") {
		t.Fatalf("stale reads passed: %+v", v)
	}
	if b, err := os.ReadFile(viz); err != nil || !strings.Contains(string(b), "<html") {
		t.Fatalf("visualization %s: %v", viz, err)
	}
}

func TestFailedWritesArePossiblyApplied(t *testing.T) {
	// A write whose batch failed may still have been applied: a later read that sees it is
	// linearizable.
	r := New(Config{})
	mem := newMem()
	fail := &failing{memKV: mem}
	tg := r.Wrap(fail)
	ctx := context.Background()
	s, _ := tg.Open(ctx, 0)
	fail.failNext = true
	if err := s.Do(ctx, []bench.Op{{Kind: bench.OpWrite, Key: []byte("k"), Value: []byte("12345678")}}); err == nil {
		t.Fatal("want the injected failure")
	}
	ops := []bench.Op{{Kind: bench.OpRead, Key: []byte("k")}}
	if err := s.Do(ctx, ops); err != nil || !ops[0].Found {
		t.Fatalf("read: %v found=%v", err, ops[0].Found)
	}
	v, err := r.CheckLinearizable(0, "")
	if err != nil || !v.OK {
		t.Fatalf("a timed-out write seen later must be linearizable: %+v %v", v, err)
	}
}

// failing applies the next batch but reports an error (a reply lost in a timeout).
type failing struct {
	*memKV
	failNext bool
}

func (f *failing) Open(context.Context, int) (bench.Session, error) { return f, nil }

func (f *failing) Do(ctx context.Context, ops []bench.Op) error {
	err := f.memKV.Do(ctx, ops)
	if f.failNext {
		f.failNext = false
		return fmt.Errorf("timed out")
	}
	return err
}

func TestDurability(t *testing.T) {
	for _, forget := range []bool{false, true} {
		t.Run(fmt.Sprintf("forget=%v", forget), func(t *testing.T) {
			r := New(Config{})
			mem := newMem()
			mem.forget = forget
			drive(t, r.Wrap(mem), 40)
			mem.crash()
			v, err := r.CheckDurable(context.Background(), mem, 7)
			if err != nil {
				t.Fatal(err)
			}
			if v.Checked != 40 {
				t.Errorf("checked %d acknowledged writes, want 40", v.Checked)
			}
			if v.OK == forget || (v.Failed > 0) != forget {
				t.Fatalf("forget=%v: verdict %+v", forget, v)
			}
		})
	}
}

func TestSamplingBoundsTheHistory(t *testing.T) {
	r := New(Config{MaxOps: 100})
	mem := newMem()
	tg := r.Wrap(mem)
	ctx := context.Background()
	s, _ := tg.Open(ctx, 0)
	for i := range 2000 {
		k := []byte(fmt.Sprintf("key-%d", i%200))
		if err := s.Do(ctx, []bench.Op{{Kind: bench.OpWrite, Key: k, Value: []byte("x")}, {Kind: bench.OpRead, Key: k}}); err != nil {
			t.Fatal(err)
		}
	}
	kept, dropped := r.Len()
	if kept > 100 || kept == 0 || dropped == 0 {
		t.Fatalf("kept %d dropped %d; want at most 100 kept", kept, dropped)
	}
	v, err := r.CheckLinearizable(0, "")
	if err != nil || !v.OK || !strings.Contains(v.Detail, "sampled") {
		t.Fatalf("verdict %+v %v", v, err)
	}
}

// Run hands every second of the window to OnInterval, in order, as loadgen's driver does:
// netns-bench prints its per-second lines from it.
func TestRunReportsEverySecond(t *testing.T) {
	cfg := load.DefaultConfig()
	cfg.Rate, cfg.Clients, cfg.Duration, cfg.Warmup, cfg.Drain = 200, 2, 2*time.Second, 0, time.Second
	var seconds []int
	var ops int64
	out, err := Run(context.Background(), RunConfig{Target: newMem(), Load: cfg, Spec: bench.Spec{Protocol: "raft"},
		OnInterval: func(iv load.Interval) { seconds = append(seconds, iv.Second); ops += iv.Ops() }})
	if err != nil {
		t.Fatal(err)
	}
	if len(seconds) != 2 || seconds[0] != 0 || seconds[1] != 1 {
		t.Fatalf("OnInterval saw seconds %v, want [0 1]", seconds)
	}
	if ops == 0 || ops != out.Result.Summary.Ops {
		t.Errorf("the seconds add up to %d ops, the result has %d", ops, out.Result.Summary.Ops)
	}
}
