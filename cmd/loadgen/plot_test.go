package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/benchtest"
	"github.com/consensusbench/consensusbench/bench/load"
	"github.com/consensusbench/consensusbench/bench/report"
	"github.com/consensusbench/consensusbench/cmd/loadgen/cli"
)

var (
	rewrite     = flag.Bool("rewrite", false, "rewrite the golden plot extracts in testdata/")
	writeInputs = flag.Bool("write-inputs", false, "regenerate the result files the plot goldens read (testdata/*.json); then -rewrite the extracts")
)

// The inputs: two runs (an open-loop Raft run with a partition, a closed-loop PBFT run on a
// dirty tree) and a sweep whose last step saturated. They are fixed files, written once by
// writePlotInputs from benchtest's simulated target, so the goldens see the same data on
// every machine and a result file of today's schema keeps plotting.
var plotInputs = []string{"testdata/raft-open.json", "testdata/pbft-closed.json", "testdata/raft-sweep.json"}

// TestPlotGolden runs `loadgen plot` on the fixed inputs and compares each SVG with a golden
// extract of what a reader sees in it (testdata/*.svg.txt): every text element (titles, axis
// labels, tick labels, legend entries, fault names) with its font size and position, and the
// marks that carry meaning without text: dashed lines (the offered rate), rings (saturated
// sweep steps) and shaded spans (fault windows). The extract, not the whole SVG, is the
// golden: the data lines are hundreds of path coordinates whose last digits move with any
// change of gonum/plot or of the fixture, and a diff of them says nothing, while a moved
// legend, a lost log tick or a renamed axis is one readable line. Positions are rounded to
// whole points (gonum embeds its fonts, so text metrics do not depend on the machine).
// After a deliberate change, go test ./cmd/loadgen -run PlotGolden -rewrite; read the diff.
func TestPlotGolden(t *testing.T) {
	if *writeInputs {
		writePlotInputs(t)
	}
	dir := t.TempDir()
	var out bytes.Buffer
	args := append([]string{"plot", "--format", "svg", "--out", dir}, plotInputs...)
	if err := cli.Main(args, &out, &out); err != nil {
		t.Fatalf("loadgen plot: %v\n%s", err, out.String())
	}
	// The files written and their names are part of the golden too.
	check(t, "testdata/plot.txt", "$ loadgen "+strings.Join(args[:4], " ")+" $OUT "+strings.Join(plotInputs, " ")+"\n"+
		strings.ReplaceAll(out.String(), dir, "$OUT"))
	svgs, _ := filepath.Glob(filepath.Join(dir, "*.svg"))
	if len(svgs) != 4 {
		t.Fatalf("loadgen plot wrote %d SVGs, want 4 (two time series, the spectrum, the curve):\n%s", len(svgs), out.String())
	}
	for _, path := range svgs {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		ex, err := extractSVG(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		check(t, filepath.Join("testdata", filepath.Base(path)+".txt"), ex)
	}
}

// check compares got with the golden file, or rewrites it under -rewrite.
func check(t *testing.T, golden, got string) {
	t.Helper()
	if *rewrite {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/loadgen -run PlotGolden -rewrite writes it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test ./cmd/loadgen -run PlotGolden -rewrite to accept):\n%s", golden, lineDiff(string(want), got))
	}
}

// lineDiff lists the lines only one side has, in order, at most maxDiffLines of them.
func lineDiff(want, got string) string {
	const maxDiffLines = 20
	inGot := map[string]int{}
	for _, l := range strings.Split(got, "\n") {
		inGot[l]++
	}
	inWant := map[string]int{}
	for _, l := range strings.Split(want, "\n") {
		inWant[l]++
	}
	var b strings.Builder
	n := 0
	for _, side := range []struct {
		sign   string
		lines  string
		other  map[string]int
		prefix string
	}{{"-", want, inGot, "want"}, {"+", got, inWant, "got"}} {
		for _, l := range strings.Split(side.lines, "\n") {
			if side.other[l] > 0 {
				side.other[l]--
				continue
			}
			if n++; n <= maxDiffLines {
				fmt.Fprintf(&b, "%s %s\n", side.sign, l)
			}
		}
	}
	if n > maxDiffLines {
		fmt.Fprintf(&b, "... and %d more lines\n", n-maxDiffLines)
	}
	return b.String()
}

