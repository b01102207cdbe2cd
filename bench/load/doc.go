// Package load generates key-value workloads and drives them against a bench.Target, in
// open-loop (constant rate, latency from each request's intended send time, so a stall is not
// hidden by coordinated omission) or closed-loop mode (clients x pipeline, each waiting for its
// previous request). It records latency in one HdrHistogram per worker, merged at the end, and
// per-second interval histograms for the time series.
//
// It owns no protocol logic, no output formatting and no files: callers get an Outcome and the
// per-second Intervals through a callback, and bench/report turns them into result files.
package load
