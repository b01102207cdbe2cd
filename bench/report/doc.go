// Package report turns a load.Outcome into the versioned result file (results/README.md
// documents the schema), writes the Go benchmark-format lines that benchstat reads and the
// .hgrm percentile distribution the standard HdrHistogram plotter reads, merges results from
// several load-generator hosts (adding histograms, never averaging percentiles), compares runs
// with golang.org/x/perf's statistics, and formats the per-second lines and the summary table.
//
// It drives no load and knows no protocol; it reads the clock only through what callers pass.
package report
