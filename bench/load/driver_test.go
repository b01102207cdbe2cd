package load

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/benchtest"
)

// oneWorker returns a one-client, depth-one config: on the simulated clock such a run is
// exact, so these tests assert on latencies without timing anything.
func oneWorker(mode Mode) Config {
	c := DefaultConfig()
	c.Mode = mode
	c.Clients, c.Pipeline = 1, 1
	c.Rate = 1000
	c.Duration = 5 * time.Second
	return c
}

func mustRun(t *testing.T, target bench.Target, cfg Config, clock bench.Clock) *Outcome {
	t.Helper()
	o, err := Run(context.Background(), target, cfg, Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	checkSeriesMatchesTotal(t, o)
	return o
}

// checkSeriesMatchesTotal: the per-second histograms partition the run's ops.
func checkSeriesMatchesTotal(t *testing.T, o *Outcome) {
	t.Helper()
	var ops, errs int64
	for i, iv := range o.Intervals {
		if iv.Second != i {
			t.Fatalf("interval %d has second %d", i, iv.Second)
		}
		ops += iv.Ops()
		errs += iv.Errors
	}
	if ops != o.Ops || ops != o.Total.TotalCount() || errs != o.Errors {
		t.Fatalf("series holds %d ops %d errors; outcome %d ops (histogram %d) %d errors",
			ops, errs, o.Ops, o.Total.TotalCount(), o.Errors)
	}
	if o.Misattributed != 0 || o.Clamped != 0 {
		t.Fatalf("misattributed %d clamped %d", o.Misattributed, o.Clamped)
	}
}

const ms = int64(time.Millisecond)

// A one-second stall (say, a leader election) in a 5 s run at 1000 ops/s. Open loop: every
// request scheduled during the stall waits for its end, so about a fifth of the requests see
// hundreds of milliseconds and p99 shows the stall (coordinated omission corrected). Closed
// loop: the single client is stuck in one request, sends nothing else, and only that one
// request sees the stall: p99 stays at the service time and only max shows it.
func TestStallOpenLoopShowsItClosedLoopHidesIt(t *testing.T) {
	stall := []benchtest.Window{{From: 2 * time.Second, To: 3 * time.Second}}

	clock := benchtest.NewClock()
	open := mustRun(t, &benchtest.Target{Clock: clock, Service: 100 * time.Microsecond, Stalls: stall},
		oneWorker(OpenLoop), clock)
	if open.Config.Mode != OpenLoop {
		t.Fatalf("open-loop outcome labeled %s", open.Config.Mode)
	}
	if open.Ops != 5000 || open.Unsent != 0 {
		t.Fatalf("open loop: %d ops %d unsent, want all 5000 sent", open.Ops, open.Unsent)
	}
	if p50 := open.Total.ValueAtQuantile(50); p50 > ms {
		t.Errorf("open loop p50 %v, want the 100µs service time", time.Duration(p50))
	}
	if p90 := open.Total.ValueAtQuantile(90); p90 < 400*ms {
		t.Errorf("open loop p90 %v, want hundreds of ms: 20%% of requests were scheduled in the stall", time.Duration(p90))
	}
	if p99 := open.Total.ValueAtQuantile(99); p99 < 900*ms {
		t.Errorf("open loop p99 %v, want close to the 1 s stall", time.Duration(p99))
	}
	if got := open.Intervals[2].Ops(); got != 0 {
		t.Errorf("open loop: %d ops completed during the stall second, want 0", got)
	}
	// After the stall the backlog is sent at once: the next second completes more than the rate.
	if got := open.Intervals[3].Ops(); got <= 1000 {
		t.Errorf("open loop: second after the stall completed %d ops, want the backlog on top of 1000", got)
	}

	clock = benchtest.NewClock()
	closed := mustRun(t, &benchtest.Target{Clock: clock, Service: 100 * time.Microsecond, Stalls: stall},
		oneWorker(ClosedLoop), clock)
	if closed.Config.Mode != ClosedLoop {
		t.Fatalf("closed-loop outcome labeled %s", closed.Config.Mode)
	}
	if p99 := closed.Total.ValueAtQuantile(99); p99 > ms {
		t.Errorf("closed loop p99 %v, want the 100µs service time: the stall hits one request", time.Duration(p99))
	}
	if mx := closed.Total.Max(); mx < 900*ms {
		t.Errorf("closed loop max %v, want the stall", time.Duration(mx))
	}
	// 4 s of 100 µs requests, one second lost to the stall.
	if closed.Ops < 39000 || closed.Ops > 41000 {
		t.Errorf("closed loop: %d ops, want ~40000", closed.Ops)
	}
}

// Open-loop p99 tracks the stall's length (a 250 ms stall in a 5 s run delays 5% of the requests
// by 0-250 ms, so p99 is ~200 ms); closed-loop p99 stays at the service time whatever
// the stall (only its max moves).
func TestOpenLoopLatencyGrowsWithTheStall(t *testing.T) {
	for _, stall := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second} {
		t.Run(fmt.Sprintf("stall=%v", stall), func(t *testing.T) {
			windows := []benchtest.Window{{From: time.Second, To: time.Second + stall}}
			for _, mode := range []Mode{OpenLoop, ClosedLoop} {
				clock := benchtest.NewClock()
				o := mustRun(t, &benchtest.Target{Clock: clock, Service: 100 * time.Microsecond, Stalls: windows},
					oneWorker(mode), clock)
				p99 := time.Duration(o.Total.ValueAtQuantile(99))
				mx := time.Duration(o.Total.Max())
				switch {
				case o.Config.Mode != mode:
					t.Errorf("%s run labeled %s", mode, o.Config.Mode)
				case mode == OpenLoop && (p99 < stall*7/10 || p99 > stall*11/10):
					t.Errorf("open loop p99 %v, want close to the %v stall", p99, stall)
				case mode == ClosedLoop && p99 > time.Millisecond:
					t.Errorf("closed loop p99 %v, want the 100µs service time", p99)
				case mx < stall*99/100 || mx > stall*101/100:
					t.Errorf("%s max %v, want the %v stall", mode, mx, stall)
				}
			}
		})
	}
}

