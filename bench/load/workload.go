package load

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/consensusbench/consensusbench/bench"
)

// Key distributions.
const (
	DistUniform = "uniform"
	DistZipfian = "zipfian"
)

// Workload limits, checked by Workload.Validate.
const (
	KeysMax       = 1 << 31 // keys index into an int, and YCSB-sized tables fit
	ValueSizeMax  = 1 << 20 // one value must fit well inside a client frame
	KeyPrefix     = "user"  // YCSB's key prefix, so key lengths match YCSB's
	keyDigits     = 12      // fixed width: every key has the same length
	ycsbZipfS     = 0.99    // YCSB's zipfian constant
	zipfSMin      = 0.01    // below this a zipfian is indistinguishable from uniform
	zipfSMax      = 10      // beyond this one key takes practically every request
	zipfSExcluded = 0.001   // s within this of 1 has no closed form in Gray's generator
)

// Workload describes what each request does. The zero value is not valid; start from a preset.
type Workload struct {
	Name      string  `json:"name"`       // preset it started from, or "custom"
	ReadRatio float64 `json:"read_ratio"` // fraction of ops that are reads, 0..1
	Keys      int     `json:"keys"`       // key space size
	ValueSize int     `json:"value_size"` // bytes per written value
	Dist      string  `json:"dist"`       // DistUniform or DistZipfian
	ZipfS     float64 `json:"zipf_s"`     // zipfian exponent (YCSB uses 0.99)
	Seed      uint64  `json:"seed"`       // worker w draws from PCG(Seed, w)
}

// Preset describes one named workload.
type Preset struct {
	Name, Doc string
	ReadRatio float64
	Dist      string
}

// Presets are the named workloads. YCSB's core workloads map as follows (YCSB's update is a
// write of the whole value here; its record scans and inserts are out of scope):
//
//	ycsb-a: 50% reads, 50% updates, zipfian (s = 0.99)  "update heavy"
//	ycsb-b: 95% reads,  5% updates, zipfian (s = 0.99)  "read mostly"
//	ycsb-c: 100% reads,             zipfian (s = 0.99)  "read only"
var Presets = []Preset{
	{"write-only", "100% writes, uniform keys", 0, DistUniform},
	{"read-only", "100% reads, uniform keys", 1, DistUniform},
	{"ycsb-a", "YCSB A: 50% reads / 50% updates, zipfian keys", 0.5, DistZipfian},
	{"ycsb-b", "YCSB B: 95% reads / 5% updates, zipfian keys", 0.95, DistZipfian},
	{"ycsb-c", "YCSB C: 100% reads, zipfian keys", 1, DistZipfian},
}

// NewWorkload returns the named preset with the default key space and value size.
func NewWorkload(name string) (Workload, error) {
	for _, p := range Presets {
		if p.Name == name {
			return Workload{Name: p.Name, ReadRatio: p.ReadRatio, Keys: 100_000, ValueSize: 128,
				Dist: p.Dist, ZipfS: ycsbZipfS, Seed: 1}, nil
		}
	}
	return Workload{}, fmt.Errorf("unknown workload %q (want write-only, read-only, ycsb-a, ycsb-b or ycsb-c)", name)
}

// Validate checks every field against its limit.
func (w Workload) Validate() error {
	switch {
	case w.ReadRatio < 0 || w.ReadRatio > 1 || math.IsNaN(w.ReadRatio):
		return fmt.Errorf("read ratio %v outside [0, 1]", w.ReadRatio)
	case w.Keys < 1 || w.Keys > KeysMax:
		return fmt.Errorf("keys %d outside [1, %d]", w.Keys, KeysMax)
	case w.ValueSize < 0 || w.ValueSize > ValueSizeMax:
		return fmt.Errorf("value size %d outside [0, %d]", w.ValueSize, ValueSizeMax)
	case w.Dist != DistUniform && w.Dist != DistZipfian:
		return fmt.Errorf("unknown key distribution %q (want uniform or zipfian)", w.Dist)
	case w.Dist == DistZipfian && (w.ZipfS < zipfSMin || w.ZipfS > zipfSMax || math.Abs(w.ZipfS-1) < zipfSExcluded):
		return fmt.Errorf("zipf exponent %v outside [%v, %v] or too close to 1", w.ZipfS, zipfSMin, zipfSMax)
	}
	return nil
}

// zipfTable holds what Gray et al.'s zipfian generator ("Quickly generating billion-record
// synthetic databases", SIGMOD 1994, as used by YCSB) precomputes. It is shared read-only by
// every worker; computing zeta(n) costs O(n) once.
type zipfTable struct {
	n                   float64
	theta, alpha, zetan float64
	eta, half           float64
}

