// Package cli is the loadgen command: flag parsing, the subcommands (run, sweep, compare,
// ab, merge, plot, clean, version) and the wiring of bench/load, bench/report,
// bench/nemesis and bench/history. cmd/loadgen's main only calls Main; so does
// peers/cmd/loadgen, the build that also registers peer systems (bench.RegisterSystem), so
// that `--system etcd` runs through exactly this code.
//
// The package owns no measuring logic: a figure that appears in a result is computed in
// bench/load or bench/report, never here.
package cli