// lateClock oversleeps every SleepUntil by a fixed lag, like a timer on a busy machine.
type lateClock struct {
	*benchtest.Clock
	lag time.Duration
}

func (c lateClock) SleepUntil(ctx context.Context, t time.Duration) error {
	return c.Clock.SleepUntil(ctx, t+c.lag)
}

// The generator's own oversleep is not the target's latency: it is reported as send lag.
func TestOpenLoopTimerOversleepIsNotLatency(t *testing.T) {
	base := benchtest.NewClock()
	clock := lateClock{Clock: base, lag: 300 * time.Microsecond}
	o := mustRun(t, &benchtest.Target{Clock: base, Service: 100 * time.Microsecond}, oneWorker(OpenLoop), clock)
	if mx := time.Duration(o.Total.Max()); mx > 110*time.Microsecond {
		t.Errorf("max latency %v, want the 100µs service time without the 300µs oversleep", mx)
	}
	if o.SendLagMax != 300*time.Microsecond || o.LateSends != 0 {
		t.Errorf("send lag max %v, late sends %d; want 300µs and none beyond %v", o.SendLagMax, o.LateSends, SendLagReported)
	}
	if o.Ops != 5000 {
		t.Errorf("%d ops, want 5000", o.Ops)
	}

	// At 5000 ops/s a 300 µs oversleep also makes the next request late, though the target
	// answered in 50 µs: that lateness is the generator's too.
	base = benchtest.NewClock()
	clock = lateClock{Clock: base, lag: 300 * time.Microsecond}
	cfg := oneWorker(OpenLoop)
	cfg.Rate = 5000
	o = mustRun(t, &benchtest.Target{Clock: base, Service: 50 * time.Microsecond}, cfg, clock)
	if mx := time.Duration(o.Total.Max()); mx > 60*time.Microsecond {
		t.Errorf("max latency %v, want the 50µs service time", mx)
	}
	if o.Ops != 25000 || o.SendLagMax < 300*time.Microsecond {
		t.Errorf("%d ops, send lag max %v; want 25000 and at least the 300µs oversleep", o.Ops, o.SendLagMax)
	}
}

