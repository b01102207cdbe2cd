package plot

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
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
