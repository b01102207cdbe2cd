package load

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/consensusbench/consensusbench/bench"
)

// Mode says how requests are paced.
type Mode string

// The two driver modes. Results carry the mode so a closed-loop number is never read as an
// open-loop one: closed-loop latency hides stalls (a stalled client sends nothing, so only one
// request per client sees the stall), open-loop latency does not.
const (
	OpenLoop   Mode = "open-loop"
	ClosedLoop Mode = "closed-loop"
)

// Histogram geometry and driver limits. Latencies are recorded in nanoseconds.
const (
	LatencyLowest   = int64(time.Microsecond) // resolution below 1 µs is noise for a network service
	LatencyHighest  = int64(time.Minute)      // larger latencies are recorded as this and counted as clamped
	LatencyDigits   = 3                       // 0.1% value precision for the run's histogram
	IntervalDigits  = 2                       // 1% for per-second histograms: 8x smaller, as many per run
	SeriesInterval  = time.Second             // one Interval per second of the measured window
	ClientsMax      = 1024                    // each client holds ~320 KB of histograms (148 KB + 8 x 22 KB)
	PipelineMax     = 1024                    // requests in flight per client
	BatchMax        = 4096                    // ops per Session.Do
	RateMax         = 50_000_000              // ops/s; beyond this the schedule's spacing is below 20 ns
	DurationMax     = 24 * time.Hour          // bounds the series length
	DrainMax        = 10 * time.Minute        // wait for in-flight requests after the end
	SendLagReported = time.Millisecond        // oversleeps beyond this are counted in Outcome.LateSends
	ringSlots       = 8                       // per-client interval histograms not yet collected
	collectGrace    = 250 * time.Millisecond  // how long after a second ends the collector takes it
	defaultDrain    = 10 * time.Second
	// OpenLoopLatencyBudget sizes an open-loop run's lanes (SizePipeline): the run keeps
	// enough requests in flight to offer its rate while each takes up to this long. A target
	// slower than that is saturated and the run shows it (latency from intended times).
	OpenLoopLatencyBudget = 100 * time.Millisecond
	// OpenLoopMinRequestTime: an open-loop run whose lanes could offer its rate only if
	// every request completed faster than this is refused as impossible.
	OpenLoopMinRequestTime = time.Millisecond
	// SessionOpsMax is the most ops one session keeps outstanding (pipeline x batch): the KV
	// store's session window (kv.SessionWindow), beyond which retried writes are refused.
	SessionOpsMax   = 1024
	defaultClients  = 16
	defaultPipeline = 1
)

// Config is a run's full driver configuration; it is recorded in the result file.
type Config struct {
	Mode     Mode    `json:"mode"`
	Rate     float64 `json:"rate,omitempty"` // open loop: ops/s offered, over all clients
	Clients  int     `json:"clients"`        // sessions; each records into its own histograms
	Pipeline int     `json:"pipeline"`       // requests in flight per session
	Batch    int     `json:"batch"`          // ops per Session.Do
	// Conns is how many connections per replica the clients share (client i uses set
	// i mod Conns); 0 gives every client its own. Recorded because it changes what a
	// request costs: a shared connection carries many clients' requests per system call.
	Conns    int           `json:"conns,omitempty"`
	Duration time.Duration `json:"duration_ns"` // measured window
	Warmup   time.Duration `json:"warmup_ns"`   // run before the window, not recorded
	Drain    time.Duration `json:"drain_ns"`    // after the window, in-flight requests get this long
	Workload Workload      `json:"workload"`
}

// DefaultConfig returns a 10 s open-loop write-only run at 1000 ops/s.
func DefaultConfig() Config {
	w, _ := NewWorkload("write-only")
	return Config{Mode: OpenLoop, Rate: 1000, Clients: defaultClients, Pipeline: defaultPipeline,
		Batch: 1, Duration: 10 * time.Second, Drain: defaultDrain, Workload: w}
}