var (
	// A ring: M(cx+r,cy) A r,r ... (cx-r,cy) A ... back (gonum's RingGlyph).
	ringPath = regexp.MustCompile(`^M([-\d.e]+),([-\d.e]+)A([\d.e]+),`)
	// A straight path: M x,y L x,y ...
	pathPoint  = regexp.MustCompile(`[ML]([-\d.e]+),([-\d.e]+)`)
	viewBoxRE  = regexp.MustCompile(`^0 0 ([\d.]+) ([\d.]+)$`)
	fontSizeRE = regexp.MustCompile(`font-size:([\d.]+)px`)
	strokeRE   = regexp.MustCompile(`stroke:(#[0-9A-Fa-f]{6})`)
)

// extractSVG lists an SVG written by gonum's vgsvg as the reader sees it, one element a line,
// positions in points from the top-left corner, rounded:
//
//	text X,Y SIZEpx "TEXT"        a text element at its anchor
//	text-up X,Y SIZEpx "TEXT"     the same, rotated to read bottom to top (a y-axis label)
//	dashed X1,Y1 X2,Y2 #RRGGBB    a dashed straight line (its ends)
//	ring X,Y rR #RRGGBB           an unfilled circle (a saturated step, or its legend entry)
//	shade X1,Y1 X2,Y2             a translucent filled area (a fault window), its bounding box
func extractSVG(r io.Reader) (string, error) {
	dec := xml.NewDecoder(r)
	var b strings.Builder
	height := 0.0
	var text *xml.StartElement
	// rotated stacks the open <g> elements: true for gonum's rotate(90), which it uses for
	// the vertical axis labels.
	var rotated []bool
	inRotated := func() bool {
		for _, r := range rotated {
			if r {
				return true
			}
		}
		return false
	}
	attr := func(e *xml.StartElement, name string) string {
		for _, a := range e.Attr {
			if a.Name.Local == name {
				return a.Value
			}
		}
		return ""
	}
	num := func(s string) float64 {
		v, _ := strconv.ParseFloat(s, 64)
		return v
	}
	pt := func(x, y float64) string { return fmt.Sprintf("%.0f,%.0f", round(x), round(height-y)) }
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			switch tok.Name.Local {
			case "svg":
				m := viewBoxRE.FindStringSubmatch(attr(&tok, "viewBox"))
				if m == nil {
					return "", fmt.Errorf("svg viewBox %q: want 0 0 W H", attr(&tok, "viewBox"))
				}
				height = num(m[2])
				fmt.Fprintf(&b, "svg %sx%s pt\n", m[1], m[2])
			case "g":
				switch tr := attr(&tok, "transform"); {
				case tr == "rotate(90)":
					rotated = append(rotated, true)
				case strings.Contains(tr, "rotate"):
					return "", fmt.Errorf("group transform %q: only rotate(90) is read", tr)
				default:
					rotated = append(rotated, false)
				}
			case "text":
				e := tok.Copy()
				text = &e
			case "path":
				style, d := attr(&tok, "style"), attr(&tok, "d")
				stroke := ""
				if m := strokeRE.FindStringSubmatch(style); m != nil {
					stroke = m[1]
				}
				switch {
				case strings.Contains(style, "stroke-dasharray"):
					ps := pathPoint.FindAllStringSubmatch(d, -1)
					if len(ps) >= 2 {
						first, last := ps[0], ps[len(ps)-1]
						fmt.Fprintf(&b, "dashed %s %s %s\n", pt(num(first[1]), num(first[2])), pt(num(last[1]), num(last[2])), stroke)
					}
				case strings.Contains(style, "fill:none") && strings.Contains(d, "A"):
					if m := ringPath.FindStringSubmatch(d); m != nil {
						rad := num(m[3])
						fmt.Fprintf(&b, "ring %s r%.0f %s\n", pt(num(m[1])-rad, num(m[2])), rad, stroke)
					}
				case strings.Contains(style, "fill-opacity"):
					ps := pathPoint.FindAllStringSubmatch(d, -1)
					x0, y0, x1, y1 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
					for _, p := range ps {
						x, y := num(p[1]), num(p[2])
						x0, x1, y0, y1 = min(x0, x), max(x1, x), min(y0, y), max(y1, y)
					}
					if len(ps) > 0 {
						fmt.Fprintf(&b, "shade %s %s\n", pt(x0, y1), pt(x1, y0))
					}
				}
			}
		case xml.CharData:
			if text != nil {
				size := ""
				if m := fontSizeRE.FindStringSubmatch(attr(text, "style")); m != nil {
					size = m[1] + "px"
				}
				// vgsvg flips text back upright with scale(1, -1): its y is negated. Inside
				// rotate(90), (x, y) is (-y, x) outside: the text reads bottom to top.
				x, y, kind := num(attr(text, "x")), -num(attr(text, "y")), "text"
				if inRotated() {
					x, y, kind = -y, x, "text-up"
				}
				fmt.Fprintf(&b, "%s %s %s %q\n", kind, pt(x, y), size, string(tok))
				text = nil
			}
		case xml.EndElement:
			switch tok.Name.Local {
			case "text":
				text = nil
			case "g":
				if len(rotated) > 0 {
					rotated = rotated[:len(rotated)-1]
				}
			}
		}
	}
	if height == 0 {
		return "", fmt.Errorf("no <svg> element")
	}
	return b.String(), nil
}

