package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

const benchKeys = 1 << 16

func benchKey(dst []byte, i uint64) []byte {
	dst = append(dst[:0], "key-"...)
	return binary.BigEndian.AppendUint64(dst, i)
}

func loaded(b *testing.B, n int, size int) *Store {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	return loadedInOrder(b, order, size)
}

// loadedInOrder is a store holding keys 0..len(order)-1, inserted in that order.
func loadedInOrder(b *testing.B, order []int, size int) *Store {
	s, err := New(Config{ExpectedKeys: len(order)})
	if err != nil {
		b.Fatal(err)
	}
	val := bytes.Repeat([]byte{'v'}, size)
	var k []byte
	for _, i := range order {
		k = benchKey(k, uint64(i))
		s.Apply(1, &Op{Kind: OpPut, Key: k, Value: val})
	}
	return s
}

// BenchmarkApply measures Apply per operation kind. Keys are 12 bytes, values size bytes;
// the digest is maintained on every write. put-new inserts keys never seen (the table
// and arena grow); put-overwrite, get and delete work on a preloaded store.
func BenchmarkApply(b *testing.B) {
	for _, size := range []int{16, 128} {
		b.Run(fmt.Sprintf("op=put-new/size=%d", size), func(b *testing.B) {
			s, _ := New(Config{})
			op := &Op{Kind: OpPut, Value: bytes.Repeat([]byte{'v'}, size)}
			i := uint64(0)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				op.Key = benchKey(op.Key, i)
				s.Apply(1, op)
				i++
			}
		})
		b.Run(fmt.Sprintf("op=put-overwrite/size=%d", size), func(b *testing.B) {
			s := loaded(b, benchKeys, size)
			op := &Op{Kind: OpPut, Value: bytes.Repeat([]byte{'w'}, size)}
			i := uint64(0)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				op.Key = benchKey(op.Key, i%benchKeys)
				s.Apply(2, op)
				i++
			}
		})
		b.Run(fmt.Sprintf("op=put-overwrite-nodigest/size=%d", size), func(b *testing.B) {
			s, err := New(Config{NoDigest: true, ExpectedKeys: benchKeys})
			if err != nil {
				b.Fatal(err)
			}
			op := &Op{Kind: OpPut, Value: bytes.Repeat([]byte{'w'}, size)}
			for i := range uint64(benchKeys) {
				op.Key = benchKey(op.Key, i)
				s.Apply(1, op)
			}
			i := uint64(0)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				op.Key = benchKey(op.Key, i%benchKeys)
				s.Apply(2, op)
				i++
			}
		})
		b.Run(fmt.Sprintf("op=put-session/size=%d", size), func(b *testing.B) {
			s := loaded(b, benchKeys, size)
			op := &Op{Kind: OpPut, Value: bytes.Repeat([]byte{'w'}, size)}
			i := uint64(0)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				op.Key = benchKey(op.Key, i%benchKeys)
				op.ClientID = i%64 + 1
				op.Seq = i/64 + 1
				s.Apply(2+i, op)
				i++
			}
		})
		b.Run(fmt.Sprintf("op=get/size=%d", size), func(b *testing.B) {
			s := loaded(b, benchKeys, size)
			op := &Op{Kind: OpGet}
			i := uint64(0)
			b.ReportAllocs()
			for b.Loop() {
				op.Key = benchKey(op.Key, i%benchKeys)
				if r := s.Apply(2, op); r.Status != StatusOK {
					b.Fatal(r.Status)
				}
				i++
			}
		})
		b.Run(fmt.Sprintf("op=delete/size=%d", size), func(b *testing.B) {
			s := loaded(b, benchKeys, size)
			op := &Op{Kind: OpDelete}
			refill := &Op{Kind: OpPut, Value: bytes.Repeat([]byte{'v'}, size)}
			i := uint64(0)
			b.ReportAllocs()
			for b.Loop() {
				if i == benchKeys {
					// Every key deleted: put them back off the clock.
					b.StopTimer()
					for j := range uint64(benchKeys) {
						refill.Key = benchKey(refill.Key, j)
						s.Apply(2, refill)
					}
					i = 0
					b.StartTimer()
				}
				op.Key = benchKey(op.Key, i)
				if r := s.Apply(2, op); r.Status != StatusOK {
					b.Fatal(r.Status)
				}
				i++
			}
		})
	}
}

// loadedShuffled is loaded with the keys inserted in a random order, as a uniform workload
// leaves them: the arena then holds records in no relation to key order, and a sorted
// walk of it misses the cache on every record.
func loadedShuffled(b *testing.B, n int, size int) *Store {
	return loadedInOrder(b, rand.New(rand.NewPCG(1, 2)).Perm(n), size)
}

