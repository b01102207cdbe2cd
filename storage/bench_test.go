package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// countingFS counts fdatasync calls on WAL files so the benchmark reports real fsyncs/s.
type countingFS struct {
	OSFS
	syncs atomic.Int64
}

type countingFile struct {
	File
	fs *countingFS
}

func (c *countingFS) Create(name string) (File, error) {
	f, err := c.OSFS.Create(name)
	if err != nil {
		return nil, err
	}
	return &countingFile{File: f, fs: c}, nil
}

func (f *countingFile) Sync() error {
	f.fs.syncs.Add(1)
	return f.File.Sync()
}

const (
	benchKeepEntries = 1 << 16
	benchRawFileSize = 64 << 20
	benchRawEvery    = 32 // WAL batches per block of interleaved raw samples
	benchLatSamples  = 1 << 16
)

// BenchmarkWALAppend appends batches of 128-byte entries, waiting for each batch to be
// durable, so each iteration is one group commit: one write and one fdatasync.
//
// The physical ceiling is measured side by side: after every timed WAL batch (timer
// stopped) the benchmark writes the same number of bytes to a preallocated file in the
// same directory and fdatasyncs it (fallocated space: the WAL's own cost with zero=off).
// raw-fsyncs/s is that raw rate at this write size and
// pct-of-raw is WAL throughput as a percentage of raw-fsyncs/s x batch, so disk noise
// affects both alike. probe-* are ProbeSync's 4 KiB figures for the directory.
func BenchmarkWALAppend(b *testing.B) {
	const size = 128
	for _, policy := range []SyncPolicy{SyncAlways, SyncNone} {
		for _, inflight := range []int{1, 2} {
			for _, batch := range []int{1, 16, 256, 1024} {
				if policy == SyncNone && (inflight != 1 || batch != 256 && batch != 1) {
					continue
				}
				name := fmt.Sprintf("sync=%s/inflight=%d/batch=%d/size=%d", policy, inflight, batch, size)
				b.Run(name, func(b *testing.B) {
					benchWAL(b, policy, inflight, batch, size, 0)
				})
				if policy == SyncAlways && inflight == 1 {
					// The same without zeroing ahead (zeroahead.go), side by side.
					b.Run(name+"/zero=off", func(b *testing.B) {
						benchWAL(b, policy, inflight, batch, size, -1)
					})
				}
			}
		}
	}
}