func TestOpenLoopOverloadCountsUnsent(t *testing.T) {
	clock := benchtest.NewClock()
	cfg := oneWorker(OpenLoop)
	cfg.Duration = 2 * time.Second
	o := mustRun(t, &benchtest.Target{Clock: clock, Capacity: 500}, cfg, clock)
	if o.Ops+o.Unsent != 2000 {
		t.Fatalf("ops %d + unsent %d != 2000 scheduled", o.Ops, o.Unsent)
	}
	if o.Ops < 990 || o.Ops > 1010 {
		t.Errorf("ops %d, want the 500 ops/s capacity for 2 s", o.Ops)
	}
	// The backlog grows linearly: the last request waited about a second.
	if mx := o.Total.Max(); mx < 900*ms {
		t.Errorf("max %v, want about 1 s of queueing", time.Duration(mx))
	}
}

func TestWarmupIsNotRecordedAndBatchesCountOps(t *testing.T) {
	clock := benchtest.NewClock()
	cfg := oneWorker(OpenLoop)
	cfg.Warmup = time.Second
	cfg.Duration = 2 * time.Second
	cfg.Batch = 10
	target := &benchtest.Target{Clock: clock, Service: 50 * time.Microsecond}
	o := mustRun(t, target, cfg, clock)
	if o.Ops != 2000 {
		t.Errorf("ops %d, want 2000: the warmup's 1000 must not count", o.Ops)
	}
	opened, closed, batches := target.Stats()
	if batches != 300 || opened != 1 || closed != 1 {
		t.Errorf("batches %d opened %d closed %d, want 300 batches of 10 and one session", batches, opened, closed)
	}
	if len(o.Intervals) != 2 || o.Elapsed != 2*time.Second {
		t.Errorf("%d intervals over %v, want 2 over 2s", len(o.Intervals), o.Elapsed)
	}
}

func TestErrorsAreCountedPerSecond(t *testing.T) {
	clock := benchtest.NewClock()
	cfg := oneWorker(OpenLoop)
	cfg.Duration = 3 * time.Second
	target := &benchtest.Target{Clock: clock, Service: 10 * time.Microsecond,
		Errors: []benchtest.Window{{From: time.Second, To: 1500 * time.Millisecond}}}
	o := mustRun(t, target, cfg, clock)
	if o.Errors != 500 || o.Intervals[1].Errors != 500 || o.Ops != 2500 {
		t.Errorf("errors %d (second 1: %d) ops %d, want 500 errors in second 1 and 2500 ops",
			o.Errors, o.Intervals[1].Errors, o.Ops)
	}
}