func newZipfTable(n int, theta float64) *zipfTable {
	zeta := func(k int) float64 {
		sum := 0.0
		for i := 1; i <= k; i++ {
			sum += 1 / math.Pow(float64(i), theta)
		}
		return sum
	}
	zetan := zeta(n)
	zeta2 := zeta(min(n, 2))
	t := &zipfTable{n: float64(n), theta: theta, alpha: 1 / (1 - theta), zetan: zetan}
	t.eta = (1 - math.Pow(2/t.n, 1-theta)) / (1 - zeta2/zetan)
	t.half = 1 + math.Pow(0.5, theta)
	return t
}

// rank draws a 0-based rank: 0 is the most popular key.
func (t *zipfTable) rank(u float64) uint64 {
	uz := u * t.zetan
	if uz < 1 {
		return 0
	}
	if uz < t.half {
		return min(1, uint64(t.n)-1)
	}
	r := uint64(t.n * math.Pow(t.eta*u-t.eta+1, t.alpha))
	return min(r, uint64(t.n)-1)
}

// Generator produces one worker's operations. It is not safe for concurrent use: each worker
// owns one, with its own random stream, so runs are reproducible from the seed.
type Generator struct {
	w      Workload
	rng    *rand.Rand
	table  *zipfTable // theta < 1
	heavy  *rand.Zipf // theta > 1 (math/rand/v2 supports s > 1 only)
	keys   [][]byte   // per-op key buffers, reused
	values []byte     // one random value, shared by the batch's writes
}

// keySpace is shared by every Generator of a run: it carries the zipfian table.
type keySpace struct {
	w     Workload
	table *zipfTable
}

func newKeySpace(w Workload) *keySpace {
	ks := &keySpace{w: w}
	if w.Dist == DistZipfian && w.ZipfS < 1 {
		ks.table = newZipfTable(w.Keys, w.ZipfS)
	}
	return ks
}

// NewGenerator returns the generator for worker number worker. Two generators with the same
// workload, worker and batch size produce the same operations.
func NewGenerator(w Workload, worker, batch int) *Generator {
	return newGenerator(newKeySpace(w), worker, batch)
}

func newGenerator(ks *keySpace, worker, batch int) *Generator {
	g := &Generator{w: ks.w, rng: rand.New(rand.NewPCG(ks.w.Seed, uint64(worker))), table: ks.table}
	if ks.w.Dist == DistZipfian && ks.w.ZipfS > 1 {
		g.heavy = rand.NewZipf(g.rng, ks.w.ZipfS, 1, uint64(ks.w.Keys-1))
	}
	g.keys = make([][]byte, batch)
	for i := range g.keys {
		g.keys[i] = make([]byte, 0, len(KeyPrefix)+keyDigits)
	}
	g.values = make([]byte, ks.w.ValueSize)
	for i := range g.values {
		g.values[i] = byte('a' + g.rng.IntN(26))
	}
	return g
}

// KeyIndex draws the next key's index in [0, Keys).
func (g *Generator) KeyIndex() uint64 {
	n := uint64(g.w.Keys)
	switch {
	case g.table != nil:
		return scramble(g.table.rank(g.rng.Float64()), n)
	case g.heavy != nil:
		return scramble(g.heavy.Uint64(), n)
	}
	return g.rng.Uint64N(n)
}

// scramble spreads zipfian ranks over the key space (YCSB's "scrambled zipfian"), so the hot
// keys are not neighbours and do not all land in one range of a sorted store.
func scramble(rank, n uint64) uint64 {
	if n <= 1 {
		return 0
	}
	// FNV-1a over the rank's 8 bytes: cheap, fixed, and a bijection is not needed because
	// collisions only merge a few ranks' popularity.
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < 8; i++ {
		h ^= (rank >> (8 * i)) & 0xff
		h *= prime
	}
	return h % n
}

// Fill overwrites ops (len(ops) <= batch given to NewGenerator) with the next operations.
// Keys and values point into the generator's buffers: valid until the next Fill.
func (g *Generator) Fill(ops []bench.Op) {
	for i := range ops {
		op := &ops[i]
		k := g.keys[i][:0]
		k = append(k, KeyPrefix...)
		k = appendPadded(k, g.KeyIndex(), keyDigits)
		g.keys[i] = k
		op.Key = k
		op.Found = false
		op.Out = op.Out[:0]
		if g.w.ReadRatio > 0 && (g.w.ReadRatio >= 1 || g.rng.Float64() < g.w.ReadRatio) {
			op.Kind = bench.OpRead
			op.Value = nil
		} else {
			op.Kind = bench.OpWrite
			op.Value = g.values
		}
	}
}

// appendPadded appends v in decimal, left-padded with zeros to width digits.
func appendPadded(dst []byte, v uint64, width int) []byte {
	var buf [20]byte
	s := strconv.AppendUint(buf[:0], v, 10)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}
