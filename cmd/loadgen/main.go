// Command loadgen drives a consensus cluster with a key-value workload and measures it: open-
// loop (constant rate, latency from each request's intended send time) or closed-loop, with
// HdrHistogram latency, per-second lines, a summary, and result files that compare across
// commits. Subcommands sweep the rate to saturation, compare and merge results, and plot them.
//
// Run `loadgen --help` for the flags. The command itself is package cli (so that a build
// with peer systems registered, peers/cmd/loadgen, runs the same code); the measuring code is
// in bench/load and bench/report.
package main

import (
	"fmt"
	"os"

	"github.com/consensusbench/consensusbench/cmd/loadgen/cli"
)

func main() {
	if err := cli.Main(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: "+err.Error())
		os.Exit(cli.ExitStatus(err))
	}
}
