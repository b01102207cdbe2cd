package server

import (
	"strings"
	"testing"
)

func TestMetricsExposition(t *testing.T) {
	m := NewMetrics()
	c := m.Counter("cb_frames_total", "frames")
	c.Add(3)
	g := m.Gauge("cb_queue_depth", "depth")
	g.Set(-2)
	m.GaugeFunc("cb_role", "role", func() int64 { return 7 })
	h := m.Histogram("cb_latency_seconds", "latency", []float64{0.001, 0.01})
	h.Observe(0.0005)
	h.Observe(0.005)
	h.Observe(1)
	var sb strings.Builder
	if err := m.Write(&sb); err != nil {
		t.Fatal(err)
	}
	want := `# HELP cb_frames_total frames
# TYPE cb_frames_total counter
cb_frames_total 3
# HELP cb_latency_seconds latency
# TYPE cb_latency_seconds histogram
cb_latency_seconds_bucket{le="0.001"} 1
cb_latency_seconds_bucket{le="0.01"} 2
cb_latency_seconds_bucket{le="+Inf"} 3
cb_latency_seconds_sum 1.0055
cb_latency_seconds_count 3
# HELP cb_queue_depth depth
# TYPE cb_queue_depth gauge
cb_queue_depth -2
# HELP cb_role role
# TYPE cb_role gauge
cb_role 7
`
	if sb.String() != want {
		t.Fatalf("exposition:\n%s\nwant:\n%s", sb.String(), want)
	}
}

func TestMetricsDuplicateNamePanics(t *testing.T) {
	m := NewMetrics()
	m.Counter("x", "")
	defer func() {
		if recover() == nil {
			t.Fatal("no panic on duplicate registration")
		}
	}()
	m.Gauge("x", "")
}

func TestHistogramObserveDoesNotAllocate(t *testing.T) {
	h := NewMetrics().Histogram("h", "", ExpBuckets(1e-6, 2, 20))
	if a := testing.AllocsPerRun(100, func() { h.Observe(0.001) }); a != 0 {
		t.Fatalf("Observe allocates %v", a)
	}
}
