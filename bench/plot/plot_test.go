package plot

import (
	"bytes"
	"context"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gplot "gonum.org/v1/plot"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/benchtest"
	"github.com/consensusbench/consensusbench/bench/load"
	"github.com/consensusbench/consensusbench/bench/report"
)

// stalledResult runs a fake 6 s open-loop load with a 1 s stall, recorded as a fault event.
func stalledResult(t *testing.T, mode load.Mode) *report.Result {
	t.Helper()
	clock := benchtest.NewClock()
	cfg := load.DefaultConfig()
	cfg.Mode, cfg.Clients, cfg.Duration = mode, 1, 6*time.Second
	target := &benchtest.Target{Clock: clock, Service: 300 * time.Microsecond,
		Stalls: []benchtest.Window{{From: 2 * time.Second, To: 3 * time.Second}}}
	o, err := load.Run(context.Background(), target, cfg, load.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	r, err := report.New(o, bench.Spec{Protocol: "raft"}, report.Env{}, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	r.Events = []report.Event{{At: 2 * time.Second, End: 3 * time.Second, Kind: "pause"}}
	return r
}

func checkFiles(t *testing.T, base string, wantHeight int) {
	t.Helper()
	b, err := os.ReadFile(base + ".png")
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Bounds().Dy(); got != wantHeight {
		t.Errorf("%s.png is %d px high, want %d", base, got, wantHeight)
	}
	svg, err := os.ReadFile(base + ".svg")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("latency")) {
		t.Errorf("%s.svg is not an SVG with the axis labels", base)
	}
}

func TestPlotsRenderPNGAndSVG(t *testing.T) {
	dir := t.TempDir()
	open := stalledResult(t, load.OpenLoop)
	closed := stalledResult(t, load.ClosedLoop)
	ho, _ := open.DecodeHistogram()
	hc, _ := closed.DecodeHistogram()
	spec, err := Spectrum("latency by percentile", []Named{{"open-loop", ho}, {"closed-loop", hc}})
	if err != nil {
		t.Fatal(err)
	}
	ops, p99, err := TimeSeries(open, "raft")
	if err != nil {
		t.Fatal(err)
	}
	sweep := &report.SweepResult{Points: []report.SweepPoint{
		{Offered: 1000, Throughput: 1000, Latency: report.Percentiles{P50: 1e6, P99: 2e6, P999: 3e6}},
		{Offered: 2000, Throughput: 1990, Latency: report.Percentiles{P50: 1.2e6, P99: 3e6, P999: 5e6}},
		{Offered: 4000, Throughput: 2500, Latency: report.Percentiles{P50: 40e6, P99: 90e6, P999: 120e6}, Saturated: true},
	}}
	curve, err := Curve(sweep, "raft")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		plots []*gplot.Plot
	}{{"spectrum", []*gplot.Plot{spec}}, {"timeseries", []*gplot.Plot{ops, p99}}, {"sweep", []*gplot.Plot{curve}}}
	for _, c := range cases {
		base := filepath.Join(dir, c.name)
		for _, ext := range []string{".png", ".svg"} {
			if err := Save(base+ext, c.plots...); err != nil {
				t.Fatal(err)
			}
		}
		// vgimg's default resolution is 96 dpi; each panel is PanelHeight high.
		panelPx := float64(PanelHeight) / 72 * 96
		checkFiles(t, base, int(panelPx+0.5)*len(c.plots))
		if out := os.Getenv("PLOT_OUT"); out != "" {
			b, _ := os.ReadFile(base + ".png")
			_ = os.WriteFile(filepath.Join(out, c.name+".png"), b, 0o644)
		}
	}
	if err := Save(filepath.Join(dir, "x.gif"), spec); err == nil {
		t.Error("an unknown image format was accepted")
	}
}

// What the figures must show, read from their SVG text and axes: latency on log axes (p50
// is not flattened against zero by one slow maximum), the offered rate in open loop and not
// in closed loop, the saturated sweep step named, and rate axes with enough ticks to read.
func TestPlotsShowWhatMatters(t *testing.T) {
	dir := t.TempDir()
	svgOf := func(name string, plots ...*gplot.Plot) string {
		t.Helper()
		path := filepath.Join(dir, name+".svg")
		if err := Save(path, plots...); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	open := stalledResult(t, load.OpenLoop)
	if open.Load.Rate <= 0 {
		t.Fatalf("the open-loop fixture offers no rate: %+v", open.Load)
	}
	ops, lat, err := TimeSeries(open, "raft")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := lat.Y.Scale.(gplot.LogScale); !ok {
		t.Error("the per-second latency panel is not on a log scale")
	}
	if s := svgOf("open", ops, lat); !strings.Contains(s, "offered "+rateLabel(open.Load.Rate)+" ops/s") {
		t.Error("the open-loop throughput panel does not show the offered rate")
	}
	ops, lat, err = TimeSeries(stalledResult(t, load.ClosedLoop), "raft")
	if err != nil {
		t.Fatal(err)
	}
	if s := svgOf("closed", ops, lat); strings.Contains(s, "offered") {
		t.Error("a closed-loop run shows an offered rate")
	}
	h, _ := open.DecodeHistogram()
	spec, err := Spectrum("latency", []Named{{"a", h}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := spec.Y.Scale.(gplot.LogScale); !ok || spec.Y.Min <= 0 {
		t.Errorf("the spectrum's latency axis is not a log axis above zero (min %v)", spec.Y.Min)
	}
	curve, err := Curve(&report.SweepResult{Points: []report.SweepPoint{
		{Throughput: 1000, Latency: report.Percentiles{P50: 1e6, P99: 2e6, P999: 3e6}},
		{Throughput: 1500, Latency: report.Percentiles{P50: 50e6, P99: 90e6, P999: 99e6}, Saturated: true},
	}}, "raft")
	if err != nil {
		t.Fatal(err)
	}
	if s := svgOf("curve", curve); !strings.Contains(s, "saturated") {
		t.Error("the sweep curve does not name its saturated step")
	}
	labelled := 0
	for _, tk := range (rateTicks{}).Ticks(0, 150_000) {
		if tk.Label != "" {
			labelled++
		}
	}
	if labelled < 4 || labelled > 8 {
		t.Errorf("%d labelled ticks on a 0-150k rate axis, want 4 to 8", labelled)
	}
	for x, want := range map[float64]string{1500: "1.5k", 2e6: "2M", 250: "250", 125000: "125k"} {
		if got := rateLabel(x); got != want {
			t.Errorf("rateLabel(%v) = %q, want %q", x, got, want)
		}
	}
}

// Every power of ten inside a log latency axis is labelled, the first decade included (an
// axis from 0.1 ms lost its "0.1" label with gonum's LogTicks).
func TestDecadeTicksLabelEveryDecade(t *testing.T) {
	for _, c := range []struct {
		min, max float64
		want     []string
	}{
		{0.1, 1000, []string{"0.1", "1", "10", "100", "1000"}},
		{math.Pow(10, -1), 5, []string{"0.1", "1"}},
		{0.05, 30, []string{"0.1", "1", "10"}},
		{1, 10, []string{"1", "10"}},
	} {
		var got []string
		for _, tk := range (decadeTicks{}).Ticks(c.min, c.max) {
			if tk.Label != "" {
				got = append(got, tk.Label)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("Ticks(%g, %g) labels %q, want %q", c.min, c.max, got, c.want)
		}
	}
}
