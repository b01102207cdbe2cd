package server

import (
	"fmt"
	"io"
	"math"
	"sort"
	"sync"
	"sync/atomic"
)

// Metrics is a small registry that writes the Prometheus text exposition format (version
// 0.0.4). The suite needs a handful of counters, gauges and histograms; a full client library
// would add a dependency and allocations on the hot path for no gain. Every metric is
// updated with atomics, so the driver goroutine and the transport's event loops record
// without locks; only registration and exposition take the mutex.
type Metrics struct {
	mu      sync.Mutex
	metrics []metric
}

type metric interface {
	name() string
	write(w io.Writer) error
}

// NewMetrics returns an empty registry.
func NewMetrics() *Metrics { return &Metrics{} }

func (m *Metrics) register(x metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, y := range m.metrics {
		if y.name() == x.name() {
			panic("server: metric " + x.name() + " registered twice")
		}
	}
	m.metrics = append(m.metrics, x)
}

// Write writes every metric, sorted by name.
func (m *Metrics) Write(w io.Writer) error {
	m.mu.Lock()
	ms := append([]metric(nil), m.metrics...)
	m.mu.Unlock()
	sort.Slice(ms, func(i, j int) bool { return ms[i].name() < ms[j].name() })
	for _, x := range ms {
		if err := x.write(w); err != nil {
			return err
		}
	}
	return nil
}

// Counter is a monotonically increasing count.
type Counter struct {
	n, help string
	v       atomic.Uint64
}

// Counter registers a counter.
func (m *Metrics) Counter(name, help string) *Counter {
	c := &Counter{n: name, help: help}
	m.register(c)
	return c
}

// Add adds d.
func (c *Counter) Add(d uint64) { c.v.Add(d) }

// Inc adds one.
func (c *Counter) Inc() { c.v.Add(1) }

// Value returns the count.
func (c *Counter) Value() uint64 { return c.v.Load() }

func (c *Counter) name() string { return c.n }
func (c *Counter) write(w io.Writer) error {
	_, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", c.n, c.help, c.n, c.n, c.v.Load())
	return err
}

// CounterFunc registers a counter read from f at exposition time (for counters another
// package keeps as atomics). f must be safe to call from the HTTP goroutine.
func (m *Metrics) CounterFunc(name, help string, f func() uint64) {
	m.register(&counterFunc{n: name, help: help, f: f})
}

type counterFunc struct {
	n, help string
	f       func() uint64
}

func (c *counterFunc) name() string { return c.n }
func (c *counterFunc) write(w io.Writer) error {
	_, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", c.n, c.help, c.n, c.n, c.f())
	return err
}

// Gauge is a value that goes up and down, or is sampled from a function at exposition.
type Gauge struct {
	n, help string
	v       atomic.Int64
	f       func() int64
}

// Gauge registers a gauge set with Set.
func (m *Metrics) Gauge(name, help string) *Gauge {
	g := &Gauge{n: name, help: help}
	m.register(g)
	return g
}

// GaugeFunc registers a gauge read from f at exposition time. f must be safe to call from
// the HTTP goroutine.
func (m *Metrics) GaugeFunc(name, help string, f func() int64) {
	m.register(&Gauge{n: name, help: help, f: f})
}

// Set sets the gauge.
func (g *Gauge) Set(v int64) { g.v.Store(v) }

func (g *Gauge) name() string { return g.n }
func (g *Gauge) write(w io.Writer) error {
	v := g.v.Load()
	if g.f != nil {
		v = g.f()
	}
	_, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", g.n, g.help, g.n, g.n, v)
	return err
}

// Histogram counts observations into fixed upper bounds (cumulative at exposition).
type Histogram struct {
	n, help string
	bounds  []float64
	counts  []atomic.Uint64 // one per bound plus +Inf
	sumBits atomic.Uint64   // float64 sum, updated with CAS
	count   atomic.Uint64
}

// Histogram registers a histogram with the given ascending upper bounds.
func (m *Metrics) Histogram(name, help string, bounds []float64) *Histogram {
	if !sort.Float64sAreSorted(bounds) {
		panic("server: histogram " + name + " bounds not ascending")
	}
	h := &Histogram{n: name, help: help, bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
	m.register(h)
	return h
}

// ExpBuckets returns n bounds start, start*factor, ...
func ExpBuckets(start, factor float64, n int) []float64 {
	b := make([]float64, n)
	for i := range b {
		b[i] = start
		start *= factor
	}
	return b
}

// Observe records v.
func (h *Histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v)
	h.counts[i].Add(1)
	h.count.Add(1)
	for {
		old := h.sumBits.Load()
		if h.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.count.Load() }

func (h *Histogram) name() string { return h.n }
func (h *Histogram) write(w io.Writer) error {
	if _, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", h.n, h.help, h.n); err != nil {
		return err
	}
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		if _, err := fmt.Fprintf(w, "%s_bucket{le=\"%g\"} %d\n", h.n, b, cum); err != nil {
			return err
		}
	}
	cum += h.counts[len(h.bounds)].Load()
	_, err := fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", h.n, cum, h.n,
		math.Float64frombits(h.sumBits.Load()), h.n, cum)
	return err
}