// Validate checks every field against its limit.
func (c Config) Validate() error {
	switch {
	case c.Mode != OpenLoop && c.Mode != ClosedLoop:
		return fmt.Errorf("unknown mode %q (want %s or %s)", c.Mode, OpenLoop, ClosedLoop)
	case c.Mode == OpenLoop && (!(c.Rate > 0) || c.Rate > RateMax):
		return fmt.Errorf("open-loop rate %v outside (0, %d] ops/s", c.Rate, RateMax)
	case c.Clients < 1 || c.Clients > ClientsMax:
		return fmt.Errorf("clients %d outside [1, %d]", c.Clients, ClientsMax)
	case c.Pipeline < 1 || c.Pipeline > PipelineMax:
		return fmt.Errorf("pipeline %d outside [1, %d]", c.Pipeline, PipelineMax)
	case c.Batch < 1 || c.Batch > BatchMax:
		return fmt.Errorf("batch %d outside [1, %d]", c.Batch, BatchMax)
	case c.Conns < 0 || c.Conns > c.Clients:
		return fmt.Errorf("conns %d outside [0, clients %d]", c.Conns, c.Clients)
	case c.Duration <= 0 || c.Duration > DurationMax:
		return fmt.Errorf("duration %v outside (0, %v]", c.Duration, DurationMax)
	case c.Warmup < 0 || c.Warmup > DurationMax:
		return fmt.Errorf("warmup %v outside [0, %v]", c.Warmup, DurationMax)
	case c.Drain < 0 || c.Drain > DrainMax:
		return fmt.Errorf("drain %v outside [0, %v]", c.Drain, DrainMax)
	}
	return c.Workload.Validate()
}

// SizePipeline returns the pipeline depth per client that keeps rate x OpenLoopLatencyBudget
// ops in flight over clients, at least 1 and at most what PipelineMax and SessionOpsMax allow.
func SizePipeline(rate float64, clients, batch int) int {
	if clients < 1 || batch < 1 || !(rate > 0) {
		return 1
	}
	inflight := rate * OpenLoopLatencyBudget.Seconds() / float64(batch)
	p := int(math.Ceil(inflight / float64(clients)))
	return max(1, min(p, PipelineMax, SessionOpsMax/batch))
}

// RequestTimeBudget is how fast each request must complete for an open-loop config's lanes
// to offer its rate: lanes x batch / rate.
func (c Config) RequestTimeBudget() time.Duration {
	if !(c.Rate > 0) {
		return 0
	}
	return time.Duration(float64(c.Clients*c.Pipeline*c.Batch) / c.Rate * 1e9)
}

// NewHistogram returns an empty histogram with the run geometry (nanoseconds).
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(LatencyLowest, LatencyHighest, LatencyDigits)
}

// NewIntervalHistogram returns an empty histogram with the per-second geometry.
func NewIntervalHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(LatencyLowest, LatencyHighest, IntervalDigits)
}

// Interval is one second of the measured window.
type Interval struct {
	Second int                     // 0 is the first second after the warmup
	Hist   *hdrhistogram.Histogram // latency (ns) of ops that completed in this second
	Errors int64                   // ops whose batch failed in this second
}

// Ops returns the number of ops that completed successfully in the interval.
func (iv Interval) Ops() int64 { return iv.Hist.TotalCount() }

