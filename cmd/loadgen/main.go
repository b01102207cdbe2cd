// Command loadgen drives a consensus cluster with a key-value workload and measures it: open-
// loop (constant rate, latency from each request's intended send time) or closed-loop, with
// HdrHistogram latency, per-second lines, a summary, and result files that compare across
// commits. Subcommands sweep the rate to saturation, compare and merge results, and plot them.
//
// Run `loadgen --help` for the flags. The measuring code is in bench/load and bench/report;
// this command only parses flags and wires them up.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: "+err.Error())
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
