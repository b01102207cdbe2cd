package plot

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/consensusbench/consensusbench/bench/load"
	"github.com/consensusbench/consensusbench/bench/report"
)

// Figure sizes and sampling of the spectrum.
const (
	Width              = 8 * vg.Inch
	PanelHeight        = 3.25 * vg.Inch
	spectrumPerDecade  = 24  // points per decade of 1/(1-p)
	spectrumDecadesMax = 7   // up to p99.99999
	nsPerMs            = 1e6 // plots show milliseconds
	// legendHeadroom is how far above the data a panel's axis reaches, so that the legend
	// in its top corner sits above the lines instead of over them: a factor on a linear
	// axis, decades on a log one.
	legendHeadroom    = 1.35
	legendHeadroomLog = 1.0
	// minLatencyMs floors a log latency axis (a microsecond).
	minLatencyMs = 0.001
)

// Palette for lines, in order; fault windows are shaded in faultColor.
var (
	palette = []color.Color{
		color.RGBA{0x1f, 0x77, 0xb4, 0xff}, color.RGBA{0xd6, 0x27, 0x28, 0xff},
		color.RGBA{0x2c, 0xa0, 0x2c, 0xff}, color.RGBA{0xff, 0x7f, 0x0e, 0xff},
		color.RGBA{0x94, 0x67, 0xbd, 0xff}, color.RGBA{0x8c, 0x56, 0x4b, 0xff},
	}
	faultColor = color.NRGBA{0xff, 0x40, 0x40, 0x48}
)

// Named is a histogram with its legend label.
type Named struct {
	Label string
	Hist  *hdrhistogram.Histogram
}

// percentileTicks labels the 1/(1-p) axis with percentiles.
type percentileTicks struct{ decades int }

func (t percentileTicks) Ticks(min, max float64) []plot.Tick {
	labels := []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%", "99.99999%"}
	var ticks []plot.Tick
	for d := 0; d <= t.decades && d < len(labels); d++ {
		x := math.Pow(10, float64(d))
		if x >= min && x <= max*1.0001 {
			ticks = append(ticks, plot.Tick{Value: x, Label: labels[d]})
		}
	}
	ticks = append(ticks, plot.Tick{Value: 2, Label: "50%"})
	return ticks
}

