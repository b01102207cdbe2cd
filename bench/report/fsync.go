package report

import (
	"fmt"
	"os"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"
)

// Fsync probe limits.
const (
	FsyncSamplesDefault = 200
	FsyncSamplesMax     = 100_000
	FsyncBlockDefault   = 4096 // one page: what a small WAL append writes
	FsyncBlockMax       = 1 << 20
)

// MeasureFdatasync appends blockBytes to a scratch file in dir and fdatasyncs it, samples
// times, and returns the latency percentiles. It is what a durable run's commit latency rests
// on, so results record it beside the run. The scratch file is removed.
func MeasureFdatasync(dir string, samples, blockBytes int) (*Fsync, error) {
	if samples < 1 || samples > FsyncSamplesMax {
		return nil, fmt.Errorf("fsync samples %d outside [1, %d]", samples, FsyncSamplesMax)
	}
	if blockBytes < 1 || blockBytes > FsyncBlockMax {
		return nil, fmt.Errorf("fsync block %d outside [1, %d]", blockBytes, FsyncBlockMax)
	}
	f, err := os.CreateTemp(dir, "fsync-probe-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, blockBytes)
	h := hdrhistogram.New(int64(time.Microsecond), int64(time.Minute), 3)
	for i := 0; i < samples; i++ {
		if _, err := f.Write(block); err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return nil, fmt.Errorf("fdatasync %s: %w", f.Name(), err)
		}
		_ = h.RecordValue(min(int64(time.Since(t0)), int64(time.Minute)))
	}
	return &Fsync{Dir: dir, Samples: samples, BlockBytes: blockBytes,
		P50: h.ValueAtQuantile(50), P99: h.ValueAtQuantile(99)}, nil
}
