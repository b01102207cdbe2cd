package load

import (
	"bytes"
	"strings"
	"testing"

	"github.com/consensusbench/consensusbench/bench"
)

func TestPresetsMapToYCSB(t *testing.T) {
	want := map[string]struct {
		read float64
		dist string
	}{
		"write-only": {0, DistUniform},
		"read-only":  {1, DistUniform},
		"ycsb-a":     {0.5, DistZipfian},
		"ycsb-b":     {0.95, DistZipfian},
		"ycsb-c":     {1, DistZipfian},
	}
	for name, w := range want {
		got, err := NewWorkload(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.ReadRatio != w.read || got.Dist != w.dist {
			t.Errorf("%s: read ratio %v dist %s, want %v %s", name, got.ReadRatio, got.Dist, w.read, w.dist)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("%s: preset invalid: %v", name, err)
		}
	}
	if _, err := NewWorkload("ycsb-z"); err == nil {
		t.Error("unknown preset accepted")
	}
}

func TestWorkloadValidateNamesTheProblem(t *testing.T) {
	base, _ := NewWorkload("ycsb-a")
	cases := []struct {
		name string
		mod  func(*Workload)
		want string
	}{
		{"read ratio", func(w *Workload) { w.ReadRatio = 1.5 }, "read ratio"},
		{"keys", func(w *Workload) { w.Keys = 0 }, "keys"},
		{"value size", func(w *Workload) { w.ValueSize = ValueSizeMax + 1 }, "value size"},
		{"dist", func(w *Workload) { w.Dist = "normal" }, "distribution"},
		{"zipf one", func(w *Workload) { w.ZipfS = 1 }, "zipf"},
	}
	for _, c := range cases {
		w := base
		c.mod(&w)
		err := w.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error naming %q", c.name, err, c.want)
		}
	}
}

func TestGeneratorIsDeterministicPerSeedAndWorker(t *testing.T) {
	w, _ := NewWorkload("ycsb-a")
	draw := func(seed uint64, worker int) string {
		w.Seed = seed
		g := NewGenerator(w, worker, 4)
		ops := make([]bench.Op, 4)
		var b bytes.Buffer
		for i := 0; i < 50; i++ {
			g.Fill(ops)
			for _, op := range ops {
				b.WriteString(op.Kind.String())
				b.Write(op.Key)
			}
		}
		return b.String()
	}
	if a, b := draw(7, 1), draw(7, 1); a != b {
		t.Error("same seed and worker gave different operations")
	}
	if draw(7, 1) == draw(7, 2) {
		t.Error("different workers gave the same operations")
	}
	if draw(7, 1) == draw(8, 1) {
		t.Error("different seeds gave the same operations")
	}
}

func TestGeneratorMixKeysAndValues(t *testing.T) {
	w, _ := NewWorkload("ycsb-b")
	w.Keys = 1000
	w.ValueSize = 64
	g := NewGenerator(w, 0, 1)
	ops := make([]bench.Op, 1)
	reads := 0
	const n = 20000
	for i := 0; i < n; i++ {
		g.Fill(ops)
		op := ops[0]
		if len(op.Key) != len(KeyPrefix)+keyDigits || !bytes.HasPrefix(op.Key, []byte(KeyPrefix)) {
			t.Fatalf("key %q: want %s + %d digits", op.Key, KeyPrefix, keyDigits)
		}
		if op.Kind == bench.OpRead {
			reads++
		} else if len(op.Value) != 64 {
			t.Fatalf("write value %d bytes, want 64", len(op.Value))
		}
	}
	// 95% reads: a binomial with n=20000 has sd ~0.15%; 1% is far outside noise.
	if got := float64(reads) / n; got < 0.94 || got > 0.96 {
		t.Errorf("read fraction %.3f, want 0.95", got)
	}
}

// hottestShare returns the fraction of draws that hit the most drawn key.
func hottestShare(w Workload, n int) float64 {
	g := NewGenerator(w, 0, 1)
	counts := make(map[uint64]int)
	best := 0
	for i := 0; i < n; i++ {
		k := g.KeyIndex()
		if k >= uint64(w.Keys) {
			panic("key index out of range")
		}
		counts[k]++
		best = max(best, counts[k])
	}
	return float64(best) / float64(n)
}

func TestZipfianIsSkewedAndUniformIsNot(t *testing.T) {
	w, _ := NewWorkload("ycsb-c")
	w.Keys = 10000
	const n = 100000
	// Zipf s=0.99 over 10^4 keys: the top key has 1/zeta(10^4, 0.99) ~ 10% of the draws.
	if got := hottestShare(w, n); got < 0.05 {
		t.Errorf("zipfian s=0.99 hottest key share %.4f, want > 0.05", got)
	}
	w.ZipfS = 1.5 // math/rand/v2's generator
	if got := hottestShare(w, n); got < 0.2 {
		t.Errorf("zipfian s=1.5 hottest key share %.4f, want > 0.2", got)
	}
	w.Dist = DistUniform
	// Uniform: expected 10 hits per key, the maximum over 10^4 keys stays below ~30.
	if got := hottestShare(w, n); got > 0.001 {
		t.Errorf("uniform hottest key share %.4f, want < 0.001", got)
	}
}

func BenchmarkGeneratorFill(b *testing.B) {
	for _, preset := range []string{"write-only", "ycsb-a"} {
		b.Run("workload="+preset+"/batch=16", func(b *testing.B) {
			w, _ := NewWorkload(preset)
			g := NewGenerator(w, 0, 16)
			ops := make([]bench.Op, 16)
			b.ReportAllocs()
			for b.Loop() {
				g.Fill(ops)
			}
		})
	}
}
