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
		os.Exit(exitStatus(err))
	}
}

// exitStatus is the process's exit status for err: 2 for a mistake on the command line, 3
// for a comparison that cannot decide (too few or too noisy runs), 1 for anything else.
func exitStatus(err error) int {
	var ue usageError
	var ie inconclusiveError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		return 2
	case errors.As(err, &ie):
		return 3
	}
	return 1
}