func TestIntervalsArriveInOrderWhileRunning(t *testing.T) {
	clock := benchtest.NewClock()
	cfg := oneWorker(ClosedLoop)
	cfg.Duration = 4 * time.Second
	var got []int
	var window []bool
	o, err := Run(context.Background(), &benchtest.Target{Clock: clock, Service: time.Millisecond}, cfg,
		Options{Clock: clock, OnInterval: func(iv Interval) { got = append(got, iv.Second) },
			OnWindow: func(start bool) { window = append(window, start) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(window) != 2 || !window[0] || window[1] {
		t.Errorf("window callbacks %v, want start (true) then end (false)", window)
	}
	if len(got) != 4 || len(o.Intervals) != 4 {
		t.Fatalf("callbacks %v, intervals %d, want seconds 0..3", got, len(o.Intervals))
	}
	for i, s := range got {
		if s != i {
			t.Fatalf("callbacks %v out of order", got)
		}
	}
	// 1 ms requests complete at 1, 2, ... ms: the one completing at exactly 1.000 s belongs
	// to second 1, and the last one, sent inside the window, completes at its end.
	for i, want := range []int64{999, 1000, 1000, 1001} {
		if got := o.Intervals[i].Ops(); got != want {
			t.Errorf("second %d: %d ops, want %d", i, got, want)
		}
	}
}

// Many clients and pipelined requests on the real clock: checks the bookkeeping under the race
// detector (every op lands in exactly one second, sessions are closed), not any timing.
func TestManyClientsRealClock(t *testing.T) {
	for _, mode := range []Mode{OpenLoop, ClosedLoop} {
		t.Run("mode="+string(mode), func(t *testing.T) {
			clock := bench.NewRealClock()
			cfg := DefaultConfig()
			cfg.Mode = mode
			cfg.Clients, cfg.Pipeline, cfg.Batch = 4, 3, 2
			cfg.Rate = 2000
			cfg.Duration = 300 * time.Millisecond
			cfg.Warmup = 50 * time.Millisecond
			target := &benchtest.Target{Clock: clock, Service: 200 * time.Microsecond}
			o := mustRun(t, target, cfg, clock)
			if o.Ops == 0 || o.Errors != 0 {
				t.Errorf("ops %d errors %d", o.Ops, o.Errors)
			}
			if opened, closed, _ := target.Stats(); opened != 4 || closed != 4 {
				t.Errorf("opened %d closed %d sessions, want 4", opened, closed)
			}
		})
	}
}

func TestConfigValidateNamesTheProblem(t *testing.T) {
	cases := []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Mode = "half-open" }, "mode"},
		{func(c *Config) { c.Rate = 0 }, "rate"},
		{func(c *Config) { c.Clients = ClientsMax + 1 }, "clients"},
		{func(c *Config) { c.Pipeline = 0 }, "pipeline"},
		{func(c *Config) { c.Batch = 0 }, "batch"},
		{func(c *Config) { c.Duration = 0 }, "duration"},
		{func(c *Config) { c.Warmup = -1 }, "warmup"},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		c.mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want an error naming %q", err, c.want)
		}
	}
}

func TestSweepStopsAtSaturation(t *testing.T) {
	clock := benchtest.NewClock()
	run := oneWorker(OpenLoop)
	run.Duration = 2 * time.Second
	cfg := DefaultSweep(run)
	cfg.StartRate, cfg.Factor = 1000, 2
	var seen int
	steps, err := Sweep(context.Background(), &benchtest.Target{Clock: clock, Capacity: 3000}, cfg,
		Options{Clock: clock}, func(SweepStep) { seen++ })
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 3 || seen != 3 {
		t.Fatalf("%d steps (%d reported), want 1000, 2000, then saturated at 4000", len(steps), seen)
	}
	for i, want := range []float64{1000, 2000, 4000} {
		if steps[i].Offered != want || steps[i].Saturated != (i == 2) {
			t.Errorf("step %d: offered %v saturated %v (%s)", i, steps[i].Offered, steps[i].Saturated, steps[i].Reason)
		}
	}
	if tput := steps[2].Outcome.Throughput(); tput > 3100 {
		t.Errorf("saturated throughput %.0f above the 3000 ops/s capacity", tput)
	}
}

func BenchmarkRecord(b *testing.B) {
	r := newRecorder()
	b.ReportAllocs()
	for b.Loop() {
		r.record(1, 1234*time.Microsecond, 1, false, 0)
	}
}

type nopSession struct{}

func (nopSession) Do(context.Context, []bench.Op) error { return nil }
func (nopSession) Close() error                         { return nil }

// BenchmarkRequestPath is one lane iteration without the target: generate a batch, submit it,
// read the clock, record. It must not allocate.
func BenchmarkRequestPath(b *testing.B) {
	for _, batch := range []int{1, 16} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			w, _ := NewWorkload("ycsb-a")
			g := NewGenerator(w, 0, batch)
			ops := make([]bench.Op, batch)
			rec := newRecorder()
			clock := bench.NewRealClock()
			var s bench.Session = nopSession{}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				sent := clock.Now()
				g.Fill(ops)
				err := s.Do(ctx, ops)
				done := clock.Now()
				rec.record(int((done)/SeriesInterval)%ringSlots, done-sent, int64(batch), err != nil, 0)
			}
		})
	}
}

