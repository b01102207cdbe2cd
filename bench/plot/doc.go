// Package plot draws result files with gonum.org/v1/plot: the latency percentile spectrum
// (x = 1/(1-p) on a log scale, so the tail gets the room), ops/s and p99 over time with fault
// windows shaded, and a sweep's throughput-latency curve. It writes PNG and SVG.
//
// It reads only report types; it runs nothing and measures nothing.
package plot