// Outcome is what a run measured.
type Outcome struct {
	Config    Config
	Total     *hdrhistogram.Histogram // every successful op's latency (ns), merged over clients
	Intervals []Interval              // one per second, in order, empty seconds included
	Ops       int64                   // successful ops in the window
	Errors    int64                   // failed ops in the window
	// Unsent counts open-loop ops scheduled inside the window that were never sent because
	// the window ended first: the target could not keep up with the offered rate.
	Unsent int64
	// Elapsed is the measured window: the configured Duration, or less when ctx ended the
	// run early (Run then returns the partial Outcome with ctx's error).
	Elapsed time.Duration
	// Clamped counts latencies above LatencyHighest, recorded as LatencyHighest.
	Clamped int64
	// SendLagMax is the longest an open-loop lane sent a batch after it should have (its
	// intended time, or its previous reply if that came later), and LateSends counts the
	// batches sent more than SendLagReported late. The lag is the generator's (timer slack,
	// scheduling), not the target's, and is not in the latencies; a large value says the load
	// host cannot keep the schedule (too few cores, too high a rate).
	SendLagMax time.Duration
	LateSends  int64
	// Misattributed counts ops whose second's histogram was not collected in time (the
	// collector was starved for ringSlots seconds) and were counted in an older second.
	Misattributed int64
}

// Throughput returns successful ops per second over the measured window.
func (o *Outcome) Throughput() float64 {
	if o.Elapsed <= 0 {
		return 0
	}
	return float64(o.Ops) / o.Elapsed.Seconds()
}

// Options are the run's collaborators.
type Options struct {
	// Clock defaults to the real clock.
	Clock bench.Clock
	// OnInterval, if set, receives each second as soon as it is collected (about
	// collectGrace after it ends), in order, from one goroutine. It must not retain the
	// Interval's histogram beyond the run's Outcome, which holds the same pointer.
	OnInterval func(Interval)
	// OnWindow, if set, is called with true when the measured window begins (after the
	// warmup) and with false when it ends, so callers can sample counters such as the nodes'
	// CPU time over exactly the window. Called from one goroutine; both calls happen before
	// Run returns, unless ctx ends first.
	OnWindow func(start bool)
}

// ErrHistogramDropped reports that merging histograms lost counts, which would make the
// percentiles wrong; it means a geometry mismatch and is never expected.
var ErrHistogramDropped = errors.New("load: histogram merge dropped counts")

// slot is one uncollected second of one client's series.
type slot struct {
	used   bool
	sec    int
	hist   *hdrhistogram.Histogram
	errors int64
}

// recorder holds one client's histograms. Its pipeline goroutines and the collector share it
// under mu; the critical section is two histogram increments.
type recorder struct {
	mu            sync.Mutex
	total         *hdrhistogram.Histogram
	slots         [ringSlots]slot
	floor         int // first second the collector has not taken yet
	maxSec        int
	ops, errors   int64
	clamped       int64
	misattributed int64
	lagMax        time.Duration
	lagged        int64
}

// noteLag records how much later than it should have a lane sent a batch; r.mu is held.
func (r *recorder) noteLag(lag time.Duration) {
	r.lagMax = max(r.lagMax, lag)
	if lag > SendLagReported {
		r.lagged++
	}
}

func newRecorder() *recorder {
	r := &recorder{total: NewHistogram(), maxSec: -1}
	for i := range r.slots {
		r.slots[i].hist = NewIntervalHistogram()
	}
	return r
}

// record counts n ops that completed in second sec with latency lat, or failed, and the
// generator's send lag for the batch (open loop; 0 otherwise).
func (r *recorder) record(sec int, lat time.Duration, n int64, failed bool, lag time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if lag > 0 {
		r.noteLag(lag)
	}
	// A completion can be taken after its second was already collected (the goroutine was
	// descheduled between reading the clock and locking): it counts in the oldest open second.
	sec = max(sec, r.floor)
	r.maxSec = max(r.maxSec, sec)
	s := &r.slots[sec%ringSlots]
	if s.used && s.sec != sec {
		r.misattributed += n
	} else {
		s.used, s.sec = true, sec
	}
	if failed {
		s.errors += n
		r.errors += n
		return
	}
	v := int64(lat)
	if v > LatencyHighest {
		v = LatencyHighest
		r.clamped += n
	}
	v = max(v, 0)
	// Both histograms cover [0, LatencyHighest], so recording cannot fail.
	_ = r.total.RecordValues(v, n)
	_ = s.hist.RecordValues(v, n)
	r.ops += n
}