// benchWAL keeps up to inflight Append calls outstanding: with 1 each batch is encoded,
// written and synced before the next starts; with 2 the next batch is encoded while the
// previous one syncs, as a server pipelines, and the writer still takes one batch per
// fdatasync (fsyncs/s x batch = entries/s shows it).
func benchWAL(b *testing.B, policy SyncPolicy, inflight, batch, size int, zeroAhead int64) {
	dir := b.TempDir()
	synced := policy == SyncAlways
	var probe SyncProbe
	var raw File
	var rawBuf []byte
	if synced {
		var err error
		if probe, err = ProbeSync(dir, 200); err != nil {
			b.Fatal(err)
		}
		if raw, err = rawFile(nil, dir); err != nil {
			b.Fatal(err)
		}
		defer func() { raw.Close() }()
		rawBuf = make([]byte, batchHeaderLen+batch*(recordHeaderLen+entryFixedLen+size))
		for i := range rawBuf {
			rawBuf[i] = byte(i*13 + 1)
		}
	}
	fs := &countingFS{}
	w, _, err := Open(dir, Options{Sync: policy, FS: fs, ZeroAheadBytes: zeroAhead})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	ents := make([]Entry, batch)
	data := make([]byte, size)
	for i := range ents {
		ents[i] = Entry{Term: 1, Data: data}
	}
	next := uint64(1)
	var rawTime time.Duration
	var rawOff int64
	seqs := make([]uint64, 0, inflight)
	iter, rawN := 0, 0
	// Per-batch latencies (inflight=1 only): medians resist the multi-millisecond stalls a
	// shared disk adds, which dominate means.
	walLat := make([]time.Duration, 0, benchLatSamples)
	rawLat := make([]time.Duration, 0, benchLatSamples)
	b.SetBytes(int64(batch * size))
	b.ReportAllocs()
	syncs0 := fs.syncs.Load()
	for b.Loop() {
		for i := range ents {
			ents[i].Index = next
			next++
		}
		t0 := time.Now()
		seq, err := w.Append(ents, HardState{Term: 1})
		if err != nil {
			b.Fatal(err)
		}
		seqs = append(seqs, seq)
		if len(seqs) == inflight {
			if err := w.WaitDurable(seqs[0]); err != nil {
				b.Fatal(err)
			}
			seqs = append(seqs[:0], seqs[1:]...)
			if inflight == 1 && len(walLat) < cap(walLat) {
				walLat = append(walLat, time.Since(t0))
			}
		}
		// Steady state: the server compacts behind its snapshots, which bounds the
		// in-memory index and removes old segments.
		if next-w.FirstIndex() > benchKeepEntries {
			if _, err := w.Compact(next - 1 - benchKeepEntries/2); err != nil {
				b.Fatal(err)
			}
		}
		iter++
		if synced && iter%benchRawEvery == 0 {
			// Drain the pipeline, then take as many raw samples as WAL batches since the
			// last block, with the timer stopped, so the WAL never runs beside the raw I/O.
			b.StopTimer()
			if len(seqs) > 0 {
				if err := w.WaitDurable(seqs[len(seqs)-1]); err != nil {
					b.Fatal(err)
				}
				seqs = seqs[:0]
			}
			for range benchRawEvery {
				t := time.Now()
				if rawOff+int64(len(rawBuf)) > benchRawFileSize {
					// Fresh preallocated space, never rewritten blocks: what a WAL segment
					// costs without zeroing ahead (zero=off); with it the WAL can beat raw.
					if raw, err = rawFile(raw, dir); err != nil {
						b.Fatal(err)
					}
					rawOff = 0
				}
				if _, err := raw.WriteAt(rawBuf, rawOff); err != nil {
					b.Fatal(err)
				}
				if err := raw.Sync(); err != nil {
					b.Fatal(err)
				}
				d := time.Since(t)
				rawTime += d
				if len(rawLat) < cap(rawLat) {
					rawLat = append(rawLat, d)
				}
				rawOff += int64(len(rawBuf))
				rawN++
			}
			b.StartTimer()
		}
	}
	if len(seqs) > 0 {
		if err := w.WaitDurable(seqs[len(seqs)-1]); err != nil {
			b.Fatal(err)
		}
	}
	secs := b.Elapsed().Seconds()
	entries := float64(next - 1)
	b.ReportMetric(entries/secs, "entries/s")
	b.ReportMetric(float64(fs.syncs.Load()-syncs0)/secs, "fsyncs/s")
	if synced && rawN > 0 {
		rawRate := float64(rawN) / rawTime.Seconds()
		b.ReportMetric(rawRate, "raw-fsyncs/s")
		b.ReportMetric(100*entries/secs/(rawRate*float64(batch)), "pct-of-raw")
		if len(walLat) > 0 {
			slices.Sort(walLat)
			slices.Sort(rawLat)
			wp, rp := walLat[len(walLat)/2], rawLat[len(rawLat)/2]
			b.ReportMetric(float64(wp.Microseconds()), "wal-p50-us")
			b.ReportMetric(float64(rp.Microseconds()), "raw-p50-us")
			b.ReportMetric(100*float64(rp)/float64(wp), "pct-of-raw-p50")
		}
		b.ReportMetric(probe.PerSec, "probe-fsyncs/s")
		b.ReportMetric(float64(probe.P50.Microseconds()), "probe-p50-us")
		b.ReportMetric(float64(probe.P99.Microseconds()), "probe-p99-us")
	}
}

// rawFile replaces old (if any) with a fresh preallocated file for the raw baseline.
func rawFile(old File, dir string) (File, error) {
	name := filepath.Join(dir, "raw.bench")
	if old != nil {
		old.Close()
		if err := os.Remove(name); err != nil {
			return nil, err
		}
	}
	f, err := (OSFS{}).Create(name)
	if err != nil {
		return nil, err
	}
	if err := f.Allocate(benchRawFileSize); err != nil && err != ErrAllocateUnsupported {
		return nil, err
	}
	return f, nil
}

// BenchmarkProbeSync is the raw fdatasync rate of the benchmark's temp directory alone.
func BenchmarkProbeSync(b *testing.B) {
	dir := b.TempDir()
	b.ReportAllocs()
	var last SyncProbe
	for b.Loop() {
		p, err := ProbeSync(dir, 100)
		if err != nil {
			b.Fatal(err)
		}
		last = p
	}
	b.ReportMetric(last.PerSec, "raw-fsyncs/s")
	b.ReportMetric(float64(last.P50.Microseconds()), "p50-us")
	b.ReportMetric(float64(last.P99.Microseconds()), "p99-us")
}