// Spectrum plots latency against percentile for each histogram, the way HdrHistogram's own
// plotter does: x is 1/(1-p) on a log scale, so 99%, 99.9% and 99.99% are equally far apart.
func Spectrum(title string, hs []Named) (*plot.Plot, error) {
	if len(hs) == 0 {
		return nil, errors.New("plot: no histograms")
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (ms)"
	p.X.Scale = plot.LogScale{}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	decades := 1
	var lines []plotter.XYs
	for i, h := range hs {
		n := h.Hist.TotalCount()
		if n == 0 {
			continue
		}
		var xys plotter.XYs
		// The last point is the maximum, at 1/(1-p) = n: beyond it the data says nothing.
		xMax := float64(n)
		for k := 0; k <= spectrumPerDecade*spectrumDecadesMax; k++ {
			x := math.Pow(10, float64(k)/spectrumPerDecade)
			if x >= xMax {
				break
			}
			q := 100 * (1 - 1/x)
			xys = append(xys, plotter.XY{X: x, Y: float64(h.Hist.ValueAtQuantile(q)) / nsPerMs})
		}
		xys = append(xys, plotter.XY{X: max(xMax, 1.0001), Y: float64(h.Hist.Max()) / nsPerMs})
		lines = append(lines, xys)
		decades = max(decades, int(math.Ceil(math.Log10(xMax))))
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		l.Color = palette[i%len(palette)]
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(h.Label, l)
	}
	p.X.Tick.Marker = percentileTicks{decades: decades}
	p.X.Min = 1
	logLatencyAxis(p, lines...)
	return p, nil
}

// logLatencyAxis puts the latency axis on a log scale from just under the smallest positive
// latency of lines to a decade of headroom over the largest (for the legend): on a linear
// axis one slow maximum flattens p50 and p90 against zero, and those are what most requests
// saw.
func logLatencyAxis(p *plot.Plot, lines ...plotter.XYs) {
	lo, hi := math.Inf(1), 0.0
	for _, xys := range lines {
		for _, xy := range xys {
			if xy.Y > 0 {
				lo = min(lo, xy.Y)
			}
			hi = max(hi, xy.Y)
		}
	}
	if math.IsInf(lo, 1) {
		lo = minLatencyMs
	}
	hi = max(hi, lo*10)
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = decadeTicks{}
	p.Y.Min = math.Pow(10, math.Floor(math.Log10(max(lo*0.9, minLatencyMs))))
	p.Y.Max = hi * math.Pow(10, legendHeadroomLog)
}

// decadeTicks labels every power of ten on a log axis, with unlabelled minor ticks at 2-9
// times each. gonum's LogTicks truncates the first decade's exponent toward zero, so an axis
// starting at 0.1 ms had no label at 0.1.
type decadeTicks struct{}

func (decadeTicks) Ticks(min, max float64) []plot.Tick {
	const slack = 1e-9 // log10 of an exact power of ten may land a hair off the integer
	var ticks []plot.Tick
	for e := int(math.Floor(math.Log10(min) + slack)); e <= int(math.Ceil(math.Log10(max)-slack)); e++ {
		v := math.Pow10(e)
		if v >= min*(1-slack) && v <= max*(1+slack) {
			ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
		}
		for i := 2; i < 10; i++ {
			if m := v * float64(i); m >= min && m <= max {
				ticks = append(ticks, plot.Tick{Value: m})
			}
		}
	}
	return ticks
}

// rateTicks labels a rate axis with about six values at 1-2-5 steps (12k, 14k, ...): the
// default marker gives two or three ticks on a throughput axis.
type rateTicks struct{}

func (rateTicks) Ticks(min, max float64) []plot.Tick {
	span := max - min
	if span <= 0 {
		return []plot.Tick{{Value: min, Label: rateLabel(min)}}
	}
	step := math.Pow(10, math.Floor(math.Log10(span/6)))
	for _, m := range []float64{1, 2, 5, 10} {
		if span/(step*m) <= 7 {
			step *= m
			break
		}
	}
	var ticks []plot.Tick
	for x := math.Ceil(min/step) * step; x <= max+step*1e-9; x += step {
		ticks = append(ticks, plot.Tick{Value: x, Label: rateLabel(x)})
		for k := 1; k < 5; k++ { // unlabelled minor ticks
			if m := x + step*float64(k)/5; m <= max {
				ticks = append(ticks, plot.Tick{Value: m})
			}
		}
	}
	return ticks
}

// rateLabel writes 1500 as 1.5k and 2000000 as 2M.
func rateLabel(x float64) string {
	switch a := math.Abs(x); {
	case a >= 1e6:
		return fmt.Sprintf("%gM", math.Round(x/1e6*1000)/1000)
	case a >= 1e3:
		return fmt.Sprintf("%gk", math.Round(x/1e3*1000)/1000)
	}
	return fmt.Sprintf("%g", x)
}

// secondTicks marks whole seconds, about ten labels per axis at 1-2-5 spacing.
type secondTicks struct{}

func (secondTicks) Ticks(min, max float64) []plot.Tick {
	span := max - min
	step := 1.0
	for _, s := range []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600} {
		step = s
		if span/s <= 12 {
			break
		}
	}
	var ticks []plot.Tick
	for x := math.Ceil(min/step) * step; x <= max; x += step {
		ticks = append(ticks, plot.Tick{Value: x, Label: fmt.Sprintf("%g", x)})
	}
	return ticks
}

