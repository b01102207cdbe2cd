package report

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/perf/benchfmt"

	"github.com/consensusbench/consensusbench/bench"
	"github.com/consensusbench/consensusbench/bench/benchtest"
	"github.com/consensusbench/consensusbench/bench/load"
)

var testEnv = Env{Commit: "0123456789ab", Go: "go1.26.8", OS: "linux", Arch: "amd64", CPU: "Test CPU", Cores: 2, Host: "h1"}

var testStart = time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC)

// fakeRun runs a one-worker open-loop load on the simulated clock with a stall.
func fakeRun(t *testing.T) *load.Outcome {
	t.Helper()
	clock := benchtest.NewClock()
	cfg := load.DefaultConfig()
	cfg.Clients, cfg.Duration = 1, 3*time.Second
	target := &benchtest.Target{Clock: clock, Service: 200 * time.Microsecond,
		Stalls: []benchtest.Window{{From: time.Second, To: 1300 * time.Millisecond}}}
	o, err := load.Run(context.Background(), target, cfg, load.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestResultRoundTrip(t *testing.T) {
	o := fakeRun(t)
	r, err := New(o, bench.Spec{Protocol: "raft", Targets: []string{"a:1"}, Sync: "none"}, testEnv, testStart)
	if err != nil {
		t.Fatal(err)
	}
	r.Fsync = &Fsync{Dir: "/d", Samples: 10, BlockBytes: 4096, P50: 200_000, P99: 4_000_000}
	r.SetNodeCPU([]NodeCPU{{"n1", 1.5}, {"n2", 0.5}})
	r.Events = []Event{{At: time.Second, End: 1300 * time.Millisecond, Kind: "pause", Target: "n1"}}
	r.Verdicts = &Verdicts{Linearizability: &Verdict{OK: true, Checked: 3000}}
	var buf bytes.Buffer
	if err := r.Write(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip changed the result:\n got %+v\nwant %+v", got, r)
	}
	h, err := got.DecodeHistogram()
	if err != nil {
		t.Fatal(err)
	}
	if !h.Equals(o.Total) {
		t.Error("decoded histogram differs from the run's")
	}
	if got.Summary.Mode != load.OpenLoop || got.Load.Mode != load.OpenLoop {
		t.Errorf("mode %s/%s, want open-loop on both", got.Summary.Mode, got.Load.Mode)
	}
	if got.OpsPerCoreSecond != float64(o.Ops)/2 {
		t.Errorf("ops per core-second %v, want %v", got.OpsPerCoreSecond, float64(o.Ops)/2)
	}
	if len(got.Series) != 3 {
		t.Fatalf("%d seconds, want 3", len(got.Series))
	}
	for _, s := range got.Series {
		sh, err := DecodeHistogram(s.Histogram)
		if err != nil || sh.TotalCount() != s.Ops || s.Ops != o.Intervals[s.T].Ops() {
			t.Errorf("second %d: %d ops, histogram %v (%v), outcome %d", s.T, s.Ops, sh, err, o.Intervals[s.T].Ops())
		}
	}

	if _, err := Read(strings.NewReader(`{"schema":"consensusbench/result/v0","kind":"run"}`)); err == nil {
		t.Error("an unknown schema version was accepted")
	}
}

func TestBenchfmtLinesParseWithHeaders(t *testing.T) {
	r, err := New(fakeRun(t), bench.Spec{Protocol: "pbft", Local: 4, Sync: "always"}, testEnv, testStart)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteBenchfmt(&buf, r); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	rd := benchfmt.NewReader(&buf, "run.txt")
	var res []*benchfmt.Result
	for rd.Scan() {
		switch rec := rd.Result().(type) {
		case *benchfmt.Result:
			res = append(res, rec.Clone())
		case *benchfmt.SyntaxError:
			t.Fatal(rec)
		}
	}
	if len(res) != 1 {
		t.Fatalf("%d benchmark lines, want 1", len(res))
	}
	b := res[0]
	for k, want := range map[string]string{"goos": "linux", "pkg": "consensusbench/loadgen",
		"commit": "", "started": "", "mode": "", "cpu": ""} {
		if got := b.GetConfig(k); got != want {
			t.Errorf("header %s = %q, want %q (per-run facts must not be configuration: benchstat splits tables by it)", k, got, want)
		}
	}
	for _, part := range []string{"/protocol=pbft/", "/nodes=4/", "/sync=always/", "/byzantine=none/", "/mode=open-loop/"} {
		if !strings.Contains(b.Name.String(), part) {
			t.Errorf("name %s lacks %s", b.Name, part)
		}
	}
	if !strings.Contains(text, "# commit: 0123456789ab\n") {
		t.Error("the commit is not recorded as a comment")
	}
	if v, ok := b.Value(UnitThroughput); !ok || v != r.Summary.Throughput {
		t.Errorf("ops/s %v (%v), want %v", v, ok, r.Summary.Throughput)
	}
	if v, ok := b.Value(UnitP99); !ok || v != float64(r.Summary.Latency.P99)/1e9 {
		t.Errorf("p99 %v s, want %v ns", v, r.Summary.Latency.P99)
	}
	if rd.Units().GetBetter(UnitThroughput) != 1 || rd.Units().GetBetter(UnitP99) != -1 {
		t.Error("unit metadata does not say higher ops/s and lower latency are better")
	}
	if !strings.Contains(b.Name.String(), "protocol=pbft") || !strings.Contains(b.Name.String(), "mode=open-loop") {
		t.Errorf("name %q lacks protocol or mode", b.Name)
	}

	var hgrm bytes.Buffer
	if err := WriteHgrm(&hgrm, r); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hgrm.String(), " Value\tPercentile\tTotalCount\t1/(1-Percentile)") ||
		!strings.Contains(hgrm.String(), "#[Max") {
		t.Errorf("hgrm lacks the plotter's header or footer:\n%.300s", hgrm.String())
	}
}

// synthetic builds a result from latency samples without running anything.
func synthetic(t *testing.T, host string, samples [][]int64) *Result {
	t.Helper()
	o := &load.Outcome{Config: load.DefaultConfig(), Total: load.NewHistogram(), Elapsed: time.Duration(len(samples)) * time.Second}
	for sec, vs := range samples {
		iv := load.Interval{Second: sec, Hist: load.NewIntervalHistogram(), Errors: int64(sec)}
		for _, v := range vs {
			_ = o.Total.RecordValue(v)
			_ = iv.Hist.RecordValue(v)
		}
		o.Ops += int64(len(vs))
		o.Errors += iv.Errors
		o.Intervals = append(o.Intervals, iv)
	}
	env := testEnv
	env.Host = host
	r, err := New(o, bench.Spec{Protocol: "raft", Targets: []string{"x:1"}}, env, testStart)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMergeEqualsOneHistogramOfAllSamples(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const hosts, secs, perSec = 3, 4, 500
	all := load.NewHistogram()
	allSec := make([]*hdrhistogram.Histogram, secs)
	for i := range allSec {
		allSec[i] = load.NewIntervalHistogram()
	}
	var rs []*Result
	for h := 0; h < hosts; h++ {
		samples := make([][]int64, secs)
		for s := range samples {
			for i := 0; i < perSec*(h+1); i++ {
				// Each host has its own latency scale, so averaging percentiles would be wrong.
				v := int64(rng.ExpFloat64() * float64(h+1) * 1e6)
				samples[s] = append(samples[s], v)
				_ = all.RecordValue(v)
				_ = allSec[s].RecordValue(v)
			}
		}
		rs = append(rs, synthetic(t, "host"+string(rune('a'+h)), samples))
	}
	m, err := Merge(rs)
	if err != nil {
		t.Fatal(err)
	}
	h, err := m.DecodeHistogram()
	if err != nil {
		t.Fatal(err)
	}
	if !h.Equals(all) {
		t.Fatal("merged histogram differs from the histogram of all samples")
	}
	if m.Summary.Latency != PercentilesOf(all) || m.Summary.Ops != all.TotalCount() {
		t.Errorf("merged summary %+v, want %+v over %d ops", m.Summary.Latency, PercentilesOf(all), all.TotalCount())
	}
	if len(m.Series) != secs {
		t.Fatalf("%d merged seconds, want %d", len(m.Series), secs)
	}
	for s, x := range m.Series {
		sh, _ := DecodeHistogram(x.Histogram)
		if !sh.Equals(allSec[s]) || x.P99 != allSec[s].ValueAtQuantile(99) || x.Errors != int64(hosts*s) {
			t.Errorf("second %d: merged interval differs from all its samples", s)
		}
	}
	if len(m.MergedFrom) != hosts || m.Load.Clients != hosts*rs[0].Load.Clients {
		t.Errorf("merged from %d hosts with %d clients", len(m.MergedFrom), m.Load.Clients)
	}

	other := synthetic(t, "z", [][]int64{{1000}})
	other.Cluster.Protocol = "pbft"
	if _, err := Merge([]*Result{rs[0], other}); err == nil || !strings.Contains(err.Error(), "protocol") {
		t.Errorf("merging raft with pbft: %v, want a protocol error", err)
	}
	short := synthetic(t, "s", [][]int64{{1000}, {1000}})
	if _, err := Merge([]*Result{rs[0], short}); err == nil || !strings.Contains(err.Error(), "windows differ") {
		t.Errorf("merging a 4 s window with a 2 s one: %v, want a window error", err)
	}
	late := synthetic(t, "l", [][]int64{{1000}, {1000}, {1000}, {1000}})
	late.Started = late.Started.Add(MergeStartTolerance + time.Second)
	if _, err := Merge([]*Result{rs[0], late}); err == nil || !strings.Contains(err.Error(), "apart") {
		t.Errorf("merging results started %v apart: %v, want a start-time error", MergeStartTolerance+time.Second, err)
	}
	cut := synthetic(t, "c", [][]int64{{1000}, {1000}, {1000}, {1000}})
	cut.Interrupted = true
	if _, err := Merge([]*Result{rs[0], cut}); err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("merging an interrupted result: %v, want a refusal", err)
	}
	wide := synthetic(t, "w", [][]int64{{1000}, {1000}, {1000}, {1000}})
	wide.Load.Clients, wide.Load.Rate = 64, 5000 // each host's share may differ
	if _, err := Merge([]*Result{rs[0], wide}); err != nil {
		t.Errorf("merging hosts with different shares of the load: %v", err)
	}
}

// samples returns n benchmark results whose throughput is centre with 1% noise.
func samples(rng *rand.Rand, centre float64, n int) []*benchfmt.Result {
	var out []*benchfmt.Result
	for i := 0; i < n; i++ {
		tput := centre * (1 + 0.01*rng.NormFloat64())
		out = append(out, &benchfmt.Result{Name: benchfmt.Name("Loadgen/protocol=raft"), Iters: 1,
			Values: []benchfmt.Value{{Value: tput, Unit: UnitThroughput}, {Value: 1e5 / tput, Unit: UnitP99}}})
	}
	return out
}

func TestCompareFlagsRegressionNotNoise(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	old := samples(rng, 10000, 10)
	noise := samples(rng, 10000, 10)
	worse := samples(rng, 8000, 10)

	cs, err := Compare(old, noise, nil, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Regression(5) {
			t.Errorf("noise flagged as a regression: %s %s %+.1f%% p=%.3f", c.Name, c.Unit, c.DeltaPct, c.Test.P)
		}
	}
	cs, err = Compare(old, worse, nil, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 {
		t.Fatalf("%d comparisons, want throughput and p99", len(cs))
	}
	for _, c := range cs {
		if !c.Regression(5) || c.Regression(30) {
			t.Errorf("%s: delta %+.1f%% p=%.4f; want a regression above 5%% and below 30%%", c.Unit, c.DeltaPct, c.Test.P)
		}
	}
	var buf bytes.Buffer
	if err := WriteComparison(&buf, cs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "-20.") || !strings.Contains(buf.String(), "p99-sec") {
		t.Errorf("comparison table lacks the change:\n%s", buf.String())
	}
}

func TestReadSamplesTakesJSONAndText(t *testing.T) {
	dir := t.TempDir()
	r := synthetic(t, "a", [][]int64{{1000, 2000, 3000}})
	jsonPath := filepath.Join(dir, "a.json")
	if err := r.WriteFile(jsonPath); err != nil {
		t.Fatal(err)
	}
	var txt bytes.Buffer
	if err := WriteBenchfmt(&txt, r); err != nil {
		t.Fatal(err)
	}
	txtPath := filepath.Join(dir, "a.txt")
	if err := os.WriteFile(txtPath, txt.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := ReadSamples([]string{jsonPath, txtPath}, false)
	if err != nil {
		t.Fatal(err)
	}
	res := s.Results
	if len(res) != 2 || res[0].Name.String() != res[1].Name.String() {
		t.Fatalf("got %d results, names must match between JSON and text", len(res))
	}
	a, _ := res[0].Value(UnitThroughput)
	b, _ := res[1].Value(UnitThroughput)
	if a != b || a != r.Summary.Throughput {
		t.Errorf("throughput %v (json) %v (text), want %v", a, b, r.Summary.Throughput)
	}
}

func TestMeasureFdatasync(t *testing.T) {
	f, err := MeasureFdatasync(t.TempDir(), 5, 512)
	if err != nil {
		t.Fatal(err)
	}
	if f.Samples != 5 || f.P50 <= 0 || f.P99 < f.P50 {
		t.Errorf("probe %+v: want 5 samples and 0 < p50 <= p99", f)
	}
	if _, err := MeasureFdatasync(t.TempDir(), 0, 512); err == nil {
		t.Error("zero samples accepted")
	}
}

func TestCPUSeconds(t *testing.T) {
	s, err := PIDCPUSeconds(os.Getpid())
	if err != nil || s < 0 {
		t.Errorf("own CPU seconds %v, %v", s, err)
	}
	if ProcessCPUSeconds() <= 0 {
		t.Error("rusage reports no CPU time for a running test")
	}
}

func TestFormatLatency(t *testing.T) {
	for ns, want := range map[int64]string{999: "999ns", 1234: "1.23µs", 45_600: "45.6µs", 999_000: "999µs",
		2_500_000: "2.50ms", 1_200_000_000: "1.20s", 61_000_000_000: "61.0s"} {
		if got := FormatLatency(ns); got != want {
			t.Errorf("FormatLatency(%d) = %s, want %s", ns, got, want)
		}
	}
}
