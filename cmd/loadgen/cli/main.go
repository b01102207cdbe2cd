package cli

import (
	"errors"
	"io"
)

// Main runs one loadgen invocation with args (without the program name), writing to stdout
// and stderr. A nil error means success; otherwise ExitStatus says how the process should
// exit, and the caller prints the error.
func Main(args []string, stdout, stderr io.Writer) error { return run(args, stdout, stderr) }

// ExitStatus is the process's exit status for err: 2 for a mistake on the command line, 3
// for a comparison that cannot decide (too few or too noisy runs), 1 for anything else.
func ExitStatus(err error) int { return exitStatus(err) }

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