// take moves second sec out of the recorder into agg and returns its errors.
func (r *recorder) take(sec int, agg *hdrhistogram.Histogram) (errs, dropped int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.slots[sec%ringSlots]
	if s.used && s.sec == sec {
		dropped = agg.Merge(s.hist)
		errs = s.errors
		s.hist.Reset()
		s.used, s.errors = false, 0
	}
	r.floor = max(r.floor, sec+1)
	return errs, dropped
}

// run is the state shared by one run's goroutines.
type run struct {
	cfg      Config
	clock    bench.Clock
	recs     []*recorder
	warmEnd  time.Duration // start of the measured window
	end      time.Duration // end of the measured window
	start    time.Duration // first scheduled send
	lastSec  int           // the window's last second
	lanes    int           // goroutines: Clients x Pipeline
	interval float64       // open loop: ns between consecutive batches, over all lanes
	ks       *keySpace

	mu     sync.Mutex
	unsent int64
}

// Run drives cfg's workload against target and returns what it measured. It opens one
// Session per client, starts Clients x Pipeline goroutines, and returns after they finish
// (at the end of the window, plus up to Drain for requests in flight).
//
// A failing Session.Do is counted as errors, not returned: the run goes on, because a
// benchmark under faults must keep measuring. Run returns an error only for a bad config, a
// Target that cannot open sessions, or ctx ending.
func Run(ctx context.Context, target bench.Target, cfg Config, opts Options) (*Outcome, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	clock := opts.Clock
	if clock == nil {
		clock = bench.NewRealClock()
	}
	sessions := make([]bench.Session, 0, cfg.Clients)
	defer func() {
		for _, s := range sessions {
			_ = s.Close()
		}
	}()
	for i := 0; i < cfg.Clients; i++ {
		s, err := target.Open(ctx, i)
		if err != nil {
			return nil, fmt.Errorf("open session %d: %w", i, err)
		}
		sessions = append(sessions, s)
	}

	r := &run{cfg: cfg, clock: clock, lanes: cfg.Clients * cfg.Pipeline, ks: newKeySpace(cfg.Workload)}
	r.recs = make([]*recorder, cfg.Clients)
	for i := range r.recs {
		r.recs[i] = newRecorder()
	}
	if cfg.Mode == OpenLoop {
		r.interval = float64(cfg.Batch) * 1e9 / cfg.Rate
	}
	r.start = clock.Now()
	r.warmEnd = r.start + cfg.Warmup
	r.end = r.warmEnd + cfg.Duration
	r.lastSec = int((cfg.Duration+SeriesInterval-1)/SeriesInterval) - 1

	// Requests still in flight at end+Drain are cancelled through doCtx: one context for the
	// whole run, so the hot path allocates none.
	doCtx, cancelDo := context.WithCancel(ctx)
	defer cancelDo()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		if clock.WaitUntil(watchCtx, r.end+cfg.Drain) == nil {
			cancelDo()
		}
	}()

	collectCtx, stopCollect := context.WithCancel(ctx)
	var out []Interval
	var dropped int64
	next := 0 // next second to collect; owned by the collector, then by Run after it stops
	collect := func(sec int) {
		agg := NewIntervalHistogram()
		iv := Interval{Second: sec, Hist: agg}
		for _, rec := range r.recs {
			e, d := rec.take(sec, agg)
			iv.Errors += e
			dropped += d
		}
		out = append(out, iv)
		if opts.OnInterval != nil {
			opts.OnInterval(iv)
		}
	}
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for {
			if clock.WaitUntil(collectCtx, r.warmEnd+time.Duration(next+1)*SeriesInterval+collectGrace) != nil {
				return
			}
			collect(next)
			next++
		}
	}()

	windowDone := make(chan struct{})
	go func() {
		defer close(windowDone)
		if opts.OnWindow == nil {
			return
		}
		if clock.WaitUntil(watchCtx, r.warmEnd) != nil {
			return
		}
		opts.OnWindow(true)
		if clock.WaitUntil(watchCtx, r.end) != nil {
			return
		}
		opts.OnWindow(false)
	}()

	var wg sync.WaitGroup
	for lane := 0; lane < r.lanes; lane++ {
		client := lane / cfg.Pipeline
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.lane(doCtx, lane, sessions[client], r.recs[client])
		}()
	}
	wg.Wait()
	stopped := clock.Now()
	// Open-loop lanes stop at their last slot before the end; the window still lasts until
	// the end (a simulated clock moves there now).
	if ctx.Err() == nil {
		_ = clock.SleepUntil(ctx, r.end)
	}
	<-windowDone
	stopCollect()
	<-collected

	o := &Outcome{Config: cfg, Total: NewHistogram(), Unsent: r.unsent, Elapsed: cfg.Duration}
	lastSec := r.lastSec
	if ctx.Err() != nil {
		// Interrupted: the window ends where the run stopped, so a partial result still
		// has the right throughput and no trailing empty seconds.
		o.Elapsed = min(max(stopped-r.warmEnd, 0), cfg.Duration)
		lastSec = int((o.Elapsed+SeriesInterval-1)/SeriesInterval) - 1
	}
	for _, rec := range r.recs {
		rec.mu.Lock()
		lastSec = max(lastSec, rec.maxSec)
		dropped += o.Total.Merge(rec.total)
		o.Ops += rec.ops
		o.Errors += rec.errors
		o.Clamped += rec.clamped
		o.Misattributed += rec.misattributed
		o.SendLagMax = max(o.SendLagMax, rec.lagMax)
		o.LateSends += rec.lagged
		rec.mu.Unlock()
	}
	for next <= lastSec {
		collect(next)
		next++
	}
	o.Intervals = out
	if dropped != 0 {
		return o, fmt.Errorf("%w: %d", ErrHistogramDropped, dropped)
	}
	if err := ctx.Err(); err != nil {
		return o, err
	}
	return o, nil
}

