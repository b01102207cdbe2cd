package storage

import (
	"fmt"
	"os"
	"slices"
	"time"
)

// Probe parameters: each sample writes ProbeWriteBytes at the next offset of a
// preallocated file and fdatasyncs it, the pattern of a small WAL batch.
const (
	ProbeWriteBytes = 4096
	ProbeMaxSamples = 100000
)

// SyncProbe is the measured fdatasync latency of a directory's filesystem.
type SyncProbe struct {
	Dir        string
	Samples    int
	WriteBytes int
	P50, P99   time.Duration
	Max, Mean  time.Duration
	PerSec     float64 // samples / total time: the raw ceiling on fsyncs per second
}

func (p SyncProbe) String() string {
	return fmt.Sprintf("fdatasync %s: n=%d write=%dB p50=%v p99=%v max=%v mean=%v rate=%.0f/s",
		p.Dir, p.Samples, p.WriteBytes, p.P50, p.P99, p.Max, p.Mean, p.PerSec)
}

// ProbeSync measures n write+fdatasync pairs in dir using a temporary file it removes.
func ProbeSync(dir string, n int) (SyncProbe, error) {
	if n <= 0 || n > ProbeMaxSamples {
		return SyncProbe{}, fmt.Errorf("storage: probe samples %d outside [1, %d]", n, ProbeMaxSamples)
	}
	tmp, err := os.CreateTemp(dir, "fsync-probe-*.tmp")
	if err != nil {
		return SyncProbe{}, err
	}
	name := tmp.Name()
	defer os.Remove(name)
	f := wrapOS(tmp)
	defer f.Close()
	if err := f.Allocate(int64(n) * ProbeWriteBytes); err != nil && err != ErrAllocateUnsupported {
		return SyncProbe{}, err
	}
	buf := make([]byte, ProbeWriteBytes)
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	lat := make([]time.Duration, n)
	start := time.Now()
	for i := range n {
		t := time.Now()
		if _, err := f.WriteAt(buf, int64(i)*ProbeWriteBytes); err != nil {
			return SyncProbe{}, err
		}
		if err := f.Sync(); err != nil {
			return SyncProbe{}, err
		}
		lat[i] = time.Since(t)
	}
	total := time.Since(start)
	slices.Sort(lat)
	p := SyncProbe{Dir: dir, Samples: n, WriteBytes: ProbeWriteBytes, Max: lat[n-1], Mean: total / time.Duration(n)}
	p.P50 = lat[(n-1)/2]
	p.P99 = lat[(99*n+99)/100-1]
	p.PerSec = float64(n) / total.Seconds()
	return p, nil
}
