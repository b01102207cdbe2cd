//go:build !unix

package raftpeers

import "time"

// processCPU is not measured on this platform: the benchmarks omit their per-CPU-second
// metrics.
func processCPU() (time.Duration, bool) { return 0, false }