// cancelAfter cancels the run's context from inside its n-th batch, at a known simulated time.
type cancelAfter struct {
	bench.Target
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Open(ctx context.Context, w int) (bench.Session, error) {
	s, err := c.Target.Open(ctx, w)
	return &cancelSession{Session: s, c: c}, err
}

type cancelSession struct {
	bench.Session
	c *cancelAfter
}

func (s *cancelSession) Do(ctx context.Context, ops []bench.Op) error {
	if s.c.n--; s.c.n == 0 {
		s.c.cancel()
	}
	return s.Session.Do(ctx, ops)
}

// Cancelling the context ends the run early with a partial outcome whose window is what ran.
func TestCancelledRunReturnsPartialOutcome(t *testing.T) {
	clock := benchtest.NewClock()
	cfg := oneWorker(ClosedLoop)
	cfg.Duration = 10 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	target := &cancelAfter{Target: &benchtest.Target{Clock: clock, Service: time.Millisecond}, n: 2500, cancel: cancel}
	o, err := Run(ctx, target, cfg, Options{Clock: clock})
	if !errors.Is(err, context.Canceled) || o == nil {
		t.Fatalf("got %v, %v; want a partial outcome and context.Canceled", o, err)
	}
	// The 2500th batch starts at 2.499 s with the context already cancelled: it fails at once.
	if o.Elapsed != 2499*time.Millisecond || len(o.Intervals) != 3 || o.Ops != 2499 || o.Errors != 1 {
		t.Errorf("elapsed %v, %d intervals, %d ops, %d errors; want 2.499s, 3, 2499, 1",
			o.Elapsed, len(o.Intervals), o.Ops, o.Errors)
	}
	if tput := o.Throughput(); tput < 999 || tput > 1001 {
		t.Errorf("throughput %.1f ops/s, want 1000 over the partial window", tput)
	}
}

// asyncTarget offers a target's sessions as bench.AsyncSessions whose Start completes on a
// goroutine of its own, as a connection's reader would.
type asyncTarget struct {
	bench.Target
	starts atomic.Int64
}

func (t *asyncTarget) Open(ctx context.Context, worker int) (bench.Session, error) {
	s, err := t.Target.Open(ctx, worker)
	return &asyncSession{Session: s, starts: &t.starts}, err
}

type asyncSession struct {
	bench.Session
	starts *atomic.Int64
}

func (s *asyncSession) Start(ops []bench.Op, done func(error)) {
	s.starts.Add(1)
	go func() { done(s.Do(context.Background(), ops)) }()
}

// A closed-loop run on an AsyncSession chains each lane's batches through their completions
// and measures exactly what the synchronous lanes measure: on the simulated clock, with a
// stall and an error window, both runs record the same ops, errors and latencies.
func TestClosedLoopOnAsyncSessionMeasuresAsSyncDoes(t *testing.T) {
	stall := []benchtest.Window{{From: 2 * time.Second, To: 2500 * time.Millisecond}}
	errs := []benchtest.Window{{From: 3 * time.Second, To: 3100 * time.Millisecond}}
	cfg := oneWorker(ClosedLoop)
	run := func(wrap bool) (*Outcome, int64) {
		clock := benchtest.NewClock()
		var target bench.Target = &benchtest.Target{Clock: clock, Service: time.Millisecond, Stalls: stall, Errors: errs}
		at := &asyncTarget{Target: target}
		if wrap {
			target = at
		}
		return mustRun(t, target, cfg, clock), at.starts.Load()
	}
	syncRun, _ := run(false)
	asyncRun, starts := run(true)
	if starts < asyncRun.Ops {
		t.Fatalf("%d Starts for %d ops: the async lane was not used", starts, asyncRun.Ops)
	}
	if syncRun.Ops != asyncRun.Ops || syncRun.Errors != asyncRun.Errors || syncRun.Errors == 0 {
		t.Fatalf("sync %d ops %d errors, async %d ops %d errors; want equal, with errors", syncRun.Ops, syncRun.Errors, asyncRun.Ops, asyncRun.Errors)
	}
	for _, q := range []float64{50, 99, 100} {
		if a, b := syncRun.Total.ValueAtQuantile(q), asyncRun.Total.ValueAtQuantile(q); a != b {
			t.Errorf("p%v: sync %v, async %v", q, time.Duration(a), time.Duration(b))
		}
	}
	if mx := asyncRun.Total.Max(); mx < 400*ms {
		t.Errorf("async max %v, want the 500 ms stall", time.Duration(mx))
	}
}
