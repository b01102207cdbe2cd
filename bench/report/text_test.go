package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/consensusbench/consensusbench/bench/load"
)

func interval(sec int, lat int64, n int64) load.Interval {
	h := load.NewIntervalHistogram()
	_ = h.RecordValues(lat, n)
	return load.Interval{Second: sec, Hist: h, Errors: 1}
}

func TestProgressPlainLinesInAPipe(t *testing.T) {
	var buf bytes.Buffer
	p := NewProgress(&buf, false)
	p.Interval(interval(0, 2_000_000, 500))
	p.Interval(load.Interval{Second: 1, Hist: load.NewIntervalHistogram()})
	p.Done()
	// Per-second histograms have 1% buckets: 2 ms reads as 2.01 ms.
	want := "" +
		" elapsed      ops/s       p50       p99       max   errors\n" +
		"      1s        500    2.01ms    2.01ms    2.01ms        1\n" +
		"      2s          0         -         -         -        0\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestProgressRedrawsInPlaceOnATerminal(t *testing.T) {
	var buf bytes.Buffer
	p := NewProgress(&buf, true)
	p.Interval(interval(0, 1000, 10))
	p.Interval(interval(1, 1000, 20))
	p.Done()
	out := buf.String()
	if strings.Count(out, "\n") != 2 || strings.Count(out, "\r\x1b[2K") != 2 || !strings.HasSuffix(out, "1\n") {
		t.Errorf("want a header line, then two in-place redraws and one final newline; got %q", out)
	}
}