// lane is one request stream: one in-flight batch at a time on a shared Session.
func (r *run) lane(ctx context.Context, lane int, s bench.Session, rec *recorder) {
	gen := newGenerator(r.ks, lane, r.cfg.Batch)
	ops := make([]bench.Op, r.cfg.Batch)
	n := int64(r.cfg.Batch)
	if r.cfg.Mode == ClosedLoop {
		if as, ok := s.(bench.AsyncSession); ok {
			c := &closedChain{r: r, ctx: ctx, s: as, rec: rec, gen: gen, ops: ops, n: n, ended: make(chan struct{})}
			c.onDone = c.done
			c.next()
			// At the end of the drain a batch still in flight is abandoned, as Do's context
			// abandons it: its completion, if it ever comes, records nothing in the window
			// and starts nothing.
			select {
			case <-c.ended:
			case <-ctx.Done():
			}
			return
		}
		for ctx.Err() == nil {
			sent := r.clock.Now()
			if sent >= r.end {
				return
			}
			gen.Fill(ops)
			err := s.Do(ctx, ops)
			done := r.clock.Now()
			if sent >= r.warmEnd {
				rec.record(r.second(done), done-sent, n, err != nil, 0)
			}
		}
		return
	}
	// Open loop: lane l owns the global schedule's slots l, l+lanes, l+2*lanes, ... Latency is
	// measured from the slot's intended time, so a stall delays every request scheduled during
	// it and they all record it, as wrk2 does. A lane that fell behind sends its backlog at once.
	//
	// What the target is charged is kept apart from loadgen's own lateness (a timer that wakes
	// ~1 ms late on a busy VM, a descheduled goroutine): the lane tracks when it would have
	// been free had it sent every request on time ("ideal"), and a request's latency is the
	// wait the target's earlier replies imposed (ideal - intended, when positive) plus its own
	// response time (done - sent). Sending exactly on time, this is done - intended; any extra
	// delay in sending is the generator's and is reported as send lag instead.
	var ideal time.Duration
	for idx := int64(lane); ctx.Err() == nil; idx += int64(r.lanes) {
		intended := r.intended(idx)
		if intended >= r.end {
			return
		}
		now := r.clock.Now()
		if now >= r.end {
			r.countUnsent(idx, n)
			return
		}
		if now < intended {
			if r.clock.SleepUntil(ctx, intended) != nil {
				return
			}
		}
		gen.Fill(ops)
		sent := r.clock.Now()
		err := s.Do(ctx, ops)
		done := r.clock.Now()
		start := max(intended, ideal) // when the request would have gone out
		ideal = start + (done - sent)
		if intended >= r.warmEnd {
			rec.record(r.second(done), ideal-intended, n, err != nil, sent-start)
		}
	}
}