// round rounds to whole points, with -0 as 0.
func round(v float64) float64 { return math.Round(v) + 0 }

// writePlotInputs regenerates plotInputs from benchtest's target on a simulated clock. Run it
// only when the result schema changes; the goldens follow from the files.
func writePlotInputs(t *testing.T) {
	t.Helper()
	env := report.Env{Commit: "0123456789ab", Go: "go1.26.8", OS: "linux", Arch: "amd64", CPU: "Test CPU @ 2.0GHz", Cores: 2, Host: "testhost"}
	started := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	runFile := func(path string, spec bench.Spec, env report.Env, mode load.Mode, tg *benchtest.Target, events []report.Event) {
		cfg := load.DefaultConfig()
		cfg.Mode, cfg.Clients, cfg.Duration, cfg.Warmup = mode, 1, 8*time.Second, 0
		if mode == load.ClosedLoop {
			cfg.Rate = 0
		}
		cfg.Workload, _ = load.NewWorkload("ycsb-a")
		o, err := load.Run(context.Background(), tg, cfg, load.Options{Clock: tg.Clock})
		if err != nil {
			t.Fatal(err)
		}
		r, err := report.New(o, spec, env, started)
		if err != nil {
			t.Fatal(err)
		}
		r.Events = events
		if err := r.WriteFile(path); err != nil {
			t.Fatal(err)
		}
	}
	clock := benchtest.NewClock()
	runFile(plotInputs[0], bench.Spec{Protocol: "raft", Nodes: 3, Sync: "always"}, env, load.OpenLoop,
		&benchtest.Target{Clock: clock, Service: 300 * time.Microsecond, Stalls: []benchtest.Window{{From: 3 * time.Second, To: 4 * time.Second}}},
		[]report.Event{{At: 3 * time.Second, End: 4 * time.Second, Kind: "partition-leader", Target: "n2"}})
	dirty := env
	dirty.Dirty = true
	clock = benchtest.NewClock()
	runFile(plotInputs[1], bench.Spec{Protocol: "pbft", Nodes: 4, Sync: "none"}, dirty, load.ClosedLoop,
		&benchtest.Target{Clock: clock, Service: 2 * time.Millisecond}, nil)

	clock = benchtest.NewClock()
	run := load.DefaultConfig()
	run.Clients, run.Duration, run.Warmup = 1, 2*time.Second, 0
	sc := load.DefaultSweep(run)
	sc.StartRate, sc.Factor, sc.Steps = 1000, 2, 6
	steps, err := load.Sweep(context.Background(), &benchtest.Target{Clock: clock, Capacity: 6000},
		sc, load.Options{Clock: clock}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !steps[len(steps)-1].Saturated {
		t.Fatalf("the sweep fixture did not saturate in %d steps", len(steps))
	}
	s, err := report.NewSweep(sc, steps, bench.Spec{Protocol: "raft", Nodes: 3, Sync: "always"}, env, started)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plotInputs[2], buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", strings.Join(plotInputs, ", "))
}