// BenchmarkSnapshot streams the whole state (sorted, deterministic) to io.Discard, from a
// store loaded in key order (order=sorted) and in a random one (order=random, the layout
// a uniform workload leaves).
func BenchmarkSnapshot(b *testing.B) {
	for _, keys := range []int{1 << 16, 1 << 20} {
		for _, order := range []string{"sorted", "random"} {
			b.Run(fmt.Sprintf("keys=%d/size=128/order=%s", keys, order), func(b *testing.B) {
				s := loaded(b, keys, 128)
				if order == "random" {
					s = loadedShuffled(b, keys, 128)
				}
				n, err := s.Snapshot(io.Discard)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(n)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.Snapshot(io.Discard); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkRestore rebuilds a store (and recomputes its digest) from a snapshot stream.
func BenchmarkRestore(b *testing.B) {
	s := loaded(b, 1<<16, 128)
	var buf bytes.Buffer
	if _, err := s.Snapshot(&buf); err != nil {
		b.Fatal(err)
	}
	r, _ := New(Config{})
	b.Run("keys=65536/size=128", func(b *testing.B) {
		b.SetBytes(int64(buf.Len()))
		b.ReportAllocs()
		for b.Loop() {
			if err := r.Restore(bytes.NewReader(buf.Bytes())); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPairHash is the SHA-256 digest contribution alone, the floor under every write.
func BenchmarkPairHash(b *testing.B) {
	for _, size := range []int{16, 128} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			s, _ := New(Config{})
			key := benchKey(nil, 7)
			val := bytes.Repeat([]byte{'v'}, size)
			var h [32]byte
			b.ReportAllocs()
			for b.Loop() {
				s.pairHash(key, val, &h)
			}
		})
	}
}

// Batch benchmark shape: what a Raft replica applies for one committed client batch.
const (
	batchOps      = 16      // ops per client batch
	batchKeys     = 100_000 // keys preloaded into the store
	batchClients  = 64      // clients whose batches interleave
	batchIndexLen = 1 << 18 // precomputed random key indexes, cycled
)

// batchBench is the state of one BenchmarkApplyBatch run: a preloaded NoDigest store (as
// the Raft server configures it) and a deterministic uniform random key sequence.
type batchBench struct {
	s       *Store
	idx     []uint32 // key index; the top bit marks a get in the mixed variant
	pos     int
	seq     [batchClients]uint64
	ops     [batchOps]Op
	keys    [batchOps][12]byte
	results [batchOps]Result
	index   uint64
}

func newBatchBench(b *testing.B, size int, getFrac float64) *batchBench {
	s, err := New(Config{NoDigest: true})
	if err != nil {
		b.Fatal(err)
	}
	val := bytes.Repeat([]byte{'v'}, size)
	var k []byte
	for i := range uint64(batchKeys) {
		k = benchKey(k, i)
		s.Apply(1, &Op{Kind: OpPut, Key: k, Value: val})
	}
	rng := rand.New(rand.NewPCG(42, 43))
	bb := &batchBench{s: s, idx: make([]uint32, batchIndexLen), index: 1}
	for i := range bb.idx {
		bb.idx[i] = uint32(rng.IntN(batchKeys))
		if rng.Float64() < getFrac {
			bb.idx[i] |= 1 << 31
		}
	}
	wval := bytes.Repeat([]byte{'w'}, size)
	for i := range bb.ops {
		bb.ops[i].Value = wval
	}
	return bb
}

// next fills ops with the next batch: one client, consecutive sequence numbers.
func (bb *batchBench) next() {
	c := bb.index % batchClients
	bb.index++
	for i := range bb.ops {
		x := bb.idx[bb.pos]
		bb.pos = (bb.pos + 1) % batchIndexLen
		op := &bb.ops[i]
		op.Kind = OpPut
		if x>>31 != 0 {
			op.Kind = OpGet
		}
		binary.BigEndian.PutUint64(bb.keys[i][4:], uint64(x&^(1<<31)))
		copy(bb.keys[i][:4], "key-")
		op.Key = bb.keys[i][:]
		op.ClientID = c + 1
		bb.seq[c]++
		op.Seq = bb.seq[c]
	}
}

// apply applies the current batch the way server/raft.go does.
func (bb *batchBench) apply() {
	bb.s.ApplyBatch(bb.index, bb.ops[:], bb.results[:])
}

// BenchmarkApplyBatch applies one 16-op batch of puts per iteration, each with its client's
// session, to a NoDigest store of 100,000 keys, over uniform random keys. ns/kvop is the
// cost per operation. BenchmarkApplyBatchMixed is the same with half the ops gets.
func BenchmarkApplyBatch(b *testing.B) { benchApplyBatch(b, 0) }

func BenchmarkApplyBatchMixed(b *testing.B) { benchApplyBatch(b, 0.5) }

func benchApplyBatch(b *testing.B, getFrac float64) {
	for _, size := range []int{16, 128} {
		b.Run(fmt.Sprintf("ops=%d/keys=%d/size=%d", batchOps, batchKeys, size), func(b *testing.B) {
			bb := newBatchBench(b, size, getFrac)
			b.ReportAllocs()
			b.SetBytes(int64(batchOps * size))
			for b.Loop() {
				bb.next()
				bb.apply()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batchOps), "ns/kvop")
			for i := range bb.results {
				if bb.results[i].Status != StatusOK || bb.results[i].Duplicate {
					b.Fatalf("op %d: %+v", i, bb.results[i])
				}
			}
		})
	}
}

// BenchmarkCloneInto is the driver's share of a Raft snapshot: copying the store into the
// copy the previous snapshot handed back, while nothing else runs on the driver.
func BenchmarkCloneInto(b *testing.B) {
	for _, keys := range []int{100_000, 1 << 20} {
		b.Run(fmt.Sprintf("keys=%d/size=128", keys), func(b *testing.B) {
			s := loadedShuffled(b, keys, 128)
			dst := s.Clone()
			b.ReportAllocs()
			for b.Loop() {
				dst = s.CloneInto(dst)
			}
		})
	}
}
