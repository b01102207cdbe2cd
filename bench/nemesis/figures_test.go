package nemesis

import (
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/consensusbench/consensusbench/bench/report"
)

// series builds a per-second series: rates[i] ops in second i, every op taking lat[i].
func series(t *testing.T, rates []int64, lat []time.Duration) []report.Second {
	t.Helper()
	var out []report.Second
	for i, n := range rates {
		h := hdrhistogram.New(1000, int64(60*time.Second), 2)
		for range n {
			if err := h.RecordValue(int64(lat[i])); err != nil {
				t.Fatal(err)
			}
		}
		s, err := report.SecondOf(i, h, 0)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func TestAnalyzeLeaderKill(t *testing.T) {
	ms := time.Millisecond
	// 1000 ops/s for 5 s, the fault at 5.5 s, nothing in second 6, 500 in second 7, back
	// to 950 in second 8.
	rates := []int64{1000, 1000, 1000, 1000, 1000, 600, 0, 500, 950, 1000}
	lat := []time.Duration{ms, ms, ms, ms, ms, 900 * ms, ms, 200 * ms, 2 * ms, ms}
	r := &report.Result{Series: series(t, rates, lat),
		Events: []report.Event{{At: 5500 * ms, End: 7 * time.Second, Kind: "kill-leader", Target: "n1"}, {At: 7 * time.Second, Kind: "restart"}}}
	spans := []Span{{Call: 5 * time.Second, Return: 5600 * ms}, {Call: 5600 * ms, Return: 7100 * ms}, {Call: 7 * time.Second, Return: 7050 * ms}}
	figs, err := Analyze(r, spans)
	if err != nil {
		t.Fatal(err)
	}
	if len(figs) != 1 {
		t.Fatalf("%d figures, want 1 (restart is no fault)", len(figs))
	}
	f := figs[0]
	if f.PreRate != 1000 {
		t.Errorf("PreRate = %v, want 1000", f.PreRate)
	}
	// The span issued before the fault does not count; of those issued after it, the one
	// issued at 7 s completed first (7.05 s).
	if f.Unavailable != 1550*ms {
		t.Errorf("Unavailable = %v, want 1.55s", f.Unavailable)
	}
	if f.MinRate != 0 || f.Dip != 1 {
		t.Errorf("MinRate %v Dip %v, want 0 and 1", f.MinRate, f.Dip)
	}
	// Second 5 dips below 900; second 8 (950 >= 900) is the first back: 2.5 s after it.
	if f.Recovery != 2500*ms {
		t.Errorf("Recovery = %v, want 2.5s", f.Recovery)
	}
	// Inside: seconds 5 and 6 (window 5.5-7 s); outside: 0-4 and 7-9.
	if f.Inside.P99 < int64(800*ms) {
		t.Errorf("inside p99 %v should show the 900 ms second", time.Duration(f.Inside.P99))
	}
	if f.Outside.P50 > int64(3*ms) {
		t.Errorf("outside p50 %v should be the quiet 1 ms", time.Duration(f.Outside.P50))
	}
	Annotate(r, figs)
	if r.Events[0].Detail == "" || r.Events[1].Detail != "" {
		t.Errorf("Annotate: %q / %q", r.Events[0].Detail, r.Events[1].Detail)
	}
	// The figures are in the result as numbers too, and only on the fault.
	ff := r.Events[0].Figures
	if ff == nil || r.Events[1].Figures != nil {
		t.Fatalf("Annotate: figures %+v / %+v", ff, r.Events[1].Figures)
	}
	if ff.UnavailableNs != int64(1550*ms) || ff.RecoveryNs != int64(2500*ms) || ff.PreRate != 1000 || ff.Dip != 1 || ff.Inside != f.Inside {
		t.Errorf("typed figures %+v do not match %+v", ff, f)
	}
}

func TestAnalyzeWithoutSpansOrPreFaultSeconds(t *testing.T) {
	ms := time.Millisecond
	rates := []int64{0, 0, 300, 1000}
	lat := []time.Duration{ms, ms, ms, ms}
	r := &report.Result{Series: series(t, rates, lat), Events: []report.Event{{At: 200 * ms, Kind: "partition-leader", End: 1200 * ms}}}
	figs, err := Analyze(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := figs[0]
	if f.PreRate != 0 || f.Dip != -1 || f.Recovery != -1 {
		t.Errorf("no pre-fault second: PreRate %v Dip %v Recovery %v", f.PreRate, f.Dip, f.Recovery)
	}
	// Whole-second resolution: second 2 is the first with ops.
	if f.Unavailable != 1800*ms {
		t.Errorf("Unavailable = %v, want 1.8s", f.Unavailable)
	}
}

func TestAnalyzeNeverRecovers(t *testing.T) {
	ms := time.Millisecond
	rates := []int64{100, 100, 0, 0}
	lat := []time.Duration{ms, ms, ms, ms}
	r := &report.Result{Series: series(t, rates, lat), Events: []report.Event{{At: 2 * time.Second, Kind: "kill-all"}}}
	figs, err := Analyze(r, []Span{})
	if err != nil {
		t.Fatal(err)
	}
	if f := figs[0]; f.Unavailable != -1 || f.Recovery != -1 || f.Dip != 1 {
		t.Errorf("got %+v, want never available, never recovered, dip 1", f)
	}
}

func TestAnalyzeNoDip(t *testing.T) {
	ms := time.Millisecond
	rates := []int64{100, 100, 100, 98, 100, 100}
	lat := []time.Duration{ms, ms, ms, ms, ms, ms}
	r := &report.Result{Series: series(t, rates, lat), Events: []report.Event{{At: 2 * time.Second, Kind: "transfer-leader"}}}
	figs, err := Analyze(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f := figs[0]; f.Recovery != 0 || f.MinRate != 98 || f.Dip < 0.019 || f.Dip > 0.021 {
		t.Errorf("got %+v, want no recovery needed and a 2%% dip", f)
	}
}