// closedChain is one closed-loop lane on a bench.AsyncSession: each batch starts from the
// previous one's completion, on whichever goroutine completed it (a connection's reader),
// so the lane costs no goroutine wake-up per request; the lane's own goroutine only waits
// for the chain to end. What is measured is what the synchronous lane measures: from just
// before a batch is handed to the session to its completion.
type closedChain struct {
	r      *run
	ctx    context.Context
	s      bench.AsyncSession
	rec    *recorder
	gen    *Generator
	ops    []bench.Op
	n      int64
	sent   time.Duration
	onDone func(error) // done, bound once rather than per batch
	ended  chan struct{}
}

// next starts the lane's next batch, or ends the chain at the end of the run.
func (c *closedChain) next() {
	sent := c.r.clock.Now()
	if c.ctx.Err() != nil || sent >= c.r.end {
		close(c.ended)
		return
	}
	c.gen.Fill(c.ops)
	c.sent = sent
	c.s.Start(c.ops, c.onDone)
}

func (c *closedChain) done(err error) {
	now := c.r.clock.Now()
	if c.sent >= c.r.warmEnd {
		c.rec.record(c.r.second(now), now-c.sent, c.n, err != nil, 0)
	}
	c.next()
}

// intended returns the send time of schedule slot idx.
func (r *run) intended(idx int64) time.Duration {
	return r.start + time.Duration(float64(idx)*r.interval)
}

// firstSlotAt returns the first slot whose intended time is at or after t.
func (r *run) firstSlotAt(t time.Duration) int64 {
	idx := max(int64(math.Ceil(float64(t-r.start)/r.interval)), 0)
	// The float division can be off by one slot either way; settle it with intended itself.
	for idx > 0 && r.intended(idx-1) >= t {
		idx--
	}
	for r.intended(idx) < t {
		idx++
	}
	return idx
}

// countUnsent adds the measured slots from idx on that lane idx%lanes will never send.
func (r *run) countUnsent(idx, n int64) {
	lanes := int64(r.lanes)
	lo := max(idx, r.firstSlotAt(r.warmEnd))
	hi := r.firstSlotAt(r.end)
	// The first slot at or after lo that belongs to this lane.
	first := lo + ((idx-lo)%lanes+lanes)%lanes
	if first >= hi {
		return
	}
	c := ((hi-1-first)/lanes + 1) * n
	r.mu.Lock()
	r.unsent += c
	r.mu.Unlock()
}

// second returns the index of the series second holding completion time t. Requests sent
// inside the window that complete after it (during the drain) count in its last second, so
// the window and the throughput's denominator stay the configured Duration.
func (r *run) second(t time.Duration) int {
	if t < r.warmEnd {
		return 0
	}
	return min(int(min((t-r.warmEnd)/SeriesInterval, time.Duration(math.MaxInt32))), r.lastSec)
}