// TimeSeries plots ops/s and p99 per second, one panel each, shading fault windows. In open
// loop the offered rate is a dashed line on the throughput panel, so a shortfall shows. The
// latency panel is on a log scale (p50 and p99 of one second differ by orders of magnitude
// in a stall).
func TimeSeries(r *report.Result, label string) (ops, p99 *plot.Plot, err error) {
	if len(r.Series) == 0 {
		return nil, nil, errors.New("plot: result has no per-second series")
	}
	var opsXY, p99XY, p50XY plotter.XYs
	step := float64(report.SeriesSeconds())
	for _, s := range r.Series {
		// Each point sits in the middle of the second it summarizes, so a fault window's
		// shading covers the seconds it affected.
		x := (float64(s.T) + 0.5) * step
		opsXY = append(opsXY, plotter.XY{X: x, Y: float64(s.Ops) / step})
		if s.Ops > 0 {
			p99XY = append(p99XY, plotter.XY{X: x, Y: float64(s.P99) / nsPerMs})
			p50XY = append(p50XY, plotter.XY{X: x, Y: float64(s.P50) / nsPerMs})
		}
	}
	ops = plot.New()
	ops.Title.Text = label + ": throughput"
	ops.Y.Label.Text = "ops/s"
	ops.X.Label.Text = "time (s)"
	ops.Legend.Top = true
	p99 = plot.New()
	p99.Title.Text = label + ": latency per second"
	p99.Y.Label.Text = "latency (ms)"
	p99.X.Label.Text = "time (s)"
	p99.Legend.Top = true
	for _, p := range []*plot.Plot{ops, p99} {
		p.Add(plotter.NewGrid())
		p.X.Min = 0
		p.X.Max = float64(r.Series[len(r.Series)-1].T+1) * step
		p.X.Tick.Marker = secondTicks{}
	}
	offered := 0.0
	if r.Load.Mode == load.OpenLoop {
		offered = r.Load.Rate
	}
	opsTop := max(maxY(opsXY), offered*1.05) * legendHeadroom
	ops.Y.Min, ops.Y.Max = 0, opsTop
	ops.Y.Tick.Marker = rateTicks{}
	logLatencyAxis(p99, p99XY, p50XY)
	if err := shadeFaults(ops, r.Events, 0, opsTop); err != nil {
		return nil, nil, err
	}
	if err := shadeFaults(p99, r.Events, p99.Y.Min, p99.Y.Max); err != nil {
		return nil, nil, err
	}
	if err := addLine(ops, opsXY, "ops/s", 0, offered > 0); err != nil {
		return nil, nil, err
	}
	if offered > 0 {
		l, err := plotter.NewLine(plotter.XYs{{X: ops.X.Min, Y: offered}, {X: ops.X.Max, Y: offered}})
		if err != nil {
			return nil, nil, err
		}
		l.Color = color.Gray{0x60}
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		ops.Add(l)
		ops.Legend.Add(fmt.Sprintf("offered %s ops/s", rateLabel(offered)), l)
	}
	if err := addLine(p99, p99XY, "p99", 1, true); err != nil {
		return nil, nil, err
	}
	if err := addLine(p99, p50XY, "p50", 0, true); err != nil {
		return nil, nil, err
	}
	return ops, p99, nil
}

func maxY(xys plotter.XYs) float64 {
	m := 0.0
	for _, xy := range xys {
		m = max(m, xy.Y)
	}
	if m == 0 {
		m = 1
	}
	return m * 1.05
}

func addLine(p *plot.Plot, xys plotter.XYs, label string, colour int, legend bool) error {
	if len(xys) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return err
	}
	l.Color = palette[colour%len(palette)]
	l.Width = vg.Points(1.5)
	p.Add(l)
	if legend {
		p.Legend.Add(label, l)
	}
	return nil
}

// shadeFaults draws each event as a shaded span from bottom to top (or a thin band for an
// instant).
func shadeFaults(p *plot.Plot, events []report.Event, bottom, top float64) error {
	for i, e := range events {
		from := e.At.Seconds()
		to := e.End.Seconds()
		if e.End <= e.At {
			to = from + 0.1 // an instant: a thin visible band
		}
		poly, err := plotter.NewPolygon(plotter.XYs{{X: from, Y: bottom}, {X: to, Y: bottom}, {X: to, Y: top}, {X: from, Y: top}})
		if err != nil {
			return err
		}
		poly.Color = faultColor
		poly.LineStyle.Width = 0
		p.Add(poly)
		if i == 0 {
			p.Legend.Add("fault", poly)
		}
		lbl, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: from, Y: top}}, Labels: []string{e.Kind}})
		if err != nil {
			return err
		}
		p.Add(lbl)
	}
	return nil
}

// Curve plots a sweep's throughput against its latency percentiles, latency on a log scale;
// the steps the sweep judged saturated are circled in red and named in the legend.
func Curve(s *report.SweepResult, label string) (*plot.Plot, error) {
	if len(s.Points) == 0 {
		return nil, errors.New("plot: sweep has no points")
	}
	p := plot.New()
	p.Title.Text = label + ": throughput vs latency"
	p.X.Label.Text = "throughput (ops/s)"
	p.Y.Label.Text = "latency (ms)"
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	p.X.Min = 0
	p.X.Tick.Marker = rateTicks{}
	series := []struct {
		label string
		get   func(report.Percentiles) int64
	}{
		{"p50", func(l report.Percentiles) int64 { return l.P50 }},
		{"p99", func(l report.Percentiles) int64 { return l.P99 }},
		{"p99.9", func(l report.Percentiles) int64 { return l.P999 }},
	}
	var lines []plotter.XYs
	for i, sr := range series {
		var xys plotter.XYs
		for _, pt := range s.Points {
			xys = append(xys, plotter.XY{X: pt.Throughput, Y: float64(sr.get(pt.Latency)) / nsPerMs})
		}
		lines = append(lines, xys)
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		l.Color = palette[i%len(palette)]
		pts.Color = l.Color
		pts.Shape = draw.CircleGlyph{}
		p.Add(l, pts)
		p.Legend.Add(sr.label, l, pts)
	}
	var sat plotter.XYs
	for _, pt := range s.Points {
		if pt.Saturated {
			sat = append(sat, plotter.XY{X: pt.Throughput, Y: max(float64(pt.Latency.P99)/nsPerMs, minLatencyMs)})
		}
	}
	logLatencyAxis(p, lines...)
	if len(sat) > 0 {
		mark, err := plotter.NewScatter(sat)
		if err != nil {
			return nil, err
		}
		mark.Shape = draw.RingGlyph{}
		mark.Radius = vg.Points(7)
		mark.Color = color.RGBA{0xd0, 0x00, 0x00, 0xff}
		p.Add(mark)
		p.Legend.Add("saturated (p99)", mark)
	}
	return p, nil
}

// Save writes the plots stacked vertically to path; the extension (.png or .svg) picks the
// format.
func Save(path string, plots ...*plot.Plot) error {
	h := PanelHeight * vg.Length(len(plots))
	var c interface {
		vg.CanvasSizer
		io.WriterTo
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".png":
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(Width, h), vgimg.UseDPI(vgimg.DefaultDPI))}
	case ".svg":
		c = vgsvg.New(Width, h)
	default:
		return fmt.Errorf("plot: %s: want a .png or .svg file", path)
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadY: vg.Points(8), PadTop: vg.Points(4), PadBottom: vg.Points(4),
		PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	grid := make([][]*plot.Plot, len(plots))
	for i, p := range plots {
		grid[i] = []*plot.Plot{p}
	}
	canvases := plot.Align(grid, tiles, dc)
	for i, p := range plots {
		p.Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
